// Project API keys for dashboard users (seed 002): Huma-style bodies with `$schema`.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { createKey, isActive, listKeys, revokeKey } from "../core/keys";
import type { ApiKeyRow } from "../db/schema";
import {
  type AppEnv,
  bearerSecurity,
  errorResponses,
  iso,
  jsonBody,
  jsonResponse,
  NameSchema,
  PageQuerySchema,
  requireAuth,
  ScopesSchema,
  setNextLink,
  TimestampSchema,
  toMs,
  UuidSchema,
  writeErrorResponses,
} from "./shared";

const DEFAULT_NAME = "Untitled key";

const ProjectKeySchema = z
  .object({
    created_at: z.string(),
    created_by: z.string().nullable(),
    expires_at: z.string().nullable(),
    is_active: z.boolean(),
    is_admin_managed: z.boolean(),
    key_id: z.string(),
    key_prefix: z.string(),
    last_used_at: z.string().nullable(),
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
  projectId: UuidSchema.openapi({
    param: { name: "projectId", in: "path" },
    description: "Project UUID",
  }),
});
const common = { tags: ["Project keys"], security: bearerSecurity, middleware: requireAuth };

const list = createRoute({
  ...common,
  method: "get",
  path: "/api/v1/projects/{projectId}/keys",
  summary: "List API keys for a project",
  request: { params: ProjectParams, query: PageQuerySchema },
  responses: {
    200: jsonResponse(z.array(ProjectKeySchema), "The project's keys, oldest first."),
    ...errorResponses,
  },
});

const create = createRoute({
  ...common,
  method: "post",
  path: "/api/v1/projects/{projectId}/keys",
  summary: "Create an API key",
  description: "Every field is optional. Only org admins create admin-managed keys.",
  request: {
    params: ProjectParams,
    body: jsonBody(
      z.object({
        name: NameSchema.optional(),
        scopes: ScopesSchema.optional(),
        expires_at: TimestampSchema.nullable().optional(),
        is_admin_managed: z.boolean().optional(),
      }),
    ),
  },
  responses: {
    201: jsonResponse(
      ProjectKeySchema.extend({ $schema: z.string(), key: z.string() }),
      "The key and its plaintext.",
    ),
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
      keyId: UuidSchema.openapi({
        param: { name: "keyId", in: "path" },
        description: "API key UUID",
      }),
    }),
  },
  responses: {
    200: jsonResponse(z.object({ $schema: z.string(), success: z.literal(true) }), "Revoked."),
    ...writeErrorResponses,
  },
});

export function registerProjectKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(list, async (c) => {
    const { projectId } = c.req.valid("param");
    const page = await listKeys(c.var.core, c.var.principal, { projectId }, c.req.valid("query"));
    setNextLink(c, page);
    const now = c.var.core.now();
    return c.json(
      page.items.map((k) => toProjectKey(k, now)),
      200,
    );
  });

  app.openapi(create, async (c) => {
    const body = c.req.valid("json");
    const { key, plaintext } = await createKey(c.var.core, c.var.actor, {
      projectId: c.req.valid("param").projectId,
      name: body.name ?? DEFAULT_NAME,
      scopes: body.scopes ?? [],
      expiresAt: toMs(body.expires_at),
      isAdminManaged: body.is_admin_managed,
    });
    return c.json(
      {
        $schema: "/api/v1/schemas/CreateAPIKeyOutputBody.json",
        ...toProjectKey(key, c.var.core.now()),
        key: plaintext,
      },
      201,
    );
  });

  app.openapi(revoke, async (c) => {
    const { projectId, keyId } = c.req.valid("param");
    await revokeKey(c.var.core, c.var.actor, keyId, projectId);
    return c.json(
      { $schema: "/api/v1/schemas/RevokeAPIKeyOutputBody.json", success: true as const },
      200,
    );
  });
}
