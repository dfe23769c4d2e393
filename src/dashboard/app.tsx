// The dashboard at /dashboard: server-rendered pages over the same core the API uses. Pages
// call core functions with the signed-in user as the actor; nothing goes through HTTP twice.
// This file composes it: the frame, secure headers, CSRF, the body limit, then one sub-app per
// section, and the one error page mapping (the HTTP door's, rendered as a page).
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { createCore } from "../context";
import { isDomainError, loggable } from "../core/errors";
import { MAX_BODY_BYTES } from "../http/body";
import { toProblem } from "../http/problem";
import { serveAsset } from "./assets";
import {
  type DashboardEnv,
  dashboardHeaders,
  errorPage,
  notFoundPage,
  renderer,
  signedIn,
} from "./frame";
import { BASE } from "./layout";
import { audit } from "./sections/audit";
import { identities } from "./sections/identities";
import { keys } from "./sections/keys";
import { leakPolicy } from "./sections/leak-policy";
import { orgKeys } from "./sections/org-keys";
import { projects } from "./sections/projects";
import { signIn } from "./sections/sign-in";
import { webhooks } from "./sections/webhooks";
import { originAllowed } from "./session";

/** What each error status is called on its page. */
const TITLES: Record<number, string> = {
  400: "Bad request",
  403: "Not allowed",
  404: "Not found",
  409: "Not possible",
  429: "Slow down",
  503: "Temporarily unavailable",
};

export function createDashboard() {
  const app = new Hono<DashboardEnv>();

  app.use(renderer);
  app.use(dashboardHeaders);
  app.use(async (c, next) => {
    c.set("core", createCore(c.env, c.executionCtx));
    await next();
    // Pages are per user: never in a shared cache. Assets and secret pages set their own.
    if (!c.res.headers.has("Cache-Control")) c.header("Cache-Control", "private, no-cache");
  });

  // CSRF: every mutation, whatever its content type, comes from this origin.
  app.use(async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && !originAllowed(c)) {
      return errorPage(
        c,
        "Request refused",
        "This form was not sent from a Keygate page, so nothing was changed. Go back, reload the page and try again.",
        403,
      );
    }
    await next();
  });

  // Forms are small: at most 64 KiB, as for the API's JSON bodies.
  app.use(
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        errorPage(
          c,
          "Too large",
          "That form was larger than Keygate accepts; nothing was changed.",
          413,
        ),
    }),
  );

  app.get("/assets/:file", (c) => serveAsset(c.env.ASSETS, c.req.url, c.req.param("file")));
  app.route("/", signIn);

  // Everything below needs a session.
  for (const path of [
    "/projects",
    "/projects/*",
    "/keys/*",
    "/org-keys",
    "/org-keys/*",
    "/identities",
    "/identities/*",
    "/audit",
  ]) {
    app.use(path, signedIn);
  }
  app.route("/projects", projects);
  app.route("/projects", webhooks);
  app.route("/projects", leakPolicy);
  app.route("/keys", keys);
  app.route("/org-keys", orgKeys);
  app.route("/identities", identities);
  app.route("/audit", audit);

  app.all("*", (c) =>
    // `/dashboard/` (the API's routes are strict about slashes; a person typing it is not).
    c.req.path === `${BASE}/` && c.req.method === "GET"
      ? c.redirect(`${BASE}/projects`, 302)
      : notFoundPage(c),
  );

  // The HTTP door's mapping (status, Retry-After), rendered as a page; no session → sign-in.
  app.onError((error, c) => {
    if (isDomainError(error, "unauthorized")) return c.redirect(`${BASE}/sign-in`, 303);
    const problem = toProblem(c, error);
    const retryAfter = problem.headers["Retry-After"];
    if (retryAfter !== undefined) c.header("Retry-After", retryAfter);
    if (problem.status >= 500 && problem.kind !== "unavailable") {
      console.error(`dashboard request failed: ${c.req.method} ${c.req.path}:`, loggable(error));
      return errorPage(
        c,
        "Something went wrong",
        "An unexpected error occurred; nothing is shown of it here.",
        500,
      );
    }
    // A domain error's own words (the problem's detail names the field's wire location).
    const message = isDomainError(error) ? error.message : problem.message;
    return errorPage(c, TITLES[problem.status] ?? problem.title, message, problem.status);
  });

  return app;
}
