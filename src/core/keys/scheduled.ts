// The scheduled jobs on keys (SPEC "Rotation and webhooks"): due rotations and the grace
// sweep, in bounded batches, each safe when two runs overlap. The cron door runs them.
import { and, asc, eq, gt, inArray, isNotNull, isNull, lte, or, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { previousChangedOneRow } from "../../db/conditional";
import { fairBatch } from "../../db/fair";
import { type ApiKeyRow, apiKeys } from "../../db/schema";
import type { Core } from "../context";
import { isDomainError } from "../errors";
import { keyEventRows, SCHEDULER } from "../events";
import { announceChanges, publishKey } from "../verify";
import { rotateRow, SCHEDULED_GRACE_MS } from "./rotate";

/**
 * Keys rotated per run (shared round-robin across organizations) and keys swept per run:
 * bounded, the next minute takes the rest.
 */
export const ROTATION_BATCH = 50;
export const SWEEP_BATCH = 100;

/**
 * Due scheduled rotations. Each rotation claims its key with a conditional update, so two
 * overlapping runs rotate a key once: the loser's claim finds it already replaced.
 * Expired keys are never due: rotateRow would refuse them, and left in the batch they would
 * fill it run after run, starving every key behind them.
 */
export async function rotateDueKeys(core: Core): Promise<number> {
  const now = core.now();
  const isDue = and(
    lte(apiKeys.nextRotationAt, now),
    isNull(apiKeys.revokedAt),
    isNull(apiKeys.replacedByKeyId),
    or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)),
  );
  const columns = {
    id: apiKeys.id,
    organizationId: apiKeys.organizationId,
    dueAt: apiKeys.nextRotationAt,
    seq: apiKeys.seq,
  };
  // Round-robin across organizations: one tenant's thousands of due keys cannot hold back
  // another tenant's one for more than a run.
  const due = await core.db
    .select()
    .from(apiKeys)
    .where(inArray(apiKeys.id, fairBatch(apiKeys, columns, isDue, ROTATION_BATCH)))
    .orderBy(asc(apiKeys.nextRotationAt));
  let rotated = 0;
  const failures: unknown[] = [];
  for (const key of due) {
    try {
      await rotateRow(
        core,
        {
          principal: { type: "system", organizationId: key.organizationId, name: "scheduler" },
          ip: null,
          userAgent: "keygate-cron",
        },
        key,
        SCHEDULED_GRACE_MS,
      );
      rotated++;
    } catch (error) {
      // Lost a race with another run or a manual rotation/revocation: nothing to do.
      if (isDomainError(error, "conflict")) continue;
      // Any other failure costs this key only; it stays due and is retried next minute.
      failures.push(error);
    }
  }
  if (failures.length > 0) throw new AggregateError(failures, "Some scheduled rotations failed.");
  return rotated;
}

/**
 * Keys past their grace become revoked (stamped at the grace end) and their caches refreshed.
 * The batch is read, announced to the revocation feed in one append per shard (nothing is
 * stamped if that fails), then stamped in one atomic batch of conditional updates, each on
 * the version it announced: a key changed meanwhile is left for the next run.
 */
export async function sweepExpiredGrace(core: Core): Promise<number> {
  const now = core.now();
  const pastGrace = and(
    isNotNull(apiKeys.graceExpiresAt),
    lte(apiKeys.graceExpiresAt, now),
    isNull(apiKeys.revokedAt),
  );
  const batch = await core.db
    .select()
    .from(apiKeys)
    .where(pastGrace)
    .orderBy(asc(apiKeys.graceExpiresAt))
    .limit(SWEEP_BATCH);
  const updates = batch.map((key) =>
    core.db
      .update(apiKeys)
      .set({ revokedAt: sql`${apiKeys.graceExpiresAt}`, updatedAt: now, version: key.version + 1 })
      .where(
        and(
          eq(apiKeys.organizationId, key.organizationId),
          eq(apiKeys.id, key.id),
          eq(apiKeys.version, key.version),
          pastGrace,
        ),
      )
      .returning(),
  );
  // Each stamp followed by its `api_key.revoked` rows, written only if that stamp happened.
  const statements: BatchItem<"sqlite">[] = [];
  const stampAt: number[] = [];
  for (const [i, key] of batch.entries()) {
    stampAt.push(statements.length);
    statements.push(updates[i] as BatchItem<"sqlite">);
    const revoked = {
      ...key,
      revokedAt: key.graceExpiresAt,
      updatedAt: now,
      version: key.version + 1,
    };
    const event = keyEventRows(
      core,
      { type: "api_key.revoked", key: revoked, actor: SCHEDULER },
      previousChangedOneRow,
    );
    if (event) statements.push(event);
  }
  const [first, ...rest] = statements;
  if (!first) return 0;
  await announceChanges(core, batch);
  const results = await core.db.batch([first, ...rest]);
  const swept = stampAt.flatMap((at) => results[at] as ApiKeyRow[]);
  // Revoked: their answers do not depend on their identities.
  await Promise.all(swept.map((key) => publishKey(core, key, null)));
  return swept.length;
}
