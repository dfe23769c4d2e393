// What a verification asks (SPEC Part 2 "Verify, extended"), for both doors: the HTTP body
// (snake_case) and the RPC options (camelCase) are built from the same field schemas and
// parse into the same core request.
import { z } from "@hono/zod-openapi";
import type { VerifyRequest } from "../core/governance";
import { parseIp } from "../core/ip";
import { ScopesSchema } from "../routes/shared";

const IdSchema = z.string().min(1).max(64);

const IpSchema = z
  .string()
  .refine((value) => parseIp(value) !== null, "must be an IPv4 or IPv6 address")
  .openapi({
    description: "The caller's client address, checked against the key's `ip_allowlist`.",
    example: "203.0.113.7",
  });

const CostSchema = z.number().int().min(0).max(1000);

const RateLimitUseSchema = z.strictObject({
  name: z.string().min(1).max(32),
  cost: CostSchema.optional().openapi({ description: "Default: the request's `cost`." }),
});

const RateLimitUsesSchema = z
  .array(RateLimitUseSchema)
  .max(5)
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((use, i) => {
      if (seen.has(use.name)) {
        ctx.addIssue({ code: "custom", message: "names a limit twice", path: [i, "name"] });
      }
      seen.add(use.name);
    });
  })
  .openapi({
    description:
      "Apply only these of the key's limits, each at its own `cost`; default: all of them at `cost`. A name the key does not have is a 400.",
  });

const fields = {
  requiredScopes: ScopesSchema.optional(),
  projectId: IdSchema.optional(),
  organizationId: IdSchema.optional(),
  ip: IpSchema.optional(),
  cost: CostSchema.default(1).openapi({
    description:
      "Credits to spend and units for each rate limit, 0–1000 (default 1). 0 checks without spending.",
  }),
  ratelimits: RateLimitUsesSchema.optional(),
};

/** `POST /v1/keys/verify`. */
export const VerifyBodySchema = z.object({
  key: z.string().openapi({ example: "capy_live_…" }),
  required_scopes: fields.requiredScopes,
  project_id: fields.projectId,
  organization_id: fields.organizationId,
  ip: fields.ip,
  cost: fields.cost,
  ratelimits: fields.ratelimits,
});

/** `KeyService.verify(key, options)`. */
export const VerifyOptionsSchema = z.object(fields);

export type VerifyBody = z.output<typeof VerifyBodySchema>;
export type VerifyOptionsInput = z.input<typeof VerifyOptionsSchema>;

export const fromVerifyBody = (body: VerifyBody): VerifyRequest => ({
  requiredScopes: body.required_scopes,
  projectId: body.project_id,
  organizationId: body.organization_id,
  ip: body.ip,
  cost: body.cost,
  ratelimits: body.ratelimits,
});

/**
 * RPC options as the core's request; a bad option is a TypeError naming it (the RPC form of a
 * 400), since a Worker calling with the wrong shape has a bug, not a verdict to read.
 */
export function fromVerifyOptions(options: unknown): VerifyRequest {
  const parsed = VerifyOptionsSchema.safeParse(options ?? {});
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const path = issue?.path.map(String).join(".") || "options";
    throw new TypeError(`${path}: ${issue?.message ?? "invalid"}`);
  }
  return parsed.data;
}
