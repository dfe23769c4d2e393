// The rules every key operation shares: liveness, who may grant what, who may change what.

import type { ApiKeyRow, KEY_SOURCES } from "../../db/schema";
import { conflict, forbidden, invalid } from "../errors";
import { hasScope, isAdmin, MANAGEMENT_SCOPES, type Principal, requireAdmin } from "../principal";
import { DAY_MS } from "../time";

export type KeySource = (typeof KEY_SOURCES)[number];

/**
 * Not revoked, not expired, not past its grace: a key that can still be rotated. A revocation
 * stamp counts whatever its time: the sweep stamps the grace end, which for a cron run
 * scheduled ahead of the wall clock (a late replay, `--test-scheduled` with `time=`) lies
 * after it.
 */
export const isLive = (key: ApiKeyRow, now: number) =>
  key.revokedAt === null &&
  (key.expiresAt === null || key.expiresAt > now) &&
  (key.graceExpiresAt === null || key.graceExpiresAt > now);

/** Live and not replaced: a key whose settings can still change, or that can be rotated. */
export const isChangeable = (key: ApiKeyRow, now: number) =>
  isLive(key, now) && key.replacedByKeyId === null;

/** The 409 of a change to a key that is no longer changeable (see isChangeable). */
export function requireChangeable(key: ApiKeyRow, now: number): void {
  if (key.revokedAt !== null || key.replacedByKeyId !== null) {
    throw conflict("A revoked or replaced key cannot be changed.");
  }
  // Expired stays dead, like revoked: a new expiry must not bring a key back.
  if (!isLive(key, now)) {
    throw conflict("An expired key (or one past its rotation grace) cannot be changed.");
  }
}

/** Derived `is_active`: live and not disabled (a disabled key verifies `DISABLED`). */
export const isActive = (key: ApiKeyRow, now: number) => key.enabled && isLive(key, now);

/** What revoking a key sets, beside its version: it stops now and owes no rotation nor expiry event. */
export const revokedColumns = (now: number) =>
  ({ revokedAt: now, nextRotationAt: null, expiryNoticeAt: null }) satisfies Partial<ApiKeyRow>;

export const nextRotationAt = (intervalDays: number | null, now: number) =>
  intervalDays === null ? null : now + intervalDays * DAY_MS;

/** What a key's `source` says of who made it (and with what: the CLI says so in a header). */
export function sourceOf(principal: Principal, client?: "cli" | null): KeySource {
  if (client === "cli" && principal.type !== "system") return "cli";
  switch (principal.type) {
    case "user":
      return "dashboard";
    case "api_key":
      return "api";
    case "system":
      return "rotation";
  }
}

/**
 * An API key may hand out free-form scopes, but never management power it lacks itself: not
 * in a new key, and not by steering a stronger key it does not hold (rotating it, or setting
 * where its rotations are delivered).
 */
export function requireGrantable(principal: Principal, scopes: string[], what = "grant"): void {
  if (principal.type !== "api_key") return;
  const management = ["*", ...MANAGEMENT_SCOPES] as string[];
  const beyond = scopes.filter(
    (scope) => management.includes(scope) && !hasScope(principal.scopes, scope),
  );
  if (beyond.length > 0) {
    throw forbidden(`This API key cannot ${what} scopes it does not hold: ${beyond.join(", ")}.`);
  }
}

export function requireFuture(field: string, at: number | null | undefined, now: number): void {
  if (at !== null && at !== undefined && at <= now) {
    throw invalid(field, "must be in the future", new Date(at).toISOString());
  }
}

/** Org-scoped and admin-managed keys change only at an admin's hand; other keys at anyone's. */
export const mayChangeKey = (principal: Principal, key: ApiKeyRow) =>
  isAdmin(principal) || (key.projectId !== null && !key.isAdminManaged);

/** Admin-only: changing org-scoped or admin-managed keys (see mayChangeKey). */
export function requireKeyAdmin(principal: Principal, key: ApiKeyRow, action: string): void {
  if (key.projectId === null) requireAdmin(principal, `${action} organization-scoped keys`);
  if (key.isAdminManaged) requireAdmin(principal, `${action} admin-managed keys`);
}

/**
 * A key made, rotated or changed by an API key never outlives that key: no expiry (absent or
 * null) becomes the caller's own end, a later one is a 400. Clerk users are not bounded.
 */
export function boundedExpiry(
  principal: Principal,
  requested: number | null | undefined,
): number | null | undefined {
  if (principal.type !== "api_key" || principal.expiresAt === null) return requested;
  const limit = principal.expiresAt;
  if (requested === undefined || requested === null) return limit;
  if (requested > limit) {
    throw invalid(
      "expires_at",
      `must not be later than the expiry of the API key making this request (${new Date(limit).toISOString()})`,
      new Date(requested).toISOString(),
    );
  }
  return requested;
}

/** A successor minted by an API key: the old key's expiry, but never past the caller's end. */
export function cappedExpiry(principal: Principal, expiresAt: number | null): number | null {
  if (principal.type !== "api_key" || principal.expiresAt === null) return expiresAt;
  return expiresAt === null ? principal.expiresAt : Math.min(expiresAt, principal.expiresAt);
}
