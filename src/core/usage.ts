// Pure arithmetic of limits and credits (SPEC Part 2 "Key governance fields"): fixed windows
// aligned to the epoch and 00:00 UTC refill instants. The KeyUsage Durable Object keeps the
// state; everything here is a function of its arguments, so any layer can reuse it.

/** The most credits a key can hold (`remaining` and a refill `amount` are at most this). */
export const MAX_CREDITS = 1_000_000_000_000;

const DAY_MS = 86_400_000;

/** How a key's credits are refilled. */
export interface RefillSpec {
  /** `daily`: at every 00:00 UTC. `monthly`: at 00:00 UTC of `day` of every month. */
  interval: "daily" | "monthly";
  /** `remaining` is set to this at each refill instant (1 to {@link MAX_CREDITS}). */
  amount: number;
  /**
   * Monthly only: the day of the month, 1–31, clamped to the month's length (31 refills on
   * the 30th in a 30-day month, on the 28th or 29th in February). `null` for daily; a monthly
   * refill with `null` refills on the 1st.
   */
  day: number | null;
}

/** A fixed window `[index·duration, (index+1)·duration)`, in ms since the epoch. */
export interface Window {
  index: number;
  start: number;
  /** The first instant after the window: the next window starts here. */
  end: number;
}

/** The fixed window of length `durationMs`, aligned to the epoch, that holds instant `now`. */
export function windowOf(now: number, durationMs: number): Window {
  const index = Math.floor(now / durationMs);
  return { index, start: index * durationMs, end: (index + 1) * durationMs };
}

const daysInMonth = (year: number, month: number) =>
  new Date(Date.UTC(year, month + 1, 0)).getUTCDate();

/** The first refill instant strictly after `after` (ms): 00:00 UTC of the next refill day. */
export function nextRefillAt(after: number, refill: RefillSpec): number {
  if (refill.interval === "daily") return Math.floor(after / DAY_MS) * DAY_MS + DAY_MS;
  const date = new Date(after);
  const day = refill.day ?? 1;
  // This month's refill instant if it is still ahead, else next month's (two tries at most).
  for (let month = date.getUTCMonth(); ; month++) {
    const year = date.getUTCFullYear();
    const at = Date.UTC(year, month, Math.min(day, daysInMonth(year, month)));
    if (at > after) return at;
  }
}

/** Whether a refill instant lies in `(since, now]`: a request at `now` must refill. */
export const refillDue = (since: number, now: number, refill: RefillSpec | null): boolean =>
  refill !== null && nextRefillAt(since, refill) <= now;

export type CreditOperation = "set" | "increment" | "decrement";

/** `remaining` after an operation: set clamps, decrement stops at 0, increment at the maximum. */
export function applyCreditOperation(
  remaining: number,
  operation: CreditOperation,
  value: number,
): number {
  const next =
    operation === "set" ? value : operation === "increment" ? remaining + value : remaining - value;
  return Math.min(MAX_CREDITS, Math.max(0, next));
}
