// A key's credits as the management routes see them: the exact live balance, and the
// set / increment / decrement operations (SPEC Part 2 `POST /v1/api-keys/{keyID}/credits`).
import { and, eq, isNull, lte, or } from "drizzle-orm";
import { type ApiKeyRow, apiKeys, auditEvents } from "../../db/schema";
import { auditRecorded, auditValues } from "../audit";
import type { Core } from "../context";
import { noteCreditsReplenished } from "../credits-exhausted";
import { conflict, loggable } from "../errors";
import { eventActor, keyEventRows } from "../events";
import { keyUsagePlace } from "../membership";
import { type Actor, type Principal, requireScope } from "../principal";
import { type CreditOperation, refillDue } from "../usage";
import { adjustCredits, readCredits } from "../usage-store";
import { creditsSpecOf, lineageOf } from "../verify/cache";
import { findKey, getKey } from "./find";
import { listKeys } from "./list";
import { requireChangeable, requireKeyAdmin } from "./rules";

/** The exact remaining credits (the usage object's), or null for a key without credits. */
export async function liveCredits(core: Core, key: ApiKeyRow): Promise<number | null> {
  const spec = creditsSpecOf(key);
  if (!spec) return null;
  return (await readCredits(core, await keyUsagePlace(core, key), spec)).remaining;
}

/** One key and its exact balance (one usage-object read): what a key's own page shows. */
export async function getKeyWithBalance(
  core: Core,
  principal: Principal,
  keyId: string,
): Promise<{ key: ApiKeyRow; remaining: number | null }> {
  const key = await getKey(core, principal, keyId);
  return { key, remaining: await liveCredits(core, key) };
}

/**
 * The balance a key list shows, with no usage-object call: the one its latest counted
 * verification or credits operation left (noted by the queue consumer, so at most the batch
 * window and the queue's delivery old), unless D1 set the credits since; a refill instant
 * passed since then puts it at the refill amount. SPEC: lists may show a value up to 60 s old.
 */
export function listedCredits(
  key: Pick<
    ApiKeyRow,
    | "creditsRemaining"
    | "creditsRefill"
    | "creditsVersion"
    | "creditsSeen"
    | "creditsSeenAt"
    | "createdAt"
  >,
  now: number,
): number | null {
  if (key.creditsRemaining === null) return null;
  const setAt = key.creditsVersion ?? key.createdAt;
  const seen =
    key.creditsSeen !== null && key.creditsSeenAt !== null && key.creditsSeenAt >= setAt
      ? { remaining: key.creditsSeen, since: key.creditsSeenAt }
      : { remaining: key.creditsRemaining, since: setAt };
  if (key.creditsRefill && refillDue(seen.since, now, key.creditsRefill)) {
    return key.creditsRefill.amount;
  }
  return seen.remaining;
}

/** A page of keys with the balances lists show (listedCredits): no usage-object call. */
export async function listKeysWithBalances(
  ...args: Parameters<typeof listKeys>
): Promise<{ items: { key: ApiKeyRow; remaining: number | null }[]; nextCursor: string | null }> {
  const [core] = args;
  const page = await listKeys(...args);
  const now = core.now();
  return {
    ...page,
    items: page.items.map((key) => ({ key, remaining: listedCredits(key, now) })),
  };
}

/** Atomic in the usage object: concurrent operations never lose an update. */
export async function adjustKeyCredits(
  core: Core,
  actor: Actor,
  keyId: string,
  operation: CreditOperation,
  value: number,
): Promise<{ remaining: number }> {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId);
  requireKeyAdmin(principal, key, "change");
  requireChangeable(key, core.now());
  const spec = creditsSpecOf(key);
  if (!spec) throw conflict("This key has no credits (unlimited): set them with PATCH first.");
  const place = await keyUsagePlace(core, key);
  const { remaining } = await adjustCredits(core, place, spec, operation, value);
  // Credits set or topped up: the next refusal for credits is a new exhaustion.
  if (operation !== "decrement") await noteCreditsReplenished(core, lineageOf(key));
  // After the fact: the usage object is not D1, so the two cannot be one batch. A credits
  // operation changes the key object's `credits.remaining`: an `api_key.updated` event.
  const audit = auditValues(core, actor, {
    action: "api_key.credits_adjusted",
    targetType: "api_key",
    targetId: key.id,
    projectId: key.projectId,
    metadata: { operation, value, remaining },
  });
  const event = keyEventRows(
    core,
    {
      type: "api_key.updated",
      key: { ...key, creditsRemaining: remaining },
      actor: eventActor(principal),
    },
    auditRecorded(audit.id),
  );
  const insertAudit = core.db.insert(auditEvents).values(audit);
  await core.db.batch(event ? [insertAudit, event] : [insertAudit]);
  await noteCreditsSeen(core, key, remaining);
  return { remaining };
}

/** What lists show after an operation; a failure here costs only a list's freshness. */
async function noteCreditsSeen(core: Core, key: ApiKeyRow, remaining: number): Promise<void> {
  const now = core.now();
  try {
    await core.db
      .update(apiKeys)
      .set({ creditsSeen: remaining, creditsSeenAt: now })
      .where(
        and(
          eq(apiKeys.organizationId, key.organizationId),
          eq(apiKeys.id, key.id),
          or(isNull(apiKeys.creditsSeenAt), lte(apiKeys.creditsSeenAt, now)),
        ),
      );
  } catch (error) {
    console.error("credits: the listed balance was not noted:", loggable(error));
  }
}
