// `Idempotency-Key` on the HTTP edge: one middleware for every POST that creates or rotates,
// placed after authentication (the record belongs to the caller), and the OpenAPI pieces
// that document it on each such route.
import { type RouteConfig, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { loggable } from "../core/errors";
import {
  authorityOf,
  type Claim,
  claimIdempotencyKey,
  completeIdempotencyKey,
  IDEMPOTENCY_KEY_PATTERN,
  releaseIdempotencyKey,
  requireReplayable,
  type StoredResponse,
} from "../core/idempotency";
import { ProblemSchema } from "./openapi";
import { fieldsProblem, Problem } from "./problem";
import type { AppEnv } from "./router";

export const IDEMPOTENCY_HEADER = "Idempotency-Key";
/** On a replayed answer: it is the stored first response, not a new execution. */
export const REPLAYED_HEADER = "Idempotent-Replayed";

/** Headers of the first response that a replay carries again. */
const KEPT_HEADERS = [
  "content-type",
  "location",
  "link",
  "www-authenticate",
  "retry-after",
  "cache-control",
];

/** For a route's `request.headers`: the header as the OpenAPI document shows it. */
export const IdempotencyHeadersSchema = z.object({
  "idempotency-key": z
    .string()
    .regex(IDEMPOTENCY_KEY_PATTERN, "must be 1–255 printable ASCII characters")
    .optional()
    .openapi({
      // Header names are case-insensitive; the validator sees them lowercased.
      param: { name: "idempotency-key", in: "header" },
      description:
        "Makes a retry safe: the first successful response to this key (1–255 printable ASCII, e.g. a fresh UUID per operation) is kept 24 h for this caller in this organization, and a retry of the same request (same method, path and body) gets it again, with `Idempotent-Replayed: true`. Another request under the same key is a 422; a retry while the first is still running is a 409. An error answer is not kept: retrying after one runs the request again.",
    }),
});

const problemContent = { "application/problem+json": { schema: ProblemSchema } };

/** The answers `Idempotency-Key` adds to a route's responses. */
export const idempotencyResponses = {
  409: {
    description:
      "Conflicts with the resource's current state, or a request with this Idempotency-Key is still running.",
    content: problemContent,
  },
  422: {
    description: "This Idempotency-Key was already used for another request.",
    content: problemContent,
  },
} as const;

/** Response headers of a route that honours Idempotency-Key. */
export const idempotencyResponseHeaders = {
  [IDEMPOTENCY_HEADER]: {
    description: "The request's Idempotency-Key, echoed when one was sent.",
    schema: { type: "string" as const },
  },
  [REPLAYED_HEADER]: {
    description: "`true` when this is the stored first response to the Idempotency-Key.",
    schema: { type: "string" as const, enum: ["true"] },
  },
};

function respond(stored: StoredResponse, key: string, replayed: boolean): Response {
  const headers = new Headers(stored.headers);
  headers.set(IDEMPOTENCY_HEADER, key);
  if (replayed) headers.set(REPLAYED_HEADER, "true");
  return new Response(stored.body === "" ? null : stored.body, { status: stored.status, headers });
}

/**
 * Without the header, the request runs as ever. With it: the first request runs and its
 * success (2xx) is kept; an error changed nothing, so its key is released and a retry runs
 * afresh. Later requests get the kept answer, a 422 (another request) or a 409 (running).
 */
export const idempotency: MiddlewareHandler<AppEnv> = async (c, next) => {
  const key = c.req.header(IDEMPOTENCY_HEADER);
  if (key === undefined) return next();
  if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
    throw fieldsProblem([
      {
        location: "header.idempotency-key",
        message: "must be 1–255 printable ASCII characters",
        value: key,
      },
    ]);
  }
  const core = c.var.core;
  const taken: Claim = await claimIdempotencyKey(core, c.var.principal, key, {
    method: c.req.method,
    path: new URL(c.req.url).pathname,
    body: await c.req.text(),
  });
  if (taken.kind === "replay") {
    await requireReplayable(core, c.var.principal, taken.response);
    return respond(taken.response, key, true);
  }
  if (taken.kind === "mismatch") {
    throw new Problem(
      "unprocessable",
      "This Idempotency-Key was already used for another request (other method, path or body); use a new key.",
      {
        errors: [
          {
            location: "header.idempotency-key",
            message: "was used for another request",
            value: key,
          },
        ],
      },
    );
  }
  if (taken.kind === "running") {
    throw new Problem(
      "conflict",
      "A request with this Idempotency-Key is still running; retry once it has finished.",
    );
  }

  try {
    await next();
  } catch (error) {
    await releaseIdempotencyKey(core, taken).catch(() => undefined);
    throw error;
  }
  const response = c.res;
  if (response.status < 200 || response.status > 299) {
    // Refused, or failed: nothing was done, so nothing is kept and a retry runs afresh.
    await releaseIdempotencyKey(core, taken).catch(() => undefined);
    return;
  }
  const headers: Record<string, string> = {};
  for (const name of KEPT_HEADERS) {
    const value = response.headers.get(name);
    if (value !== null) headers[name] = value;
  }
  const stored: StoredResponse = {
    status: response.status,
    headers,
    body: await response.text(),
    issuedKeyId: c.var.issuedKeyId,
    authority: authorityOf(c.var.principal),
  };
  try {
    await completeIdempotencyKey(core, taken, stored);
  } catch (error) {
    // The work is done and its answer goes out; a retry meets a record that still reads
    // "running" (409) until it counts as abandoned.
    console.error("idempotency record not kept:", loggable(error));
  }
  const answered = new Response(stored.body === "" ? null : stored.body, {
    status: response.status,
    headers: response.headers,
  });
  answered.headers.set(IDEMPOTENCY_HEADER, key);
  // Unset first: assigning over a response merges the old one's headers into the new.
  c.res = undefined;
  c.res = answered;
};

/**
 * A route that honours Idempotency-Key: the middleware after the route's own (authentication),
 * the header parameter, its 409/422 answers and the echoed headers on the success response.
 */
export function idempotent<R extends RouteConfig>(route: R): R {
  const own = route.middleware === undefined ? [] : [route.middleware].flat();
  const responses: Record<string, unknown> = { ...route.responses, ...idempotencyResponses };
  for (const [status, response] of Object.entries(route.responses)) {
    if (!status.startsWith("2")) continue;
    const headers = (response as { headers?: Record<string, unknown> }).headers;
    responses[status] = { ...response, headers: { ...headers, ...idempotencyResponseHeaders } };
  }
  return {
    ...route,
    middleware: [...own, idempotency],
    request: { ...route.request, headers: IdempotencyHeadersSchema },
    responses,
  } as R;
}
