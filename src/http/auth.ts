import type { Context, MiddlewareHandler } from "hono";
import { authenticate } from "../core/authenticate";
import { clientBucket } from "../core/ip";
import type { Actor, Principal } from "../core/principal";
import { enforceRateLimit, tooManyMisses, withinMissBudget } from "../core/rate-limit";
import type { AppEnv } from "./router";

/**
 * Whom a miss counts against: the client's address as Cloudflare's edge sets it (an IPv6
 * client by its /64, which one subscriber holds whole). No other header is trusted: a client
 * sets those itself. Callers without CF-Connecting-IP never came through the edge (a service
 * binding's `fetch`): they count together, apart from every client of the internet.
 */
export function missBucket(c: Context): string {
  const address = c.req.header("cf-connecting-ip");
  if (address === undefined) return "no-address";
  return clientBucket(address) ?? `unparsed:${address.slice(0, 64)}`;
}

/**
 * Count one unknown key sent from this client (as a key to verify, a verifier key or a
 * management credential): past the VERIFY_MISS_RATE_LIMITER budget, a 429.
 */
export const countMiss = (c: Context<AppEnv>) => async () => {
  if (!(await withinMissBudget(c.env.VERIFY_MISS_RATE_LIMITER, `client:${missBucket(c)}`))) {
    throw tooManyMisses("unknown keys");
  }
};

/** Management routes: resolve the bearer token to a principal, or 401/403; then the limiter. */
export const requireAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const principal = await authenticate(c.var.core, c.req.header("authorization"), countMiss(c));
  await enforceRateLimit(c.env.MANAGEMENT_RATE_LIMITER, principal);
  c.set("principal", principal);
  c.set("actor", {
    ...actorOf(c, principal),
    client: c.req.header("keygate-client")?.trim().toLowerCase() === "cli" ? "cli" : null,
  });
  await next();
};

/** Who acts, and from where as the audit log records it (API and dashboard alike). */
export const actorOf = (c: Context, principal: Principal): Actor => ({
  principal,
  // Bounded like the user agent: off Cloudflare the header is whatever the caller sent.
  ip: c.req.header("cf-connecting-ip")?.slice(0, 64) ?? null,
  userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
});

export const bearerSecurity = [{ bearerAuth: [] }];
