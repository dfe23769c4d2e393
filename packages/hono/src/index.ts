// @keygate/hono: protect a Hono route of your Worker with Keygate keys, in one line.
import type { Context, MiddlewareHandler } from "hono";
import type { KeygateBinding, VerifyCode, VerifyOptions, VerifyResult } from "./types.js";

export type {
  KeygateBinding,
  KeyMeta,
  VerifyCode,
  VerifyCredits,
  VerifyIdentity,
  VerifyOptions,
  VerifyRatelimit,
  VerifyResult,
} from "./types.js";

/** What the middleware puts on the context: `c.var.apiKey`. */
export type KeygateVariables = { apiKey: VerifyResult };

/** A value fixed for the route, or computed from the request. */
export type PerRequest<T> = T | ((c: Context) => T | Promise<T>);

export interface KeygateOptions {
  /** The name of the service binding to Keygate's `KeyService` entrypoint, e.g. "KEYGATE". */
  binding?: string;
  /** Or Keygate's base URL: the middleware then calls `POST {url}/v1/keys/verify`. */
  url?: string;
  /** HTTP only: a Keygate key with scope `keys:verify`, sent as `Authorization: Bearer`. */
  verifierKey?: PerRequest<string | undefined>;
  /** HTTP only: the fetch to call Keygate with (default: the global fetch). */
  fetch?: (request: Request) => Promise<Response>;
  /** Read the raw key from this request header (e.g. "x-api-key") instead of the bearer token. */
  header?: string;
  /** Or read the key yourself; return undefined when the request has none. */
  getKey?: (c: Context) => string | undefined | Promise<string | undefined>;
  /** Scopes the key must hold (all of them). */
  requiredScopes?: PerRequest<string[] | undefined>;
  /** The key must reach this project. */
  projectId?: PerRequest<string | undefined>;
  /** The key must belong to this organization (it cannot widen the binding's pin). */
  organizationId?: PerRequest<string | undefined>;
  /** Credits to spend and units for each rate limit (0–1000; Keygate's default is 1). */
  cost?: PerRequest<number | undefined>;
  /** Apply only these of the key's rate limits, each at its own cost. */
  ratelimits?: PerRequest<{ name: string; cost?: number }[] | undefined>;
  /** The client's address for the key's IP allowlist; default the `cf-connecting-ip` header. */
  ip?: ((c: Context) => string | undefined) | false;
  /** Called when verification throws (Keygate unreachable, storage down); default 503. */
  onError?: (c: Context, error: unknown) => Response | Promise<Response>;
  /**
   * HTTP only: verify without a pin (no `verifierKey`, no `organizationId`), so that Keygate
   * answers for any tenant's key. Without it, `keygate({ url })` needs one of the two.
   */
  allowUnpinned?: boolean;
}

/** The options that pin or narrow the tenant: configured, they must resolve to a value. */
type Pin = "verifierKey" | "organizationId" | "projectId";

/** A pin option that is configured but resolved to nothing (a missing secret or variable). */
class UnsetPin extends Error {
  constructor(readonly option: Pin) {
    super(
      `keygate(): \`${option}\` is configured but resolved to nothing (undefined, null or ""); ` +
        "every request is answered 503 until it is set (a missing secret or variable?).",
    );
    this.name = "UnsetPin";
  }
}

/**
 * Middleware that verifies the request's key with Keygate. A valid key goes on to the route
 * with its verdict on `c.var.apiKey`; anything else is answered here, as problem+json.
 */
export function keygate(
  options: KeygateOptions,
): MiddlewareHandler<{ Variables: KeygateVariables }> {
  if (!options.binding === !options.url) {
    throw new TypeError("keygate(): give exactly one of `binding` or `url`.");
  }
  if (options.url && !("verifierKey" in options || "organizationId" in options)) {
    if (!options.allowUnpinned) {
      throw new TypeError(
        "keygate({ url }): pin it with `verifierKey` or `organizationId` (otherwise Keygate " +
          "accepts any tenant's key), or set `allowUnpinned: true`.",
      );
    }
  }
  const verify = options.binding ? viaBinding(options.binding) : viaHttp(options);
  const logged = new Set<Pin>();
  return async (c, next) => {
    const key = await readKey(c, options);
    if (!key) return refuse(c, "MISSING", null, options, {});
    let result: VerifyResult;
    let asked: VerifyOptions;
    try {
      asked = await verifyOptions(c, options);
      result = await verify(c, key, asked);
    } catch (error) {
      if (error instanceof UnsetPin) {
        // A configuration error, not an outage: logged once, never let through.
        if (!logged.has(error.option)) console.error(error.message);
        logged.add(error.option);
        const detail = "Key verification is not configured; try again later.";
        return problem(c, 503, "unavailable", detail, null);
      }
      if (options.onError) return options.onError(c, error);
      const detail = "Key verification is unavailable; try again shortly.";
      return problem(c, 503, "unavailable", detail, null, { "retry-after": "1" });
    }
    if (result.valid && result.code === "VALID") {
      c.set("apiKey", result);
      await next();
      return;
    }
    return refuse(c, result.code, result, options, asked);
  };
}

