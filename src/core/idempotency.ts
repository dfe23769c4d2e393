// Idempotent writes (SPEC Part 2): the first response to an `Idempotency-Key` is kept 24 h,
// sealed under ENCRYPTION_KEY, keyed by organization, caller and key. A retry of the same
// request gets it again; another request under the same key is a 422; a retry while the
// first is still running is a 409.
import { and, eq, isNull, lte, or, sql } from "drizzle-orm";
import { idempotencyKeys } from "../db/schema";
import type { Core } from "./context";
import { fromBase64, seal, toBase64, unseal } from "./crypto";
import { conflict, forbidden } from "./errors";
import { hashKey } from "./key-material";
import { findKey } from "./keys/find";
import { callerOf, hasScope, isAdmin, type Principal } from "./principal";

/** How long a first response is kept and replayed. */
export const IDEMPOTENCY_TTL_MS = 24 * 60 * 60 * 1000;
/**
 * A record still "running" after this long belongs to a request that died (an isolate that
 * was evicted mid-request): a retry of the same request may then take it over.
 */
export const ABANDONED_AFTER_MS = 60_000;
/** Expired records deleted per cron run. */
export const IDEMPOTENCY_SWEEP_BATCH = 500;

/** 1–255 printable ASCII characters (SPEC). */
export const IDEMPOTENCY_KEY_PATTERN = /^[\x20-\x7e]{1,255}$/;

export interface StoredResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
  /** The key whose plaintext the body carries (a create or a rotation), if any. */
  issuedKeyId?: string | undefined;
  /** What the caller could do when the first request ran: a replay needs it still. */
  authority?: Authority | undefined;
}

/** A caller's rights as a replay compares them: admin, and an API key's scopes. */
export interface Authority {
  admin: boolean;
  scopes: string[] | null;
}

export const authorityOf = (principal: Principal): Authority => ({
  admin: isAdmin(principal),
  scopes: principal.type === "api_key" ? principal.scopes : null,
});

/**
 * Whether the caller may have the first response again now. Its authorization is checked
 * anew (a user demoted since, a key whose scopes were narrowed, is refused), and a key's
 * plaintext is never sent again once that key is revoked or replaced.
 */
export async function requireReplayable(
  core: Core,
  principal: Principal,
  stored: StoredResponse,
): Promise<void> {
  const then = stored.authority;
  if (then?.admin && !isAdmin(principal)) {
    throw forbidden(
      "The first request under this Idempotency-Key needed admin rights the caller no longer has.",
    );
  }
  const scopes = principal.type === "api_key" ? principal.scopes : [];
  if (then?.scopes && !then.scopes.every((scope) => hasScope(scopes, scope))) {
    throw forbidden(
      "The first request under this Idempotency-Key needed scopes the caller no longer has.",
    );
  }
  if (stored.issuedKeyId === undefined) return;
  const key = await findKey(core, principal, stored.issuedKeyId);
  if (key.revokedAt !== null || key.replacedByKeyId !== null) {
    throw conflict(
      "The key made by the first request under this Idempotency-Key has since been revoked or replaced: its plaintext is not sent again. Use a new Idempotency-Key.",
    );
  }
}

export interface IdempotencyScope {
  organizationId: string;
  caller: string;
  keyHash: string;
}

export type Claim =
  /** This request holds the key: run it, then complete or release the claim. */
  | { kind: "run"; scope: IdempotencyScope; claim: string }
  /** The first request's answer, to send again. */
  | { kind: "replay"; response: StoredResponse }
  /** The key was used for another request (other method, path or body). */
  | { kind: "mismatch" }
  /** The first request is still running (or was released a moment ago). */
  | { kind: "running" };

const sealContext = (scope: IdempotencyScope) =>
  `idempotency:${scope.organizationId}:${scope.caller}:${scope.keyHash}`;

