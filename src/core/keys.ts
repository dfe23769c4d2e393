import { and, asc, eq, gt, isNull, type SQL } from "drizzle-orm";
import { insertWhere, previousChangedOneRow } from "../db/conditional";
import { type ApiKeyRow, apiKeys, auditEvents, webhookDeliveries } from "../db/schema";
import { auditValues } from "./audit";
import { type Core, defaultKeyPrefix } from "./context";
import { conflict, forbidden, invalidField, loggable, notFound } from "./errors";
import { publishKey } from "./key-cache";
import { generateKey } from "./key-material";
import { openCursor, type PageRequest, toPage } from "./pagination";
import {
  type Actor,
  actorId,
  hasScope,
  MANAGEMENT_SCOPES,
  type Principal,
  reachesOrganization,
  reachesProject,
  requireAdmin,
  requireScope,
} from "./principal";
import { findProject, resolveEnvironment } from "./projects";
import { rotationDeliveryValues } from "./webhooks";

export type KeySource = "dashboard" | "api" | "rotation" | "cli";

const DAY_MS = 24 * 60 * 60 * 1000;
/** Scheduled rotations leave the old key valid this long. */
export const SCHEDULED_GRACE_MS = DAY_MS;

/**
 * Derived: not revoked, not expired, not past its grace. A revocation stamp counts whatever
 * its time: the sweep stamps the grace end, which for a cron run scheduled ahead of the
 * wall clock (a late replay, `--test-scheduled` with `time=`) lies after it.
 */
export const isActive = (key: ApiKeyRow, now: number) =>
  key.revokedAt === null &&
  (key.expiresAt === null || key.expiresAt > now) &&
  (key.graceExpiresAt === null || key.graceExpiresAt > now);

export interface CreateKeyInput {
  /** null: an org-scoped key, reaching every project of the organization. */
  projectId: string | null;
  /** The environment by id (seed 001) or by name (seed 000); default `live`. */
  environment?: { id?: string | undefined; name?: string | undefined; field: string };
  name: string;
  scopes: string[];
  expiresAt?: number | null | undefined;
  deviceName?: string | null | undefined;
  isAdminManaged?: boolean | undefined;
  rotationIntervalDays?: number | null | undefined;
  rotationWebhookUrl?: string | null | undefined;
  source?: KeySource | undefined;
}

function sourceOf(principal: Principal): KeySource {
  switch (principal.type) {
    case "user":
      return "dashboard";
    case "api_key":
      return "api";
    case "system":
      return "rotation";
  }
}

/**
 * An API key may hand out free-form scopes, but never management power it lacks itself: not
 * in a new key, and not by steering a stronger key it does not hold (rotating it, or setting
 * where its rotations are delivered).
 */
function requireGrantable(principal: Principal, scopes: string[], what = "grant"): void {
  if (principal.type !== "api_key") return;
  const management = ["*", ...MANAGEMENT_SCOPES] as string[];
  const beyond = scopes.filter(
    (scope) => management.includes(scope) && !hasScope(principal.scopes, scope),
  );
  if (beyond.length > 0) {
    throw forbidden(`This API key cannot ${what} scopes it does not hold: ${beyond.join(", ")}.`);
  }
}

function requireFuture(field: string, at: number | null | undefined, now: number): void {
  if (at !== null && at !== undefined && at <= now) {
    throw invalidField(field, "must be in the future", new Date(at).toISOString());
  }
}

export async function createKey(core: Core, actor: Actor, input: CreateKeyInput) {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  requireGrantable(principal, input.scopes);
  if (input.isAdminManaged) requireAdmin(principal, "create admin-managed keys");
  const now = core.now();
  requireFuture("body.expires_at", input.expiresAt, now);

  let prefix = defaultKeyPrefix(core.env);
  let environmentId: string | null = null;
  let environmentName = input.environment?.name ?? "live";
  if (input.projectId === null) {
    requireAdmin(principal, "create organization-scoped keys");
    if (input.environment?.id) {
      throw invalidField(
        "body.environment_id",
        "org-scoped keys have no environment",
        input.environment.id,
      );
    }
    if (input.rotationWebhookUrl) {
      throw invalidField(
        "body.rotation_webhook_url",
        "rotation webhooks are signed with a project's secret: give a project_id",
        input.rotationWebhookUrl,
      );
    }
  } else {
    const project = await findProject(core, principal, input.projectId);
    const environment = await resolveEnvironment(
      core,
      project,
      input.environment ?? { field: "body.environment_id" },
    );
    prefix = project.keyPrefix;
    environmentId = environment.id;
    environmentName = environment.name;
  }

  const material = await generateKey(prefix, environmentName);
  const id = crypto.randomUUID();
  const interval = input.rotationIntervalDays ?? null;
  const [inserted] = await core.db.batch([
    core.db
      .insert(apiKeys)
      .values({
        id,
        organizationId: principal.organizationId,
        projectId: input.projectId,
        environmentId,
        name: input.name,
        keyHash: material.hash,
        keyPrefix: material.displayPrefix,
        scopes: input.scopes,
        source: input.source ?? sourceOf(principal),
        createdByUserId: actorId(principal),
        deviceName: input.deviceName ?? null,
        isAdminManaged: input.isAdminManaged ?? false,
        createdAt: now,
        updatedAt: now,
        expiresAt: input.expiresAt ?? null,
        rotationIntervalDays: interval,
        nextRotationAt: interval === null ? null : now + interval * DAY_MS,
        rotationWebhookUrl: input.rotationWebhookUrl ?? null,
      })
      .returning(),
    core.db.insert(auditEvents).values(
      auditValues(core, actor, {
        action: "api_key.created",
        targetType: "api_key",
        targetId: id,
        projectId: input.projectId,
        metadata: { name: input.name, scopes: input.scopes, key_prefix: material.displayPrefix },
      }),
    ),
  ]);
  return { key: inserted[0] as ApiKeyRow, plaintext: material.plaintext };
}

