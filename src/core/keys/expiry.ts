// Expiry events (SPEC Part 3): `api_key.expiring` 7 days and 1 day before a key's expires_at,
// `api_key.expired` at it. `expiry_notice_at` says when the cron next owes a key one; a run
// reads only keys that are due, through its index, a bounded batch at a time.
import { and, asc, eq, isNotNull, lte } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { insertWhere, previousChangedOneRow } from "../../db/conditional";
import { type ApiKeyRow, apiKeys, auditEvents } from "../../db/schema";
import { auditRecorded, auditValues } from "../audit";
import type { Core } from "../context";
import { keyEventRows, occurrenceId, SCHEDULER } from "../events";
import type { Actor } from "../principal";
import { DAY_MS } from "../time";

/** Keys whose expiry notice is due, read per run (oldest first); the next minute takes the rest. */
export const EXPIRY_BATCH = 100;

/** When a key expiring at `expiresAt` is first owed a notice: 7 days before (null: never). */
export const expiryNoticeAt = (expiresAt: number | null) =>
  expiresAt === null ? null : expiresAt - 7 * DAY_MS;

/**
 * The notice due at `now` for a key expiring at `expiresAt`: the latest stage begun (stages
 * already past are skipped), and when the next one begins (null after `expired`).
 */
export function dueNotice(
  expiresAt: number,
  now: number,
): { stage: 7 | 1 | "expired"; next: number | null } {
  if (now >= expiresAt) return { stage: "expired", next: null };
  if (now >= expiresAt - DAY_MS) return { stage: 1, next: expiresAt };
  return { stage: 7, next: expiresAt - DAY_MS };
}

/**
 * Send the expiry notices that are due: for each key, a conditional update moving
 * `expiry_notice_at` from the value read to the next stage, its audit event and its events,
 * all in one batch, each row depending on the update having happened. Two overlapping runs
 * both read the key, but only one moves it: each notice is queued once. Revoked and replaced
 * keys owe nothing: their notice is cleared. Returns the notices queued.
 */
export async function sendExpiryNotices(core: Core): Promise<number> {
  const now = core.now();
  const due = await core.db
    .select()
    .from(apiKeys)
    .where(and(isNotNull(apiKeys.expiryNoticeAt), lte(apiKeys.expiryNoticeAt, now)))
    .orderBy(asc(apiKeys.expiryNoticeAt))
    .limit(EXPIRY_BATCH);
  const statements: BatchItem<"sqlite">[] = [];
  let notices = 0;
  for (const key of due) {
    const owed = key.expiresAt !== null && key.revokedAt === null && key.replacedByKeyId === null;
    const notice = owed ? dueNotice(key.expiresAt as number, now) : null;
    statements.push(
      core.db
        .update(apiKeys)
        .set({ expiryNoticeAt: notice?.next ?? null })
        .where(
          and(
            eq(apiKeys.organizationId, key.organizationId),
            eq(apiKeys.id, key.id),
            eq(apiKeys.expiryNoticeAt, key.expiryNoticeAt as number),
          ),
        ),
    );
    if (!notice) continue;
    notices++;
    statements.push(...(await noticeRows(core, key, notice.stage)));
  }
  const [first, ...rest] = statements;
  if (first) await core.db.batch([first, ...rest]);
  return notices;
}

/** The audit event and outbox rows of one notice, to follow its conditional update. */
async function noticeRows(core: Core, key: ApiKeyRow, stage: 7 | 1 | "expired") {
  const type = stage === "expired" ? "api_key.expired" : "api_key.expiring";
  const actor: Actor = {
    principal: { type: "system", organizationId: key.organizationId, name: SCHEDULER.id },
    ip: null,
    userAgent: "keygate-cron",
  };
  const audit = auditValues(core, actor, {
    action: type,
    targetType: "api_key",
    targetId: key.id,
    projectId: key.projectId,
    metadata: { expires_at: new Date(key.expiresAt as number).toISOString() },
  });
  const events = keyEventRows(
    core,
    {
      type,
      key,
      actor: SCHEDULER,
      // One per key, stage and expiry instant: a notice queued twice would be one row.
      occurrence: await occurrenceId(type, key.id, stage, key.expiresAt as number),
      ...(stage === "expired" ? {} : { data: { expires_in_days: stage } }),
    },
    auditRecorded(audit.id),
  );
  const rows: BatchItem<"sqlite">[] = [
    insertWhere(core.db, auditEvents, audit, previousChangedOneRow),
  ];
  if (events) rows.push(events);
  return rows;
}
