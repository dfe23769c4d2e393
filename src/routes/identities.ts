// Keygate's own: identities, the owners of keys (SPEC Part 3 "Identities: one owner, many keys").
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Core } from "../core/context";
import {
  adjustIdentityCredits,
  createIdentity,
  deleteIdentity,
  getIdentity,
  listIdentities,
  liveIdentityCredits,
  updateIdentity,
} from "../core/identities";
import { listedCredits } from "../core/keys";
import type { IdentityRow } from "../db/schema";
import { bearerSecurity, requireAuth } from "../http/auth";
import { idempotent } from "../http/idempotency";
import {
  errorResponses,
  jsonBody,
  jsonResponse,
  pagedJsonResponse,
  writeErrorResponses,
} from "../http/openapi";
import { PageQuerySchema, setNextLink } from "../http/paging";
import type { AppEnv } from "../http/router";
import { IdSchema, InstantSchema, iso } from "../schemas/fields";
import {
  CreditsSchema,
  ExternalIdSchema,
  governanceKeyFields,
  MetaSchema,
  RateLimitsSchema,
  toGovernanceFields,
} from "../schemas/governance";
import { CreditBalanceSchema, CreditOperationSchema } from "./api-keys";

export const IdentitySchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    external_id: z.string(),
    meta: governanceKeyFields.meta,
    ratelimits: governanceKeyFields.ratelimits,
    // GET shows the exact `remaining`; lists may show one up to 60 s old (as for keys).
    credits: governanceKeyFields.credits,
    created_at: InstantSchema,
    updated_at: InstantSchema,
  })
  .openapi("Identity");

/** The identity object; `remaining`: the live balance when it was read (else the stored one). */
function toIdentity(row: IdentityRow, remaining?: number | null) {
  // The key object's presenters for the fields an identity shares with a key.
  const { meta, ratelimits, credits } = toGovernanceFields(
    { ...row, enabled: true, ipAllowlist: null },
    remaining ?? undefined,
  );
  return {
    id: row.id,
    organization_id: row.organizationId,
    external_id: row.externalId,
    meta,
    ratelimits,
    credits,
    created_at: iso(row.createdAt) as string,
    updated_at: iso(row.updatedAt) as string,
  };
}

/** A page of identities with the balances lists show: no usage-object call per row. */
function listedIdentities(core: Core, rows: IdentityRow[]) {
  const now = core.now();
  return rows.map((row) => toIdentity(row, listedCredits(row, now) ?? undefined));
}

const IdentityParams = z.object({
  identityID: IdSchema.openapi({
    param: { name: "identityID", in: "path" },
    description: "Identity id.",
  }),
});

const access =
  "Needs `keys:read` (reads) or `keys:write` (changes) of an org-scoped API key, or a Clerk user of the organization (admins change, members read). Project-scoped keys cannot reach identities.";
const common = { tags: ["Identities"], security: bearerSecurity, middleware: requireAuth };

/** The members an identity's create and PATCH share; `null` clears one. */
const identityFields = {
  meta: MetaSchema.nullable().optional(),
  ratelimits: RateLimitsSchema.nullable().optional(),
  credits: CreditsSchema.nullable().optional(),
};

const list = createRoute({
  ...common,
  method: "get",
  path: "/v1/identities",
  summary: "List identities",
  description: `Oldest first. ${access}`,
  request: {
    query: PageQuerySchema.extend({
      external_id: ExternalIdSchema.optional().openapi({ description: "Only this owner." }),
    }),
  },
  responses: {
    200: pagedJsonResponse(z.object({ identities: z.array(IdentitySchema) }), "Identities."),
    ...errorResponses,
  },
});

const create = createRoute({
  ...common,
  method: "post",
  path: "/v1/identities",
  summary: "Create an identity",
  description: `An owner in your own system: the keys whose \`external_id\` is this identity's belong to it. \`external_id\` is unique in the organization (409). ${access}`,
  request: {
    body: jsonBody(
      z.strictObject({
        external_id: ExternalIdSchema.openapi({ description: "The owner in your own system." }),
        ...identityFields,
      }),
    ),
  },
  responses: { 201: jsonResponse(IdentitySchema, "The identity."), ...writeErrorResponses },
});

