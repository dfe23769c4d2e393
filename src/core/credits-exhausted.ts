// `api_key.credits_exhausted` (SPEC Part 3): the first USAGE_EXCEEDED after a key's credits were
// last set or refilled. The key's KeyUsage object says which refusal is the first (no D1 write
// per verification); that one refusal then writes its audit event and outbox rows, in the
// background, under deterministic ids (a repeat is a no-op).
import { and, eq } from "drizzle-orm";
import { apiKeys, auditEvents } from "../db/schema";
import { auditRecorded, auditValues } from "./audit";
import type { Core } from "./context";
import { loggable } from "./errors";
import { type EventActor, keyEventRows, occurrenceId } from "./events";
import type { Actor } from "./principal";
import type { SpendResult } from "./usage";
import type { KeyRecord } from "./verify/cache";

/** A refusal for credits is no one's action: the verification path's. */
const VERIFICATION: EventActor = { type: "system", id: "verification" };

/** The lineage's KeyUsage object (where the exhaustion register lives, whoever decided). */
const lineageObject = (core: Core, lineageId: string) =>
  core.env.KEY_USAGE.get(core.env.KEY_USAGE.idFromName(lineageId));

/**
 * After a USAGE_EXCEEDED answer (run it in `ctx.waitUntil`): the event when this is the first
 * refusal of the credits period. The period is the credits' version (set by D1) and their next
 * refill instant; a `set` or `increment` starts a new one (`noteCreditsReplenished`).
 * Never throws: a failure costs the event, never the verification.
 */
export async function noteCreditsExhausted(
  core: Core,
  record: KeyRecord,
  usage: SpendResult,
): Promise<void> {
  try {
    const period = `${record.credits?.version ?? ""}|${usage.credits?.refillAt ?? ""}`;
    const occurrence = await lineageObject(core, record.lineageId).noteExhausted(period);
    if (occurrence === null) return;
    const key = await core.db.query.apiKeys.findFirst({
      where: and(eq(apiKeys.organizationId, record.organizationId), eq(apiKeys.id, record.id)),
    });
    if (!key) return;
    const id = await occurrenceId("api_key.credits_exhausted", key.id, occurrence);
    const actor: Actor = {
      principal: { type: "system", organizationId: key.organizationId, name: VERIFICATION.id },
      ip: null,
      userAgent: null,
    };
    const audit = {
      ...auditValues(core, actor, {
        action: "api_key.credits_exhausted",
        targetType: "api_key",
        targetId: key.id,
        projectId: key.projectId,
        metadata: { remaining: usage.credits?.remaining ?? 0 },
      }),
      id: `exh_${id}`,
    };
    const event = keyEventRows(
      core,
      {
        type: "api_key.credits_exhausted",
        key: { ...key, creditsRemaining: usage.credits?.remaining ?? key.creditsRemaining },
        actor: VERIFICATION,
        occurrence: id,
      },
      auditRecorded(audit.id),
    );
    const insertAudit = core.db.insert(auditEvents).values(audit).onConflictDoNothing();
    await core.db.batch(event ? [insertAudit, event] : [insertAudit]);
  } catch (error) {
    console.error("credits_exhausted: the event was not written:", loggable(error));
  }
}

/**
 * A `set` or `increment` of a key's credits: its next USAGE_EXCEEDED is a new exhaustion.
 * Never throws: the operation is committed by then; a failure costs that next event only.
 */
export async function noteCreditsReplenished(core: Core, lineageId: string): Promise<void> {
  try {
    await lineageObject(core, lineageId).creditsReplenished(core.now());
  } catch (error) {
    console.error("credits_exhausted: the top-up was not noted:", loggable(error));
  }
}