type Verify = (c: Context, key: string, options: VerifyOptions) => Promise<VerifyResult>;

function viaBinding(name: string): Verify {
  return (c, key, options) => {
    const binding = (c.env as Record<string, unknown> | undefined)?.[name] as
      | KeygateBinding
      | undefined;
    if (typeof binding?.verify !== "function") {
      throw new TypeError(`keygate(): env.${name} is not a service binding to KeyService.`);
    }
    return binding.verify(key, options);
  };
}

function viaHttp(options: KeygateOptions): Verify {
  const endpoint = `${(options.url as string).replace(/\/+$/, "")}/v1/keys/verify`;
  return async (c, key, verifyOptions) => {
    const headers: Record<string, string> = { "content-type": "application/json" };
    const verifierKey = await resolvePin(c, options, "verifierKey");
    if (verifierKey) headers.authorization = `Bearer ${verifierKey}`;
    const body = {
      key,
      required_scopes: verifyOptions.requiredScopes,
      project_id: verifyOptions.projectId,
      organization_id: verifyOptions.organizationId,
      ip: verifyOptions.ip,
      cost: verifyOptions.cost,
      ratelimits: verifyOptions.ratelimits,
    };
    const request = new Request(endpoint, {
      method: "POST",
      headers,
      body: JSON.stringify(body),
    });
    // Called as a function of its own: the global fetch must not lose its `this`.
    const response = options.fetch ? await options.fetch(request) : await fetch(request);
    if (response.status !== 200) {
      throw new Error(`Keygate answered ${response.status}: ${await response.text()}`);
    }
    return (await response.json()) as VerifyResult;
  };
}

/** The bearer token (default), or the raw value of `options.header`. */
async function readKey(c: Context, options: KeygateOptions): Promise<string | undefined> {
  if (options.getKey) return (await options.getKey(c)) || undefined;
  if (options.header) return c.req.header(options.header)?.trim() || undefined;
  const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(c.req.header("authorization") ?? "");
  return match?.[1];
}

const resolve = async <T>(c: Context, value: PerRequest<T> | undefined): Promise<T | undefined> =>
  typeof value === "function" ? (value as (c: Context) => T | Promise<T>)(c) : value;

/** A pin option's value; a configured one that resolves to nothing throws `UnsetPin`. */
async function resolvePin(
  c: Context,
  options: KeygateOptions,
  option: Pin,
): Promise<string | undefined> {
  if (!(option in options)) return undefined;
  const value: unknown = await resolve(c, options[option]);
  if (value === undefined || value === null || (typeof value === "string" && !value.trim())) {
    throw new UnsetPin(option);
  }
  return value as string;
}

/** The RPC options of this request, leaving out what is not set. */
async function verifyOptions(c: Context, options: KeygateOptions): Promise<VerifyOptions> {
  const ip = options.ip === false ? undefined : (options.ip ?? defaultIp)(c);
  const all: VerifyOptions = {
    requiredScopes: await resolve(c, options.requiredScopes),
    projectId: await resolvePin(c, options, "projectId"),
    organizationId: await resolvePin(c, options, "organizationId"),
    ip,
    cost: await resolve(c, options.cost),
    ratelimits: await resolve(c, options.ratelimits),
  };
  return Object.fromEntries(
    Object.entries(all).filter(([, value]) => value !== undefined),
  ) as VerifyOptions;
}

const defaultIp = (c: Context) => c.req.header("cf-connecting-ip") || undefined;

const UNAUTHORIZED = new Set<VerifyCode | "MISSING">([
  "MISSING",
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
]);
const FORBIDDEN = new Set<VerifyCode>(["INSUFFICIENT_SCOPE", "WRONG_PROJECT", "IP_NOT_ALLOWED"]);

const DETAILS: Partial<Record<VerifyCode | "MISSING", string>> = {
  MISSING: "This route needs an API key.",
  MALFORMED: "The API key is malformed.",
  NOT_FOUND: "The API key is not known.",
  REVOKED: "The API key has been revoked.",
  EXPIRED: "The API key has expired.",
  DISABLED: "The API key is disabled.",
  WRONG_PROJECT: "The API key does not belong to this project.",
  IP_NOT_ALLOWED: "The API key may not be used from this address.",
  INSUFFICIENT_SCOPE: "The API key lacks a scope this route needs.",
  RATE_LIMITED: "The API key is over its rate limit.",
  USAGE_EXCEEDED: "The API key has no credits left.",
};

