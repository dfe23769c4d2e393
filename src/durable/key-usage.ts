// The KeyUsage Durable Object: one per key lineage (the first key's id, shared by every rotation
// successor), holding the lineage's credits and fixed-window counters in its SQLite storage;
// and one per identity (`identity:<id>`), holding the identity's and each member key lineage's
// (SPEC Part 3: a key of an identity decides there, in one call, with its identity's).
// Every method is synchronous from start to end (no await), so each call runs alone against
// the object's state: that, not locking, is what makes limits and credits exact.
import { DurableObject } from "cloudflare:workers";
import {
  type AdjustCreditsRequest,
  applyCreditOperation,
  type CreditsSpec,
  type CreditsState,
  type LimitSpec,
  MAX_CREDITS,
  nextRefillAt,
  type RatelimitState,
  type ReadCreditsRequest,
  type RefillSpec,
  type ReleaseRequest,
  refillDue,
  type SpendRequest,
  type SpendResult,
  windowOf,
} from "../core/usage";

// The contract (requests, results, specs) is the core's (src/core/usage.ts); this object
// implements it.
export type {
  AdjustCreditsRequest,
  CreditsSpec,
  CreditsState,
  LimitSpec,
  RatelimitState,
  ReadCreditsRequest,
  RefillSpec,
  ReleaseRequest,
  SpendRequest,
  SpendResult,
} from "../core/usage";

/**
 * How long a window is kept after it ends. A caller whose instant lags the newest one seen by
 * more than this (clock skew, a request held in flight) is counted at the oldest kept instant,
 * so no grant ever lands in a window that was already pruned.
 */
export const WINDOW_RETENTION_MS = 60_000;

/** A limit's window in one spend: `cost` units to add, `decide` units that must fit. */
interface CountedWindow {
  /** Whose window ("" the object's own, or a member key lineage's). */
  holder: string;
  spec: LimitSpec;
  index: number;
  end: number;
  cost: number;
  decide: number;
  used: number;
  /** Whether the window has a row yet (its first grant inserts it and prunes old ones). */
  stored: boolean;
}

interface CreditsRow extends Record<string, SqlStorageValue> {
  remaining: number;
  version: number;
  refill_interval: string | null;
  refill_amount: number | null;
  refill_day: number | null;
  /** Every refill instant up to here has been applied (or preceded the credits being set). */
  refilled_through: number;
}

/**
 * Limits and credits of one key lineage: addressed as
 * `env.KEY_USAGE.get(env.KEY_USAGE.idFromName(lineageId))`, where the lineage is the first
 * key's id, copied to every rotation successor (so rotating never refills or resets); or of
 * one identity and its member keys (`identity:<id>`). State is kept per holder: "" the
 * object's own, `key:<lineage>` a member key's in an identity's object.
 * One call per limited verification; state lives in the object's SQLite storage and survives
 * eviction. Exact under any concurrency: never more than `limit` units in a window, never a
 * credit granted twice, no lost update.
 */
