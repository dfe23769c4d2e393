import type { Core } from "../context";
import { DAY_MS } from "../time";

/**
 * Retention, run by the cron: minute rows older than 7 days are folded into hour rows, hour
 * rows older than 400 days deleted, and the ids of consumed queue messages forgotten after a
 * day (a redelivery comes within minutes: retries are immediate or 30 s apart).
 * Each step works in bounded batches; the next run takes the rest.
 */

const HOUR_MS = 3_600_000;
export const MINUTE_ROWS_KEPT_MS = 7 * DAY_MS;
export const HOUR_ROWS_KEPT_MS = 400 * DAY_MS;
export const MESSAGE_IDS_KEPT_MS = DAY_MS;

/** Rows per statement, and statements' rounds per step and run. */
export const RETENTION_BATCH = 1_000;
export const RETENTION_ROUNDS = 10;

export interface RetentionResult {
  folded: number;
  deleted: number;
  forgotten: number;
}

export async function applyRetention(core: Core): Promise<RetentionResult> {
  const now = core.now();
  // Whole hours only, so an hour is either all minute rows or all one hour row.
  const foldBefore = Math.floor((now - MINUTE_ROWS_KEPT_MS) / HOUR_MS) * HOUR_MS;
  return {
    folded: await rounds(() => foldMinutes(core, foldBefore)),
    deleted: await rounds(() => deleteHours(core, now - HOUR_ROWS_KEPT_MS)),
    forgotten: await rounds(() => forgetMessages(core, now - MESSAGE_IDS_KEPT_MS)),
  };
}

async function rounds(step: () => Promise<number>): Promise<number> {
  let total = 0;
  for (let round = 0; round < RETENTION_ROUNDS; round++) {
    const done = await step();
    total += done;
    if (done < RETENTION_BATCH) break;
  }
  return total;
}

/**
 * One batch of the oldest minute rows, added into their hour rows and deleted, in one atomic
 * D1 batch: a minute row is counted in exactly one place at any time, and a run that
 * overlaps another finds the rows it would fold already gone. Both statements select the
 * same rows: they run in one transaction, in a total order (the primary key breaks ties).
 */
async function foldMinutes(core: Core, before: number): Promise<number> {
  const oldest = `SELECT rowid FROM verification_counts
    WHERE granularity = 'minute' AND bucket_start < ?1
    ORDER BY bucket_start, key_id, code LIMIT ${RETENTION_BATCH}`;
  const db = core.env.DB;
  const [, removed] = await db.batch([
    db
      .prepare(
        `INSERT INTO verification_counts
          (organization_id, project_id, key_id, granularity, bucket_start, code, count)
        SELECT organization_id, project_id, key_id, 'hour', (bucket_start / ${HOUR_MS}) * ${HOUR_MS},
               code, sum(count)
          FROM verification_counts WHERE rowid IN (${oldest})
          GROUP BY key_id, bucket_start / ${HOUR_MS}, code
        ON CONFLICT (key_id, granularity, bucket_start, code)
          DO UPDATE SET count = verification_counts.count + excluded.count`,
      )
      .bind(before),
    db.prepare(`DELETE FROM verification_counts WHERE rowid IN (${oldest})`).bind(before),
  ]);
  return removed?.meta.changes ?? 0;
}

async function deleteHours(core: Core, before: number): Promise<number> {
  const result = await core.env.DB.prepare(
    `DELETE FROM verification_counts WHERE rowid IN (
      SELECT rowid FROM verification_counts
       WHERE granularity = 'hour' AND bucket_start < ?1 LIMIT ${RETENTION_BATCH})`,
  )
    .bind(before)
    .run();
  return result.meta.changes;
}

async function forgetMessages(core: Core, before: number): Promise<number> {
  const result = await core.env.DB.prepare(
    `DELETE FROM verification_batches WHERE id IN (
      SELECT id FROM verification_batches WHERE processed_at < ?1 LIMIT ${RETENTION_BATCH})`,
  )
    .bind(before)
    .run();
  return result.meta.changes;
}
