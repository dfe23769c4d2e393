import { OpenAPIHono, z } from "@hono/zod-openapi";
import type { Context, MiddlewareHandler } from "hono";
import { authenticate } from "../core/authenticate";
import type { Core } from "../core/context";
import { type FieldError, Problem } from "../core/errors";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type Page } from "../core/pagination";
import type { Actor, Principal } from "../core/principal";
import { enforceRateLimit } from "../core/rate-limit";
import type { Env } from "../env";

export type AppEnv = {
  Bindings: Env;
  Variables: { core: Core; principal: Principal; actor: Actor };
};

// ---------- validation → problem+json ----------

const LOCATIONS: Record<string, string> = {
  json: "body",
  query: "query",
  param: "path",
  header: "header",
};

function valueAt(data: unknown, path: PropertyKey[]): unknown {
  let value = data;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

/** Every failed zod check becomes one `errors[]` entry naming its field. */
export function validationProblem(error: z.ZodError, target: string, data: unknown): Problem {
  const base = LOCATIONS[target] ?? target;
  const errors: FieldError[] = error.issues.map((issue) => ({
    location: [base, ...issue.path.map(String)].join("."),
    message: issue.message,
    value: valueAt(data, issue.path) ?? null,
  }));
  const fields = [...new Set(errors.map((e) => e.location))];
  return new Problem(
    "validation",
    `Validation failed for ${fields.join(", ")}: ${errors.map((e) => e.message).join("; ")}`,
    { errors },
  );
}

/** A router whose validation failures are problem+json, like every other error. */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    // `/v1/projects/` is `/v1/projects`: a trailing slash never turns a route into a 404/405.
    strict: false,
    defaultHook: (result, _c) => {
      if (!result.success) {
        const { error, target, data } = result as unknown as {
          error: z.ZodError;
          target: string;
          data: unknown;
        };
        throw validationProblem(error, target, data);
      }
    },
  });
}

// ---------- auth ----------

/** Management routes: resolve the bearer token to a principal, or 401/403. */
export const requireAuth: MiddlewareHandler<AppEnv> = async (c, next) => {
  const principal = await authenticate(c.var.core, c.req.header("authorization"));
  await enforceRateLimit(c.env.MANAGEMENT_RATE_LIMITER, principal);
  c.set("principal", principal);
  c.set("actor", {
    principal,
    // Bounded like the user agent: off Cloudflare (local dev) these headers are the client's.
    ip: (c.req.header("cf-connecting-ip") ?? c.req.header("x-real-ip"))?.slice(0, 64) ?? null,
    userAgent: c.req.header("user-agent")?.slice(0, 512) ?? null,
  });
  await next();
};

export const bearerSecurity = [{ bearerAuth: [] }];

// ---------- shared field schemas (SPEC "Input limits") ----------

export const NameSchema = z.string().min(1).max(128).openapi({ example: "CI deploy key" });
// One check per field, so a bad value gets one `errors[]` entry with one message.
export const ScopeSchema = z
  .string()
  .regex(/^[A-Za-z0-9:._*-]{1,100}$/, "must be 1–100 characters of letters, digits and : . _ * -");
export const ScopesSchema = z
  .array(ScopeSchema)
  .max(50)
  .openapi({ example: ["keys:read", "deploy"] });
/** A timestamp in a response: RFC 3339 UTC, or null where the field is nullable. */
export const InstantSchema = z
  .string()
  .openapi({ format: "date-time", example: "2019-08-24T14:15:22Z" });

/** The last instant whose RFC 3339 UTC form has a four-digit year (what we answer with). */
const LAST_INSTANT = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
export const TimestampSchema = z.iso
  .datetime({ offset: true })
  .refine(
    (value) => Date.parse(value) <= LAST_INSTANT,
    "must be no later than 9999-12-31T23:59:59Z",
  )
  .openapi({ example: "2030-01-01T00:00:00Z" });
export const DeviceNameSchema = z.string().max(128);
export const RotationIntervalSchema = z.number().int().min(1).max(365);
export const GracePeriodSchema = z.number().int().min(0).max(2_592_000);
export const UuidSchema = z.string().min(1).max(64);
export const SlugSchema = z
  .string()
  .regex(
    /^[a-z][a-z0-9]{0,31}$/,
    "must be 1–32 lowercase letters and digits, starting with a letter",
  );

const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** https anywhere; plain http only to loopback hosts, for local development. */
export function isAllowedWebhookUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username || url.password) return false;
  if (url.protocol === "https:") return true;
  return url.protocol === "http:" && LOOPBACK.has(url.hostname);
}

export const WebhookUrlSchema = z
  .string()
  .max(2048)
  .refine(isAllowedWebhookUrl, "must be an https:// URL (http:// only for localhost)")
  .openapi({ example: "https://example.com/hooks/keygate" });

export const toMs = (iso: string | null | undefined) =>
  iso === undefined ? undefined : iso === null ? null : Date.parse(iso);

export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

// ---------- pagination ----------

export const PageQuerySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_SIZE)
    .default(DEFAULT_PAGE_SIZE)
    .openapi({ description: "Page size, 1–100." }),
  cursor: z
    .string()
    .max(200)
    .optional()
    .openapi({ description: 'Opaque cursor from the previous page\'s `Link: rel="next"`.' }),
});

/** The next page goes in a Link header, so the seeds' body shapes stay unchanged. */
export function setNextLink(c: Context, page: Page<unknown>): void {
  if (page.nextCursor === null) return;
  // Absolute, as GitHub sends it: a client can fetch it as it is.
  const url = new URL(c.req.url);
  url.searchParams.set("cursor", page.nextCursor);
  c.header("Link", `<${url.href}>; rel="next"`);
}

// ---------- OpenAPI error responses ----------

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    error: z.string().openapi({ description: "Same as `detail`, for `{ error }` clients." }),
    errors: z.array(z.object({ location: z.string(), message: z.string(), value: z.unknown() })),
    $schema: z
      .string()
      .optional()
      .openapi({ description: "On the `/api/v1` surface only, as in its seed." }),
  })
  .openapi("Problem");

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});

/** The error responses every management route can give. */
export const errorResponses = {
  400: problem("Invalid request: each bad field is named in `errors[]`."),
  401: problem("Missing or invalid credentials."),
  403: problem("Authenticated, but not allowed."),
  404: problem("Not found, or not visible to the caller."),
  429: problem("Too many requests from this caller: wait for `Retry-After` seconds."),
  503: problem("Storage unavailable; retry."),
} as const;

/** Any request with a body (every method but GET) can also get these. */
export const bodyErrorResponses = {
  413: problem("The body is over 64 KiB."),
  415: problem("The body is not JSON."),
} as const;

/** The error responses of a management route that takes a body. */
export const writeErrorResponses = {
  ...errorResponses,
  409: problem("Conflicts with the resource's current state."),
  ...bodyErrorResponses,
} as const;

export const jsonBody = <T extends z.ZodType>(schema: T, description?: string) => ({
  required: true,
  ...(description ? { description } : {}),
  content: { "application/json": { schema } },
});

/** A body whose fields are all optional: a bare POST is `{}` (see the app's body guard). */
export const optionalJsonBody = <T extends z.ZodType>(schema: T) => ({
  ...jsonBody(schema, "Optional: a POST without a body means `{}`."),
  required: false,
});

export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
