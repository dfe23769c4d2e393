import type { Context, MiddlewareHandler } from "hono";
import { authenticate } from "../core/authenticate";
import type { Actor, Principal } from "../core/principal";
import { enforceRateLimit } from "../core/rate-limit";
import type { AppEnv } from "./router";

/** Management routes: resolve the bearer token to a principal, or 401/403; then the limiter. */
export const requireAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const principal = await authenticate(c.var.core, c.req.header("authorization"));
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
  // Bounded like the user agent: off Cloudflare (local dev) these headers are the client's.
  ip: (c.req.header("cf-connecting-ip") ?? c.req.header("x-real-ip"))?.slice(0, 64) ?? null,
  userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
});

export const bearerSecurity = [{ bearerAuth: [] }];
