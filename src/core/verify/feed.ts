// The revocation bound (SPEC, docs/revocation.md): what an isolate knows of changes, learned
// from one shard of the RevocationFeed in the background, and the announcement every change
// makes before it commits. A cached record (memory or KV) answers only while the isolate has
// heard the feed within the bound, and only if no newer version of its key was announced.

import { revocationBoundMs } from "../config";
import type { Core } from "../context";
import { loggable, unavailable } from "../errors";
import { type KeyRecord, MemoryCache, memoryCache } from "./cache";
import { FEED_RETENTION_MS, type FeedEntry, type FeedPage } from "./feed-contract";

/**
 * Shards of the feed. Each isolate polls one (chosen at random when it starts), so at 10 000
 * isolates polling once a second each shard takes ~625 polls/s; a change is announced to all.
 */
export const FEED_SHARDS = 16;

const shardOf = (env: Env, index: number) =>
  env.REVOCATION_FEED.get(env.REVOCATION_FEED.idFromName(`shard-${index}`));

/** A key whose change is about to commit: the version its row has now. */
export interface ChangingKey {
  keyHash: string;
  version: number;
}

/**
 * The feed entry of an identity (SPEC Part 3: "an identity change" is within the bound): a
 * change to it (limits, credits, meta, `external_id`, deletion) announces the identity's
 * next version, so every key record carrying an older copy of it is refused at once, however
 * many keys the identity has. Key hashes are 64 hex digits, so the prefixes never meet one.
 */
export const identityFeedName = (identityId: string) => `identity:${identityId}`;

/**
 * The feed entry of an owner name that had no identity: creating an identity with this
 * `external_id` (or renaming one onto it) announces version 1, so every record of a key
 * with this `external_id` that was made while it had no identity (version 0) is refused.
 */
export const ownerFeedName = (organizationId: string, externalId: string) =>
  `owner:${organizationId}:${externalId}`;

/** What a cached record's answer rests on besides its key: its identity, or its absence. */
export function dependencyOf(record: KeyRecord): FeedEntry | null {
  if (record.identity) return [identityFeedName(record.identity.id), record.identity.version];
  if (record.externalId !== null)
    return [ownerFeedName(record.organizationId, record.externalId), 0];
  return null;
}

/**
 * Announce before commit: every shard learns that these keys' records are stale below
 * `version + 1`, or the change is refused (503, nothing written). An announcement whose commit
 * then fails is harmless: the key is read from D1 until a later change commits.
 */
export async function announceChanges(core: Core, keys: ChangingKey[]): Promise<void> {
  await announceEntries(
    core,
    keys.map((key) => [key.keyHash, key.version + 1]),
  );
}

/**
 * Announce feed entries before a commit (announceChanges for keys; identities announce
 * `identityFeedName` / `ownerFeedName` entries), or refuse the change with a 503.
 */
export async function announceEntries(core: Core, entries: FeedEntry[]): Promise<void> {
  if (entries.length === 0) return;
  try {
    await Promise.all(
      Array.from({ length: FEED_SHARDS }, (_, index) => shardOf(core.env, index).announce(entries)),
    );
    // The isolate making the change knows of it before any poll.
    core.isolate.learn(entries);
  } catch (error) {
    console.error("revocation feed unreachable; change refused:", loggable(error));
    throw unavailable(
      "The change could not be announced to the revocation feed, so it was not made; try again shortly.",
    );
  }
}

// The bound is parsed once per distinct value, not per verification.
let boundOf: { value: string | undefined; ms: number } | null = null;
function boundMs(env: Env): number {
  if (boundOf?.value !== env.REVOCATION_BOUND_MS) {
    boundOf = { value: env.REVOCATION_BOUND_MS, ms: revocationBoundMs(env) };
  }
  return boundOf.ms;
}

/** Heard within the bound less this margin: a cached answer is still within the bound. */
const marginOf = (bound: number) => Math.min(250, bound / 4);

export interface IsolateViewOptions {
  /** Local time in ms; only differences of it are used, so skew with others cannot matter. */
  clock?: () => number;
  memory?: MemoryCache;
  shard?: number;
}

/**
 * One isolate's caches and what it knows of changes. The module keeps one (`isolateView`);
 * tests build more to stand for other isolates over the same storage.
 */
