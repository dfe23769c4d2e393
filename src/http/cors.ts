import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { authorizedParties } from "../core/authenticate";
import type { AppEnv } from "./router";

/**
 * Browsers: Clerk session tokens live in dashboards, which call Keygate from their own
 * origin. Credentials travel in the Authorization header, never in cookies, so any origin
 * may call unless CLERK_AUTHORIZED_PARTIES names the dashboards (then only those).
 */
const handlers = new Map<string, MiddlewareHandler>();

export const crossOrigin: MiddlewareHandler<AppEnv> = (c, next) => {
  const setting = c.env.CLERK_AUTHORIZED_PARTIES ?? "";
  let handler = handlers.get(setting);
  if (!handler) {
    const parties = authorizedParties(c.env);
    handler = cors({
      origin: parties.length === 0 ? "*" : (origin) => (parties.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "PATCH", "DELETE"],
      allowHeaders: ["Authorization", "Content-Type", "Idempotency-Key"],
      exposeHeaders: [
        "Link",
        "Retry-After",
        "WWW-Authenticate",
        "Idempotency-Key",
        "Idempotent-Replayed",
      ],
      maxAge: 600,
    });
    handlers.set(setting, handler);
  }
  return handler(c, next);
};
