// What the core asks of the revocation feed and what it answers (docs/revocation.md): the
// RevocationFeed Durable Object (src/durable/revocation-feed.ts) implements it.

/**
 * How long the feed keeps an announcement (by the object's clock). It must outlast any cached
 * record the change made stale: a KV record (KV_TTL_SECONDS, written at most ~30 s after the
 * read that preceded the change, served up to 60 s stale by KV) and a memory entry
 * (MEMORY_TTL_MS). An isolate that missed entries older than this drops its memory cache.
 */
export const FEED_RETENTION_MS = 15 * 60_000;
/** Entries per poll answer; a longer backlog takes several polls (`more`). */
export const FEED_PAGE = 1_000;

/** One announced change: this key hash's record is stale below this version. */
export type FeedEntry = [hash: string, version: number];

export interface FeedPage {
  entries: FeedEntry[];
  /** The last sequence number in this answer (the next poll's cursor). */
  cursor: number;
  /** More entries follow: poll again from `cursor` before counting the poll as heard. */
  more: boolean;
  /** Entries after the caller's cursor were already dropped: it missed changes. */
  overrun: boolean;
}
