/**
 * The core's errors: what went wrong in domain terms. They carry no HTTP status, header or
 * request path; each door (src/http/problem.ts, the RPC entrypoint, the dashboard) maps them
 * to its own answer.
 */
export type DomainErrorKind =
  | "invalid"
  | "unauthorized"
  | "forbidden"
  | "not_found"
  | "conflict"
  | "rate_limited"
  | "unavailable"
  | "misconfigured";

export interface DomainErrorDetails {
  /** `invalid`: the field at fault, by its domain (wire) name: `expires_at`, `cursor`. */
  field?: string;
  /** `invalid`: the rejected value, as given. */
  value?: unknown;
  /** `rate_limited`: how long the caller should wait. */
  retryAfterSeconds?: number;
}

export class DomainError extends Error {
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    readonly details: DomainErrorDetails = {},
  ) {
    super(message);
    this.name = "DomainError";
  }
}

export const isDomainError = (error: unknown, kind?: DomainErrorKind): error is DomainError =>
  error instanceof DomainError && (kind === undefined || error.kind === kind);

export const notFound = (what: string) => new DomainError("not_found", `${what} not found.`);

export const conflict = (detail: string) => new DomainError("conflict", detail);

export const forbidden = (detail: string) => new DomainError("forbidden", detail);

export const unauthorized = (detail: string) => new DomainError("unauthorized", detail);

export const unavailable = (detail = "Storage is unavailable; try again shortly.") =>
  new DomainError("unavailable", detail);

export const rateLimited = (detail: string, retryAfterSeconds: number) =>
  new DomainError("rate_limited", detail, { retryAfterSeconds });

/** Keygate itself is set up wrong (a secret or var): nothing the caller can fix. */
export const misconfigured = (detail: string) => new DomainError("misconfigured", detail);

/** One field is wrong: `field` by its domain name, the surface decides where it came from. */
export const invalid = (field: string, message: string, value: unknown) =>
  new DomainError("invalid", `${field}: ${message}`, { field, value });

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
