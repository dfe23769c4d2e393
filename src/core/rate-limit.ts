import type { Core } from "./context";
import { loggable, rateLimited } from "./errors";
import { callerOf, type Principal } from "./principal";
import { HOUR_MS } from "./time";
import type { SpendResult } from "./usage";
import { spendUsage } from "./usage-store";

/** The window of MANAGEMENT_RATE_LIMITER in wrangler.toml: a refused caller waits it out. */
export const MANAGEMENT_WINDOW_SECONDS = 10;

/**
 * Management requests per caller, per location (the Workers Rate Limiting binding). Without
 * the binding (a consumer's own config) nothing is limited. If the limiter itself fails, the
 * request goes on: it protects capacity, and refusing every caller would defeat that.
 * Verification is never limited here: it is the product's hot path.
 */
export async function enforceRateLimit(
  limiter: RateLimit | undefined,
  principal: Principal,
): Promise<void> {
  if (!limiter) return;
  let outcome: RateLimitOutcome;
  try {
    outcome = await limiter.limit({ key: callerOf(principal) });
  } catch (error) {
    console.error("rate limiter unavailable; request allowed:", loggable(error));
    return;
  }
  if (!outcome.success) {
    throw rateLimited(
      `Too many requests from this caller; retry in ${MANAGEMENT_WINDOW_SECONDS} seconds.`,
      MANAGEMENT_WINDOW_SECONDS,
    );
  }
}

/** The window of VERIFY_MISS_RATE_LIMITER in wrangler.toml. */
export const MISS_WINDOW_SECONDS = 60;

/**
 * Count one miss (an unknown key, an unknown project) against `key`; false once the budget of
 * the window is spent. Without the binding, or if it fails, misses are not limited.
 */
export async function withinMissBudget(limiter: RateLimit | undefined, key: string) {
  if (!limiter) return true;
  try {
    return (await limiter.limit({ key })).success;
  } catch (error) {
    console.error("rate limiter unavailable; miss allowed:", loggable(error));
    return true;
  }
}

export const tooManyMisses = (what: string) =>
  rateLimited(
    `Too many ${what} from this client; retry in ${MISS_WINDOW_SECONDS} seconds.`,
    MISS_WINDOW_SECONDS,
  );

/** SPEC "Leaked keys": public leak reports per client address and hour. */
export const LEAK_REPORTS_PER_HOUR = 60;
const REPORT_WINDOW = { name: "leak-reports", limit: LEAK_REPORTS_PER_HOUR, durationMs: HOUR_MS };

/**
 * Count one public leak report from `client` (an address, an IPv6 /64): the 61st in a UTC
 * hour is a 429 until the hour ends. Exact everywhere, unlike the per-location Rate Limiting
 * binding (whose periods stop at a minute): a KeyUsage object per client holds the window.
 * If that object is unreachable the report goes on, as with the other limiters.
 */
export async function enforceLeakReportLimit(core: Core, client: string): Promise<void> {
  const now = core.now();
  let outcome: SpendResult;
  try {
    outcome = await spendUsage(
      core,
      { lineageId: `leak-reports:${client}`, ratelimits: null, credits: null, identity: null },
      { key: [{ spec: REPORT_WINDOW, cost: 1 }], identity: [] },
      1,
      now,
    );
  } catch (error) {
    console.error("leak report limiter unavailable; report allowed:", loggable(error));
    return;
  }
  if (outcome.code === "RATE_LIMITED") {
    const resetAt = outcome.ratelimits[0]?.resetAt ?? now + HOUR_MS;
    const seconds = Math.max(1, Math.ceil((resetAt - now) / 1000));
    throw rateLimited(
      `More than ${LEAK_REPORTS_PER_HOUR} leak reports an hour from this client; retry in ${seconds} seconds.`,
      seconds,
    );
  }
}
