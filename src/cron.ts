import { and, asc, gt, inArray, isNotNull, isNull, lte, or, sql } from "drizzle-orm";
import { createCore } from "./context";
import { applyRetention } from "./core/analytics/retention";
import type { Core } from "./core/context";
import { isDomainError, loggable } from "./core/errors";
import { rotateRow, SCHEDULED_GRACE_MS } from "./core/keys";
import { publishKey } from "./core/verify";
import { deliverDue } from "./core/webhooks";
import { apiKeys } from "./db/schema";

/** Keys rotated per run and keys swept per run: bounded, the next minute takes the rest. */
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
  const due = await core.db
    .select()
    .from(apiKeys)
    .where(
      and(
        lte(apiKeys.nextRotationAt, now),
        isNull(apiKeys.revokedAt),
        isNull(apiKeys.replacedByKeyId),
        or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)),
      ),
    )
    .orderBy(asc(apiKeys.nextRotationAt))
    .limit(ROTATION_BATCH);
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
 * One statement with the batch as a subquery: a list of ids would need a bound parameter
 * each, and D1 refuses more than 100 in a query.
 */
export async function sweepExpiredGrace(core: Core): Promise<number> {
  const now = core.now();
  const pastGrace = and(
    isNotNull(apiKeys.graceExpiresAt),
    lte(apiKeys.graceExpiresAt, now),
    isNull(apiKeys.revokedAt),
  );
  const batch = core.db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(pastGrace)
    .orderBy(asc(apiKeys.graceExpiresAt))
    .limit(SWEEP_BATCH);
  const swept = await core.db
    .update(apiKeys)
    .set({ revokedAt: sql`${apiKeys.graceExpiresAt}`, updatedAt: now })
    .where(and(inArray(apiKeys.id, batch), pastGrace))
    .returning();
  await Promise.all(swept.map((key) => publishKey(core, key)));
  return swept.length;
}

/**
 * One cron, four jobs (rotation, webhook delivery, grace sweep, analytics retention); "now"
 * is the controller's scheduledTime so runs are reproducible.
 * The jobs are independent: one that fails does not stop the others, and the run still
 * fails afterwards so the error is reported.
 */
export async function runScheduled(
  controller: Pick<ScheduledController, "scheduledTime">,
  env: Env,
  ctx: ExecutionContext,
) {
  // A number from the runtime; coerced because a Date is what Fetcher.scheduled() takes.
  const scheduledTime = Number(controller.scheduledTime);
  const core = createCore(env, ctx, { now: () => scheduledTime });
  const failures: unknown[] = [];
  const run = async <T>(job: () => Promise<T>, fallback: T): Promise<T> => {
    try {
      return await job();
    } catch (error) {
      failures.push(error);
      return fallback;
    }
  };
  const rotated = await run(() => rotateDueKeys(core), 0);
  const delivered = await run(() => deliverDue(core), { attempted: 0, delivered: 0 });
  const swept = await run(() => sweepExpiredGrace(core), 0);
  const retention = await run(() => applyRetention(core), { folded: 0, deleted: 0, forgotten: 0 });
  if (failures.length > 0) {
    for (const failure of failures) console.error("scheduled job failed:", loggable(failure));
    throw new AggregateError(failures, "Scheduled run failed.");
  }
  return { rotated, ...delivered, swept, retention };
}
