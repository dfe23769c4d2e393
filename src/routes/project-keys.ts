// Project API keys for dashboard users (seed 002): Huma-style bodies with `$schema`.

import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { notFound } from "../core/errors";
import { createKey, isActive, listKeys, revokeKey } from "../core/keys";
import type { ApiKeyRow } from "../db/schema";
import { bearerSecurity, requireAuth } from "../http/auth";
import { idempotent } from "../http/idempotency";
import {
  errorResponses,
  jsonResponse,
  optionalJsonBody,
  ProblemSchema,
  pagedJsonResponse,
  writeErrorResponses,
} from "../http/openapi";
import { PageQuerySchema, setNextLink } from "../http/paging";
import { type AppEnv, carriesSecret } from "../http/router";
import {
  ExpiresAtSchema,
  IdSchema,
  InstantSchema,
  iso,
  NameSchema,
  ScopesSchema,
  toMs,
} from "../schemas/fields";
import { ExternalIdSchema, governanceBodyFields, toGovernanceInput } from "../schemas/governance";

const DEFAULT_NAME = "Untitled key";

const ProjectKeySchema = z
  .object({
    created_at: InstantSchema,
    created_by: z.string().nullable(),
    expires_at: InstantSchema.nullable(),
    is_active: z.boolean(),
    is_admin_managed: z.boolean(),
    key_id: z.string(),
    key_prefix: z.string(),
    last_used_at: InstantSchema.nullable(),
    name: z.string(),
    project_id: z.string().nullable(),
    scopes: z.array(z.string()),
    tenant_id: z.string(),
  })
  .openapi("ProjectKey");

const toProjectKey = (k: ApiKeyRow, now: number) => ({
  created_at: iso(k.createdAt) as string,
  created_by: k.createdByUserId,
  expires_at: iso(k.expiresAt),
  is_active: isActive(k, now),
  is_admin_managed: k.isAdminManaged,
  key_id: k.id,
  key_prefix: k.keyPrefix,
  last_used_at: iso(k.lastUsedAt),
  name: k.name,
  project_id: k.projectId,
  scopes: k.scopes,
  tenant_id: k.organizationId,
});

const ProjectParams = z.object({
  projectId: IdSchema.openapi({
    param: { name: "projectId", in: "path" },
    description: "Project UUID",
  }),
});
// Seed 002 names the Clerk scheme; API keys are accepted on every surface all the same.
const common = {
  tags: ["Project keys"],
  // Either credential; bearerAuth first, so a token entered once on /docs works here too.
  security: [...bearerSecurity, { bearerClerk: [] }],
  middleware: requireAuth,
};

const list = createRoute({
  ...common,
  method: "get",
  path: "/api/v1/projects/{projectId}/keys",
  summary: "List API keys for a project",
  request: {
    params: ProjectParams,
    query: PageQuerySchema.extend({
      external_id: ExternalIdSchema.optional().openapi({
        description: "Only the keys of this owner.",
      }),
    }),
  },
  responses: {
    200: pagedJsonResponse(z.array(ProjectKeySchema), "The project's keys, oldest first."),
    ...errorResponses,
  },
});

// The seed's bodies by the names their `$schema` members point at (Huma's convention).
const CreateInputSchema = z
  .strictObject({
    $schema: z
      .string()
      .optional()
      .openapi({ example: "/api/v1/schemas/CreateAPIKeyInputBody.json" }),
    name: NameSchema.optional(),
    scopes: ScopesSchema.optional(),
    expires_at: ExpiresAtSchema.nullable().optional(),
    is_admin_managed: z.boolean().optional(),
    ...governanceBodyFields,
  })
  .openapi("CreateAPIKeyInputBody");
const CreateOutputSchema = ProjectKeySchema.extend({
  $schema: z.string(),
  key: z.string(),
}).openapi("CreateAPIKeyOutputBody");
const RevokeOutputSchema = z
  .object({ $schema: z.string(), success: z.literal(true) })
  .openapi("RevokeAPIKeyOutputBody");

