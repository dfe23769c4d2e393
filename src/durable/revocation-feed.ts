// The RevocationFeed Durable Object: one shard of the change feed (docs/revocation.md). Every
// change to a key announces (key hash, new version) to every shard BEFORE it commits to D1;
// every isolate polls one shard in the background and refuses cached records older than what
// it heard. Methods run synchronously from start to end (SQLite storage, no await), so a poll
// sees every announcement that completed before the poll arrived.
import { DurableObject } from "cloudflare:workers";

// The feed's contract (retention, page size, entries and pages) is the core's
// (src/core/verify/feed-contract.ts); this object implements it.
import {
  FEED_PAGE,
  FEED_RETENTION_MS,
  type FeedEntry,
  type FeedPage,
} from "../core/verify/feed-contract";

export { FEED_PAGE, FEED_RETENTION_MS, type FeedEntry, type FeedPage };

export class RevocationFeed extends DurableObject<Env> {
  private readonly sql: SqlStorage;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS entries (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      hash TEXT NOT NULL,
      version INTEGER NOT NULL,
      at INTEGER NOT NULL
    )`);
    // The highest sequence number ever dropped: a cursor below it missed something.
    this.sql.exec("CREATE TABLE IF NOT EXISTS dropped (id INTEGER PRIMARY KEY, through INTEGER)");
    this.sql.exec("INSERT OR IGNORE INTO dropped (id, through) VALUES (1, 0)");
  }

  /** Append changes; returns the last sequence number. Drops entries past retention. */
  announce(entries: FeedEntry[]): number {
    const now = Date.now();
    for (const [hash, version] of entries) {
      this.sql.exec("INSERT INTO entries (hash, version, at) VALUES (?, ?, ?)", hash, version, now);
    }
    this.dropBefore(now - FEED_RETENTION_MS);
    return this.head();
  }

  /**
   * Entries after `cursor` (null: a new isolate, every retained entry), oldest first.
   */
  since(cursor: number | null): FeedPage {
    const through = this.droppedThrough();
    const overrun = cursor !== null && cursor < through;
    const from = cursor === null || overrun ? through : cursor;
    const rows = this.sql
      .exec<{ seq: number; hash: string; version: number }>(
        "SELECT seq, hash, version FROM entries WHERE seq > ? ORDER BY seq LIMIT ?",
        from,
        FEED_PAGE + 1,
      )
      .toArray();
    const more = rows.length > FEED_PAGE;
    const page = more ? rows.slice(0, FEED_PAGE) : rows;
    const last = page.at(-1)?.seq ?? Math.max(from, this.head());
    return {
      entries: page.map((row) => [row.hash, row.version]),
      cursor: last,
      more,
      overrun,
    };
  }

  /** Drops entries announced before `instant` (ms); tests use it to force an overrun. */
  dropBefore(instant: number): void {
    const gone = this.sql
      .exec<{ last: number | null }>("SELECT MAX(seq) AS last FROM entries WHERE at < ?", instant)
      .one().last;
    if (gone === null) return;
    this.sql.exec("DELETE FROM entries WHERE seq <= ?", gone);
    this.sql.exec("UPDATE dropped SET through = MAX(through, ?) WHERE id = 1", gone);
  }

  private head(): number {
    const row = this.sql
      .exec<{ seq: number }>("SELECT seq FROM sqlite_sequence WHERE name = 'entries'")
      .toArray()[0];
    return row?.seq ?? 0;
  }

  private droppedThrough(): number {
    return this.sql.exec<{ through: number }>("SELECT through FROM dropped WHERE id = 1").one()
      .through;
  }
}