export class KeyUsage extends DurableObject<Env> {
  private readonly sql: SqlStorage;
  /** Windows ending at or before this were pruned; no request is counted before it. */
  private prunedThrough: number;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    this.sql = ctx.storage.sql;
    this.sql.exec(`CREATE TABLE IF NOT EXISTS holder_windows (
      holder TEXT NOT NULL, name TEXT NOT NULL, lim INTEGER NOT NULL,
      duration_ms INTEGER NOT NULL, k INTEGER NOT NULL, used INTEGER NOT NULL,
      end_ms INTEGER NOT NULL,
      PRIMARY KEY (holder, name, lim, duration_ms, k)) WITHOUT ROWID`);
    this.sql.exec("CREATE INDEX IF NOT EXISTS holder_windows_by_end ON holder_windows (end_ms)");
    this.sql.exec(`CREATE TABLE IF NOT EXISTS holder_credits (
      holder TEXT PRIMARY KEY, remaining INTEGER NOT NULL, version INTEGER NOT NULL,
      refill_interval TEXT, refill_amount INTEGER, refill_day INTEGER,
      refilled_through INTEGER NOT NULL)`);
    this.adoptSingleHolderTables();
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (
      id INTEGER PRIMARY KEY CHECK (id = 1), pruned_through INTEGER NOT NULL)`);
    const meta = this.sql
      .exec<{ pruned_through: number }>("SELECT pruned_through FROM meta WHERE id = 1")
      .toArray()[0];
    this.prunedThrough = meta?.pruned_through ?? Number.NEGATIVE_INFINITY;
  }

  /** Objects from before holders kept one lineage's state: it becomes the holder "". */
  private adoptSingleHolderTables() {
    const old = (name: string) =>
      this.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name).toArray()
        .length > 0;
    this.ctx.storage.transactionSync(() => {
      if (old("credits")) {
        this.sql.exec(`INSERT OR IGNORE INTO holder_credits SELECT '', remaining, version,
          refill_interval, refill_amount, refill_day, refilled_through FROM credits`);
        this.sql.exec("DROP TABLE credits");
      }
      if (old("windows")) {
        this.sql.exec(`INSERT OR IGNORE INTO holder_windows SELECT '', name, lim, duration_ms, k,
          used, end_ms FROM windows`);
        this.sql.exec("DROP TABLE windows");
      }
    });
  }

  /**
   * Decides the request's limits (the key's and, in an identity's object, the identity's),
   * then its credits (both balances), and spends on all of them or on none.
   * Never grants more than `limit` units in a window, nor a credit that is not there.
   * @throws TypeError on a malformed request (a non-integer cost, a limit below 1, ...).
   */
  spend(request: SpendRequest): SpendResult {
    checkSpendRequest(request);
    const keyHolder = request.holder ?? "";
    const { identity } = request;
    if (identity && keyHolder === "") {
      throw new TypeError("a key deciding with its identity needs a holder of its own");
    }
    return this.ctx.storage.transactionSync(() => {
      const windowNow = Math.max(request.now, this.prunedThrough);
      const windows = this.windowsOf(keyHolder, request.limits, windowNow);
      const identityWindows = identity ? this.windowsOf("", identity.limits, windowNow) : [];
      const limitsGrant = [...windows, ...identityWindows].every(
        (w) => w.used + w.decide <= w.spec.limit,
      );
      const balances = [
        { holder: keyHolder, credits: this.creditsOf(keyHolder, request.now, request.credits) },
        { holder: "", credits: this.creditsOf("", request.now, identity?.credits ?? null) },
      ];
      const creditsGrant = balances.every(
        ({ credits }) => credits === null || credits.remaining >= Math.max(request.cost, 1),
      );
      const code = !limitsGrant ? "RATE_LIMITED" : !creditsGrant ? "USAGE_EXCEEDED" : "VALID";

      if (code === "VALID") {
        for (const w of [...windows, ...identityWindows]) {
          if (w.cost === 0) continue;
          this.count(w, windowNow);
          w.used += w.cost;
        }
        for (const { holder, credits } of balances) {
          if (!credits || request.cost === 0) continue;
          credits.remaining -= request.cost;
          this.sql.exec(
            "UPDATE holder_credits SET remaining = ? WHERE holder = ?",
            credits.remaining,
            holder,
          );
        }
      }
      const result: SpendResult = {
        code,
        ratelimits: windows.map(stateOf),
        credits: balances[0]?.credits ?? null,
      };
      if (identity) {
        result.identity = {
          ratelimits: identityWindows.map(stateOf),
          credits: balances[1]?.credits ?? null,
        };
      }
      return result;
    });
  }

  /**
   * Hands each holder's live balance over and leaves it 0 here (a key moving into or out of
   * an identity: see ReleaseRequest). Idempotent in effect: a second release returns 0.
   */
  release(request: ReleaseRequest): number[] {
    checkInstant(request.now);
    for (const { credits } of request.holders) checkCreditsSpec(credits);
    return this.ctx.storage.transactionSync(() =>
      request.holders.map(({ holder, credits }) => {
        const { remaining } = this.currentCredits(holder, request.now, credits);
        this.sql.exec("UPDATE holder_credits SET remaining = 0 WHERE holder = ?", holder);
        return remaining;
      }),
    );
  }

  private creditsOf(holder: string, now: number, spec: CreditsSpec | null) {
    return spec && this.currentCredits(holder, now, spec);
  }

  /**
   * The current window of each limit with its units used so far. A limit named twice is one
   * window spending both costs; `decide` counts a cost of 0 as 1 (cost 0 checks as cost 1).
   */
  private windowsOf(holder: string, limits: SpendRequest["limits"], now: number): CountedWindow[] {
    const byId = new Map<string, CountedWindow>();
    for (const { spec, cost } of limits) {
      const window = windowOf(now, spec.durationMs);
      const id = JSON.stringify([spec.name, spec.limit, spec.durationMs, window.index]);
      const seen = byId.get(id);
      if (seen) {
        seen.cost += cost;
        seen.decide += Math.max(cost, 1);
        continue;
      }
      const row = this.sql
        .exec<{ used: number }>(
          `SELECT used FROM holder_windows
           WHERE holder = ? AND name = ? AND lim = ? AND duration_ms = ? AND k = ?`,
          holder,
          spec.name,
          spec.limit,
          spec.durationMs,
          window.index,
        )
        .toArray()[0];
      byId.set(id, {
        holder,
        spec,
        index: window.index,
        end: window.end,
        cost,
        decide: Math.max(cost, 1),
        used: row?.used ?? 0,
        stored: row !== undefined,
      });
    }
    return [...byId.values()];
  }

  /**
   * Sets or moves the live count after adopting a newer spec and applying a due refill:
   * `set` takes `value`, `decrement` stops at 0, `increment` at 1e12.
   * @throws TypeError on an unknown operation or a value outside 0..1e12.
   */
  adjustCredits(request: AdjustCreditsRequest): CreditsState {
    checkInstant(request.now);
    checkCreditsSpec(request.credits);
    if (!["set", "increment", "decrement"].includes(request.operation)) {
      throw new TypeError(
        `operation must be set, increment or decrement, not ${request.operation}`,
      );
    }
    checkCount("value", request.value, 0, MAX_CREDITS);
    const holder = request.holder ?? "";
    return this.ctx.storage.transactionSync(() => {
      const credits = this.currentCredits(holder, request.now, request.credits);
      credits.remaining = applyCreditOperation(credits.remaining, request.operation, request.value);
      this.sql.exec(
        "UPDATE holder_credits SET remaining = ? WHERE holder = ?",
        credits.remaining,
        holder,
      );
      return credits;
    });
  }

  /** The exact remaining credits at `now` (adopting a newer spec, applying due refills). */
  readCredits(request: ReadCreditsRequest): CreditsState {
    checkInstant(request.now);
    checkCreditsSpec(request.credits);
    return this.ctx.storage.transactionSync(() =>
      this.currentCredits(request.holder ?? "", request.now, request.credits),
    );
  }

  /** The stored credits brought to `now`: a newer spec adopted, a passed refill applied once. */
  private currentCredits(holder: string, now: number, spec: CreditsSpec): CreditsState {
    let row = this.sql
      .exec<CreditsRow>("SELECT * FROM holder_credits WHERE holder = ?", holder)
      .toArray()[0];
    if (!row || spec.version > row.version) {
      // Refills count from the instant D1 set these credits, not from when they arrive here.
      row = {
        remaining: spec.remaining,
        version: spec.version,
        refill_interval: spec.refill?.interval ?? null,
        refill_amount: spec.refill?.amount ?? null,
        refill_day: spec.refill?.day ?? null,
        refilled_through: spec.version,
      };
      this.sql.exec(
        `INSERT OR REPLACE INTO holder_credits (holder, remaining, version, refill_interval,
           refill_amount, refill_day, refilled_through) VALUES (?, ?, ?, ?, ?, ?, ?)`,
        holder,
        row.remaining,
        row.version,
        row.refill_interval,
        row.refill_amount,
        row.refill_day,
        row.refilled_through,
      );
    }
    let refill = refillOf(row);
    if (spec.version === row.version && !sameRefill(refill, spec.refill)) {
      // The refill was changed alone: refills due under the old rule are applied first, and
      // the new rule counts from now. The balance is kept.
      if (refill && refillDue(row.refilled_through, now, refill)) row.remaining = refill.amount;
      refill = spec.refill;
      row.refill_interval = refill?.interval ?? null;
      row.refill_amount = refill?.amount ?? null;
      row.refill_day = refill?.day ?? null;
      row.refilled_through = Math.max(row.refilled_through, now);
      this.sql.exec(
        `UPDATE holder_credits SET remaining = ?, refill_interval = ?, refill_amount = ?,
           refill_day = ?, refilled_through = ? WHERE holder = ?`,
        row.remaining,
        row.refill_interval,
        row.refill_amount,
        row.refill_day,
        row.refilled_through,
        holder,
      );
    }
    // Written only when a refill applies: until then no refill instant lies in (through, now],
    // so leaving `refilled_through` behind loses nothing and spares a write per call.
    if (refill && refillDue(row.refilled_through, now, refill)) {
      row.remaining = refill.amount;
      row.refilled_through = now;
      this.sql.exec(
        "UPDATE holder_credits SET remaining = ?, refilled_through = ? WHERE holder = ?",
        row.remaining,
        row.refilled_through,
        holder,
      );
    }
    return {
      remaining: row.remaining,
      refillAt: refill && nextRefillAt(Math.max(now, row.refilled_through), refill),
    };
  }

  /**
   * `api_key.credits_exhausted` once per credits period (SPEC Part 3): true for the first
   * USAGE_EXCEEDED reported for `period` (the credits' version and next refill instant, as
   * the caller saw them) since the credits were last set or topped up here
   * (`creditsReplenished`); false for every later one. Self-contained: its own table.
   */
  noteExhausted(period: string): string | null {
    return this.ctx.storage.transactionSync(() => {
      const row = this.exhaustion();
      const occurrence = `${period}|${row?.replenished_at ?? 0}`;
      if (row?.reported === occurrence) return null;
      this.sql.exec(
        `INSERT INTO exhaustion (id, reported, replenished_at) VALUES (1, ?, NULL)
         ON CONFLICT DO UPDATE SET reported = excluded.reported`,
        occurrence,
      );
      return occurrence;
    });
  }

  /** A `set` or `increment` of the credits: the next USAGE_EXCEEDED is a new exhaustion. */
  creditsReplenished(now: number): void {
    checkInstant(now);
    this.ctx.storage.transactionSync(() => {
      const previous = this.exhaustion()?.replenished_at ?? 0;
      this.sql.exec(
        `INSERT INTO exhaustion (id, reported, replenished_at) VALUES (1, NULL, ?)
         ON CONFLICT DO UPDATE SET replenished_at = excluded.replenished_at`,
        Math.max(now, previous + 1),
      );
    });
  }

  private exhaustion() {
    this.sql.exec(`CREATE TABLE IF NOT EXISTS exhaustion (
      id INTEGER PRIMARY KEY CHECK (id = 1), reported TEXT, replenished_at INTEGER)`);
    return this.sql
      .exec<{ reported: string | null; replenished_at: number | null }>(
        "SELECT reported, replenished_at FROM exhaustion WHERE id = 1",
      )
      .toArray()[0];
  }

  /** Adds a grant to its window; a window's first grant also prunes the ones long over. */
  private count(w: CountedWindow, now: number) {
    if (!w.stored) {
      const horizon = now - WINDOW_RETENTION_MS;
      if (horizon > this.prunedThrough) {
        this.sql.exec("DELETE FROM holder_windows WHERE end_ms <= ?", horizon);
        this.sql.exec("INSERT OR REPLACE INTO meta (id, pruned_through) VALUES (1, ?)", horizon);
        this.prunedThrough = horizon;
      }
    }
    this.sql.exec(
      `INSERT INTO holder_windows (holder, name, lim, duration_ms, k, used, end_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET used = used + excluded.used`,
      w.holder,
      w.spec.name,
      w.spec.limit,
      w.spec.durationMs,
      w.index,
      w.cost,
      w.end,
    );
  }
}

const stateOf = (w: CountedWindow): RatelimitState => ({
  name: w.spec.name,
  limit: w.spec.limit,
  remaining: Math.max(0, w.spec.limit - w.used),
  resetAt: w.end,
});

const sameRefill = (a: RefillSpec | null, b: RefillSpec | null) =>
  a === null || b === null
    ? a === b
    : a.interval === b.interval && a.amount === b.amount && (a.day ?? null) === (b.day ?? null);

function refillOf(row: CreditsRow): RefillSpec | null {
  if (row.refill_interval !== "daily" && row.refill_interval !== "monthly") return null;
  return {
    interval: row.refill_interval,
    amount: row.refill_amount ?? 0,
    day: row.refill_day,
  };
}

// The callers validate the wire shapes; these guards keep a bad call from corrupting state.
function checkCount(what: string, value: unknown, min: number, max: number) {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    throw new TypeError(`${what} must be an integer from ${min} to ${max}`);
  }
}

function checkInstant(now: unknown) {
  if (typeof now !== "number" || !Number.isFinite(now)) {
    throw new TypeError("now must be an instant in ms");
  }
}

function checkCreditsSpec(credits: CreditsSpec) {
  checkCount("credits.remaining", credits.remaining, 0, MAX_CREDITS);
  checkInstant(credits.version);
  if (credits.refill) checkCount("credits.refill.amount", credits.refill.amount, 1, MAX_CREDITS);
}

function checkLimits(limits: SpendRequest["limits"]) {
  for (const { spec, cost } of limits) {
    checkCount("limit", spec.limit, 1, Number.MAX_SAFE_INTEGER);
    checkCount("durationMs", spec.durationMs, 1, Number.MAX_SAFE_INTEGER);
    checkCount("limit cost", cost, 0, Number.MAX_SAFE_INTEGER);
  }
}

function checkSpendRequest(request: SpendRequest) {
  checkInstant(request.now);
  checkCount("cost", request.cost, 0, MAX_CREDITS);
  checkLimits(request.limits);
  if (request.credits) checkCreditsSpec(request.credits);
  if (request.identity) {
    checkLimits(request.identity.limits);
    if (request.identity.credits) checkCreditsSpec(request.identity.credits);
  }
}