export class IsolateView {
  readonly memory: MemoryCache;
  readonly shard: number;
  private readonly clock: () => number;
  /** Per key hash, the highest announced version, and when (local time) it was learned. */
  private readonly known = new Map<string, { version: number; learnedAt: number }>();
  /** Local time at which the last successful poll was SENT: every change before it is known. */
  private heardAt: number | null = null;
  private lastPollStart = Number.NEGATIVE_INFINITY;
  private cursor: number | null = null;
  private polling: Promise<boolean> | null = null;
  /** Feed requests sent (`npm run bench` reports them per second). */
  requests = 0;

  constructor(options: IsolateViewOptions = {}) {
    this.clock = options.clock ?? Date.now;
    this.memory = options.memory ?? new MemoryCache();
    this.shard = options.shard ?? Math.floor(Math.random() * FEED_SHARDS);
  }

  /** The lowest version of this key (or feed entry name) a cached record must have to answer. */
  minVersion(hash: string): number {
    return this.known.get(hash)?.version ?? 0;
  }

  /**
   * Whether a cached record of this key hash may answer: no newer version of the key, nor of
   * the identity it carries (or of its owner name, when it carries none), was announced.
   */
  current(hash: string, record: KeyRecord): boolean {
    if (record.version < this.minVersion(hash)) return false;
    const dependency = dependencyOf(record);
    return dependency === null || dependency[1] >= this.minVersion(dependency[0]);
  }

  /**
   * Whether memory and KV may answer now. Synchronous while the isolate has heard the feed
   * within the bound (the warm path: no await, no binding call), starting a background poll
   * every bound/2. Past the bound (an isolate waking from idle) it waits for a poll; when the
   * feed cannot answer, false: D1 alone answers.
   */
  cachesUsable(core: Core): boolean | Promise<boolean> {
    const bound = boundMs(core.env);
    const now = this.clock();
    if (this.heard(now, bound)) {
      if (now - this.lastPollStart >= bound / 2 && this.polling === null) {
        core.waitUntil(this.poll(core));
      }
      return true;
    }
    return this.awaitPoll(core, bound);
  }

  private heard(now: number, bound: number): boolean {
    return this.heardAt !== null && now - this.heardAt < bound - marginOf(bound);
  }

  private async awaitPoll(core: Core, bound: number): Promise<boolean> {
    let polling = this.polling;
    if (polling === null) {
      // A poll failed moments ago: do not make every request wait on the feed again.
      if (this.clock() - this.lastPollStart < bound / 2) return false;
      polling = this.poll(core);
      core.waitUntil(polling);
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), Math.min(1_000, bound / 2));
    });
    const heard = await Promise.race([polling, timeout]);
    clearTimeout(timer);
    return heard && this.heard(this.clock(), bound);
  }

  /** Pull every entry after the cursor (one at a time per isolate); true when heard. */
  poll(core: Core): Promise<boolean> {
    if (this.polling) return this.polling;
    const sent = this.clock();
    this.lastPollStart = sent;
    this.polling = this.pull(core)
      .then(
        () => {
          this.heardAt = Math.max(this.heardAt ?? sent, sent);
          return true;
        },
        (error) => {
          console.error("revocation feed poll failed:", loggable(error));
          return false;
        },
      )
      .finally(() => {
        this.polling = null;
      });
    return this.polling;
  }

  private async pull(core: Core): Promise<void> {
    const shard = shardOf(core.env, this.shard);
    for (;;) {
      this.requests++;
      // RPC types widen the tuples; the object answers FeedPage.
      const page = (await shard.since(this.cursor)) as unknown as FeedPage;
      this.apply(page);
      if (!page.more) return;
    }
  }

  /** Records announced versions: cached records below them are refused from now on. */
  learn(entries: FeedEntry[]): void {
    const now = this.clock();
    for (const [hash, version] of entries) {
      // A repeat is learned again: retention counts from the latest announcement (an owner
      // name is announced at version 1 each time an identity takes it).
      const known = this.known.get(hash);
      this.known.delete(hash);
      this.known.set(hash, { version: Math.max(version, known?.version ?? 0), learnedAt: now });
    }
  }

  private apply(page: FeedPage): void {
    const now = this.clock();
    // Changes were dropped before this isolate read them: nothing it holds can be trusted.
    if (page.overrun) this.memory.clear();
    this.learn(page.entries);
    this.cursor = page.cursor;
    // Oldest first: what every cached copy has outlived since is forgotten.
    for (const [hash, entry] of this.known) {
      if (now - entry.learnedAt < FEED_RETENTION_MS) break;
      this.known.delete(hash);
    }
  }
}

/** This isolate's view: the one every door's Core uses. */
export const isolateView = new IsolateView({ memory: memoryCache });