/** `$schema` targets of seed 002, served as JSON Schema at `/api/v1/schemas/{name}.json`. */
const BODY_SCHEMAS: Record<string, z.ZodType> = {
  CreateAPIKeyInputBody: CreateInputSchema,
  CreateAPIKeyOutputBody: CreateOutputSchema,
  RevokeAPIKeyOutputBody: RevokeOutputSchema,
  ErrorModel: ProblemSchema,
};
const schemaUrl = (name: string) => `/api/v1/schemas/${name}.json`;

const create = createRoute({
  ...common,
  method: "post",
  path: "/api/v1/projects/{projectId}/keys",
  summary: "Create an API key",
  description: "Every field is optional. Only org admins create admin-managed keys.",
  request: { params: ProjectParams, body: optionalJsonBody(CreateInputSchema) },
  responses: {
    201: jsonResponse(CreateOutputSchema, "The key and its plaintext."),
    ...writeErrorResponses,
  },
});

const revoke = createRoute({
  ...common,
  method: "delete",
  path: "/api/v1/projects/{projectId}/keys/{keyId}",
  summary: "Revoke an API key",
  request: {
    params: ProjectParams.extend({
      keyId: IdSchema.openapi({
        param: { name: "keyId", in: "path" },
        description: "API key UUID",
      }),
    }),
  },
  responses: {
    200: jsonResponse(RevokeOutputSchema, "Revoked."),
    ...writeErrorResponses,
  },
});

const bodySchema = createRoute({
  method: "get",
  path: "/api/v1/schemas/{name}",
  tags: ["Project keys"],
  summary: "JSON Schema of a body, as named by its `$schema` member",
  security: [],
  request: {
    params: z.object({
      name: z.string().openapi({ param: { name: "name", in: "path" }, example: "ErrorModel.json" }),
    }),
  },
  responses: {
    200: jsonResponse(z.record(z.string(), z.unknown()), "A JSON Schema (draft 2020-12)."),
    404: errorResponses[404],
  },
});

export function registerProjectKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(list, async (c) => {
    const { projectId } = c.req.valid("param");
    const { external_id, ...query } = c.req.valid("query");
    const filter = { projectId, externalId: external_id };
    const page = await listKeys(c.var.core, c.var.principal, filter, query);
    setNextLink(c, page);
    const now = c.var.core.now();
    return c.json(
      page.items.map((k) => toProjectKey(k, now)),
      200,
    );
  });

  app.openapi(idempotent(create), async (c) => {
    const body = c.req.valid("json");
    const { key, plaintext } = await createKey(c.var.core, c.var.actor, {
      projectId: c.req.valid("param").projectId,
      name: body.name ?? DEFAULT_NAME,
      scopes: body.scopes ?? [],
      expiresAt: toMs(body.expires_at),
      isAdminManaged: body.is_admin_managed,
      governance: toGovernanceInput(body),
    });
    carriesSecret(c, key.id);
    return c.json(
      {
        $schema: schemaUrl("CreateAPIKeyOutputBody"),
        ...toProjectKey(key, c.var.core.now()),
        key: plaintext,
      },
      201,
    );
  });

  app.openapi(revoke, async (c) => {
    const { projectId, keyId } = c.req.valid("param");
    await revokeKey(c.var.core, c.var.actor, keyId, { projectId });
    return c.json({ $schema: schemaUrl("RevokeAPIKeyOutputBody"), success: true as const }, 200);
  });

  app.openapi(bodySchema, (c) => {
    const name = c.req.valid("param").name.replace(/\.json$/, "");
    const schema = Object.hasOwn(BODY_SCHEMAS, name) ? BODY_SCHEMAS[name] : undefined;
    if (!schema) throw notFound(`Schema ${name}`);
    const document = z.toJSONSchema(schema, { unrepresentable: "any", io: "output" });
    return c.json({ ...document, $id: schemaUrl(name), title: name }, 200);
  });
}
