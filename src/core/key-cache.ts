import type { ApiKeyRow } from "../db/schema";
import type { Core } from "./context";

/** What verification needs of a key, and nothing more: the KV value and the memory entry. */
export interface KeyRecord {
  id: string;
  organizationId: string;
  projectId: string | null;
  environmentId: string | null;
  scopes: string[];
  isAdminManaged: boolean;
  expiresAt: number | null;
  revokedAt: number | null;
  graceExpiresAt: number | null;
  lastUsedAt: number | null;
}

export const toKeyRecord = (row: ApiKeyRow): KeyRecord => ({
  id: row.id,
  organizationId: row.organizationId,
  projectId: row.projectId,
  environmentId: row.environmentId,
  scopes: row.scopes,
  isAdminManaged: row.isAdminManaged,
  expiresAt: row.expiresAt,
  revokedAt: row.revokedAt,
  graceExpiresAt: row.graceExpiresAt,
  lastUsedAt: row.lastUsedAt,
});

/** Memory entries live this long; past it the isolate asks KV again. */
export const MEMORY_TTL_MS = 10_000;
const MEMORY_CAPACITY = 10_000;
/**
 * KV records expire after this long, so even an invalidation whose KV write failed is
 * bounded. Every change overwrites the record at once; the bound is only a backstop.
 */
export const KV_TTL_SECONDS = 600;

interface MemoryEntry {
  record: KeyRecord;
  storedAt: number;
}

/** A bounded LRU with a TTL, per isolate. Map keeps insertion order: re-insert on hit. */
class MemoryCache {
  private readonly entries = new Map<string, MemoryEntry>();

  get(hash: string, now: number): KeyRecord | undefined {
    const entry = this.entries.get(hash);
    if (!entry) return undefined;
    this.entries.delete(hash);
    if (now - entry.storedAt > MEMORY_TTL_MS) return undefined;
    this.entries.set(hash, entry);
    return entry.record;
  }

  set(hash: string, record: KeyRecord, now: number): void {
    this.entries.delete(hash);
    this.entries.set(hash, { record, storedAt: now });
    if (this.entries.size > MEMORY_CAPACITY) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
  }

  delete(hash: string): void {
    this.entries.delete(hash);
  }

  clear(): void {
    this.entries.clear();
  }
}

export const memoryCache = new MemoryCache();

/** Counts of storage reads made by verification, for the benchmark and the tests. */
export const storageReads = { kv: 0, d1: 0 };

const kvKey = (hash: string) => `key:${hash}`;

export async function readKvRecord(core: Core, hash: string): Promise<KeyRecord | null> {
  storageReads.kv++;
  return core.env.KEY_CACHE.get<KeyRecord>(kvKey(hash), "json");
}

export function writeKvRecord(core: Core, hash: string, record: KeyRecord): Promise<void> {
  return core.env.KEY_CACHE.put(kvKey(hash), JSON.stringify(record), {
    expirationTtl: KV_TTL_SECONDS,
  });
}

/**
 * After a change has been written to D1: overwrite the KV record and the local entry, so the
 * change holds at once in this location and everywhere once KV has propagated (≤ 60 s).
 */
export async function publishKey(core: Core, row: ApiKeyRow): Promise<void> {
  const record = toKeyRecord(row);
  memoryCache.set(row.keyHash, record, core.now());
  try {
    await writeKvRecord(core, row.keyHash, record);
  } catch (error) {
    // A stale KV record could keep a revoked key alive until it expires: drop it so the next
    // read falls through to D1, and surface the failure if even that fails.
    await core.env.KEY_CACHE.delete(kvKey(row.keyHash)).catch(() => {
      throw error;
    });
  }
}
