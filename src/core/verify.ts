import { and, eq, isNull, lte, or } from "drizzle-orm";
import { apiKeys, projects } from "../db/schema";
import type { Core } from "./context";
import { unavailable } from "./errors";
import {
  type KeyRecord,
  memoryCache,
  readKvRecord,
  storageReads,
  toKeyRecord,
  writeKvRecord,
} from "./key-cache";
import { hashKey, parseKey } from "./key-material";
import { hasScope } from "./principal";

export type VerifyCode =
  | "VALID"
  | "MALFORMED"
  | "NOT_FOUND"
  | "REVOKED"
  | "EXPIRED"
  | "INSUFFICIENT_SCOPE"
  | "WRONG_PROJECT";

/** The answer to "is this key good?": the same object over HTTP and RPC. */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  organization_id: string | null;
  project_id: string | null;
  environment_id: string | null;
  scopes: string[] | null;
  expires_at: string | null;
  in_grace: boolean;
}

export interface VerifyOptions {
  requiredScopes?: string[] | undefined;
  projectId?: string | undefined;
}

/** An invalid key gets its reason and no metadata. */
const rejected = (code: Exclude<VerifyCode, "VALID">): VerifyResult => ({
  valid: false,
  code,
  key_id: null,
  organization_id: null,
  project_id: null,
  environment_id: null,
  scopes: null,
  expires_at: null,
  in_grace: false,
});

/** Last-used stamps are written at most once a minute per key. */
export const LAST_USED_INTERVAL_MS = 60_000;

/**
 * The hot path: format + checksum, SHA-256, isolate LRU → KV → D1, then the decision.
 * Throws a 503 Problem when storage fails and nothing is cached: never valid by accident.
 */
export async function verifyKey(
  core: Core,
  key: string,
  options: VerifyOptions = {},
): Promise<{ result: VerifyResult; record: KeyRecord | null }> {
  if (!parseKey(key)) return { result: rejected("MALFORMED"), record: null };
  const hash = await hashKey(key);
  const now = core.now();
  const record = await lookup(core, hash, now);
  if (!record) return { result: rejected("NOT_FOUND"), record: null };
  const result = await decide(core, record, options, now);
  if (result.valid) stampLastUsed(core, record, now);
  return { result, record };
}

async function lookup(core: Core, hash: string, now: number): Promise<KeyRecord | null> {
  const cached = memoryCache.get(hash, now);
  if (cached) return cached;

  let kvFailed = false;
  try {
    const fromKv = await readKvRecord(core, hash);
    if (fromKv) {
      memoryCache.set(hash, fromKv, now);
      return fromKv;
    }
  } catch {
    kvFailed = true;
  }

  let row: typeof apiKeys.$inferSelect | undefined;
  try {
    storageReads.d1++;
    row = await core.db.query.apiKeys.findFirst({ where: eq(apiKeys.keyHash, hash) });
  } catch {
    throw unavailable("Key storage is unavailable; the key could not be verified.");
  }
  // Unknown keys are not written anywhere: junk traffic cannot fill the caches.
  if (!row) return null;
  const record = toKeyRecord(row);
  memoryCache.set(hash, record, now);
  if (!kvFailed) core.waitUntil(writeKvRecord(core, hash, record));
  return record;
}

async function decide(
  core: Core,
  record: KeyRecord,
  options: VerifyOptions,
  now: number,
): Promise<VerifyResult> {
  if (record.revokedAt !== null && record.revokedAt <= now) return rejected("REVOKED");
  // A replaced key past its grace is revoked, whether or not the sweep has stamped it yet.
  if (record.graceExpiresAt !== null && record.graceExpiresAt <= now) return rejected("REVOKED");
  if (record.expiresAt !== null && record.expiresAt <= now) return rejected("EXPIRED");
  if (options.projectId !== undefined && !(await inProject(core, record, options.projectId))) {
    return rejected("WRONG_PROJECT");
  }
  const missing = (options.requiredScopes ?? []).some((scope) => !hasScope(record.scopes, scope));
  if (missing) return rejected("INSUFFICIENT_SCOPE");
  return {
    valid: true,
    code: "VALID",
    key_id: record.id,
    organization_id: record.organizationId,
    project_id: record.projectId,
    environment_id: record.environmentId,
    scopes: record.scopes,
    expires_at: record.expiresAt === null ? null : new Date(record.expiresAt).toISOString(),
    in_grace: record.graceExpiresAt !== null,
  };
}

// Projects never change organization, so their owner is cached for the isolate's life.
const projectOwners = new Map<string, string | null>();

/** A project key matches its project; an org-scoped key matches every project of its org. */
async function inProject(core: Core, record: KeyRecord, projectId: string): Promise<boolean> {
  if (record.projectId !== null) return record.projectId === projectId;
  let owner = projectOwners.get(projectId);
  if (owner === undefined) {
    try {
      storageReads.d1++;
      const project = await core.db
        .select({ organizationId: projects.organizationId })
        .from(projects)
        .where(eq(projects.id, projectId))
        .get();
      owner = project?.organizationId ?? null;
    } catch {
      throw unavailable("Project storage is unavailable; the key could not be verified.");
    }
    if (owner !== null) projectOwners.set(projectId, owner);
  }
  return owner === record.organizationId;
}

// Per-isolate memory of the last stamp, so a hot key costs one D1 write a minute at most.
const lastStamped = new Map<string, number>();

function stampLastUsed(core: Core, record: KeyRecord, now: number): void {
  const previous = Math.max(lastStamped.get(record.id) ?? 0, record.lastUsedAt ?? 0);
  if (now - previous < LAST_USED_INTERVAL_MS) return;
  lastStamped.set(record.id, now);
  if (lastStamped.size > 10_000) lastStamped.delete(lastStamped.keys().next().value as string);
  // Conditional, so isolates racing on the same key still write at most once a minute.
  core.waitUntil(
    core.db
      .update(apiKeys)
      .set({ lastUsedAt: now })
      .where(
        and(
          eq(apiKeys.id, record.id),
          eq(apiKeys.organizationId, record.organizationId),
          or(isNull(apiKeys.lastUsedAt), lte(apiKeys.lastUsedAt, now - LAST_USED_INTERVAL_MS)),
        ),
      )
      .run(),
  );
}
