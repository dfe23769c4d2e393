import { and, eq, isNull } from "drizzle-orm";
import { insertWhere, previousChangedOneRow } from "../../db/conditional";
import { type ApiKeyRow, apiKeys, auditEvents, webhookDeliveries } from "../../db/schema";
import { auditRecorded, auditValues } from "../audit";
import type { Core } from "../context";
import { conflict, loggable } from "../errors";
import { eventActor, keyEventRows } from "../events";
import { generateKey } from "../key-material";
import { identityNamed } from "../membership";
import { type Actor, actorId, requireScope } from "../principal";
import { DAY_MS } from "../time";
import { announceChanges, publishKey } from "../verify";
import { lineageOf } from "../verify/cache";
import { rotationDeliveryValues } from "../webhooks";
import { expiryNoticeAt } from "./expiry";
import { findKey, type KeyPlace } from "./find";
import {
  cappedExpiry,
  isChangeable,
  nextRotationAt,
  requireGrantable,
  requireKeyAdmin,
} from "./rules";

/** Scheduled rotations leave the old key valid this long. */
export const SCHEDULED_GRACE_MS = DAY_MS;

export async function rotateKey(
  core: Core,
  actor: Actor,
  keyId: string,
  graceSeconds: number,
  place: KeyPlace = {},
) {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId, place);
  requireKeyAdmin(principal, key, "rotate");
  // The successor is a new credential with the old key's scopes: minting it is granting them.
  requireGrantable(principal, key.scopes, "rotate a key with");
  return rotateRow(core, actor, key, graceSeconds * 1000);
}

/**
 * The batch lost to another rotation of the same key: the unique index on
 * `rotated_from_key_id` refused its successor. Recognised in the error or any of its causes.
 */
export function lostRotationRace(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && current instanceof Error; depth++) {
    if (/UNIQUE constraint failed: api_keys\.rotated_from_key_id/.test(current.message)) {
      return true;
    }
    current = current.cause;
  }
  return false;
}

/**
 * Replace `old` with a fresh key of the same name, scopes, project, environment, expiry and
 * rotation settings. The old key stays valid for `graceMs` (revoked at once when 0).
 * Exactly once under concurrency: the old key is claimed by a conditional update, and the new
 * key, its audit event and its webhook delivery are written only if that claim succeeded —
 * all in one atomic batch. Losers get a 409.
 */
export async function rotateRow(core: Core, actor: Actor, old: ApiKeyRow, graceMs: number) {
  const now = core.now();
  // A disabled key can be rotated: its successor inherits `enabled`, like every field.
  if (!isChangeable(old, now)) {
    throw conflict("Only an active key that has not been replaced can be rotated.");
  }
  const prefix = old.keyPrefix.slice(0, old.keyPrefix.indexOf("_"));
  const material = await generateKey(prefix, old.environment);
  const graceExpiresAt = now + graceMs;
  const fresh: ApiKeyRow = {
    ...old,
    seq: 0,
    id: crypto.randomUUID(),
    keyHash: material.hash,
    keyPrefix: material.displayPrefix,
    source: "rotation",
    createdByUserId:
      actor.principal.type === "system" ? old.createdByUserId : actorId(actor.principal),
    createdAt: now,
    updatedAt: now,
    lastUsedAt: null,
    revokedAt: null,
    replacedByKeyId: null,
    rotatedFromKeyId: old.id,
    // One usage state for the whole lineage: the successor spends the same credits and
    // windows (the credits' version is copied too, so nothing is adopted or refilled).
    lineageId: lineageOf(old),
    // A new key: nothing was ever cached or announced of it, nor reported leaked.
    version: 0,
    leakedAt: null,
    graceExpiresAt: null,
    nextRotationAt: nextRotationAt(old.rotationIntervalDays, now),
    // Rotated by an API key, the successor never outlives that key.
    expiresAt: cappedExpiry(actor.principal, old.expiresAt),
    // A new key: it owes its own expiry notices.
    expiryNoticeAt: expiryNoticeAt(cappedExpiry(actor.principal, old.expiresAt)),
  };
  const { seq: _seq, ...freshValues } = fresh;

  const change = {
    replacedByKeyId: fresh.id,
    graceExpiresAt,
    revokedAt: graceMs === 0 ? now : null,
    nextRotationAt: null,
    // A replaced key owes no expiry notice (its successor does).
    expiryNoticeAt: null,
    updatedAt: now,
    version: old.version + 1,
  };
  const claim = core.db
    .update(apiKeys)
    .set(change)
    .where(
      and(
        eq(apiKeys.organizationId, old.organizationId),
        eq(apiKeys.id, old.id),
        isNull(apiKeys.revokedAt),
        isNull(apiKeys.replacedByKeyId),
        // The successor copies `old`: if the row changed since it was read (a PATCH of its
        // scopes, expiry or webhook URL), the copy would resurrect what was just changed.
        eq(apiKeys.updatedAt, old.updatedAt),
        // The version the feed was told is about to end.
        eq(apiKeys.version, old.version),
      ),
    )
    .returning();
  const insertFresh = insertWhere(core.db, apiKeys, freshValues, previousChangedOneRow);
  const auditRow = auditValues(core, actor, {
    action: "api_key.rotated",
    targetType: "api_key",
    targetId: old.id,
    projectId: old.projectId,
    metadata: { new_key_id: fresh.id, grace_expires_at: new Date(graceExpiresAt).toISOString() },
  });
  const audit = insertWhere(core.db, auditEvents, auditRow, previousChangedOneRow);
  // The rotated key as the rotation leaves it (its successor in replaced_by_key_id); no
  // plaintext: that goes only to the key's own rotation_webhook_url, below.
  const event = keyEventRows(
    core,
    { type: "api_key.rotated", key: { ...old, ...change }, actor: eventActor(actor.principal) },
    auditRecorded(auditRow.id),
  );
  const delivery =
    old.rotationWebhookUrl !== null && old.projectId !== null
      ? insertWhere(
          core.db,
          webhookDeliveries,
          await rotationDeliveryValues(core, {
            old: { ...old, graceExpiresAt },
            fresh,
            plaintext: material.plaintext,
          }),
          previousChangedOneRow,
        )
      : undefined;

  // The old key answers on through its grace: its record carries its identity.
  const identity = await identityNamed(core, old.organizationId, old.externalId);
  // The old key's new grace end is a change: announced before it commits (503 if it cannot be).
  await announceChanges(core, [old]);
  let claimed: ApiKeyRow | undefined;
  try {
    const follow = [delivery, event].filter((item) => item !== undefined);
    const results = await core.db.batch([claim, insertFresh, audit, ...follow]);
    claimed = results[0][0];
  } catch (error) {
    if (!lostRotationRace(error)) throw error;
    claimed = undefined;
  }
  if (!claimed) {
    throw conflict("This key was rotated, revoked or changed meanwhile; read it and try again.");
  }
  try {
    await publishKey(core, claimed, identity);
  } catch (error) {
    // The rotation is committed and its plaintext exists only in this response: failing it
    // now would lose the new key for good (a retry answers 409). The old key's record is
    // already replaced in this isolate; elsewhere a stale KV copy lives out its TTL.
    console.error(
      `rotation committed; refreshing the old key's cache failed (${old.id}):`,
      loggable(error),
    );
  }
  return { old: claimed, fresh, plaintext: material.plaintext };
}
