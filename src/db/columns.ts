// What the JSON columns hold, as stored: the db layer's own types (db imports nothing from
// the core). The core's shapes are these (core/usage.ts, core/governance.ts).

// JSON of bounded depth: RPC's serializable types refuse `unknown` and recurse without end on
// a recursive JSON type, so each level is its own type, as deep as meta may be.
type Json0 = string | number | boolean | null;
type JsonUpTo<Inner> = Json0 | Inner[] | { [key: string]: Inner };
type Json1 = JsonUpTo<Json0>;
type Json2 = JsonUpTo<Json1>;
type Json3 = JsonUpTo<Json2>;
type Json4 = JsonUpTo<Json3>;

/** A JSON object, at most META_MAX_BYTES serialized and META_MAX_DEPTH (5) levels deep. */
export type KeyMeta = { [key: string]: Json4 };

/** How a key's credits are refilled. */
export interface RefillSpec {
  /** `daily`: at every 00:00 UTC. `monthly`: at 00:00 UTC of `day` of every month. */
  interval: "daily" | "monthly";
  /** `remaining` is set to this at each refill instant (1 to 1e12). */
  amount: number;
  /**
   * Monthly only: the day of the month, 1–31, clamped to the month's length (31 refills on
   * the 30th in a 30-day month, on the 28th or 29th in February). `null` for daily; a monthly
   * refill with `null` refills on the 1st.
   */
  day: number | null;
}

/**
 * One of a key's rate limits: at most `limit` units in each fixed window of `durationMs`,
 * windows aligned to the epoch (`[k·durationMs, (k+1)·durationMs)`). A window belongs to the
 * whole spec, so a limit whose `limit` or `durationMs` changes starts fresh windows.
 */
export interface LimitSpec {
  /** Unique per key: `[a-z0-9_-]{1,32}`. */
  name: string;
  /** Units granted per window, at least 1. */
  limit: number;
  /** Window length in ms. */
  durationMs: number;
}
