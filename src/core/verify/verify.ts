import { and, eq, isNull, lte, or } from "drizzle-orm";
import { apiKeys, projects } from "../../db/schema";
import type { Core } from "../context";
import { unavailable } from "../errors";
import { hashKey, parseKey } from "../key-material";
import { hasScope } from "../principal";
import { MISS_WINDOW_SECONDS, withinMissBudget } from "../rate-limit";
import {
  type KeyRecord,
  KV_WRITE_INTERVAL_MS,
  kvKey,
  memoryCache,
  readKvRecord,
  toKeyRecord,
  writeKvRecord,
} from "./cache";
import type { VerifyOptions } from "./options";

/** Every verdict a verification can give, in the order its checks run. */
export const VERIFY_CODES = [
  "VALID",
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "WRONG_PROJECT",
  "INSUFFICIENT_SCOPE",
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

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
 * A warm key costs no storage read, a malformed one none at all. Throws a 503 Problem when
 * storage fails and nothing is cached: never valid by accident.
 */
export async function verifyKey(
  core: Core,
  key: string,
  options: VerifyOptions = {},
): Promise<{ result: VerifyResult; record: KeyRecord | null }> {
  if (typeof key !== "string" || !parseKey(key)) {
    return { result: rejected("MALFORMED"), record: null };
  }
  const hash = await hashKey(key);
  const now = core.now();
  const record = memoryCache.get(hash, now) ?? (await lookup(core, hash, now));
  if (!record) return { result: rejected("NOT_FOUND"), record: null };
  // A live org-scoped key asked about a project: whether it reaches it depends on the owner.
  // (A dead key is refused first, so it cannot make Keygate look projects up.)
  const owner =
    options.projectId !== undefined && record.projectId === null && deadCode(record, now) === null
      ? await projectOwner(core, options.projectId, record)
      : null;
  const result = decide(record, options, now, owner);
  if (result.valid) stampLastUsed(core, record, now);
  return { result, record };
}

/** Memory missed: KV, then D1 (the truth). Fills the tiers above on the way back. */
async function lookup(core: Core, hash: string, now: number): Promise<KeyRecord | null> {
  const seen = memoryCache.snapshot(hash);
  let kvFailed = false;
  try {
    const fromKv = await readKvRecord(core, hash);
    if (fromKv) {
      memoryCache.fill(hash, fromKv, now, seen);
      return fromKv;
    }
  } catch {
    // KV is only a cache: D1 still answers.
    kvFailed = true;
  }

  let row: typeof apiKeys.$inferSelect | undefined;
  try {
    row = await core.db.query.apiKeys.findFirst({ where: eq(apiKeys.keyHash, hash) });
  } catch {
    // Fail closed: an expired entry is no answer, and nobody keeps serving it.
    memoryCache.abandon(hash, seen);
    throw unavailable("Key storage is unavailable; the key could not be verified.");
  }
  // Unknown keys are not written anywhere: junk traffic cannot fill the caches.
  if (!row) {
    memoryCache.abandon(hash, seen);
    return null;
  }
  const record = toKeyRecord(row);
  memoryCache.fill(hash, record, now, seen);
  if (!kvFailed) core.waitUntil(fillKv(core, hash, record));
  return record;
}

/** Two records say the same about a key (the last-used stamp aside). */
const sameVerdictInputs = (a: KeyRecord, b: KeyRecord) =>
  JSON.stringify({ ...a, lastUsedAt: null }) === JSON.stringify({ ...b, lastUsedAt: null });

/**
 * After the response: copy what D1 said into KV. KV has no conditional write, so a change
 * published between our D1 read and this put (a revoke, say) would be overwritten by the
 * older record. Read the row again after the put: if it moved, publish its current state,
 * which now lands after ours. KV takes one write a second per key, hence the retry.
 */
async function fillKv(core: Core, hash: string, record: KeyRecord): Promise<void> {
  await writeKvRecord(core, hash, record);
  const row = await core.db.query.apiKeys.findFirst({ where: eq(apiKeys.keyHash, hash) });
  if (row && sameVerdictInputs(toKeyRecord(row), record)) return;
  const fresh = row ? toKeyRecord(row) : null;
  const publish = () =>
    fresh ? writeKvRecord(core, hash, fresh) : core.env.KEY_CACHE.delete(kvKey(hash));
  try {
    await publish();
  } catch {
    await new Promise((resolve) => setTimeout(resolve, KV_WRITE_INTERVAL_MS));
    await publish();
  }
}

/** Why a key is no good at `now` whatever it is asked, or null while it lives. */
function deadCode(record: KeyRecord, now: number): "REVOKED" | "EXPIRED" | null {
  // Any revocation stamp counts, even one after `now` (see isActive).
  if (record.revokedAt !== null) return "REVOKED";
  // A replaced key past its grace is revoked, whether or not the sweep has stamped it yet.
  if (record.graceExpiresAt !== null && record.graceExpiresAt <= now) return "REVOKED";
  if (record.expiresAt !== null && record.expiresAt <= now) return "EXPIRED";
  return null;
}

/** The verdict; `owner` is the organization of `options.projectId` for org-scoped keys. */
function decide(
  record: KeyRecord,
  options: VerifyOptions,
  now: number,
  owner: string | null,
): VerifyResult {
  const dead = deadCode(record, now);
  if (dead) return rejected(dead);
  if (options.projectId !== undefined) {
    const reaches =
      record.projectId === null
        ? owner === record.organizationId
        : record.projectId === options.projectId;
    if (!reaches) return rejected("WRONG_PROJECT");
  }
  const required = options.requiredScopes;
  if (required) {
    for (const scope of required) {
      if (!hasScope(record.scopes, scope)) return rejected("INSUFFICIENT_SCOPE");
    }
  }
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

// Projects never change organization, so an owner (or its absence: ids are random UUIDs) is
// remembered for the isolate's life, in a bounded map.
const projectOwners = new Map<string, string | null>();
const PROJECT_OWNERS_CAPACITY = 10_000;

/**
 * Keys that asked about too many projects that do not exist (random ids cost a D1 read each):
 * until the window ends, their look-ups are answered from one read of their organization's
 * project ids, so further random ids cost nothing and real projects still answer.
 */
const probing = new Map<string, { until: number; projectIds: Promise<Set<string>> }>();

async function projectOwner(
  core: Core,
  projectId: string,
  key: { id: string; organizationId: string },
): Promise<string | null> {
  const known = projectOwners.get(projectId);
  if (known !== undefined) return known;
  const probe = probing.get(key.id);
  if (probe !== undefined && probe.until > Date.now()) {
    const ids = await probe.projectIds;
    return ids.has(projectId) ? key.organizationId : null;
  }
  let owner: string | null;
  try {
    const project = await core.db
      .select({ organizationId: projects.organizationId })
      .from(projects)
      .where(eq(projects.id, projectId))
      .get();
    owner = project?.organizationId ?? null;
  } catch {
    throw unavailable("Project storage is unavailable; the key could not be verified.");
  }
  if (
    owner === null &&
    !(await withinMissBudget(core.env.VERIFY_MISS_RATE_LIMITER, `project:${key.id}`))
  ) {
    const projectIds = organizationProjectIds(core, key.organizationId);
    projectIds.catch(() => probing.delete(key.id));
    probing.set(key.id, { until: Date.now() + MISS_WINDOW_SECONDS * 1000, projectIds });
    if (probing.size > PROJECT_OWNERS_CAPACITY) {
      probing.delete(probing.keys().next().value as string);
    }
  }
  projectOwners.set(projectId, owner);
  if (projectOwners.size > PROJECT_OWNERS_CAPACITY) {
    projectOwners.delete(projectOwners.keys().next().value as string);
  }
  return owner;
}

async function organizationProjectIds(core: Core, organizationId: string): Promise<Set<string>> {
  try {
    const rows = await core.db
      .select({ id: projects.id })
      .from(projects)
      .where(eq(projects.organizationId, organizationId));
    return new Set(rows.map((row) => row.id));
  } catch {
    throw unavailable("Project storage is unavailable; the key could not be verified.");
  }
}

// Per-isolate memory of the last stamp, so a hot key costs one D1 write a minute at most.
const lastStamped = new Map<string, number>();
const LAST_STAMPED_CAPACITY = 10_000;

/** After the response: `last_used_at`, at most once a minute per key. */
function stampLastUsed(core: Core, record: KeyRecord, now: number): void {
  const previous = Math.max(lastStamped.get(record.id) ?? 0, record.lastUsedAt ?? 0);
  if (now - previous < LAST_USED_INTERVAL_MS) return;
  lastStamped.set(record.id, now);
  if (lastStamped.size > LAST_STAMPED_CAPACITY) {
    lastStamped.delete(lastStamped.keys().next().value as string);
  }
  // Conditional, so isolates racing on the same key still write at most once a minute.
  // Async, so even a binding that throws at once cannot fail the verdict.
  core.waitUntil(
    (async () => {
      await core.db
        .update(apiKeys)
        .set({ lastUsedAt: now })
        .where(
          and(
            eq(apiKeys.id, record.id),
            eq(apiKeys.organizationId, record.organizationId),
            or(isNull(apiKeys.lastUsedAt), lte(apiKeys.lastUsedAt, now - LAST_USED_INTERVAL_MS)),
          ),
        )
        .run();
    })(),
  );
}
