// What a verification may ask besides the key, and who may be answered: the core's own
// shapes. The wire schema that checks them is src/schemas/verify.ts, shared by both doors.

/**
 * What a caller passes (every member optional, `cost` defaults to 1): the schema's input,
 * written out so RPC callers' types stay shallow (the check below keeps the two in step).
 */
export interface VerifyOptions {
  requiredScopes?: string[] | undefined;
  projectId?: string | undefined;
  organizationId?: string | undefined;
  /** The caller's client address, for keys with an `ip_allowlist`. */
  ip?: string | undefined;
  /** 0–1000, default 1: credits to spend and units per rate limit; 0 checks without spending. */
  cost?: number | undefined;
  /** Only these of the key's limits, each at its own cost (default: all of them, at `cost`). */
  ratelimits?: { name: string; cost?: number | undefined }[] | undefined;
}

/**
 * Who may be answered, set by the door rather than the caller: a binding's props, a verifier
 * key. A call's own `organizationId`/`projectId` apply on top; neither can widen this.
 */
export interface VerifyPin {
  organizationId?: string | undefined;
  projectId?: string | undefined;
}
