import {
  createExecutionContext,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { mintSessionToken } from "../src/dashboard/session-token";
import worker from "../src/index";

export const BASE = "http://keygate.test";

export interface CallOptions {
  token?: string | undefined;
  body?: unknown;
  /** Sent as it is, with no content type added: what a bare `fetch` or `curl -X POST` sends. */
  rawBody?: BodyInit;
  headers?: Record<string, string>;
  /** Bindings to use instead of the test pool's own for this request. */
  env?: Partial<Env>;
}

/**
 * One request through the real Worker (router, middleware, D1, KV), straight into its fetch
 * handler, then waiting for its background work (KV fills, last-used stamps) so a test sees
 * their effect. `exports.default.fetch` would also work, but it slows with every request a
 * test file makes (6 ms → 300 ms after ~1,000: cloudflare/workers-sdk#15446).
 */
export async function call(method: string, path: string, options: CallOptions = {}) {
  const headers = new Headers(options.headers);
  if (options.token) headers.set("authorization", `Bearer ${options.token}`);
  let body: BodyInit | undefined = options.rawBody;
  if (options.body !== undefined) {
    body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
    if (!headers.has("content-type")) headers.set("content-type", "application/json");
  }
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`${BASE}${path}`, { method, headers, body }) as Request<
      unknown,
      IncomingRequestCfProperties
    >,
    options.env ? { ...env, ...options.env } : env,
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  let json: unknown = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  // biome-ignore lint/suspicious/noExplicitAny: test bodies are inspected field by field
  return { status: response.status, headers: response.headers, text, body: json as any };
}

export interface SessionOptions {
  org?: string | null;
  user?: string;
  role?: "admin" | "member";
  /** v2 claims `o: { id, rol }` (default) or v1 `org_id` / `org_role`. */
  version?: 1 | 2;
  expiresIn?: number;
  privateKey?: string;
  azp?: string;
  /** Further claims, e.g. `sts: "pending"` (a session with pending tasks). */
  claims?: Record<string, unknown>;
}

/** A Clerk-shaped session JWT signed with the test run's key (RS256), by the one minter. */
export function sessionToken(options: SessionOptions = {}): Promise<string> {
  return mintSessionToken(
    options.privateKey ?? env.TEST_CLERK_PRIVATE_KEY,
    {
      organizationId: options.org === undefined ? "org_test" : options.org,
      userId: options.user ?? "user_admin",
      role: options.role ?? "admin",
      version: options.version ?? 2,
      azp: options.azp,
      extra: options.claims,
    },
    {
      nowMs: Date.now(),
      ttlSeconds: options.expiresIn ?? 600,
      issuer: "https://clerk.keygate.test",
      keyId: "ins_test",
    },
  );
}

let orgCounter = 0;

/** A fresh organization with an admin, a member and one project. */
export async function newOrg(name = "org") {
  const org = `org_${name}_${++orgCounter}_${crypto.randomUUID().slice(0, 8)}`;
  const admin = await sessionToken({ org, user: `user_admin_${orgCounter}`, role: "admin" });
  const member = await sessionToken({ org, user: `user_member_${orgCounter}`, role: "member" });
  const created = await call("POST", "/v1/projects", { token: admin, body: { name: "Main" } });
  if (created.status !== 201) throw new Error(`project create failed: ${created.text}`);
  return { org, admin, member, project: created.body };
}

/** An org-scoped API key of the organization, with these scopes (its plaintext). */
export async function orgKey(org: { org: string; admin: string }, scopes: string[]) {
  const created = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
    token: org.admin,
    body: { name: "org key", scopes },
  });
  if (created.status !== 201) throw new Error(`org key create failed: ${created.text}`);
  return created.body.plaintext_api_key as string;
}

/** Create a key through seed 001 and return the response body (with plaintext `key`). */
export async function newKey(
  token: string,
  projectId: string,
  fields: Record<string, unknown> = {},
) {
  const created = await call("POST", "/v1/api-keys", {
    token,
    body: { project_id: projectId, name: "test key", scopes: [], ...fields },
  });
  if (created.status !== 201)
    throw new Error(`key create failed: ${created.status} ${created.text}`);
  return created.body;
}

export const verify = (key: string, extra: Record<string, unknown> = {}) =>
  call("POST", "/v1/keys/verify", { body: { key, ...extra } });

/** What every surface answers for a key that does not verify: its reason, no metadata. */
export const rejectedResult = (code: string) => ({
  valid: false,
  code,
  key_id: null,
  organization_id: null,
  project_id: null,
  environment_id: null,
  scopes: null,
  expires_at: null,
  in_grace: false,
  name: null,
  enabled: null,
  meta: null,
  external_id: null,
  credits: null,
  ratelimits: null,
  identity: null,
});

/**
 * The `Link: <…>; rel="next"` target as a path for `call()`, or null on the last page. The
 * header carries an absolute URL (as GitHub's does), on the origin the request came to.
 */
export function nextLink(headers: Headers): string | null {
  const link = headers.get("link");
  if (!link) return null;
  const target = /^<([^>]+)>; rel="next"$/.exec(link)?.[1];
  if (!target) throw new Error(`not a Link rel="next" header: ${link}`);
  const url = new URL(target);
  if (url.origin !== BASE) throw new Error(`Link points elsewhere: ${target}`);
  return `${url.pathname}${url.search}`;
}

/** One cron run of the real Worker at `scheduledTime`, waiting for everything it started. */
export async function runCron(scheduledTime: number) {
  const controller = createScheduledController({ scheduledTime, cron: "* * * * *" });
  const ctx = createExecutionContext();
  await worker.scheduled(controller, env, ctx);
  await waitOnExecutionContext(ctx);
}

/** RFC 3339 as Keygate writes it: UTC with a `Z`, milliseconds optional. */
export const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

export const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Wait until `now` is at least `margin` ms before the next multiple of `period`: a test that
 * fills a fixed window (a minute, a UTC day) then checks what is left must not straddle the
 * window's end. Waits only in the last `margin` ms of a window.
 */
export async function clearOfBoundary(period: number, margin: number) {
  while (period - (Date.now() % period) < margin) {
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

/**
 * A gate on a condition other work brings about (background writes, racing requests): wait
 * for it, yielding to timers, and fail plainly if it never comes.
 */
export async function until(condition: () => boolean | Promise<boolean>, what = "condition") {
  const deadline = Date.now() + 5_000;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`${what} not reached within 5 s`);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * An RPC call, awaited where it is made, as a native promise for `expect(…).rejects`: a
 * workerd RPC promise handed to `rejects` as it is is also reported as an unhandled rejection.
 */
export async function rpc<T>(call: () => Promise<T>): Promise<T> {
  return await call();
}
