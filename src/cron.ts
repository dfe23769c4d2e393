import { and, asc, inArray, isNotNull, isNull, lte, sql } from "drizzle-orm";
import { type Core, createCore } from "./core/context";
import { Problem } from "./core/errors";
import { publishKey } from "./core/key-cache";
import { rotateRow, SCHEDULED_GRACE_MS } from "./core/keys";
import { deliverDue } from "./core/webhooks";
import { apiKeys } from "./db/schema";
import type { Env } from "./env";

/** Keys rotated per run and keys swept per run: bounded, the next minute takes the rest. */
export const ROTATION_BATCH = 50;
export const SWEEP_BATCH = 100;

/**
 * Due scheduled rotations. Each rotation claims its key with a conditional update, so two
 * overlapping runs rotate a key once: the loser's claim finds it already replaced.
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
      ),
    )
    .orderBy(asc(apiKeys.nextRotationAt))
    .limit(ROTATION_BATCH);
  let rotated = 0;
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
      if (!(error instanceof Problem && error.kind === "conflict")) throw error;
    }
  }
  return rotated;
}

/** Keys past their grace become revoked (stamped at the grace end) and their caches refreshed. */
export async function sweepExpiredGrace(core: Core): Promise<number> {
  const now = core.now();
  const pastGrace = and(
    isNotNull(apiKeys.graceExpiresAt),
    lte(apiKeys.graceExpiresAt, now),
    isNull(apiKeys.revokedAt),
  );
  const due = await core.db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(pastGrace)
    .limit(SWEEP_BATCH);
  if (due.length === 0) return 0;
  const swept = await core.db
    .update(apiKeys)
    .set({ revokedAt: sql`${apiKeys.graceExpiresAt}`, updatedAt: now })
    .where(
      and(
        inArray(
          apiKeys.id,
          due.map((key) => key.id),
        ),
        pastGrace,
      ),
    )
    .returning();
  for (const key of swept) await publishKey(core, key);
  return swept.length;
}

/** One cron, three jobs; "now" is the controller's scheduledTime so runs are reproducible. */
export async function runScheduled(
  controller: Pick<ScheduledController, "scheduledTime">,
  env: Env,
  ctx: ExecutionContext,
) {
  const core = createCore(env, ctx, () => controller.scheduledTime);
  const rotated = await rotateDueKeys(core);
  const delivered = await deliverDue(core);
  const swept = await sweepExpiredGrace(core);
  return { rotated, ...delivered, swept };
}
