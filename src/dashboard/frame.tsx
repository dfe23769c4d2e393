// What every dashboard section shares: its Hono environment, the page frame (Hono's
// jsxRenderer over Layout), the secure headers, the session guard, paging links and notices.
import type { Context, MiddlewareHandler } from "hono";
import { Hono } from "hono";
import type { Child } from "hono/jsx";
import { jsxRenderer } from "hono/jsx-renderer";
import { secureHeaders } from "hono/secure-headers";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { Core } from "../core/context";
import type { Actor } from "../core/principal";
import { enforceRateLimit } from "../core/rate-limit";
import { actorOf } from "../http/auth";
import { BASE, type Frame, Layout, Notice } from "./layout";
import { ErrorPage } from "./pages";
import { clerkFrontendApi, sessionPrincipal, type UserPrincipal } from "./session";

export type DashboardEnv = {
  Bindings: Env;
  Variables: { core: Core; principal: UserPrincipal; actor: Actor };
};
export type C = Context<DashboardEnv>;

/** What a page tells the frame: everything but who is signed in and Clerk, which it knows. */
export type PageFrame = Omit<Frame, "principal" | "clerk">;

// `c.render(body, frame)`: every page in the one Layout (the jsxRenderer below).
declare module "hono" {
  interface ContextRenderer {
    // biome-ignore lint/style/useShorthandFunctionType: an interface, to merge with hono's own.
    (content: Child, frame: PageFrame): Response | Promise<Response>;
  }
}

/** One section of the dashboard (sign-in, projects, keys, …): its own routes, one frame. */
export const section = () => new Hono<DashboardEnv>();

export const PAGE_SIZE = 25;

export const devSignInEnabled = (env: Env) => env.DEV_SIGN_IN === "true";

export function clerkOf(env: Env) {
  const frontendApi = clerkFrontendApi(env.CLERK_PUBLISHABLE_KEY);
  return frontendApi && env.CLERK_PUBLISHABLE_KEY
    ? { frontendApi, publishableKey: env.CLERK_PUBLISHABLE_KEY }
    : null;
}

/** Every page in the one Layout: `c.render(body, { title, section })`. */
export const renderer = jsxRenderer<DashboardEnv>(({ children, Layout: _, ...frame }, c) => (
  <Layout
    {...(frame as unknown as PageFrame)}
    principal={c.get("principal") ?? null}
    clerk={clerkOf(c.env)}
  >
    {children}
  </Layout>
));

/** Clerk's origins, when production sign-in is configured; none otherwise. */
const clerkSources =
  (pick: (fapi: string) => string, otherwise = "") =>
  (c: Context) => {
    const clerk = clerkOf(c.env);
    return clerk ? pick(`https://${clerk.frontendApi}`) : otherwise;
  };
const CAPTCHA = "https://challenges.cloudflare.com";

/**
 * Hono's secure headers, with a policy of `script-src 'self'` and no inline code; Clerk's
 * origins are allowed only when Clerk is used (its components inject their own styles).
 */
export const dashboardHeaders = secureHeaders({
  contentSecurityPolicy: {
    defaultSrc: ["'none'"],
    scriptSrc: ["'self'", clerkSources((fapi) => `${fapi} ${CAPTCHA}`)],
    styleSrc: ["'self'", clerkSources(() => "'unsafe-inline'")],
    imgSrc: ["'self'", "data:", clerkSources(() => "https://img.clerk.com")],
    connectSrc: ["'self'", clerkSources((fapi) => fapi)],
    frameSrc: [clerkSources(() => CAPTCHA, "'none'")],
    workerSrc: [clerkSources(() => "'self' blob:", "'none'")],
    fontSrc: ["'self'"],
    formAction: ["'self'"],
    frameAncestors: ["'none'"],
    baseUri: ["'none'"],
  },
  xFrameOptions: "DENY",
  referrerPolicy: "same-origin",
  // Pages load nothing cross-origin but Clerk's script, which is not CORP-marked.
  crossOriginEmbedderPolicy: false,
});

/** Only a path inside the dashboard: never an open redirect. */
export function safeNext(value: string | undefined): string {
  if (!value?.startsWith(`${BASE}/`) || value.includes("\\")) {
    return `${BASE}/projects`;
  }
  return value;
}

/** A page with a plaintext on it: never stored by the browser or anything in between. */
export function secretPage(c: C, frame: PageFrame, body: Child) {
  c.header("Cache-Control", "no-store");
  c.header("Pragma", "no-cache");
  return c.render(body, frame);
}

/** Links of a paged list: the next cursor on the same path, and the first page. */
export function pageLinks(c: C, nextCursor: string | null) {
  const path = new URL(c.req.url).pathname;
  return {
    next: nextCursor ? `${path}?cursor=${encodeURIComponent(nextCursor)}` : null,
    first: c.req.query("cursor") ? path : null,
  };
}

export const pageRequest = (c: C, limit = PAGE_SIZE) => ({
  limit,
  cursor: c.req.query("cursor")?.slice(0, 200) || undefined,
});

const NOTICES: Record<string, string> = {
  "project-created": "Project created.",
  "project-created-before": "That form was submitted before: this is the project it created.",
  "key-updated": "Changes saved.",
  "access-updated": "Access settings saved.",
  "key-revoked":
    "Key revoked. Every verification refuses it within seconds (REVOCATION_BOUND_MS, 2 s by default).",
  "identity-created": "Identity created.",
  "identity-created-before": "That form was submitted before: this is the identity it created.",
  "identity-updated": "Limits and credits saved.",
  "identity-deleted": "Identity deleted. Its keys no longer share its limits and credits.",
  "delivery-retried": "Delivery queued again; it is sent within a minute.",
  "endpoint-created": "Webhook endpoint added.",
  "endpoint-created-before": "That form was submitted before: this is the endpoint it added.",
  "endpoint-updated": "Webhook endpoint saved.",
  "endpoint-deleted": "Webhook endpoint deleted.",
  "leak-policy-saved": "Leak policy saved.",
  "key-created-before":
    "That form was submitted before: this is the key it created. Its secret was shown once, then; rotate the key if the secret was lost.",
};

export function flash(c: C) {
  const notice = c.req.query("notice") ?? "";
  const message = Object.hasOwn(NOTICES, notice) ? NOTICES[notice] : undefined;
  return message ? <Notice>{message}</Notice> : null;
}

/** Sections behind a session: a visitor without one goes to sign-in and comes back. */
export const signedIn: MiddlewareHandler<DashboardEnv> = async (c, next) => {
  const principal = await sessionPrincipal(c.var.core, c);
  if (!principal) {
    const here = new URL(c.req.url);
    const back = c.req.method === "GET" ? `${here.pathname}${here.search}` : `${BASE}/projects`;
    return c.redirect(`${BASE}/sign-in?next=${encodeURIComponent(back)}`, 303);
  }
  await enforceRateLimit(c.env.MANAGEMENT_RATE_LIMITER, principal);
  c.set("principal", principal);
  c.set("actor", actorOf(c, principal));
  await next();
};

/** An error page in the frame, with its status. */
export function errorPage(c: C, title: string, message: string, status: ContentfulStatusCode) {
  c.status(status);
  return c.render(
    <ErrorPage title={title} message={message} signedIn={Boolean(c.get("principal"))} />,
    { title },
  );
}

export const notFoundPage = (c: C) =>
  errorPage(c, "Not found", "There is no such page in the dashboard.", 404);
