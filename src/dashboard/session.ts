// The dashboard's session: Clerk's `__session` cookie, verified exactly as a bearer token is,
// the Origin check every mutation passes, and the dev sign-in's own session tokens.
import type { Context } from "hono";
import { deleteCookie, getCookie, setCookie } from "hono/cookie";
import { authenticate } from "../core/authenticate";
import type { Core } from "../core/context";
import { isDomainError } from "../core/errors";
import { looksLikeKey } from "../core/key-material";
import type { Principal } from "../core/principal";
import { mintSessionToken } from "./session-token";

/** Clerk's frontend keeps the session JWT in this cookie on the app's own domain. */
export const SESSION_COOKIE = "__session";
/** Dev sessions last a working day; Clerk's own tokens are short-lived and refreshed by its JS. */
export const DEV_SESSION_SECONDS = 8 * 60 * 60;

export type UserPrincipal = Extract<Principal, { type: "user" }>;

/**
 * The signed-in Clerk user, or null when there is no usable session. The cookie only ever
 * carries a session JWT: an API key placed there is ignored, never honoured as a login.
 */
export const sessionPrincipal = (core: Core, c: Context) =>
  principalOfSession(core, getCookie(c, SESSION_COOKIE));

export async function principalOfSession(
  core: Core,
  token: string | undefined,
): Promise<UserPrincipal | null> {
  if (!token || looksLikeKey(token)) return null;
  try {
    const principal = await authenticate(core, `Bearer ${token}`);
    return principal.type === "user" ? principal : null;
  } catch (error) {
    // 401: expired or forged, i.e. signed out. 403 (no active org) is for the page to say.
    if (isDomainError(error, "unauthorized")) return null;
    throw error;
  }
}

/**
 * CSRF: a mutation must come from a page of this origin. A foreign Origin is refused always;
 * a missing one whenever the browser sent the session cookie (a same-origin form post from
 * any current browser carries Origin, so only a forged or stripped request lacks it).
 */
export function originAllowed(c: Context): boolean {
  const origin = c.req.header("origin");
  if (origin === undefined) return getCookie(c, SESSION_COOKIE) === undefined;
  return origin === new URL(c.req.url).origin;
}

const isHttps = (c: Context) => new URL(c.req.url).protocol === "https:";

export function setSessionCookie(c: Context, token: string, maxAge = DEV_SESSION_SECONDS) {
  setCookie(c, SESSION_COOKIE, token, {
    path: "/",
    httpOnly: true,
    sameSite: "Lax",
    secure: isHttps(c),
    maxAge,
  });
}

export function clearSessionCookie(c: Context) {
  deleteCookie(c, SESSION_COOKIE, { path: "/", secure: isHttps(c) });
}

/**
 * A Clerk-shaped v2 session token (what `npm run token` mints), signed with the dev private
 * key, so that it goes through the very same verification as a real Clerk session.
 */
export const mintDevSession = (
  privateKeyPem: string,
  claims: { organizationId: string; userId: string; role: "admin" | "member"; azp?: string },
  nowMs: number,
): Promise<string> =>
  mintSessionToken(privateKeyPem, claims, { nowMs, ttlSeconds: DEV_SESSION_SECONDS });

/** Clerk's Frontend API host, from a publishable key `pk_(test|live)_<base64 "host$">`. */
export function clerkFrontendApi(publishableKey: string | undefined): string | null {
  const match = /^pk_(test|live)_([A-Za-z0-9+/=_-]+)$/.exec(publishableKey ?? "");
  if (!match) return null;
  try {
    const host = atob((match[2] as string).replaceAll("-", "+").replaceAll("_", "/"));
    return /^[a-z0-9.-]+\$$/i.test(host) ? host.slice(0, -1) : null;
  } catch {
    return null;
  }
}
