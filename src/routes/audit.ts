// Keygate's own: the organization's audit log.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { listAuditEvents } from "../core/audit";
import { ACTOR_TYPES, type AuditEventRow } from "../db/schema";
import { bearerSecurity, requireAuth } from "../http/auth";
import { errorResponses, pagedJsonResponse } from "../http/openapi";
import { PageQuerySchema, setNextLink } from "../http/paging";
import type { AppEnv } from "../http/router";
import { InstantSchema, iso } from "../schemas/fields";

const AuditEventSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    actor_type: z.enum(ACTOR_TYPES),
    actor_id: z.string(),
    action: z.string().openapi({ example: "api_key.revoked" }),
    target_type: z.string(),
    target_id: z.string(),
    project_id: z.string().nullable(),
    ip: z.string().nullable(),
    user_agent: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()),
    created_at: InstantSchema,
  })
  .openapi("AuditEvent");

const toAuditEvent = (e: AuditEventRow) => ({
  id: e.id,
  organization_id: e.organizationId,
  actor_type: e.actorType,
  actor_id: e.actorId,
  action: e.action,
  target_type: e.targetType,
  target_id: e.targetId,
  project_id: e.projectId,
  ip: e.ip,
  user_agent: e.userAgent,
  metadata: e.metadata,
  created_at: iso(e.createdAt) as string,
});

const route = createRoute({
  method: "get",
  path: "/v1/organizations/{orgID}/audit-log",
  tags: ["Audit"],
  summary: "The organization's audit log",
  description: "Who (user or key) did what to which resource, when and from where; newest first.",
  security: bearerSecurity,
  middleware: requireAuth,
  request: {
    params: z.object({
      orgID: z
        .string()
        .min(1)
        .max(64)
        .openapi({ param: { name: "orgID", in: "path" } }),
    }),
    query: PageQuerySchema,
  },
  responses: {
    200: pagedJsonResponse(z.object({ audit_events: z.array(AuditEventSchema) }), "Events."),
    ...errorResponses,
  },
});

export function registerAudit(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, async (c) => {
    const { orgID } = c.req.valid("param");
    const page = await listAuditEvents(c.var.core, c.var.principal, orgID, c.req.valid("query"));
    setNextLink(c, page);
    return c.json({ audit_events: page.items.map(toAuditEvent) }, 200);
  });
}
