import type { Context, MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { authorizedParties } from "./core/authenticate";
import { createCore } from "./core/context";
import { loggable, Problem, type ProblemKind } from "./core/errors";
import { isStorageFault, withStorageFaults } from "./core/storage-faults";
import { registerApiKeys } from "./routes/api-keys";
import { registerAudit } from "./routes/audit";
import { registerMeta } from "./routes/meta";
import { registerOrgApiKeys } from "./routes/org-api-keys";
import { registerProjectKeys } from "./routes/project-keys";
import { registerProjects } from "./routes/projects";
import { type AppEnv, createRouter } from "./routes/shared";
import { registerVerify } from "./routes/verify";

export const MAX_BODY_BYTES = 64 * 1024;
const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i;

/** problem+json for every error; `error` repeats `detail` for `{ "error": "…" }` clients. */
export function renderProblem(c: Context, problem: Problem): Response {
  const body: Record<string, unknown> = {
    type: `https://keygate.dev/problems/${problem.kind}`,
    title: problem.title,
    status: problem.status,
    detail: problem.message,
    instance: new URL(c.req.url).pathname,
    error: problem.message,
    errors: problem.errors,
  };
  // Seed 002's surface labels its bodies with a JSON Schema reference.
  if (c.req.path.startsWith("/api/v1/")) body.$schema = "/api/v1/schemas/ErrorModel.json";
  return new Response(JSON.stringify(body), {
    status: problem.status,
    headers: { "content-type": "application/problem+json", ...problem.headers },
  });
}

const HTTP_KINDS: Record<number, ProblemKind> = {
  400: "validation",
  401: "unauthorized",
  404: "not-found",
  405: "method-not-allowed",
  413: "payload-too-large",
  415: "unsupported-media-type",
};

function toProblem(error: unknown): Problem {
  if (error instanceof Problem) return error;
  if (error instanceof HTTPException) {
    const kind = HTTP_KINDS[error.status] ?? "internal";
    return new Problem(kind, error.message || "Request rejected.");
  }
  // Storage faults (D1/KV unreachable, overloaded, failing) are a 503: never a 500, never a
  // success. They are recognised by origin: every error out of a binding is marked.
  if (isStorageFault(error)) {
    return new Problem("unavailable", "Storage is unavailable; try again shortly.", {
      headers: { "Retry-After": "1" },
    });
  }
  return new Problem("internal", "An unexpected error occurred.");
}

/**
 * Bodies: at most 64 KiB (413), JSON only (415), well-formed (400). An empty body reads as
 * `{}` so that routes whose fields are all optional accept a bare POST.
 */
const bodyGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (c.req.method === "GET" || c.req.method === "HEAD" || c.req.method === "OPTIONS") {
    return next();
  }
  const declared = Number(c.req.header("content-length") ?? "0");
  if (declared > MAX_BODY_BYTES) {
    throw new Problem(
      "payload-too-large",
      `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`,
    );
  }
  const bytes = await readLimited(c.req.raw, MAX_BODY_BYTES);
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") {
    // A bare POST (no body, or whitespace, with or without a content type) means "no
    // fields": the route sees a JSON `{}`, so all-optional bodies work and required fields
    // are named in a 400.
    const headers = new Headers(c.req.raw.headers);
    headers.set("content-type", "application/json");
    headers.delete("content-length");
    c.req.raw = new Request(c.req.raw.url, { method: c.req.method, headers, body: "{}" });
    cacheBody(c, "{}");
    return next();
  }
  const mediaType = (c.req.header("content-type") ?? "").split(";")[0]?.trim() ?? "";
  if (!JSON_MEDIA.test(mediaType)) {
    throw new Problem(
      "unsupported-media-type",
      `Request bodies must be application/json, not "${mediaType || "(none)"}".`,
    );
  }
  try {
    JSON.parse(text);
  } catch {
    throw new Problem("validation", "The request body is not valid JSON.", {
      errors: [{ location: "body", message: "is not valid JSON", value: null }],
    });
  }
  cacheBody(c, text);
  return next();
};

/** Later readers (the route's validator) get the checked text without reading the stream. */
const cacheBody = (c: Context, text: string) => {
  (c.req.bodyCache as Record<string, unknown>).text = Promise.resolve(text);
};

async function readLimited(request: Request, limit: number): Promise<Uint8Array> {
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw new Problem("payload-too-large", `Request bodies are limited to ${limit} bytes.`);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    out.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return out;
}

/**
 * Browsers: Clerk session tokens live in dashboards, which call Keygate from their own
 * origin. Credentials travel in the Authorization header, never in cookies, so any origin
 * may call unless CLERK_AUTHORIZED_PARTIES names the dashboards (then only those).
 */
const corsHandlers = new Map<string, MiddlewareHandler>();
const crossOrigin: MiddlewareHandler<AppEnv> = (c, next) => {
  const setting = c.env.CLERK_AUTHORIZED_PARTIES ?? "";
  let handler = corsHandlers.get(setting);
  if (!handler) {
    const parties = authorizedParties(c.env);
    handler = cors({
      origin: parties.length === 0 ? "*" : (origin) => (parties.includes(origin) ? origin : null),
      allowMethods: ["GET", "POST", "PATCH", "DELETE"],
      allowHeaders: ["Authorization", "Content-Type"],
      exposeHeaders: ["Link", "Retry-After", "WWW-Authenticate"],
      maxAge: 600,
    });
    corsHandlers.set(setting, handler);
  }
  return handler(c, next);
};

export function createApp() {
  const app = createRouter();

  app.use(crossOrigin);
  app.use(async (c, next) => {
    c.set("core", createCore(withStorageFaults(c.env), c.executionCtx));
    await next();
  });
  app.use(bodyGuard);

  registerMeta(app);
  registerVerify(app);
  registerProjects(app);
  registerApiKeys(app);
  registerOrgApiKeys(app);
  registerProjectKeys(app);
  registerAudit(app);

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
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "Keygate API",
      version: "1.0.0",
      description:
        "Issue, list, revoke, rotate and verify API keys for organizations and projects.",
    },
    security: [{ bearerAuth: [] }],
  });

  // Unknown path → 404; known path, other method → 405 with Allow.
  app.notFound((c) => {
    const allowed = allowedMethods(app.routes, c.req.path);
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
    const problem = toProblem(error);
    if (problem.status >= 500) {
      console.error(`request failed: ${c.req.method} ${c.req.path}:`, loggable(error));
    }
    return renderProblem(c, problem);
  });

  return app;
}

function allowedMethods(routes: { path: string; method: string }[], path: string): string[] {
  const methods = new Set<string>();
  for (const route of routes) {
    if (route.method === "ALL" || route.path === "/*" || route.path === "*") continue;
    const pattern = new RegExp(`^${route.path.replace(/:[^/]+/g, "[^/]+")}/?$`);
    if (pattern.test(path)) methods.add(route.method);
  }
  return [...methods].sort();
}
