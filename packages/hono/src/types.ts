// Keygate's verification contract, written out so a consumer installs only this package (no
// import of Keygate's source). test/types.test-d.ts (checked by `npm run typecheck`) keeps it equal to Keygate's own types.

/** Why a key was accepted or refused. The first failing check answers, in this order. */
export type VerifyCode =
  | "VALID"
  | "MALFORMED"
  | "NOT_FOUND"
  | "REVOKED"
  | "EXPIRED"
  | "DISABLED"
  | "WRONG_PROJECT"
  | "IP_NOT_ALLOWED"
  | "INSUFFICIENT_SCOPE"
  | "RATE_LIMITED"
  | "USAGE_EXCEEDED";

// JSON of bounded depth, as Keygate types `meta`: RPC's serializable types refuse `unknown`
// and recurse without end on a recursive JSON type, so each level is its own type.
type Json0 = string | number | boolean | null;
type JsonUpTo<Inner> = Json0 | Inner[] | { [key: string]: Inner };
type Json1 = JsonUpTo<Json0>;
type Json2 = JsonUpTo<Json1>;
type Json3 = JsonUpTo<Json2>;
type Json4 = JsonUpTo<Json3>;

/** A key's `meta`: a JSON object, at most 4 KiB serialized and 5 levels deep. */
export type KeyMeta = { [key: string]: Json4 };

/** One rate limit of the key, as applied by this verification. */
export interface VerifyRatelimit {
  name: string;
  limit: number;
  /** Units left in the current window after this call's spending. */
  remaining: number;
  /** When the current window ends (RFC 3339). */
  reset_at: string;
}

/** The key's credits after this call's spending. */
export interface VerifyCredits {
  remaining: number;
  /** The next refill (RFC 3339), or null when the credits never refill. */
  refill_at: string | null;
}

/**
 * Keygate's verdict, the same object over RPC (`KeyService.verify`) and HTTP
 * (`POST /v1/keys/verify`). `VALID`, `RATE_LIMITED` and `USAGE_EXCEEDED` carry the key's
 * metadata; every other refusal carries none (nulls, `in_grace: false`).
 */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  organization_id: string | null;
  project_id: string | null;
  environment_id: string | null;
  scopes: string[] | null;
  expires_at: string | null;
  in_grace: boolean;
  name: string | null;
  enabled: boolean | null;
  meta: KeyMeta | null;
  external_id: string | null;
  credits: VerifyCredits | null;
  ratelimits: VerifyRatelimit[] | null;
  /** The identity the key belongs to (its organization's with the key's `external_id`), or null. */
  identity: VerifyIdentity | null;
}

/** A key's identity: its limits and credits were decided with the key's, in one decision. */
export interface VerifyIdentity {
  id: string;
  external_id: string;
  meta: KeyMeta | null;
  /** The identity's balance after this call; null for an identity without credits. */
  credits: VerifyCredits | null;
  /** The identity's limits this call applied; null for an identity without limits. */
  ratelimits: VerifyRatelimit[] | null;
}

/** `KeyService.verify(key, options)`: the RPC options. */
export interface VerifyOptions {
  requiredScopes?: string[] | undefined;
  projectId?: string | undefined;
  organizationId?: string | undefined;
  ip?: string | undefined;
  /** Credits to spend and units for each rate limit (0–1000, default 1). */
  cost?: number | undefined;
  /** Apply only these of the key's limits, each at its own cost (default: all, at `cost`). */
  ratelimits?: { name: string; cost?: number | undefined }[] | undefined;
}

/** The part of Keygate's `KeyService` entrypoint this package calls (a service binding). */
export interface KeygateBinding {
  verify(key: string, options?: VerifyOptions): Promise<VerifyResult>;
}