/** The answer to a request whose key is missing or refused. */
function refuse(
  c: Context,
  code: VerifyCode | "MISSING",
  result: VerifyResult | null,
  options: KeygateOptions,
  asked: VerifyOptions,
): Response {
  const detail = DETAILS[code] ?? `The API key was refused (${code}).`;
  const missing = code === "MISSING" && options.header ? ` Send it in \`${options.header}\`.` : "";
  if (UNAUTHORIZED.has(code)) {
    return problem(c, 401, "unauthorized", detail + missing, code, {
      "www-authenticate": "Bearer",
    });
  }
  if (FORBIDDEN.has(code as VerifyCode)) return problem(c, 403, "forbidden", detail, code);
  if (code === "RATE_LIMITED") {
    return problem(c, 429, "rate-limited", detail, code, rateLimitHeaders(result, asked));
  }
  if (code === "USAGE_EXCEEDED") {
    const refillAt = refusingRefillAt(result, asked);
    const headers: Record<string, string> = refillAt
      ? { "retry-after": String(secondsUntil(refillAt)) }
      : {};
    return problem(c, 429, "usage-exceeded", detail, code, headers);
  }
  // A code this version does not know (or a contradictory verdict): refuse, never pass it.
  return problem(c, 403, "forbidden", detail, code);
}

/**
 * When credits come back: the refill of the balance that refused (the key's or its
 * identity's; the later one when both did), or null when one of them never refills.
 */
function refusingRefillAt(result: VerifyResult | null, asked: VerifyOptions): string | null {
  const cost = Math.max(1, asked.cost ?? 1);
  const balances = [result?.credits, result?.identity?.credits].filter((b) => b != null);
  const refusing = balances.filter((b) => b.remaining < cost);
  const waitFor = refusing.length > 0 ? refusing : balances;
  if (waitFor.length === 0 || waitFor.some((b) => b.refill_at === null)) return null;
  return waitFor
    .map((b) => b.refill_at as string)
    .reduce((latest, next) => (Date.parse(next) > Date.parse(latest) ? next : latest));
}

/**
 * `Retry-After` until the earliest refusing window ends, and the IETF `RateLimit` /
 * `RateLimit-Policy` fields (draft-ietf-httpapi-ratelimit-headers-09) for that limit.
 * A limit refuses when it has fewer units left than this request would spend on it.
 */
function rateLimitHeaders(
  result: VerifyResult | null,
  asked: VerifyOptions,
): Record<string, string> {
  // The key's limits and its identity's (a name on both is two limits, both applied).
  const limits = [...(result?.ratelimits ?? []), ...(result?.identity?.ratelimits ?? [])];
  // `cost: 0` answers as cost 1 would; a per-limit cost defaults to the request's.
  const costOf = (name: string) =>
    Math.max(1, asked.ratelimits?.find((r) => r.name === name)?.cost ?? asked.cost ?? 1);
  const refusing = limits.filter((limit) => limit.remaining < costOf(limit.name));
  const candidates = refusing.length > 0 ? refusing : limits;
  const limit = candidates.reduce<(typeof limits)[number] | undefined>(
    (earliest, next) =>
      !earliest || Date.parse(next.reset_at) < Date.parse(earliest.reset_at) ? next : earliest,
    undefined,
  );
  if (!limit) return { "retry-after": "1" };
  const seconds = secondsUntil(limit.reset_at);
  const name = JSON.stringify(limit.name);
  return {
    "retry-after": String(seconds),
    "ratelimit-policy": `${name};q=${limit.limit}`,
    ratelimit: `${name};r=${limit.remaining};t=${seconds}`,
  };
}

/** Whole seconds from now to `instant`, rounded up, never negative. */
const secondsUntil = (instant: string) =>
  Math.max(0, Math.ceil((Date.parse(instant) - Date.now()) / 1000));

const TITLES: Record<number, string> = {
  401: "Unauthorized",
  403: "Forbidden",
  429: "Too Many Requests",
  503: "Service Unavailable",
};

/** RFC 9457 problem+json, in Keygate's own shape, plus the verdict's `code`. */
function problem(
  c: Context,
  status: 401 | 403 | 429 | 503,
  kind: string,
  detail: string,
  code: string | null,
  headers: Record<string, string> = {},
): Response {
  const body = {
    type: `https://keygate.dev/problems/${kind}`,
    title: TITLES[status],
    status,
    detail,
    instance: new URL(c.req.url).pathname,
    code,
    error: detail,
    errors: [],
  };
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/problem+json", ...headers },
  });
}
