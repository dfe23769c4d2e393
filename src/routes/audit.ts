// Keygate's own: the organization's audit log.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { listAuditEvents } from "../core/audit";
import { forbidden } from "../core/errors";
import { reachesOrganization, requireOrganization, requireScope } from "../core/principal";
import type { AuditEventRow } from "../db/schema";
import {
  type AppEnv,
  bearerSecurity,
  errorResponses,
  InstantSchema,
  iso,
  jsonResponse,
  PageQuerySchema,
  requireAuth,
  setNextLink,
} from "./shared";

const AuditEventSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    actor_type: z.enum(["user", "api_key", "system"]),
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
  actor_type: e.actorType as "user" | "api_key" | "system",
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
    200: jsonResponse(z.object({ audit_events: z.array(AuditEventSchema) }), "Events."),
    ...errorResponses,
  },
});

export function registerAudit(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, async (c) => {
    const { principal, core } = c.var;
    requireOrganization(principal, c.req.valid("param").orgID);
    requireScope(principal, "audit:read");
    if (!reachesOrganization(principal)) {
      throw forbidden("A project-scoped API key cannot read the organization's audit log.");
    }
    const page = await listAuditEvents(core, principal.organizationId, c.req.valid("query"));
    setNextLink(c, page);
    return c.json({ audit_events: page.items.map(toAuditEvent) }, 200);
  });
}
