import { and, eq } from "drizzle-orm";
import { type ApiKeyRow, apiKeys, type IdentityRow, identities } from "../../db/schema";
import type { Core } from "../context";
import { loggable } from "../errors";
import type { KeyMeta, RateLimitRule } from "../governance";
import type { CreditsSpec } from "../usage";

/** What verification needs of a key, and nothing more: the KV value and the memory entry. */
export interface KeyRecord {
  id: string;
  organizationId: string;
  projectId: string | null;
  environmentId: string | null;
  scopes: string[];
  expiresAt: number | null;
  revokedAt: number | null;
  graceExpiresAt: number | null;
  lastUsedAt: number | null;
  // Governance (SPEC Part 2): what the verdict and its answer need, so a warm key needs no read.
  name: string;
  enabled: boolean;
  meta: KeyMeta | null;
  externalId: string | null;
  ipAllowlist: string[] | null;
  ratelimits: RateLimitRule[] | null;
  /** As D1 last set them; the KeyUsage object holds the live balance. */
  credits: CreditsSpec | null;
  lineageId: string;
  /** The row's version: usable only while no newer one has been announced (feed.ts). */
  version: number;
  /**
   * The identity the key belongs to (SPEC Part 3), read with the key in one statement; null
   * when none of its organization has the key's `external_id`.
   */
  identity: IdentitySnapshot | null;
}

/** What verification needs of a key's identity: its answer's fields and its limits. */
export interface IdentitySnapshot {
  id: string;
  externalId: string;
  meta: KeyMeta | null;
  ratelimits: RateLimitRule[] | null;
  /** As D1 last set them; the identity's KeyUsage object holds the live balance. */
  credits: CreditsSpec | null;
  /** The row's `updated_at`: every identity change moves it on (feed.ts `dependencies`). */
  version: number;
}

/** The credits a row sets, as the usage object takes them; null = unlimited. */
export const creditsSpecOf = (
  row: Pick<ApiKeyRow, "creditsRemaining" | "creditsRefill" | "creditsVersion" | "createdAt">,
): CreditsSpec | null =>
  row.creditsRemaining === null
    ? null
    : {
        remaining: row.creditsRemaining,
        refill: row.creditsRefill,
        version: row.creditsVersion ?? row.createdAt,
      };

/** Rows from before lineages existed are their own lineage's first key. */
export const lineageOf = (row: ApiKeyRow) => row.lineageId ?? row.id;

export const toIdentitySnapshot = (row: IdentityRow): IdentitySnapshot => ({
  id: row.id,
  externalId: row.externalId,
  meta: row.meta,
  ratelimits: row.ratelimits,
  credits: creditsSpecOf(row),
  version: row.updatedAt,
});

export const toKeyRecord = (row: ApiKeyRow, identity: IdentityRow | null): KeyRecord => ({
  id: row.id,
  organizationId: row.organizationId,
  projectId: row.projectId,
  environmentId: row.environmentId,
  scopes: row.scopes,
  expiresAt: row.expiresAt,
  revokedAt: row.revokedAt,
  graceExpiresAt: row.graceExpiresAt,
  lastUsedAt: row.lastUsedAt,
  name: row.name,
  enabled: row.enabled,
  meta: row.meta,
  externalId: row.externalId,
  ipAllowlist: row.ipAllowlist,
  ratelimits: row.ratelimits,
  credits: creditsSpecOf(row),
  lineageId: lineageOf(row),
  version: row.version,
  identity: identity && toIdentitySnapshot(identity),
});

/**
 * The key's record from D1 (the truth), its identity read in the same statement so the two
 * are one snapshot; null for an unknown hash.
 */
export async function readKeyRecord(core: Core, hash: string): Promise<KeyRecord | null> {
  const [row] = await core.db
    .select({ key: apiKeys, identity: identities })
    .from(apiKeys)
    .leftJoin(
      identities,
      and(
        eq(identities.organizationId, apiKeys.organizationId),
        eq(identities.externalId, apiKeys.externalId),
      ),
    )
    .where(eq(apiKeys.keyHash, hash))
    .limit(1);
  return row ? toKeyRecord(row.key, row.identity) : null;
}

/**
 * Memory entries live this long; past it the isolate asks KV again. Staleness is bounded by
 * the revocation feed (feed.ts), not by this: it only bounds memory held by keys gone quiet,
 * and must stay below the feed's retention.
 */
export const MEMORY_TTL_MS = 10_000;
/**
 * While one verification refreshes an expired entry, the others keep its answer this long
 * at most, so a hot key costs one KV read per expiry, not one per concurrent request.
 */
export const REFRESH_GRACE_MS = 2_000;
const MEMORY_CAPACITY = 10_000;
/**
 * KV records expire after this long. Every change overwrites the record at once, and a stale
 * record (a fill racing a change, KV serving an old copy) is never used by an isolate that
 * heard of the change: its version is lower. The feed keeps announcements longer than this
 * (FEED_RETENTION_MS), so every stale record has expired before its announcement is dropped.
 */
export const KV_TTL_SECONDS = 600;
/** KV accepts one write a second per key; a second write sooner may be refused. */
export const KV_WRITE_INTERVAL_MS = 1_100;

interface MemoryEntry {
  readonly record: KeyRecord;
  readonly storedAt: number;
  /** When a caller started refreshing this expired entry. */
  refreshingSince: number | null;
}

/** What a lookup saw in memory when it began: `fill` writes only if nothing changed since. */
export type MemorySnapshot = MemoryEntry | undefined;

/** A bounded LRU with a TTL, per isolate. Map keeps insertion order: re-insert on hit. */
export class MemoryCache {
  private readonly entries = new Map<string, MemoryEntry>();