const whereScope = (scope: IdempotencyScope) =>
  and(
    eq(idempotencyKeys.organizationId, scope.organizationId),
    eq(idempotencyKeys.caller, scope.caller),
    eq(idempotencyKeys.keyHash, scope.keyHash),
  );

/**
 * Take the key for this request, or learn what became of the first request that took it.
 * One conditional upsert decides, so two concurrent requests never both run.
 */
export async function claimIdempotencyKey(
  core: Core,
  principal: Principal,
  key: string,
  request: { method: string; path: string; body: string },
): Promise<Claim> {
  const scope: IdempotencyScope = {
    organizationId: principal.organizationId,
    caller: callerOf(principal),
    keyHash: await hashKey(key),
  };
  const requestHash = await hashKey(`${request.method} ${request.path}\n${request.body}`);
  const claim = crypto.randomUUID();
  const now = core.now();
  const taken = await core.db
    .insert(idempotencyKeys)
    .values({
      ...scope,
      requestHash,
      claim,
      status: null,
      response: null,
      createdAt: now,
      expiresAt: now + IDEMPOTENCY_TTL_MS,
    })
    .onConflictDoUpdate({
      target: [idempotencyKeys.organizationId, idempotencyKeys.caller, idempotencyKeys.keyHash],
      set: {
        requestHash,
        claim,
        status: null,
        response: null,
        createdAt: now,
        expiresAt: now + IDEMPOTENCY_TTL_MS,
      },
      // Only over a record past its 24 h, or one abandoned mid-request by the same request.
      setWhere: or(
        lte(idempotencyKeys.expiresAt, now),
        and(
          isNull(idempotencyKeys.status),
          lte(idempotencyKeys.createdAt, now - ABANDONED_AFTER_MS),
          eq(idempotencyKeys.requestHash, requestHash),
        ),
      ),
    })
    .returning({ claim: idempotencyKeys.claim });
  if (taken[0]?.claim === claim) return { kind: "run", scope, claim };

  const first = await core.db.query.idempotencyKeys.findFirst({ where: whereScope(scope) });
  // Gone between the upsert and this read: the first request failed and released it.
  if (!first) return { kind: "running" };
  if (first.requestHash !== requestHash) return { kind: "mismatch" };
  if (first.status === null || first.response === null) return { kind: "running" };
  const opened = await unseal(
    core.env.ENCRYPTION_KEY,
    fromBase64(first.response),
    sealContext(scope),
  );
  return { kind: "replay", response: JSON.parse(opened) as StoredResponse };
}

/** Keep the first response (sealed) for the rest of the 24 h. */
export async function completeIdempotencyKey(
  core: Core,
  taken: Extract<Claim, { kind: "run" }>,
  response: StoredResponse,
): Promise<void> {
  const sealed = await seal(
    core.env.ENCRYPTION_KEY,
    JSON.stringify(response),
    sealContext(taken.scope),
  );
  await core.db
    .update(idempotencyKeys)
    .set({ status: response.status, response: toBase64(sealed) })
    .where(and(whereScope(taken.scope), eq(idempotencyKeys.claim, taken.claim)));
}

/** Forget the key (the request failed without an effect): a retry runs it afresh. */
export async function releaseIdempotencyKey(
  core: Core,
  taken: Extract<Claim, { kind: "run" }>,
): Promise<void> {
  await core.db
    .delete(idempotencyKeys)
    .where(and(whereScope(taken.scope), eq(idempotencyKeys.claim, taken.claim)));
}

/** Records past their 24 h, deleted in bounded batches (a subquery: no parameter per row). */
export async function sweepIdempotencyKeys(core: Core): Promise<number> {
  const now = core.now();
  const deleted = await core.db.run(
    sql`delete from ${idempotencyKeys} where rowid in (select rowid from ${idempotencyKeys} where ${idempotencyKeys.expiresAt} <= ${now} limit ${IDEMPOTENCY_SWEEP_BATCH})`,
  );
  return deleted.meta.changes ?? 0;
}
