import type { BatchItem } from "drizzle-orm/batch";
import { insertWhere, previousChangedOneRow } from "../db/conditional";
import { auditEvents } from "../db/schema";
import type { Core } from "./context";
import { forbidden } from "./errors";
import { listPage, type PageRequest } from "./pagination";
import {
  type Actor,
  actorId,
  type Principal,
  reachesOrganization,
  requireOrganization,
  requireScope,
} from "./principal";

export interface AuditEntry {
  action: string;
  targetType: string;
  targetId: string;
  projectId?: string | null;
  /** Never a plaintext key, hash or secret. */
  metadata?: Record<string, unknown>;
}

/** The insert for one audit event, to put in the same batch as the change it records. */
export function auditInsert(core: Core, actor: Actor, entry: AuditEntry) {
  return core.db.insert(auditEvents).values(auditValues(core, actor, entry));
}

export function auditValues(core: Core, actor: Actor, entry: AuditEntry) {
  return {
    id: crypto.randomUUID(),
    organizationId: actor.principal.organizationId,
    actorType: actor.principal.type,
    actorId: actorId(actor.principal),
    action: entry.action,
    targetType: entry.targetType,
    targetId: entry.targetId,
    projectId: entry.projectId ?? null,
    ip: actor.ip,
    userAgent: actor.userAgent,
    metadata: entry.metadata ?? {},
    createdAt: core.now(),
  };
}

/**
 * A conditional change and its audit event, atomically: the event is written only if the
 * change touched a row (D1 has no interactive transactions; one batch is atomic). Returns
 * the changed row, or undefined when the condition no longer held.
 */
export async function auditedChange<Row>(
  core: Core,
  actor: Actor,
  change: BatchItem<"sqlite"> & PromiseLike<Row[]>,
  entry: AuditEntry,
): Promise<Row | undefined> {
  const [rows] = await core.db.batch([
    change,
    insertWhere(core.db, auditEvents, auditValues(core, actor, entry), previousChangedOneRow),
  ]);
  return (rows as Row[])[0];
}

/** The organization's audit log, newest first: org-wide readers with `audit:read` only. */
export async function listAuditEvents(
  core: Core,
  principal: Principal,
  organizationId: string,
  page: PageRequest,
) {
  requireOrganization(principal, organizationId);
  requireScope(principal, "audit:read");
  if (!reachesOrganization(principal)) {
    throw forbidden("A project-scoped API key cannot read the organization's audit log.");
  }
  const list = { kind: "audit_events", organizationId };
  return listPage(core, auditEvents, list, undefined, page, "newest");
}