/**
 * One key, if the caller reaches it: same organization, a project the caller reaches, and,
 * when a surface names a project in its path, that project. Anything else is a 404.
 */
export async function findKey(
  core: Core,
  principal: Principal,
  keyId: string,
  inProject?: string,
): Promise<ApiKeyRow> {
  const key = await core.db.query.apiKeys.findFirst({
    where: and(eq(apiKeys.organizationId, principal.organizationId), eq(apiKeys.id, keyId)),
  });
  if (!key || !reachesProject(principal, key.projectId)) throw notFound("API key");
  if (key.projectId === null && !reachesOrganization(principal)) throw notFound("API key");
  if (inProject !== undefined && key.projectId !== inProject) throw notFound("API key");
  return key;
}

export async function getKey(core: Core, principal: Principal, keyId: string) {
  requireScope(principal, "keys:read");
  return findKey(core, principal, keyId);
}

/**
 * Keys of the organization the caller reaches, oldest first. `projectId` narrows to one
 * project; a project-scoped API key only ever sees its own project.
 */
export async function listKeys(
  core: Core,
  principal: Principal,
  filter: { projectId?: string | undefined },
  page: PageRequest,
) {
  requireScope(principal, "keys:read");
  let scope: SQL | undefined;
  if (filter.projectId !== undefined) {
    const project = await findProject(core, principal, filter.projectId);
    scope = eq(apiKeys.projectId, project.id);
  } else if (principal.type === "api_key" && principal.projectId !== null) {
    scope = eq(apiKeys.projectId, principal.projectId);
  }
  const list = {
    kind: "api_keys",
    organizationId: principal.organizationId,
    filter: filter.projectId,
  };
  const after = await openCursor(core, list, page.cursor);
  const rows = await core.db
    .select()
    .from(apiKeys)
    .where(
      and(
        eq(apiKeys.organizationId, principal.organizationId),
        scope,
        after === null ? undefined : gt(apiKeys.seq, after),
      ),
    )
    .orderBy(asc(apiKeys.seq))
    .limit(page.limit + 1);
  return toPage(core, list, rows, page.limit);
}

/** Admin-only: changing org-scoped or admin-managed keys. */
function requireKeyAdmin(principal: Principal, key: ApiKeyRow, action: string): void {
  if (key.projectId === null) requireAdmin(principal, `${action} organization-scoped keys`);
  if (key.isAdminManaged) requireAdmin(principal, `${action} admin-managed keys`);
}

export interface UpdateKeyInput {
  name?: string | undefined;
  scopes?: string[] | undefined;
  expiresAt?: number | null | undefined;
  deviceName?: string | null | undefined;
  rotationIntervalDays?: number | null | undefined;
  rotationWebhookUrl?: string | null | undefined;
}

export async function updateKey(core: Core, actor: Actor, keyId: string, input: UpdateKeyInput) {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId);
  requireKeyAdmin(principal, key, "change");
  requireGrantable(principal, key.scopes, "change a key with");
  if (input.scopes) requireGrantable(principal, input.scopes);
  const now = core.now();
  requireFuture("body.expires_at", input.expiresAt, now);
  if (key.revokedAt !== null || key.replacedByKeyId !== null) {
    throw conflict("A revoked or replaced key cannot be changed.");
  }
  if (key.projectId === null && input.rotationWebhookUrl) {
    throw invalidField(
      "body.rotation_webhook_url",
      "rotation webhooks are signed with a project's secret: org-scoped keys have none",
      input.rotationWebhookUrl,
    );
  }
  if (key.projectId === null && input.rotationIntervalDays) {
    // Scheduled rotation hands the new key to the rotation webhook alone; an org-scoped key
    // can have none, so rotating it on a schedule would only retire it after its grace.
    throw invalidField(
      "body.rotation_interval_days",
      "org-scoped keys cannot have a rotation webhook, so they cannot rotate on a schedule",
      input.rotationIntervalDays,
    );
  }
  const changes: Partial<ApiKeyRow> = {};
  if (input.name !== undefined) changes.name = input.name;
  if (input.scopes !== undefined) changes.scopes = input.scopes;
  if (input.expiresAt !== undefined) changes.expiresAt = input.expiresAt;
  if (input.deviceName !== undefined) changes.deviceName = input.deviceName;
  if (input.rotationWebhookUrl !== undefined) changes.rotationWebhookUrl = input.rotationWebhookUrl;
  if (input.rotationIntervalDays !== undefined) {
    changes.rotationIntervalDays = input.rotationIntervalDays;
    changes.nextRotationAt =
      input.rotationIntervalDays === null ? null : now + input.rotationIntervalDays * DAY_MS;
  }
  if (Object.keys(changes).length === 0) return key;

  const [updated] = await core.db.batch([
    core.db
      .update(apiKeys)
      .set({ ...changes, updatedAt: now })
      .where(
        and(
          eq(apiKeys.organizationId, key.organizationId),
          eq(apiKeys.id, key.id),
          isNull(apiKeys.revokedAt),
          isNull(apiKeys.replacedByKeyId),
        ),
      )
      .returning(),
    insertWhere(
      core.db,
      auditEvents,
      auditValues(core, actor, {
        action: "api_key.updated",
        targetType: "api_key",
        targetId: key.id,
        projectId: key.projectId,
        metadata: { fields: Object.keys(changes) },
      }),
      previousChangedOneRow,
    ),
  ]);
  const row = updated[0];
  if (!row) throw conflict("The key was revoked or replaced while it was being changed.");
  await publishKey(core, row);
  return row;
}

