// Org and project-scoped API key management (seed 000).

import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { createKey, isActive, listKeys, revokeKey } from "../core/keys";
import type { ApiKeyRow } from "../db/schema";
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
import { type AppEnv, carriesSecret } from "../http/router";
import {
  DeviceNameSchema,
  EXAMPLE_PROJECT_ID,
  ExpiresAtSchema,
  IdSchema,
  InstantSchema,
  iso,
  NameSchema,
  ScopesSchema,
  SlugSchema,
  toMs,
} from "../schemas/fields";
import { ExternalIdSchema, governanceBodyFields, toGovernanceInput } from "../schemas/governance";

const OrgApiKeySchema = z
  .object({
    created_at: InstantSchema,
    created_by_user_id: z.string().nullable(),
    device_name: z.string().nullable(),
    expires_at: InstantSchema.nullable(),
    id: z.string(),
    is_active: z.boolean(),
    key_prefix: z.string(),
    last_used_at: InstantSchema.nullable(),
    name: z.string(),
    organization_id: z.string(),
    project_id: z.string().nullable(),
    revoked_at: InstantSchema.nullable(),
    scopes: z.array(z.string()),
    source: z.string(),
  })
  .openapi("OrgApiKey");

const toOrgApiKey = (k: ApiKeyRow, now: number) => ({
  created_at: iso(k.createdAt) as string,
  created_by_user_id: k.createdByUserId,
  device_name: k.deviceName,
  expires_at: iso(k.expiresAt),
  id: k.id,
  is_active: isActive(k, now),
  key_prefix: k.keyPrefix,
  last_used_at: iso(k.lastUsedAt),
  name: k.name,
  organization_id: k.organizationId,
  project_id: k.projectId,
  revoked_at: iso(k.revokedAt),
  scopes: k.scopes,
  source: k.source,
});

const OrgParams = z.object({
  orgID: z
    .string()
    .min(1)
    .max(64)
    .openapi({ param: { name: "orgID", in: "path" }, description: "Organization id." }),
});
const common = {
  tags: ["Organization API keys"],
  security: bearerSecurity,
  middleware: requireAuth,
};

const list = createRoute({
  ...common,
  method: "get",
  path: "/v1/organizations/{orgID}/api-keys",
  summary: "List the organization's API keys",
  description:
    "Org-scoped and project keys of the organization; `project_id` narrows to one project.",
  request: {
    params: OrgParams,
    query: PageQuerySchema.extend({
      project_id: IdSchema.optional().openapi({ example: EXAMPLE_PROJECT_ID }),
      external_id: ExternalIdSchema.optional().openapi({
        description: "Only the keys of this owner.",
      }),
    }),
  },
  responses: {
    200: pagedJsonResponse(z.object({ api_keys: z.array(OrgApiKeySchema) }), "Keys, oldest first."),
    ...errorResponses,
  },
});

const create = createRoute({
  ...common,
  method: "post",
  path: "/v1/organizations/{orgID}/api-keys",
  summary: "Create an API key",
  description:
    "Without `project_id` the key is org-scoped (org admins only). `plaintext_api_key` is in this response only.",
  request: {
    params: OrgParams,
    body: jsonBody(
      z.strictObject({
        name: NameSchema,
        scopes: ScopesSchema,
        project_id: IdSchema.openapi({ example: EXAMPLE_PROJECT_ID }).nullable().optional(),
        environment: SlugSchema.optional(),
        expires_at: ExpiresAtSchema.nullable().optional(),
        device_name: DeviceNameSchema.nullable().optional(),
        ...governanceBodyFields,
      }),
    ),
  },
  responses: {
    201: jsonResponse(
      z.object({ api_key: OrgApiKeySchema, plaintext_api_key: z.string() }),
      "The key and its plaintext.",
    ),
    ...writeErrorResponses,
  },
});

const revoke = createRoute({
  ...common,
  method: "delete",
  path: "/v1/organizations/{orgID}/api-keys/{keyID}",
  summary: "Revoke an API key",
  request: {
    params: OrgParams.extend({
      keyID: IdSchema.openapi({
        param: { name: "keyID", in: "path" },
        description: "API key id.",
      }),
    }),
  },
  responses: {
    200: jsonResponse(z.object({ revoked: z.literal(true) }), "Revoked."),
    ...writeErrorResponses,
  },
});

export function registerOrgApiKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(list, async (c) => {
    const { orgID } = c.req.valid("param");
    const { project_id, external_id, ...page } = c.req.valid("query");
    const filter = { organizationId: orgID, projectId: project_id, externalId: external_id };
    const result = await listKeys(c.var.core, c.var.principal, filter, page);
    setNextLink(c, result);
    const now = c.var.core.now();
    return c.json({ api_keys: result.items.map((k) => toOrgApiKey(k, now)) }, 200);
  });

  app.openapi(idempotent(create), async (c) => {
    const body = c.req.valid("json");
    const { key, plaintext } = await createKey(c.var.core, c.var.actor, {
      organizationId: c.req.valid("param").orgID,
      projectId: body.project_id ?? null,
      environment: { name: body.environment },
      name: body.name,
      scopes: body.scopes,
      expiresAt: toMs(body.expires_at),
      deviceName: body.device_name,
      governance: toGovernanceInput(body),
    });
    carriesSecret(c, key.id);
    return c.json(
      { api_key: toOrgApiKey(key, c.var.core.now()), plaintext_api_key: plaintext },
      201,
    );
  });

  app.openapi(revoke, async (c) => {
    const { orgID, keyID } = c.req.valid("param");
    await revokeKey(c.var.core, c.var.actor, keyID, { organizationId: orgID });
    return c.json({ revoked: true as const }, 200);
  });
}
