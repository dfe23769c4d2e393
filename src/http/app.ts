import { createCore } from "../context";
import { loggable } from "../core/errors";
import { createDashboard } from "../dashboard/app";
import { registerApiKeys } from "../routes/api-keys";
import { registerAudit } from "../routes/audit";
import { registerIdentities } from "../routes/identities";
import { registerLeaks } from "../routes/leaks";
import { registerMeta } from "../routes/meta";
import { registerOrgApiKeys } from "../routes/org-api-keys";
import { registerProjectKeys } from "../routes/project-keys";
import { registerProjects } from "../routes/projects";
import { registerUsage } from "../routes/usage";
import { registerVerifications } from "../routes/verifications";
import { registerVerify } from "../routes/verify";
import { registerWebhookEndpoints } from "../routes/webhook-endpoints";
import { bodyGuard } from "./body";
import { crossOrigin } from "./cors";
import { methodNotAllowedResponse } from "./openapi";
import { Problem, renderProblem, toProblem } from "./problem";
import { createRouter } from "./router";

/** The HTTP door: middleware, routes, the OpenAPI document, and the one error handler. */
export function createApp() {
  const app = createRouter();

  // First: the dashboard has its own session, CSRF, headers and error pages (forms, not JSON).
  app.route("/dashboard", createDashboard());

  app.use(crossOrigin);
  app.use(async (c, next) => {
    c.set("core", createCore(c.env, c.executionCtx));
    await next();
  });
  app.use(bodyGuard);

  registerMeta(app);
  registerVerify(app);
  registerProjects(app);
  registerWebhookEndpoints(app);
  registerApiKeys(app);
  registerOrgApiKeys(app);
  registerProjectKeys(app);
  registerAudit(app);
  registerVerifications(app);
  registerIdentities(app);
  registerUsage(app);
  registerLeaks(app);

  // Both seeds' scheme names: any route takes either credential (SPEC "Authentication").
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description:
      "Org or project-scoped API key, format capy_live_...; Clerk session tokens also accepted.",
  });
  app.openAPIRegistry.registerComponent("securitySchemes", "bearerClerk", {
    type: "http",
    scheme: "bearer",
    bearerFormat: "JWT",
    description:
      "Clerk session JWT from an authenticated dashboard user. Format: Bearer eyJ.... A Keygate API key (bearerAuth) is accepted too.",
  });
  app.openAPIRegistry.registerComponent("responses", "MethodNotAllowed", methodNotAllowedResponse);
  // Built per request: `servers` names the origin that serves the document, so every snippet
  // on /docs (local dev, staging, production) has a host and runs as it is.
  app.doc31("/openapi.json", (c) => ({
    openapi: "3.1.0",
    info: {
      title: "Keygate API",
      version: "1.0.0",
      description:
        "Issue, list, revoke, rotate and verify API keys for organizations and projects. Any path answers a method it does not take with 405 and `Allow` (components.responses.MethodNotAllowed).\n\n" +
        "Clients may name themselves in the `Keygate-Client` request header: with `Keygate-Client: cli` " +
        '(what the `keygate` CLI sends), keys created by the request get `source: "cli"` ' +
        'instead of `"dashboard"` (a Clerk session) or `"api"` (an API key).',
    },
    servers: [{ url: new URL(c.req.url).origin, description: "This Keygate" }],
    security: [{ bearerAuth: [] }],
  }));

  // Unknown path → 404; known path, other method → 405 with Allow. The table is built once,
  // on the first miss, when every route is registered.
  let routeTable: RouteTable | undefined;
  app.notFound((c) => {
    routeTable ??= routeTableOf(app.routes);
    const allowed = allowedMethods(routeTable, c.req.path);
    if (allowed.length > 0) {
      const problem = new Problem(
        "method-not-allowed",
        `${c.req.method} is not allowed on ${c.req.path}; use ${allowed.join(", ")}.`,
        { headers: { Allow: allowed.join(", ") } },
      );
      return renderProblem(c, problem);
    }
    return renderProblem(c, new Problem("not-found", `No route matches ${c.req.path}.`));
  });

  app.onError((error, c) => {
    const problem = toProblem(c, error);
    if (problem.status >= 500) {
      console.error(`request failed: ${c.req.method} ${c.req.path}:`, loggable(error));
    }
    return renderProblem(c, problem);
  });

  return app;
}

/** A routed path as its segments (`null` = a `:param`, any one non-empty segment), and its method. */
type RouteTable = { segments: (string | null)[]; method: string }[];

function routeTableOf(routes: { path: string; method: string }[]): RouteTable {
  return routes
    .filter((route) => route.method !== "ALL" && route.path !== "/*" && route.path !== "*")
    .map((route) => ({
      segments: route.path.split("/").map((part) => (part.startsWith(":") ? null : part)),
      method: route.method,
    }));
}

/**
 * The methods routed on exactly this path, compared segment by segment (no pattern: a `.` in
 * `/openapi.json` is a dot). Strict: a trailing slash is another path.
 */
function allowedMethods(table: RouteTable, path: string): string[] {
  const parts = path.split("/");
  const methods = new Set<string>();
  for (const { segments, method } of table) {
    if (segments.length !== parts.length) continue;
    const matches = segments.every((segment, i) =>
      segment === null ? parts[i] !== "" : segment === parts[i],
    );
    if (matches) methods.add(method);
  }
  return [...methods].sort();
}
