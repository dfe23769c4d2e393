import { and, eq, gt, isNull, or } from "drizzle-orm";
import { type ApiKeyRow, apiKeys, type IdentityRow } from "../../db/schema";
import { auditedChange } from "../audit";
import type { Core } from "../context";
import { conflict, invalid } from "../errors";
import { eventActor, keyEventRows } from "../events";
import { type GovernanceInput, governanceAudit, governanceColumns } from "../governance";
import { identityNamed, releaseKeyCredits, restoreKeyCredits } from "../membership";
import { type Actor, requireOrganization, requireScope } from "../principal";
import { announceChanges, publishKey } from "../verify";
import { expiryNoticeAt } from "./expiry";
import { findKey, type KeyPlace } from "./find";
import {
  boundedExpiry,
  nextRotationAt,
  requireChangeable,
  requireFuture,
  requireGrantable,
  requireKeyAdmin,
  revokedColumns,
} from "./rules";

export interface UpdateKeyInput {
  name?: string | undefined;
  scopes?: string[] | undefined;
  expiresAt?: number | null | undefined;
  deviceName?: string | null | undefined;
  rotationIntervalDays?: number | null | undefined;
  rotationWebhookUrl?: string | null | undefined;
  /** enabled, meta, external_id, ip_allowlist, ratelimits, credits; `null` clears one. */
  governance?: GovernanceInput | undefined;
}

/** Tries before a change that keeps losing version races to others gives up (409). */
const CHANGE_ATTEMPTS = 3;

/**
 * The row, where it still is what `key` says: same organization, id, version (nothing
 * changed it since it was read and announced), and still live.
 */
const stillLive = (key: ApiKeyRow, now: number) =>
  and(
    eq(apiKeys.organizationId, key.organizationId),
    eq(apiKeys.id, key.id),
    eq(apiKeys.version, key.version),
    isNull(apiKeys.revokedAt),
    isNull(apiKeys.replacedByKeyId),
    or(isNull(apiKeys.expiresAt), gt(apiKeys.expiresAt, now)),
    or(isNull(apiKeys.graceExpiresAt), gt(apiKeys.graceExpiresAt, now)),
  );

/**
 * Change a key: announced to the revocation feed first (refused with 503 if it cannot be),
 * then committed on the version that was announced. A change that lost the version race to
 * another is tried again from a fresh read, CHANGE_ATTEMPTS times at most.
 */
export async function updateKey(core: Core, actor: Actor, keyId: string, input: UpdateKeyInput) {
  for (let attempt = 1; ; attempt++) {
    const row = await updateOnce(core, actor, keyId, input);
    if (row) return row;
    if (attempt === CHANGE_ATTEMPTS) {
      throw conflict("The key was revoked, replaced or expired while it was being changed.");
    }
  }
}

async function updateOnce(core: Core, actor: Actor, keyId: string, input: UpdateKeyInput) {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId);
  requireKeyAdmin(principal, key, "change");
  requireGrantable(principal, key.scopes, "change a key with");
  if (input.scopes) requireGrantable(principal, input.scopes);
  const now = core.now();
  requireFuture("expires_at", input.expiresAt, now);
  requireChangeable(key, now);
  if (key.projectId === null && input.rotationWebhookUrl) {
    throw invalid(
      "rotation_webhook_url",
      "rotation webhooks are signed with a project's secret: org-scoped keys have none",
      input.rotationWebhookUrl,
    );
  }
  if (key.projectId === null && input.rotationIntervalDays) {
    // Scheduled rotation hands the new key to the rotation webhook alone; an org-scoped key
    // can have none, so rotating it on a schedule would only retire it after its grace.
    throw invalid(
      "rotation_interval_days",
      "org-scoped keys cannot have a rotation webhook, so they cannot rotate on a schedule",
      input.rotationIntervalDays,
    );
  }
  const refillAlone =
    input.governance?.credits === undefined && input.governance?.creditsRefill !== undefined;
  if (refillAlone && key.creditsRemaining === null) {
    throw invalid(
      "credits.remaining",
      "a key without credits needs remaining (the refill alone changes existing credits)",
      undefined,
    );
  }
  const changes: Partial<ApiKeyRow> = {};
  if (input.name !== undefined) changes.name = input.name;
  if (input.scopes !== undefined) changes.scopes = input.scopes;
  if (input.expiresAt !== undefined) {
    changes.expiresAt = boundedExpiry(principal, input.expiresAt) ?? null;
    // A new expiry owes its notices afresh (null: none).
    changes.expiryNoticeAt = expiryNoticeAt(changes.expiresAt);
  }
  if (input.deviceName !== undefined) changes.deviceName = input.deviceName;
  if (input.rotationWebhookUrl !== undefined) changes.rotationWebhookUrl = input.rotationWebhookUrl;
  if (input.rotationIntervalDays !== undefined) {
    changes.rotationIntervalDays = input.rotationIntervalDays;
    changes.nextRotationAt = nextRotationAt(input.rotationIntervalDays, now);
  }
  // New credits get a version newer than any the usage object has seen, so it adopts them
  // (the live balance is set) even within the millisecond the old ones were set.
  const governance = governanceColumns(
    input.governance ?? {},
    Math.max(now, (key.creditsVersion ?? 0) + 1),
  );
  Object.assign(changes, governance);
  if (Object.keys(changes).length === 0) return key;

  const externalId = changes.externalId === undefined ? key.externalId : changes.externalId;
  const identity = await identityNamed(core, key.organizationId, externalId);
  const leaves = await leavesItsPlace(core, key, changes, identity);
  await announceChanges(core, [key]);
  // Moving into or out of an identity: the key's own live balance moves with it.
  const moved = leaves.move ? await releaseKeyCredits(core, [key], leaves.from) : [];
  for (const m of moved) {
    changes.creditsRemaining = m.remaining;
    changes.creditsVersion = m.version;
  }
  const set = { ...changes, updatedAt: now, version: key.version + 1 };
  let row: ApiKeyRow | undefined;
  try {
    row = await auditedChange<ApiKeyRow>(
      core,
      actor,
      core.db.update(apiKeys).set(set).where(stillLive(key, now)).returning(),
      {
        action: "api_key.updated",
        targetType: "api_key",
        targetId: key.id,
        projectId: key.projectId,
        metadata: { fields: auditFields(changes), ...governanceAudit(input.governance ?? {}) },
      },
      (recorded) =>
        keyEventRows(
          core,
          { type: "api_key.updated", key: { ...key, ...set }, actor: eventActor(principal) },
          recorded,
        ),
    );
  } catch (error) {
    await restoreKeyCredits(core, moved);
    throw error;
  }
  if (!row) {
    await restoreKeyCredits(core, moved);
    return null;
  }
  await publishKey(core, row, identity);
  return row;
}