  /**
   * The cached record; undefined sends the caller to KV/D1 (one caller per expiry). A record
   * that is not `current` (a change was announced since) is dropped.
   */
  get(hash: string, now: number, current: (record: KeyRecord) => boolean): KeyRecord | undefined {
    const entry = this.entries.get(hash);
    if (!entry) return undefined;
    if (!current(entry.record)) {
      this.entries.delete(hash);
      return undefined;
    }
    if (now - entry.storedAt <= MEMORY_TTL_MS) {
      this.entries.delete(hash);
      this.entries.set(hash, entry);
      return entry.record;
    }
    if (entry.refreshingSince !== null && now - entry.refreshingSince < REFRESH_GRACE_MS) {
      return entry.record;
    }
    entry.refreshingSince = now;
    return undefined;
  }

  snapshot(hash: string): MemorySnapshot {
    return this.entries.get(hash);
  }

  /**
   * Store what a lookup read, unless the entry changed while it was reading: the newer
   * entry is a published change (or an equal fill) and wins.
   */
  fill(hash: string, record: KeyRecord, now: number, seen: MemorySnapshot): void {
    if (this.entries.get(hash) === seen) this.set(hash, record, now);
  }

  /** A lookup failed or found nothing: forget the expired entry it was refreshing. */
  abandon(hash: string, seen: MemorySnapshot): void {
    if (seen !== undefined && this.entries.get(hash) === seen) this.entries.delete(hash);
  }

  set(hash: string, record: KeyRecord, now: number): void {
    this.entries.delete(hash);
    this.entries.set(hash, { record, storedAt: now, refreshingSince: null });
    if (this.entries.size > MEMORY_CAPACITY) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  /** Drops every entry: a test hook, and what a fresh isolate looks like. */
  clear(): void {
    this.entries.clear();
  }
}

export const memoryCache = new MemoryCache();

export const kvKey = (hash: string) => `key:${hash}`;

/**
 * The KV record for a key hash, or null. A record of any other shape (another deployment's,
 * or a damaged one) counts as a miss: D1 answers, and the fill overwrites it.
 */
export async function readKvRecord(core: Core, hash: string): Promise<KeyRecord | null> {
  const value = await core.env.KEY_CACHE.get<unknown>(kvKey(hash), "json");
  return isKeyRecord(value) ? value : null;
}

const isTime = (value: unknown) =>
  value === null || (typeof value === "number" && Number.isFinite(value));
const isId = (value: unknown) => value === null || typeof value === "string";
const isObjectOrNull = (value: unknown) =>
  value === null || (typeof value === "object" && !Array.isArray(value));

function isKeyRecord(value: unknown): value is KeyRecord {
  if (typeof value !== "object" || value === null) return false;
  const r = value as Record<keyof KeyRecord, unknown>;
  return (
    typeof r.id === "string" &&
    typeof r.organizationId === "string" &&
    isId(r.projectId) &&
    isId(r.environmentId) &&
    Array.isArray(r.scopes) &&
    r.scopes.every((scope) => typeof scope === "string") &&
    isTime(r.expiresAt) &&
    isTime(r.revokedAt) &&
    isTime(r.graceExpiresAt) &&
    isTime(r.lastUsedAt) &&
    // A record from before governance lacks these: a miss, so D1 answers and refills it.
    typeof r.name === "string" &&
    typeof r.enabled === "boolean" &&
    isObjectOrNull(r.meta) &&
    isId(r.externalId) &&
    (r.ipAllowlist === null || Array.isArray(r.ipAllowlist)) &&
    (r.ratelimits === null || Array.isArray(r.ratelimits)) &&
    isObjectOrNull(r.credits) &&
    typeof r.lineageId === "string" &&
    // A record from before versions: a miss, so D1 answers and refills it.
    typeof r.version === "number" &&
    // A record from before identities (no member): a miss too.
    isIdentitySnapshot(r.identity)
  );
}

function isIdentitySnapshot(value: unknown): value is IdentitySnapshot | null {
  if (value === null) return true;
  if (typeof value !== "object" || value === undefined) return false;
  const r = value as Record<keyof IdentitySnapshot, unknown>;
  return (
    typeof r.id === "string" &&
    typeof r.externalId === "string" &&
    isObjectOrNull(r.meta) &&
    (r.ratelimits === null || Array.isArray(r.ratelimits)) &&
    isObjectOrNull(r.credits) &&
    typeof r.version === "number"
  );
}

export async function writeKvRecord(core: Core, hash: string, record: KeyRecord): Promise<void> {
  await core.env.KEY_CACHE.put(kvKey(hash), JSON.stringify(record), {
    expirationTtl: KV_TTL_SECONDS,
  });
}

/**
 * After a change has been announced and written to D1: overwrite the local entry and the KV
 * record, so the next reads need not go to D1. The bound does not rest on this: every
 * isolate that heard the announcement refuses the older records anyway, so a KV write that
 * fails is logged, not an error (the change is committed and known).
 */
export async function publishKey(
  core: Core,
  row: ApiKeyRow,
  /**
   * The key's identity as the changer read it before committing (null: none, or a key whose
   * answer no longer depends on it: revoked). Read before an identity change commits, it is
   * an older version than that change announced, so it is refused like any stale record.
   */
  identity: IdentityRow | null,
): Promise<void> {
  const record = toKeyRecord(row, identity);
  core.isolate.memory.set(row.keyHash, record, core.now());
  try {
    await writeKvRecord(core, row.keyHash, record);
  } catch (error) {
    // Drop the older record so the next reads fill KV from D1; if that fails too, it is
    // refused for its version until it expires.
    try {
      await core.env.KEY_CACHE.delete(kvKey(row.keyHash));
    } catch {
      console.error(`key ${row.id} committed; refreshing its KV record failed:`, loggable(error));
    }
  }
}
