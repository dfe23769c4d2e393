import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { z } from "zod";
import { type DomainError, isDomainError } from "../core/errors";
import { parseKey } from "../core/key-material";
import { isStorageFault } from "../core/storage-faults";

/** One field-level problem, as in RFC 9457 extension `errors[]` (Huma's ErrorDetail shape). */
export interface FieldError {
  location: string;
  message: string;
  value: unknown;
}

export type ProblemKind =
  | "validation"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "method-not-allowed"
  | "conflict"
  | "unprocessable"
  | "payload-too-large"
  | "unsupported-media-type"
  | "rate-limited"
  | "unavailable"
  | "internal";

const KINDS: Record<ProblemKind, { status: ContentfulStatusCode; title: string }> = {
  validation: { status: 400, title: "Bad Request" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  "not-found": { status: 404, title: "Not Found" },
  "method-not-allowed": { status: 405, title: "Method Not Allowed" },
  conflict: { status: 409, title: "Conflict" },
  unprocessable: { status: 422, title: "Unprocessable Content" },
  "payload-too-large": { status: 413, title: "Content Too Large" },
  "unsupported-media-type": { status: 415, title: "Unsupported Media Type" },
  "rate-limited": { status: 429, title: "Too Many Requests" },
  unavailable: { status: 503, title: "Service Unavailable" },
  internal: { status: 500, title: "Internal Server Error" },
};

const ECHO_DEPTH = 3;
const ECHO_ENTRIES = 20;
const ECHO_CHARS = 256;

/**
 * What `errors[].value` echoes of a rejected value: enough to see the mistake, bounded in
 * depth, entries and length, so a hostile body (arrays nested thousands deep) cannot make
 * the error itself fail to render.
 */
function echoValue(value: unknown, depth = 0): unknown {
  if (typeof value === "string") {
    // A well-formed key is a credential: an error body never carries one, not even back
    // to the caller who sent it.
    if (parseKey(value)) return "[redacted key]";
    return value.length > ECHO_CHARS ? `${value.slice(0, ECHO_CHARS)}…` : value;
  }
  if (value === null || typeof value !== "object") return value;
  if (depth >= ECHO_DEPTH) return Array.isArray(value) ? "[…]" : "{…}";
  if (Array.isArray(value)) {
    const shown = value.slice(0, ECHO_ENTRIES).map((item) => echoValue(item, depth + 1));
    return value.length > ECHO_ENTRIES ? [...shown, "…"] : shown;
  }
  const entries = Object.entries(value);
  const shown = entries.slice(0, ECHO_ENTRIES).map(([k, v]) => [k, echoValue(v, depth + 1)]);
  if (entries.length > ECHO_ENTRIES) shown.push(["…", "…"]);
  return Object.fromEntries(shown);
}

/** An HTTP error answer: rendered as problem+json by the app's one error handler. */
export class Problem extends Error {
  readonly status: ContentfulStatusCode;
  readonly title: string;
  readonly errors: FieldError[];
  readonly headers: Record<string, string>;

  constructor(
    readonly kind: ProblemKind,
    detail: string,
    options: { errors?: FieldError[]; headers?: Record<string, string> } = {},
  ) {
    super(detail);
    this.name = "Problem";
    this.status = KINDS[kind].status;
    this.title = KINDS[kind].title;
    this.errors = (options.errors ?? []).map((error) => ({
      ...error,
      value: echoValue(error.value),
    }));
    this.headers = options.headers ?? {};
  }
}

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
  const errors: FieldError[] = error.issues.flatMap((issue) => {
    // A strict body names each member it does not know (a typo like `scope` must not pass
    // silently as "no scopes").
    if (issue.code === "unrecognized_keys") {
      return issue.keys.map((key) => ({
        location: [base, ...issue.path.map(String), key].join("."),
        message: "is not a field of this request",
        value: valueAt(data, [...issue.path, key]) ?? null,
      }));
    }
    const value = valueAt(data, issue.path);
    // An absent required member: said in words, not as the validator's type mismatch.
    const absent = issue.code === "invalid_type" && value === undefined;
    return [
      {
        location: [base, ...issue.path.map(String)].join("."),
        message: absent ? "is required" : issue.message,
        value: value ?? null,
      },
    ];
  });
  return fieldsProblem(errors);
}

export function fieldsProblem(errors: FieldError[]): Problem {
  const fields = [...new Set(errors.map((e) => e.location))];
  return new Problem(
    "validation",
    `Validation failed for ${fields.join(", ")}: ${errors.map((e) => e.message).join("; ")}`,
    { errors },
  );
}

/**
 * Where a field the core names came from in this request: a query parameter when the query
 * has it (`query.cursor`), otherwise the body (`body.expires_at`).
 */
function locate(c: Context, field: string): string {
  const query = new URL(c.req.url).searchParams;
  return query.has(field) ? `query.${field}` : `body.${field}`;
}

function fromDomain(c: Context, error: DomainError): Problem {
  const { message, details } = error;
  switch (error.kind) {
    case "invalid": {
      const field = details.field ?? "body";
      const location = locate(c, field);
      const text = message.startsWith(`${field}: `) ? message.slice(field.length + 2) : message;
      return new Problem("validation", `${location}: ${text}`, {
        errors: [{ location, message: text, value: details.value ?? null }],
      });
    }
    case "unauthorized":
      return new Problem("unauthorized", message, { headers: { "WWW-Authenticate": "Bearer" } });
    case "forbidden":
      return new Problem("forbidden", message);
    case "not_found":
      return new Problem("not-found", message);
    case "conflict":
      return new Problem("conflict", message);
    case "rate_limited":
      return new Problem("rate-limited", message, {
        headers: { "Retry-After": String(details.retryAfterSeconds ?? 1) },
      });
    case "unavailable":
      return new Problem("unavailable", message, { headers: { "Retry-After": "1" } });
    case "misconfigured":
      return new Problem("internal", `Keygate is misconfigured: ${message}`);
  }
}

const HTTP_KINDS: Record<number, ProblemKind> = {
  400: "validation",
  401: "unauthorized",
  404: "not-found",
  405: "method-not-allowed",
  413: "payload-too-large",
  415: "unsupported-media-type",
};

/** The one mapping of anything a request can throw to its HTTP answer. */
export function toProblem(c: Context, error: unknown): Problem {
  if (error instanceof Problem) return error;
  if (isDomainError(error)) return fromDomain(c, error);
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
