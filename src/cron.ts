// The scheduled door: one cron a minute runs the core's jobs at the controller's instant.
import { createCore } from "./context";
import { applyRetention } from "./core/analytics/retention";
import { loggable } from "./core/errors";
import { sweepIdempotencyKeys } from "./core/idempotency";
import { rotateDueKeys, sendExpiryNotices, sweepExpiredGrace } from "./core/keys";
import { deliverDue } from "./core/webhooks";

/**
 * One cron, five jobs (rotation, expiry notices, webhook delivery, grace sweep, analytics
 * retention), and
 * forgetting Idempotency-Key records past their 24 h; "now" is the controller's scheduledTime
 * so runs are reproducible.
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
  // Before delivery, so a notice queued by this run goes out in it.
  const notices = await run(() => sendExpiryNotices(core), 0);
  const delivered = await run(() => deliverDue(core), { attempted: 0, delivered: 0 });
  const swept = await run(() => sweepExpiredGrace(core), 0);
  const retention = await run(() => applyRetention(core), { folded: 0, deleted: 0, forgotten: 0 });
  await run(() => sweepIdempotencyKeys(core), 0);
  // One line a run (wrangler dev's terminal, Workers Logs): what the minute did.
  console.log(
    `cron run ${new Date(scheduledTime).toISOString()}: rotated ${rotated}, delivered ${delivered.delivered}, failed ${delivered.attempted - delivered.delivered}, swept ${swept}, expiry notices ${notices}${failures.length > 0 ? `, ${failures.length} job(s) failed` : ""}`,
  );
  if (failures.length > 0) {
    for (const failure of failures) console.error("scheduled job failed:", loggable(failure));
    throw new AggregateError(failures, "Scheduled run failed.");
  }
  return { rotated, notices, ...delivered, swept, retention };
}
