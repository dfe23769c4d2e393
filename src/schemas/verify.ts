// The verify contract's wire schema: HTTP verify's body members (by wire names,
// src/routes/verify.ts) and RPC `verify` options (these names) are checked by this one schema.
import { z } from "@hono/zod-openapi";
import type { KeyMeta } from "../core/governance";
import { parseIp } from "../core/ip";
import { VERIFY_CODES, type VerifyResult } from "../core/verify";
import type { VerifyOptions } from "../core/verify/options";
import { IdSchema, InstantSchema, ScopesSchema } from "./fields";

const IpSchema = z
  .string()
  .refine((value) => parseIp(value) !== null, "must be an IPv4 or IPv6 address")
  .openapi({
    description: "The caller's client address, checked against the key's `ip_allowlist`.",
    example: "203.0.113.7",
  });

const CostSchema = z.number().int().min(0).max(1000);

const RateLimitUsesSchema = z
  .array(
    z.strictObject({
      name: z.string().min(1).max(32),
      cost: CostSchema.optional().openapi({ description: "Default: the request's `cost`." }),
    }),
  )
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
      "Apply only these of the key's rate limits, each at its own `cost`; default: all of them at `cost`. A name the key does not have is a 400.",
  });

/**
 * What a verification may ask besides the key: the one contract of HTTP verify (by wire
 * names, src/routes/verify.ts) and RPC `verify` (these names), so both refuse the same input.
 */
// Strict: a misspelled member (`requiredScope`) is refused, never skipped as if not asked.
export const VerifyOptionsSchema = z.strictObject({
  requiredScopes: ScopesSchema.optional(),
  /** The key must reach this project, else `WRONG_PROJECT`. */
  projectId: IdSchema.optional(),
  /** The key must belong to this organization, else `NOT_FOUND` (as an unknown key). */
  organizationId: IdSchema.optional().openapi({
    description: "Pin: a key of another organization answers `NOT_FOUND`, as an unknown key.",
  }),
  ip: IpSchema.optional(),
  cost: CostSchema.default(1).openapi({
    description:
      "Credits to spend and units for each rate limit, 0–1000 (default 1). 0 checks without spending.",
  }),
  ratelimits: RateLimitUsesSchema.optional(),
});

type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
const inStep: Same<VerifyOptions, z.input<typeof VerifyOptionsSchema>> = true;
void inStep;

const MetaSchema = z
  .custom<KeyMeta>((value) => typeof value === "object" && value !== null)
  .nullable()
  .openapi({ type: ["object", "null"], additionalProperties: {} });

const ResultCreditsSchema = z.object({
  remaining: z.number().int(),
  refill_at: InstantSchema.nullable(),
});

const ResultRatelimitsSchema = z.array(
  z.object({
    name: z.string(),
    limit: z.number().int(),
    remaining: z.number().int(),
    reset_at: InstantSchema,
  }),
);

const ResultIdentitySchema = z
  .object({
    id: z.string(),
    external_id: z.string(),
    meta: MetaSchema,
    credits: ResultCreditsSchema.nullable().openapi({
      description: "The identity's balance after this call; null for an identity without credits.",
    }),
    ratelimits: ResultRatelimitsSchema.nullable().openapi({
      description:
        "The identity's limits this call applied, `remaining` after it; null for an identity without limits.",
    }),
  })
  .nullable()
  .openapi({
    description:
      "The identity the key belongs to (the one of its organization with the key's `external_id`), whose limits and credits were decided with the key's; null when it has none.",
  });

/**
 * The answer to "is this key good?", over HTTP and RPC alike: the wire's one description of
 * it, whose type is the core's `VerifyResult` (checked below) and @keygate/hono's (its type
 * test compares against this schema's output).
 */
export const VerifyResultSchema = z
  .object({
    valid: z.boolean(),
    code: z.enum(VERIFY_CODES),
    key_id: z.string().nullable(),
    organization_id: z.string().nullable(),
    project_id: z.string().nullable(),
    environment_id: z.string().nullable(),
    scopes: z.array(z.string()).nullable(),
    expires_at: InstantSchema.nullable(),
    in_grace: z.boolean(),
    name: z.string().nullable(),
    enabled: z.boolean().nullable(),
    meta: MetaSchema,
    external_id: z.string().nullable(),
    credits: ResultCreditsSchema.nullable().openapi({
      description: "After this call's spending; null for keys without credits.",
    }),
    ratelimits: ResultRatelimitsSchema.nullable().openapi({
      description:
        "The limits this call applied, `remaining` after it; null for keys without limits.",
    }),
    identity: ResultIdentitySchema,
  })
  .openapi("VerifyResult");

const resultInStep: Same<VerifyResult, z.output<typeof VerifyResultSchema>> = true;
void resultInStep;