const get = createRoute({
  ...common,
  method: "get",
  path: "/v1/identities/{identityID}",
  summary: "Get an identity",
  description: `\`credits.remaining\` is the exact live balance. ${access}`,
  request: { params: IdentityParams },
  responses: { 200: jsonResponse(IdentitySchema, "The identity."), ...errorResponses },
});

const patch = createRoute({
  ...common,
  method: "patch",
  path: "/v1/identities/{identityID}",
  summary: "Update an identity",
  description: `\`external_id\`, \`meta\`, \`ratelimits\`, \`credits\`; \`null\` clears one (not \`external_id\`). \`credits\` sets the live balance. ${access}`,
  request: {
    params: IdentityParams,
    body: jsonBody(
      z.strictObject({
        external_id: ExternalIdSchema.optional().openapi({
          description: "A new owner id, unique in the organization (409 otherwise).",
          example: "user_5678",
        }),
        ...identityFields,
      }),
    ),
  },
  responses: { 200: jsonResponse(IdentitySchema, "The updated identity."), ...writeErrorResponses },
});

const remove = createRoute({
  ...common,
  method: "delete",
  path: "/v1/identities/{identityID}",
  summary: "Delete an identity",
  description: `Its keys stay as they are (their \`external_id\` too). ${access}`,
  request: { params: IdentityParams },
  responses: { 204: { description: "Deleted." }, ...writeErrorResponses },
});

const credits = createRoute({
  ...common,
  method: "post",
  path: "/v1/identities/{identityID}/credits",
  summary: "Set, increment or decrement an identity's credits",
  description: `Atomic: concurrent operations never lose an update. \`decrement\` stops at 0, \`increment\` at 1 000 000 000 000. An identity without credits answers 409. ${access}`,
  request: {
    params: IdentityParams,
    body: jsonBody(CreditOperationSchema),
  },
  responses: {
    200: jsonResponse(CreditBalanceSchema, "The balance after it."),
    ...writeErrorResponses,
  },
});

export function registerIdentities(app: OpenAPIHono<AppEnv>) {
  app.openapi(list, async (c) => {
    const { external_id, ...page } = c.req.valid("query");
    const result = await listIdentities(
      c.var.core,
      c.var.principal,
      { externalId: external_id },
      page,
    );
    setNextLink(c, result);
    return c.json({ identities: listedIdentities(c.var.core, result.items) }, 200);
  });

  app.openapi(idempotent(create), async (c) => {
    const body = c.req.valid("json");
    const row = await createIdentity(c.var.core, c.var.actor, {
      externalId: body.external_id,
      meta: body.meta,
      ratelimits: body.ratelimits,
      credits: body.credits,
    });
    return c.json(toIdentity(row), 201);
  });

  app.openapi(get, async (c) => {
    const core = c.var.core;
    const row = await getIdentity(core, c.var.principal, c.req.valid("param").identityID);
    return c.json(toIdentity(row, await liveIdentityCredits(core, row)), 200);
  });

  app.openapi(patch, async (c) => {
    const body = c.req.valid("json");
    const core = c.var.core;
    const row = await updateIdentity(core, c.var.actor, c.req.valid("param").identityID, {
      externalId: body.external_id,
      meta: body.meta,
      ratelimits: body.ratelimits,
      credits: body.credits,
    });
    return c.json(toIdentity(row, await liveIdentityCredits(core, row)), 200);
  });

  app.openapi(remove, async (c) => {
    await deleteIdentity(c.var.core, c.var.actor, c.req.valid("param").identityID);
    return c.body(null, 204);
  });

  app.openapi(idempotent(credits), async (c) => {
    const { operation, value } = c.req.valid("json");
    const result = await adjustIdentityCredits(
      c.var.core,
      c.var.actor,
      c.req.valid("param").identityID,
      operation,
      value,
    );
    return c.json(result, 200);
  });
}
