// Keygate's own: verification analytics of one key and of one project (SPEC Part 2).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import {
  GRANULARITIES,
  identityVerifications,
  keyVerifications,
  MAX_SLOTS,
  projectVerifications,
  type VerificationsQuery,
} from "../core/analytics/queries";
import { bearerSecurity, requireAuth } from "../http/auth";
import { errorResponses, jsonResponse } from "../http/openapi";
import type { AppEnv } from "../http/router";
import { IdSchema, InstantSchema, TimestampSchema, toMs } from "../schemas/fields";

/** `start` and `end` of every analytics query (the usage export's too). */
export const RangeQuerySchema = z.object({
  start: TimestampSchema.optional().openapi({
    description:
      "Inclusive, RFC 3339; aligned down to the granularity. Default: 60 minutes (minute), 24 hours (hour) or 30 days (day) before `end`. Must not be after `end`, which defaults to now: a `start` in the future needs an `end` too (400 otherwise).",
    example: "2026-12-01T00:00:00Z",
  }),
  end: TimestampSchema.optional().openapi({
    description:
      "Exclusive, RFC 3339; aligned up to the granularity, so the current bucket is included. Default: now. May be in the future.",
    example: "2026-12-02T00:00:00Z",
  }),
});

const QuerySchema = RangeQuerySchema.extend({
  granularity: z.enum(GRANULARITIES).optional().openapi({
    default: "hour",
    description: "Bucket size (default `hour`). Minute buckets are kept 7 days.",
  }),
});

export const BucketSchema = z
  .object({
    start: InstantSchema,
    total: z.number().int(),
    counts: z
      .record(z.string(), z.number().int())
      .openapi({ description: "Verifications per code; codes with none are omitted." }),
  })
  .openapi("VerificationBucket");

const KeyVerificationsSchema = z
  .object({
    key_id: z.string(),
    granularity: z.enum(GRANULARITIES),
    buckets: z.array(BucketSchema),
  })
  .openapi("KeyVerifications");

const keysVerificationsFields = {
  granularity: z.enum(GRANULARITIES),
  buckets: z.array(BucketSchema),
  top_keys: z
    .array(z.object({ key_id: z.string(), name: z.string(), total: z.number().int() }))
    .openapi({ description: "At most 10: the busiest keys over the range, ties by key_id." }),
};

const ProjectVerificationsSchema = z
  .object({ project_id: z.string(), ...keysVerificationsFields })
  .openapi("ProjectVerifications");

const IdentityVerificationsSchema = z
  .object({ identity_id: z.string(), ...keysVerificationsFields })
  .openapi("IdentityVerifications");

const description = `Verifications of genuine keys (every code but MALFORMED and NOT_FOUND) over HTTP verify and RPC, per UTC bucket and code. Buckets are in time order; empty ones are omitted. At most ${MAX_SLOTS} buckets fit in the range (400 beyond). Counts arrive within about 10 s.`;

const common = {
  tags: ["Analytics"],
  method: "get" as const,
  security: bearerSecurity,
  middleware: requireAuth,
};

const keyRoute = createRoute({
  ...common,
  path: "/v1/api-keys/{keyID}/verifications",
  summary: "Verifications of one API key",
  description: `${description} Needs \`keys:read\` (or a Clerk user of the organization).`,
  request: {
    params: z.object({
      keyID: IdSchema.openapi({ param: { name: "keyID", in: "path" }, description: "API key id." }),
    }),
    query: QuerySchema,
  },
  responses: { 200: jsonResponse(KeyVerificationsSchema, "Counts."), ...errorResponses },
});

const projectRoute = createRoute({
  ...common,
  path: "/v1/projects/{id}/verifications",
  summary: "Verifications of a project's keys",
  description: `${description} Counts the project's keys (org-scoped keys appear only in their own key's analytics), plus the ten busiest keys. Needs \`keys:read\` (or a Clerk user of the organization).`,
  request: {
    params: z.object({ id: IdSchema.openapi({ param: { name: "id", in: "path" } }) }),
    query: QuerySchema,
  },
  responses: { 200: jsonResponse(ProjectVerificationsSchema, "Counts."), ...errorResponses },
});

const identityRoute = createRoute({
  ...common,
  path: "/v1/identities/{identityID}/verifications",
  summary: "Verifications of an identity's keys",
  description: `${description} Counts the keys of the organization whose \`external_id\` is the identity's (org-scoped keys too), plus the ten busiest keys. Needs \`keys:read\` of an org-scoped key (or a Clerk user of the organization).`,
  request: {
    params: z.object({
      identityID: IdSchema.openapi({
        param: { name: "identityID", in: "path" },
        description: "Identity id.",
      }),
    }),
    query: QuerySchema,
  },
  responses: { 200: jsonResponse(IdentityVerificationsSchema, "Counts."), ...errorResponses },
});

const toQuery = (query: z.infer<typeof QuerySchema>): VerificationsQuery => ({
  start: toMs(query.start) ?? undefined,
  end: toMs(query.end) ?? undefined,
  granularity: query.granularity,
});

export function registerVerifications(app: OpenAPIHono<AppEnv>) {
  app.openapi(keyRoute, async (c) => {
    const { keyID } = c.req.valid("param");
    const query = toQuery(c.req.valid("query"));
    return c.json(await keyVerifications(c.var.core, c.var.principal, keyID, query), 200);
  });
  app.openapi(projectRoute, async (c) => {
    const { id } = c.req.valid("param");
    const query = toQuery(c.req.valid("query"));
    return c.json(await projectVerifications(c.var.core, c.var.principal, id, query), 200);
  });
  app.openapi(identityRoute, async (c) => {
    const { identityID } = c.req.valid("param");
    const query = toQuery(c.req.valid("query"));
    return c.json(await identityVerifications(c.var.core, c.var.principal, identityID, query), 200);
  });
}
