// A project's webhook endpoints (SPEC Part 3 "Key lifecycle events"): where the project's key
// lifecycle events are delivered, each endpoint subscribed to some event types or to all
// (`["*"]`). Readers need `projects:read`, writers `projects:write` or a Clerk admin; members
// read. The wire rules for `url` and `events` live in src/schemas/webhook-endpoints.ts.
import { and, eq, sql } from "drizzle-orm";
import { insertWhere } from "../db/conditional";
import { type WebhookEndpointRow, webhookEndpoints } from "../db/schema";
import { type AuditEntry, auditedChange } from "./audit";
import type { Core } from "./context";
import { conflict, forbidden, notFound } from "./errors";
import type { PageRequest } from "./pagination";
import { type Actor, type Principal, requireScope } from "./principal";
import { findProject, listProjectRows } from "./projects";

/** At most this many endpoints per project (SPEC). */
export const MAX_ENDPOINTS_PER_PROJECT = 10;

/** The fields of a create or a PATCH; `undefined` leaves one as it is, `null` clears it. */
export interface WebhookEndpointInput {
  url?: string | undefined;
  /** Event types (each once), or `["*"]`: checked at the door (EndpointEventsSchema). */
  events?: readonly string[] | undefined;
  description?: string | null | undefined;
  enabled?: boolean | undefined;
}

/** Writers: `projects:write`, and of Clerk users only admins (members read). */
function requireWriter(principal: Principal): void {
  requireScope(principal, "projects:write");
  if (principal.type === "user" && !principal.isAdmin) {
    throw forbidden("Only organization admins can change webhook endpoints.");
  }
}

/** The one row of this endpoint, in its tenant and project. */
const theRow = (endpoint: WebhookEndpointRow) =>
  and(
    eq(webhookEndpoints.organizationId, endpoint.organizationId),
    eq(webhookEndpoints.projectId, endpoint.projectId),
    eq(webhookEndpoints.id, endpoint.id),
  );

/** The endpoint of the project, if the caller reaches the project; 404 otherwise. */
async function findEndpoint(
  core: Core,
  principal: Principal,
  projectId: string,
  endpointId: string,
): Promise<WebhookEndpointRow> {
  const project = await findProject(core, principal, projectId);
  const row = await core.db.query.webhookEndpoints.findFirst({
    where: and(
      eq(webhookEndpoints.organizationId, project.organizationId),
      eq(webhookEndpoints.projectId, project.id),
      eq(webhookEndpoints.id, endpointId),
    ),
  });
  if (!row) throw notFound("Webhook endpoint");
  return row;
}

export async function getWebhookEndpoint(
  core: Core,
  principal: Principal,
  projectId: string,
  endpointId: string,
): Promise<WebhookEndpointRow> {
  requireScope(principal, "projects:read");
  return findEndpoint(core, principal, projectId, endpointId);
}

/** The project's endpoints, oldest first. */
export const listWebhookEndpoints = (
  core: Core,
  principal: Principal,
  projectId: string,
  page: PageRequest,
) =>
  listProjectRows(
    core,
    principal,
    projectId,
    { table: webhookEndpoints, kind: "webhook_endpoints", order: "oldest" },
    page,
  );

/** What the audit log keeps of an endpoint's fields (by their wire names). */
const auditFields = (input: WebhookEndpointInput) => ({
  url: input.url,
  events: input.events,
  description: input.description,
  enabled: input.enabled,
});

const auditOf = (
  action: string,
  endpoint: { id: string; projectId: string },
  metadata: Record<string, unknown>,
): AuditEntry => ({
  action,
  targetType: "webhook_endpoint",
  targetId: endpoint.id,
  projectId: endpoint.projectId,
  metadata,
});

export async function createWebhookEndpoint(
  core: Core,
  actor: Actor,
  projectId: string,
  input: { url: string; events: readonly string[]; description?: string | null | undefined },
): Promise<WebhookEndpointRow> {
  requireWriter(actor.principal);
  const project = await findProject(core, actor.principal, projectId);
  const now = core.now();
  const id = crypto.randomUUID();
  const { organizationId } = project;
  // The count is taken by the insert itself, so of concurrent creates only those that still
  // find room insert (and only those write an audit event: one batch).
  const room = sql`(select count(*) from ${webhookEndpoints} where ${webhookEndpoints.organizationId} = ${organizationId} and ${webhookEndpoints.projectId} = ${project.id}) < ${MAX_ENDPOINTS_PER_PROJECT}`;
  const row = await auditedChange<WebhookEndpointRow>(
    core,
    actor,
    insertWhere(
      core.db,
      webhookEndpoints,
      {
        id,
        organizationId,
        projectId: project.id,
        url: input.url,
        events: [...input.events],
        description: input.description ?? null,
        enabled: true,
        createdAt: now,
        updatedAt: now,
      },
      room,
    ).returning(),
    auditOf("webhook_endpoint.created", { id, projectId: project.id }, auditFields(input)),
  );
  if (!row) {
    throw conflict(
      `A project has at most ${MAX_ENDPOINTS_PER_PROJECT} webhook endpoints; delete one first.`,
    );
  }
  return row;
}

export async function updateWebhookEndpoint(
  core: Core,
  actor: Actor,
  projectId: string,
  endpointId: string,
  input: WebhookEndpointInput,
): Promise<WebhookEndpointRow> {
  requireWriter(actor.principal);
  const endpoint = await findEndpoint(core, actor.principal, projectId, endpointId);
  const changes: Partial<WebhookEndpointRow> = {};
  if (input.url !== undefined) changes.url = input.url;
  if (input.events !== undefined) changes.events = [...input.events];
  if (input.description !== undefined) changes.description = input.description;
  if (input.enabled !== undefined) changes.enabled = input.enabled;
  if (Object.keys(changes).length === 0) return endpoint;
  const row = await auditedChange<WebhookEndpointRow>(
    core,
    actor,
    core.db
      .update(webhookEndpoints)
      .set({ ...changes, updatedAt: core.now() })
      .where(theRow(endpoint))
      .returning(),
    // JSON drops the fields left unchanged (undefined).
    auditOf("webhook_endpoint.updated", endpoint, { changes: auditFields(input) }),
  );
  if (!row) throw notFound("Webhook endpoint"); // deleted meanwhile
  return row;
}

export async function deleteWebhookEndpoint(
  core: Core,
  actor: Actor,
  projectId: string,
  endpointId: string,
): Promise<void> {
  requireWriter(actor.principal);
  const endpoint = await findEndpoint(core, actor.principal, projectId, endpointId);
  const row = await auditedChange<WebhookEndpointRow>(
    core,
    actor,
    core.db.delete(webhookEndpoints).where(theRow(endpoint)).returning(),
    auditOf("webhook_endpoint.deleted", endpoint, { url: endpoint.url }),
  );
  if (!row) throw notFound("Webhook endpoint");
}
