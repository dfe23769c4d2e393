import type { KeyMeta } from "../db/columns";
import type { LimitSpec as RateLimitRule, RefillSpec as RefillRule } from "./usage";

/**
 * Key governance (SPEC Part 2 "Key governance fields"): what a key carries beyond its scopes,
 * in the core's own shapes. The wire shapes and their validation are in src/schemas/governance.ts.
 */

/** A JSON object, at most META_MAX_BYTES serialized and META_MAX_DEPTH (5) levels deep. */
export type { KeyMeta } from "../db/columns";

/** A key's rate limit and refill rule are the usage object's own shapes. */
export type { LimitSpec as RateLimitRule, RefillSpec as RefillRule } from "./usage";
export { MAX_CREDITS } from "./usage";

export interface CreditsSetting {
  remaining: number;
  refill: RefillRule | null;
}

export const META_MAX_BYTES = 4096;
export const META_MAX_DEPTH = 5;

/**
 * Levels of a JSON value: the top-level object is 1, each nested object or array adds one.
 * Stops counting past `limit`, so a hostile value costs no more than `limit` levels' walk.
 */
export function jsonDepth(value: unknown, limit = META_MAX_DEPTH): number {
  if (value === null || typeof value !== "object") return 0;
  if (limit <= 0) return 1;
  let deepest = 0;
  for (const item of Object.values(value)) {
    deepest = Math.max(deepest, jsonDepth(item, limit - 1));
    if (deepest >= limit) break;
  }
  return 1 + deepest;
}

/**
 * Whether a JSON value has a `__proto__` member at any level (at most `limit` levels looked
 * at, as deep as meta may go). JSON.parse keeps one as data, but the next copy made with
 * assignment (Object.assign, a rebuilt record) would take it as the object's prototype.
 */
export function hasProtoMember(value: unknown, limit = META_MAX_DEPTH): boolean {
  if (value === null || typeof value !== "object" || limit <= 0) return false;
  if (!Array.isArray(value) && Object.hasOwn(value, "__proto__")) return true;
  return Object.values(value).some((item) => hasProtoMember(item, limit - 1));
}

export const utf8Length = (text: string) => new TextEncoder().encode(text).length;

/**
 * The governance fields of a create or a PATCH. `undefined` leaves a field as it is (or at its
 * default on create); `null` clears it. Lists are never empty here: `[]` arrives as null.
 */
export interface GovernanceInput {
  enabled?: boolean | undefined;
  meta?: KeyMeta | null | undefined;
  externalId?: string | null | undefined;
  ipAllowlist?: string[] | null | undefined;
  ratelimits?: RateLimitRule[] | null | undefined;
  credits?: CreditsSetting | null | undefined;
  /**
   * The refill rule alone, on a key that has credits: its live balance is kept (the usage
   * object takes a new rule under the same credits version). Ignored when `credits` is set.
   */
  creditsRefill?: RefillRule | null | undefined;
}

/** The api_keys columns a governance input sets; `now` versions the credits. */
export function governanceColumns(input: GovernanceInput, now: number) {
  const columns: {
    enabled?: boolean;
    meta?: KeyMeta | null;
    externalId?: string | null;
    ipAllowlist?: string[] | null;
    ratelimits?: RateLimitRule[] | null;
    creditsRemaining?: number | null;
    creditsRefill?: RefillRule | null;
    creditsVersion?: number | null;
  } = {};
  if (input.enabled !== undefined) columns.enabled = input.enabled;
  if (input.meta !== undefined) columns.meta = input.meta;
  if (input.externalId !== undefined) columns.externalId = input.externalId;
  if (input.ipAllowlist !== undefined) columns.ipAllowlist = input.ipAllowlist;
  if (input.ratelimits !== undefined) columns.ratelimits = input.ratelimits;
  if (input.credits !== undefined) {
    columns.creditsRemaining = input.credits?.remaining ?? null;
    columns.creditsRefill = input.credits?.refill ?? null;
    columns.creditsVersion = input.credits === null ? null : now;
  } else if (input.creditsRefill !== undefined) {
    columns.creditsRefill = input.creditsRefill;
  }
  return columns;
}

/** The audit metadata of a governance change: which fields, and the values that are safe. */
export function governanceAudit(input: GovernanceInput): Record<string, unknown> {
  const audit: Record<string, unknown> = {};
  if (input.enabled !== undefined) audit.enabled = input.enabled;
  if (input.externalId !== undefined) audit.external_id = input.externalId;
  if (input.ipAllowlist !== undefined) audit.ip_allowlist = input.ipAllowlist;
  if (input.ratelimits !== undefined) {
    audit.ratelimits =
      input.ratelimits?.map((r) => ({ name: r.name, limit: r.limit, duration_ms: r.durationMs })) ??
      null;
  }
  if (input.credits !== undefined) audit.credits = input.credits;
  else if (input.creditsRefill !== undefined) audit.credits = { refill: input.creditsRefill };
  // meta may hold the customer's data: the log says it changed, not what it says.
  if (input.meta !== undefined) audit.meta = input.meta === null ? null : "changed";
  return audit;
}
