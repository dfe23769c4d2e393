import { type SQL, sql } from "drizzle-orm";
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
 * Condition for statements after an audited change in its batch: the audit event with this
 * id exists, i.e. the change committed (whatever other statements ran in between).
 */
export const auditRecorded = (auditId: string) =>
  sql`exists (select 1 from ${auditEvents} where ${auditEvents.id} = ${auditId})`;

/** What else a change writes when it commits (its lifecycle events' outbox rows). */
export type AlsoWrite = (recorded: SQL) => BatchItem<"sqlite"> | undefined;

/**
 * A conditional change and its audit event, atomically: the event is written only if the
 * change touched a row (D1 has no interactive transactions; one batch is atomic). `also`
 * adds a statement under the same condition (`auditRecorded`). Returns the changed row, or
 * undefined when the condition no longer held.
 */
export async function auditedChange<Row>(
  core: Core,
  actor: Actor,
  change: BatchItem<"sqlite"> & PromiseLike<Row[]>,
  entry: AuditEntry,
  also?: AlsoWrite,
): Promise<Row | undefined> {
  const audit = auditValues(core, actor, entry);
  const extra = also?.(auditRecorded(audit.id));
  const [rows] = await core.db.batch([
    change,
    insertWhere(core.db, auditEvents, audit, previousChangedOneRow),
    ...(extra ? [extra] : []),
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