/** Idempotent: revoking a revoked key changes nothing and succeeds. */
export async function revokeKey(core: Core, actor: Actor, keyId: string, inProject?: string) {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId, inProject);
  requireKeyAdmin(principal, key, "revoke");
  const now = core.now();
  let row = key;
  if (key.revokedAt === null) {
    const [updated] = await core.db.batch([
      core.db
        .update(apiKeys)
        .set({ revokedAt: now, nextRotationAt: null, updatedAt: now })
        .where(
          and(
            eq(apiKeys.organizationId, key.organizationId),
            eq(apiKeys.id, key.id),
            isNull(apiKeys.revokedAt),
          ),
        )
        .returning(),
      insertWhere(
        core.db,
        auditEvents,
        auditValues(core, actor, {
          action: "api_key.revoked",
          targetType: "api_key",
          targetId: key.id,
          projectId: key.projectId,
        }),
        previousChangedOneRow,
      ),
    ]);
    row = updated[0] ?? (await findKey(core, principal, keyId));
  }
  // Published even when already revoked: a retry repairs a cache write that failed before.
  await publishKey(core, row);
  return row;
}

export async function rotateKey(
  core: Core,
  actor: Actor,
  keyId: string,
  graceSeconds: number,
  inProject?: string,
) {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId, inProject);
  requireKeyAdmin(principal, key, "rotate");
  // The successor is a new credential with the old key's scopes: minting it is granting them.
  requireGrantable(principal, key.scopes, "rotate a key with");
  return rotateRow(core, actor, key, graceSeconds * 1000);
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
  if (!isActive(old, now) || old.replacedByKeyId !== null) {
    throw conflict("Only an active key that has not been replaced can be rotated.");
  }
  const [prefix = defaultKeyPrefix(core.env), environmentName = "live"] = old.keyPrefix.split("_");
  const material = await generateKey(prefix, environmentName);
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
    graceExpiresAt: null,
    nextRotationAt:
      old.rotationIntervalDays === null ? null : now + old.rotationIntervalDays * DAY_MS,
  };
  const { seq: _seq, ...freshValues } = fresh;

  const claim = core.db
    .update(apiKeys)
    .set({
      replacedByKeyId: fresh.id,
      graceExpiresAt,
      revokedAt: graceMs === 0 ? now : null,
      nextRotationAt: null,
      updatedAt: now,
    })
    .where(
      and(
        eq(apiKeys.organizationId, old.organizationId),
        eq(apiKeys.id, old.id),
        isNull(apiKeys.revokedAt),
        isNull(apiKeys.replacedByKeyId),
        // The successor copies `old`: if the row changed since it was read (a PATCH of its
        // scopes, expiry or webhook URL), the copy would resurrect what was just changed.
        eq(apiKeys.updatedAt, old.updatedAt),
      ),
    )
    .returning();
  const insertFresh = insertWhere(core.db, apiKeys, freshValues, previousChangedOneRow);
  const audit = insertWhere(
    core.db,
    auditEvents,
    auditValues(core, actor, {
      action: "api_key.rotated",
      targetType: "api_key",
      targetId: old.id,
      projectId: old.projectId,
      metadata: { new_key_id: fresh.id, grace_expires_at: new Date(graceExpiresAt).toISOString() },
    }),
    previousChangedOneRow,
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

  let claimed: ApiKeyRow | undefined;
  try {
    const results = await core.db.batch(
      delivery ? [claim, insertFresh, audit, delivery] : [claim, insertFresh, audit],
    );
    claimed = results[0][0];
  } catch (error) {
    // The unique index on rotated_from_key_id: another rotation of this key won.
    if (String(error).includes("UNIQUE")) claimed = undefined;
    else throw error;
  }
  if (!claimed) {
    throw conflict("This key was rotated, revoked or changed meanwhile; read it and try again.");
  }
  try {
    await publishKey(core, claimed);
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
