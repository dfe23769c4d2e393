import { parseKey } from "./key-material";

/** One field-level problem, as in RFC 9457 extension `errors[]` (Huma's ErrorDetail shape). */
export interface FieldError {
  location: string;
  message: string;
  value: unknown;
}

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

export type ProblemKind =
  | "validation"
  | "unauthorized"
  | "forbidden"
  | "not-found"
  | "method-not-allowed"
  | "conflict"
  | "payload-too-large"
  | "unsupported-media-type"
  | "rate-limited"
  | "unavailable"
  | "internal";

const KINDS: Record<ProblemKind, { status: number; title: string }> = {
  validation: { status: 400, title: "Bad Request" },
  unauthorized: { status: 401, title: "Unauthorized" },
  forbidden: { status: 403, title: "Forbidden" },
  "not-found": { status: 404, title: "Not Found" },
  "method-not-allowed": { status: 405, title: "Method Not Allowed" },
  conflict: { status: 409, title: "Conflict" },
  "payload-too-large": { status: 413, title: "Content Too Large" },
  "unsupported-media-type": { status: 415, title: "Unsupported Media Type" },
  "rate-limited": { status: 429, title: "Too Many Requests" },
  unavailable: { status: 503, title: "Service Unavailable" },
  internal: { status: 500, title: "Internal Server Error" },
};

/**
 * The one error type of the core. Routes never build error bodies: they throw (or let the
 * core throw) a Problem, and the app's error handler renders it as problem+json.
 */
export class Problem extends Error {
  readonly status: number;
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

export const notFound = (what: string) => new Problem("not-found", `${what} not found.`);

export const conflict = (detail: string) => new Problem("conflict", detail);

export const forbidden = (detail: string) => new Problem("forbidden", detail);

export const unauthorized = (detail: string) =>
  new Problem("unauthorized", detail, { headers: { "WWW-Authenticate": "Bearer" } });

export const unavailable = (detail = "Storage is unavailable; try again shortly.") =>
  new Problem("unavailable", detail, { headers: { "Retry-After": "1" } });

/** A 400 naming one field. */
export const invalidField = (location: string, message: string, value: unknown) =>
  new Problem("validation", `${location}: ${message}`, {
    errors: [{ location, message, value }],
  });

/**
 * An error as it may be logged: the name and message of it and of its causes. drizzle's
 * "Failed query: … params: …" text is withheld: its parameters can be ciphertexts of keys or
 * secrets, and its cause says what went wrong. Stacks are kept for Keygate's own errors.
 */
export function loggable(error: unknown, depth = 0): string {
  if (depth > 4) return "…";
  if (error instanceof AggregateError) {
    const inner = error.errors.map((e) => loggable(e, depth + 1)).join("; ");
    return `${error.name}: ${error.message} [${inner}]`;
  }
  if (!(error instanceof Error)) return typeof error === "string" ? error : typeof error;
  const query = error.message.startsWith("Failed query:");
  const self = query
    ? `${error.name}: a query failed (its parameters are not logged)`
    : (error.stack ?? `${error.name}: ${error.message}`);
  return error.cause === undefined
    ? self
    : `${self}\ncaused by ${loggable(error.cause, depth + 1)}`;
}