/**
 * Whether a change of `external_id` moves the key into, out of or between identities with
 * its own credits (kept, not set anew by the same change): they must follow it. `from`: the
 * identity it decides with now, or null (its own lineage object).
 */
async function leavesItsPlace(
  core: Core,
  key: ApiKeyRow,
  changes: Partial<ApiKeyRow>,
  to: IdentityRow | null,
): Promise<{ move: boolean; from: string | null }> {
  const stay = { move: false, from: null };
  if (changes.externalId === undefined || changes.externalId === key.externalId) return stay;
  if (key.creditsRemaining === null || changes.creditsRemaining !== undefined) return stay;
  const from = await identityNamed(core, key.organizationId, key.externalId);
  if ((from?.id ?? null) === (to?.id ?? null)) return stay;
  return { move: true, from: from?.id ?? null };
}

/** Columns a change sets that are not a field of their own on the key object. */
const DERIVED_COLUMNS: Partial<Record<keyof ApiKeyRow, string | null>> = {
  nextRotationAt: null, // follows rotation_interval_days
  expiryNoticeAt: null, // follows expires_at
  creditsRemaining: "credits",
  creditsRefill: "credits",
  creditsVersion: "credits",
};

/** What a change set, by the key object's field names (the audit log's readers know those). */
function auditFields(changes: Partial<ApiKeyRow>): string[] {
  const fields = new Set<string>();
  for (const column of Object.keys(changes) as (keyof ApiKeyRow)[]) {
    const field =
      column in DERIVED_COLUMNS
        ? DERIVED_COLUMNS[column]
        : column.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
    if (field) fields.add(field);
  }
  return [...fields];
}

/** Idempotent: revoking a revoked key changes nothing and succeeds. */
export async function revokeKey(core: Core, actor: Actor, keyId: string, place: KeyPlace = {}) {
  const { principal } = actor;
  if (place.organizationId !== undefined) requireOrganization(principal, place.organizationId);
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId, place);
  requireKeyAdmin(principal, key, "revoke");
  // Revoking takes the key's management scopes away from whoever holds it: the same rule
  // as rotating or changing it.
  requireGrantable(principal, key.scopes, "revoke a key with");
  const now = core.now();
  let row = key;
  // Announced, then committed on the announced version; a lost version race reads again.
  for (let attempt = 1; row.revokedAt === null; attempt++) {
    if (attempt > CHANGE_ATTEMPTS) {
      throw conflict("The key kept changing while it was being revoked; try again.");
    }
    const current = row;
    await announceChanges(core, [current]);
    const set = {
      ...revokedColumns(now),
      updatedAt: now,
      version: current.version + 1,
    };
    const revoked = await auditedChange<ApiKeyRow>(
      core,
      actor,
      core.db
        .update(apiKeys)
        .set(set)
        .where(
          and(
            eq(apiKeys.organizationId, current.organizationId),
            eq(apiKeys.id, current.id),
            eq(apiKeys.version, current.version),
            isNull(apiKeys.revokedAt),
          ),
        )
        .returning(),
      {
        action: "api_key.revoked",
        targetType: "api_key",
        targetId: key.id,
        projectId: key.projectId,
      },
      (recorded) =>
        keyEventRows(
          core,
          { type: "api_key.revoked", key: { ...current, ...set }, actor: eventActor(principal) },
          recorded,
        ),
    );
    row = revoked ?? (await findKey(core, principal, keyId));
  }
  // Published even when already revoked: a retry repairs a cache write that failed before.
  // A revoked key's answer does not depend on its identity.
  await publishKey(core, row, null);
  return row;
}
