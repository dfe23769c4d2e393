import { and, desc, eq, lt } from "drizzle-orm";
import { auditEvents } from "../db/schema";
import type { Core } from "./context";
import { openCursor, type PageRequest, toPage } from "./pagination";
import type { Actor } from "./principal";
import { actorId } from "./principal";

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

/** Newest first. */
export async function listAuditEvents(core: Core, organizationId: string, page: PageRequest) {
  const list = { kind: "audit_events", organizationId };
  const after = await openCursor(core, list, page.cursor);
  const rows = await core.db
    .select()
    .from(auditEvents)
    .where(
      and(
        eq(auditEvents.organizationId, organizationId),
        after === null ? undefined : lt(auditEvents.seq, after),
      ),
    )
    .orderBy(desc(auditEvents.seq))
    .limit(page.limit + 1);
  return toPage(core, list, rows, page.limit);
}
