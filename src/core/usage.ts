// Pure arithmetic of limits and credits (SPEC Part 2 "Key governance fields"): fixed windows
// aligned to the epoch and 00:00 UTC refill instants. The KeyUsage Durable Object keeps the
// state; everything here is a function of its arguments, so any layer can reuse it.

/** The most credits a key can hold (`remaining` and a refill `amount` are at most this). */
export const MAX_CREDITS = 1_000_000_000_000;

import type { LimitSpec, RefillSpec } from "../db/columns";

import { DAY_MS } from "./time";

/** How a key's credits are refilled (as stored in D1, src/db/columns.ts). */
export type { RefillSpec } from "../db/columns";

// ---- The usage store's contract: what the core asks the KeyUsage Durable Object, and what it
// answers. The object (src/durable/key-usage.ts) implements it; nothing here depends on it.

/**
 * A key's credits as D1 last set them (create, PATCH credits). Every call carries it, so the
 * object learns of a create or a PATCH on its next call, without a write of its own.
 */
export interface CreditsSpec {
  /** Credits left, 0 to 1e12. Only taken when `version` is newer than the object's. */
  remaining: number;
  /** null: the credits are never refilled. */
  refill: RefillSpec | null;
  /**
   * When D1 last set the credits, ms. Newer than the version the object holds: the object
   * adopts `remaining` and `refill`, and counts refills from this instant. Equal (a cached
   * copy, a rotation successor that copied it, a change of the refill alone): the object's own
   * `remaining` counts, with this `refill` (a refill changed alone keeps the balance). Older:
   * the object's own `remaining` and `refill`.
   */
  version: number;
}

/** One of a key's rate limits (as stored in D1, src/db/columns.ts). */
export type { LimitSpec } from "../db/columns";

/**
 * The key's identity, when the key decides in its identity's object (SPEC Part 3): the
 * identity's limits and credits, decided together with the key's own in the same call.
 */
export interface IdentityDemand {
  /** The identity's limits to apply, each with its units (as `SpendRequest.limits`). */
  limits: { spec: LimitSpec; cost: number }[];
  /** The identity's credits; null = unlimited. `cost` is spent from them too. */
  credits: CreditsSpec | null;
}

/** One verification's demand on the key's limits and credits. */
export interface SpendRequest {
  /** The caller's instant, ms: windows and refills follow it, never the object's clock. */
  now: number;
  /** Credits to spend. 0 answers as 1 would (refused where 1 would be) and spends nothing. */
  cost: number;
  /**
   * The limits to apply now (the key's limits, or the subset a verify names), each with its
   * own units; a cost of 0 decides as 1 and spends nothing on that limit. Empty: no limits.
   */
  limits: { spec: LimitSpec; cost: number }[];
  /** The key's credits; null = unlimited (the object's stored credits are left alone). */
  credits: CreditsSpec | null;
  /**
   * Whose windows and credits in this object are the key's: "" (the default) in the key's
   * own lineage object, `memberHolder(lineage)` in its identity's object.
   */
  holder?: string | undefined;
  /** Deciding in the identity's object: the identity's own demand (its holder is ""). */
  identity?: IdentityDemand | undefined;
}

/** A key lineage's holder in its identity's object (the identity itself is the holder ""). */
export const memberHolder = (lineageId: string) => `key:${lineageId}`;

/** A limit after a call: `remaining` units in the window that ends at `resetAt` (ms). */
export interface RatelimitState {
  name: string;
  limit: number;
  /** Units left in the current window after this call's spending (0 to `limit`). */
  remaining: number;
  /** The end of the current window, ms: the first instant of the next one. */
  resetAt: number;
}

/** Credits after a call. */
export interface CreditsState {
  /** Exact credits left after this call, refills due at the call's instant applied. */
  remaining: number;
  /** The next refill instant after the call's instant (ms), or null without a refill. */
  refillAt: number | null;
}

/** The verdict on a {@link SpendRequest}. */
export interface SpendResult {
  /**
   * Rate limits are decided first (`RATE_LIMITED` when any of them would go over), then
   * credits (`USAGE_EXCEEDED` when fewer than the cost are left). On a refusal nothing at all
   * is spent, neither units nor credits.
   */
  code: "VALID" | "RATE_LIMITED" | "USAGE_EXCEEDED";
  /** The applied limits in request order (a limit named twice appears once). */
  ratelimits: RatelimitState[];
  /** null when the request carried no credits (unlimited). */
  credits: CreditsState | null;
  /** Only when the request carried `identity`: its limits and credits after this call. */
  identity?: { ratelimits: RatelimitState[]; credits: CreditsState | null };
}

/**
 * Hands a holder's live balance over (a key leaving the place it decided in): the balance at
 * `now` is returned and the holder's is set to 0, so a late verification there spends nothing
 * the new place also has. One entry per holder; null where the holder has no credits.
 */
export interface ReleaseRequest {
  now: number;
  holders: { holder: string; credits: CreditsSpec }[];
}

/** `POST /v1/api-keys/{keyID}/credits`: the operation on the live count. */
export interface AdjustCreditsRequest {
  now: number;
  /** Whose credits (default "": the object's own). */
  holder?: string | undefined;
  /** The key's credits as D1 has them (adopted first when newer, as in a spend). */
  credits: CreditsSpec;
  /** `set` the count, or `increment` / `decrement` it; the result stays within 0..1e12. */
  operation: CreditOperation;
  /** 0 to 1e12. */
  value: number;
}

/** `GET /v1/api-keys/{keyID}`: the exact count, spending nothing. */
export interface ReadCreditsRequest {
  now: number;
  /** Whose credits (default "": the object's own). */
  holder?: string | undefined;
  credits: CreditsSpec;
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
