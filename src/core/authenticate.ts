import { verifyToken } from "@clerk/backend";
import type { Core } from "./context";
import { forbidden, isDomainError, unauthorized } from "./errors";
import { looksLikeKey } from "./key-material";
import { hasScope, type Principal } from "./principal";
import { type VerifyPin, verifyKey } from "./verify";

/** Clerk session claims Keygate reads: v2 carries `o`, v1 `org_id` / `org_role`. */
interface SessionClaims {
  sub?: string;
  /** Session status (v2): `pending` = tasks left (e.g. choose an organization). */
  sts?: string;
  o?: { id?: string; rol?: string };
  org_id?: string;
  org_role?: string;
}

/**
 * Called when a credential is a well-formed key that does not exist (NOT_FOUND): each such
 * look-up costs a KV and a D1 read, so the door counts it against its client and may throw.
 */
export type OnUnknownKey = () => Promise<void>;

const noMissCount: OnUnknownKey = async () => {};

/**
 * Who holds this bearer token: a Keygate API key (verified by the same pipeline as any key)
 * or a Clerk session JWT (verified networkless against CLERK_JWT_KEY).
 */
export async function authenticate(
  core: Core,
  authorization: string | undefined,
  onUnknownKey: OnUnknownKey = noMissCount,
): Promise<Principal> {
  const match = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization ?? "");
  if (!match)
    throw unauthorized(
      "Send an API key or a Clerk session token as `Authorization: Bearer <token>`.",
    );
  const token = match[1] as string;
  return looksLikeKey(token)
    ? authenticateKey(core, token, onUnknownKey)
    : authenticateSession(core, token);
}

/**
 * HTTP verify's optional credential, which pins its answers to a tenant: a Keygate key holding
 * `keys:verify` (a verifier key) pins to its organization, and to its project when it has
 * one; a Clerk session (the dashboard's, or a token pasted into /docs) to its active
 * organization. Anything else in the header (a bad or dead key, a key without the scope, a
 * bad session) is a 401: a caller who meant to pin never gets unpinned answers.
 */
export async function authenticateVerifier(
  core: Core,
  authorization: string,
  onUnknownKey: OnUnknownKey = noMissCount,
): Promise<VerifyPin> {
  const token = /^Bearer[ ]+(\S+)\s*$/i.exec(authorization)?.[1];
  if (!token) {
    throw unauthorized("A verifier credential is a Keygate API key with the keys:verify scope.");
  }
  if (!looksLikeKey(token)) {
    try {
      return { organizationId: (await authenticateSession(core, token)).organizationId };
    } catch (error) {
      // No active organization is nothing to pin to: as bad a credential as any other.
      if (isDomainError(error, "forbidden")) throw unauthorized(error.message);
      throw error;
    }
  }
  const { result, record } = await verifyKey(core, token, {}, { spend: false });
  if (result.code === "NOT_FOUND") await onUnknownKey();
  if (!result.valid || !record) {
    throw unauthorized(`The verifier key is not valid (${result.code}).`);
  }
  if (!hasScope(record.scopes, "keys:verify")) {
    throw unauthorized('The verifier key lacks the "keys:verify" scope.');
  }
  return { organizationId: record.organizationId, projectId: record.projectId ?? undefined };
}

async function authenticateKey(
  core: Core,
  token: string,
  onUnknownKey: OnUnknownKey,
): Promise<Principal> {
  // A management credential is checked, not metered: its limits and credits are untouched.
  const { result, record } = await verifyKey(core, token, {}, { spend: false });
  if (result.code === "NOT_FOUND") await onUnknownKey();
  if (!result.valid || !record) {
    throw unauthorized(`The API key is not valid (${result.code}).`);
  }
  return {
    type: "api_key",
    organizationId: record.organizationId,
    keyId: record.id,
    projectId: record.projectId,
    scopes: record.scopes,
    expiresAt: lifetimeEnd(record.expiresAt, record.graceExpiresAt),
  };
}

/** The earlier of two optional instants (null = never). */
const lifetimeEnd = (a: number | null, b: number | null) =>
  a === null ? b : b === null ? a : Math.min(a, b);

/** `CLERK_AUTHORIZED_PARTIES`: the dashboard origins whose session tokens are accepted. */
export const authorizedParties = (env: { CLERK_AUTHORIZED_PARTIES?: string | undefined }) =>
  (env.CLERK_AUTHORIZED_PARTIES ?? "")
    .split(",")
    .map((party) => party.trim())
    .filter(Boolean);

const pem = (value: string) => value.replace(/\\n/g, "\n").trim();

async function authenticateSession(core: Core, token: string): Promise<Principal> {
  const { CLERK_JWT_KEY, CLERK_SECRET_KEY, CLERK_AUTHORIZED_PARTIES } = core.env;
  let claims: SessionClaims;
  try {
    claims = (await verifyToken(token, {
      ...(CLERK_JWT_KEY ? { jwtKey: pem(CLERK_JWT_KEY) } : { secretKey: CLERK_SECRET_KEY }),
      ...(CLERK_AUTHORIZED_PARTIES ? { authorizedParties: authorizedParties(core.env) } : {}),
    })) as SessionClaims;
  } catch {
    throw unauthorized("The session token is invalid or expired.");
  }
  if (!claims.sub) throw unauthorized("The session token has no subject.");
  // As @clerk/backend's own auth objects do (treatPendingAsSignedOut): not signed in yet.
  if (claims.sts === "pending") {
    throw unauthorized("The session has pending tasks; finish signing in and try again.");
  }
  const organizationId = claims.o?.id ?? claims.org_id;
  if (!organizationId) {
    throw forbidden("The session has no active organization; select one and try again.");
  }
  const role = claims.o?.rol ?? claims.org_role;
  return {
    type: "user",
    organizationId,
    userId: claims.sub,
    isAdmin: role === "admin" || role === "org:admin",
  };
}
