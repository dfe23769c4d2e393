// @keygate/hono against a real Keygate: the Worker's own KeyService through real service
// bindings (one pinned to an organization by props, as a consumer's wrangler.toml does), and
// over HTTP. Every verdict is also driven through a fake binding with SPEC-shaped results, to
// pin the mapping down to the second (Retry-After) without waiting for real windows.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import {
  type KeygateBinding,
  type KeygateOptions,
  keygate,
  type VerifyResult,
} from "@keygate/hono";
import { Hono } from "hono";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateKey } from "../../../src/core/key-material";
import worker from "../../../src/index";
import {
  BASE,
  call,
  clearOfBoundary,
  newKey,
  newOrg,
  sessionToken,
  verify,
} from "../../../test/helpers";

const PINNED_ORG = "org_pinned";

afterEach(() => {
  vi.restoreAllMocks();
  vi.useRealTimers();
});

/** One app, one route per middleware configuration; the route echoes c.var.apiKey. */
function appWith(options: KeygateOptions) {
  const app = new Hono<{ Bindings: Record<string, unknown> }>();
  app.all("/*", keygate(options), (c) => c.json({ apiKey: c.var.apiKey }));
  return app;
}

async function send(
  app: Hono<{ Bindings: Record<string, unknown> }>,
  headers: Record<string, string> = {},
  bindings: Record<string, unknown> = env as unknown as Record<string, unknown>,
) {
  const ctx = createExecutionContext();
  const response = await app.request("http://consumer.test/route", { headers }, bindings, ctx);
  await waitOnExecutionContext(ctx);
  const text = await response.text();
  // biome-ignore lint/suspicious/noExplicitAny: bodies are inspected field by field
  return { status: response.status, headers: response.headers, body: JSON.parse(text) as any };
}

const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

/** A problem+json refusal with its status, code and the headers every refusal carries. */
function expectProblem(answer: Awaited<ReturnType<typeof send>>, status: number, code: string) {
  expect(answer.status).toBe(status);
  expect(answer.headers.get("content-type")).toBe("application/problem+json");
  expect(answer.body).toMatchObject({ status, code, instance: "/route" });
  expect(answer.body.type).toMatch(/^https:\/\/keygate\.dev\/problems\//);
  expect(answer.body.detail).toEqual(answer.body.error);
  expect(answer.headers.get("www-authenticate")).toBe(status === 401 ? "Bearer" : null);
}

interface OrgKeys {
  org: string;
  admin: string;
  project: { id: string };
  read: { id: string; key: string };
  revoked: string;
  expired: string;
}
let pinned: OrgKeys;
let other: OrgKeys;

/** Keys of one organization: read-scoped, revoked, expired. */
async function orgKeys(org: {
  org: string;
  admin: string;
  project: { id: string };
}): Promise<OrgKeys> {
  const read = await newKey(org.admin, org.project.id, { scopes: ["read"] });
  const revoked = await newKey(org.admin, org.project.id);
  await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
  const expired = await newKey(org.admin, org.project.id);
  await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
    .bind(Date.now() - 1000, expired.id)
    .run();
  return { ...org, read, revoked: revoked.key as string, expired: expired.key as string };
}

beforeAll(async () => {
  const admin = await sessionToken({ org: PINNED_ORG, user: "user_pinned_admin" });
  const project = await call("POST", "/v1/projects", { token: admin, body: { name: "Pinned" } });
  expect(project.status).toBe(201);
  pinned = await orgKeys({ org: PINNED_ORG, admin, project: project.body });
  other = await orgKeys(await newOrg("sdk_other"));
});

describe("keygate({ binding }) over a real service binding", () => {
  const app = appWith({ binding: "KEYGATE_PINNED" });

  it("lets a valid key through with the verify result, unchanged, on c.var.apiKey", async () => {
    const answer = await send(app, bearer(pinned.read.key));
    expect(answer.status).toBe(200);
    const direct = await env.TEST_KEYGATE.verify(pinned.read.key);
    expect(answer.body.apiKey).toEqual(direct);
    expect(answer.body.apiKey).toMatchObject({
      valid: true,
      code: "VALID",
      key_id: pinned.read.id,
      organization_id: PINNED_ORG,
    });
  });

  it("answers 401 with WWW-Authenticate: Bearer without a key", async () => {
    expectProblem(await send(app), 401, "MISSING");
    expectProblem(await send(app, { authorization: "Basic dXNlcjpwdw==" }), 401, "MISSING");
    expectProblem(await send(app, { authorization: "Bearer " }), 401, "MISSING");
  });

  it("answers 401 for malformed, unknown, revoked and expired keys", async () => {
    const unknown = (await generateKey("capy", "live")).plaintext;
    const malformed = `${pinned.read.key.slice(0, -1)}!`;
    expectProblem(await send(app, bearer(malformed)), 401, "MALFORMED");
    expectProblem(await send(app, bearer(unknown)), 401, "NOT_FOUND");
    expectProblem(await send(app, bearer(pinned.revoked)), 401, "REVOKED");
    expectProblem(await send(app, bearer(pinned.expired)), 401, "EXPIRED");
  });

  it("answers 403 for a missing scope and for another project", async () => {
    const scoped = appWith({ binding: "KEYGATE_PINNED", requiredScopes: ["write"] });
    expectProblem(await send(scoped, bearer(pinned.read.key)), 403, "INSUFFICIENT_SCOPE");
    const held = appWith({ binding: "KEYGATE_PINNED", requiredScopes: ["read"] });
    expect((await send(held, bearer(pinned.read.key))).status).toBe(200);

    const project = appWith({
      binding: "TEST_KEYGATE",
      projectId: (c) => c.req.header("x-project"),
    });
    const own = await send(project, { ...bearer(other.read.key), "x-project": other.project.id });
    expect(own.status).toBe(200);
    const foreign = { ...bearer(other.read.key), "x-project": pinned.project.id };
    expectProblem(await send(project, foreign), 403, "WRONG_PROJECT");
  });

  it("is pinned by the binding's props: another organization's key is NOT_FOUND", async () => {
    expectProblem(await send(app, bearer(other.read.key)), 401, "NOT_FOUND");
    // The same key through the unpinned binding is fine: the pin made the difference.
    expect((await send(appWith({ binding: "TEST_KEYGATE" }), bearer(other.read.key))).status).toBe(
      200,
    );
    // A per-route organizationId cannot widen the pin.
    const widened = appWith({ binding: "KEYGATE_PINNED", organizationId: other.org });
    expectProblem(await send(widened, bearer(other.read.key)), 401, "NOT_FOUND");
  });

  it("reads the raw key from another header with { header }", async () => {
    const custom = appWith({ binding: "KEYGATE_PINNED", header: "x-api-key" });
    expect((await send(custom, { "x-api-key": pinned.read.key })).status).toBe(200);
    const bearerOnly = await send(custom, bearer(pinned.read.key));
    expectProblem(bearerOnly, 401, "MISSING");
    expect(bearerOnly.body.detail).toMatch(/x-api-key/);
  });

  it("fails closed: 503 with Retry-After: 1 when Keygate cannot reach its storage", async () => {
    const fresh = await newKey(other.admin, other.project.id);
    vi.spyOn(env.DB, "prepare").mockImplementation(() => {
      throw new Error("D1_ERROR: Network connection lost.");
    });
    vi.spyOn(env.KEY_CACHE, "get").mockImplementation(() => {
      throw new Error("KV GET failed: 503 Service Unavailable");
    });
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const answer = await send(appWith({ binding: "TEST_KEYGATE" }), bearer(fresh.key));
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBe("1");
    expect(answer.headers.get("content-type")).toBe("application/problem+json");
    expect(answer.body).toMatchObject({ status: 503, code: null });
  });

  it("hands a thrown verification to onError", async () => {
    const hooked = appWith({
      binding: "MISSING_BINDING",
      onError: (c, error) => c.json({ handled: (error as Error).message }, 500),
    });
    const answer = await send(hooked, bearer(pinned.read.key));
    expect(answer.status).toBe(500);
    expect(answer.body.handled).toMatch(/MISSING_BINDING/);
  });
});

describe("governance verdicts from the real Keygate", () => {
  const app = appWith({ binding: "KEYGATE_PINNED" });
  const withFields = (fields: Record<string, unknown>) =>
    newKey(pinned.admin, pinned.project.id, fields);

  it("DISABLED → 401, IP_NOT_ALLOWED → 403 (the client address from cf-connecting-ip)", async () => {
    const disabled = await withFields({ enabled: false });
    expectProblem(await send(app, bearer(disabled.key)), 401, "DISABLED");
    const fenced = await withFields({ ip_allowlist: ["203.0.113.0/24"] });
    const inside = { ...bearer(fenced.key), "cf-connecting-ip": "203.0.113.7" };
    expect((await send(app, inside)).status).toBe(200);
    const outside = { ...bearer(fenced.key), "cf-connecting-ip": "198.51.100.1" };
    expectProblem(await send(app, outside), 403, "IP_NOT_ALLOWED");
    expectProblem(await send(app, bearer(fenced.key)), 403, "IP_NOT_ALLOWED");
  });

  it("RATE_LIMITED → 429 with Retry-After and RateLimit fields for the refusing limit", async () => {
    await clearOfBoundary(60_000, 10_000); // the three requests must fall in one minute
    const limited = await withFields({
      ratelimits: [
        { name: "burst", limit: 2, duration_ms: 60_000 },
        { name: "daily", limit: 1000, duration_ms: 86_400_000 },
      ],
    });
    const first = await send(app, bearer(limited.key));
    expect(first.status).toBe(200);
    expect(first.body.apiKey.ratelimits).toEqual(
      expect.arrayContaining([expect.objectContaining({ name: "burst", limit: 2, remaining: 1 })]),
    );
    expect((await send(app, bearer(limited.key))).status).toBe(200);
    const refused = await send(app, bearer(limited.key));
    expectProblem(refused, 429, "RATE_LIMITED");
    const windowEnd = Math.ceil(Date.now() / 60_000) * 60_000;
    const seconds = Number(refused.headers.get("retry-after"));
    expect(Math.abs(seconds - Math.ceil((windowEnd - Date.now()) / 1000))).toBeLessThanOrEqual(1);
    expect(refused.headers.get("ratelimit-policy")).toBe('"burst";q=2');
    expect(refused.headers.get("ratelimit")).toBe(`"burst";r=0;t=${seconds}`);
  });

  it("c.var.apiKey.identity: the key's identity; its limit's 429 carries its window's reset", async () => {
    await clearOfBoundary(60_000, 10_000); // the requests must fall in one minute
    const created = await call("POST", "/v1/identities", {
      token: pinned.admin,
      body: {
        external_id: `hono_${crypto.randomUUID()}`,
        meta: { plan: "team" },
        ratelimits: [{ name: "team", limit: 2, duration_ms: 60_000 }],
        credits: { remaining: 100 },
      },
    });
    expect(created.status, created.text).toBe(201);
    const identity = created.body;
    const own = await withFields({
      external_id: identity.external_id,
      ratelimits: [{ name: "own", limit: 100, duration_ms: 3_600_000 }],
    });
    const other = await withFields({ external_id: identity.external_id });
    const first = await send(app, bearer(own.key));
    expect(first.status).toBe(200);
    expect(first.body.apiKey.identity).toEqual({
      id: identity.id,
      external_id: identity.external_id,
      meta: { plan: "team" },
      credits: { remaining: 99, refill_at: null },
      ratelimits: [{ name: "team", limit: 2, remaining: 1, reset_at: expect.any(String) }],
    });
    expect((await send(app, bearer(other.key))).status).toBe(200);
    // The identity's window is full (the key's own hourly one is not): 429 until its minute ends.
    const refused = await send(app, bearer(own.key));
    expectProblem(refused, 429, "RATE_LIMITED");
    const windowEnd = Math.ceil(Date.now() / 60_000) * 60_000;
    const seconds = Number(refused.headers.get("retry-after"));
    expect(Math.abs(seconds - Math.ceil((windowEnd - Date.now()) / 1000))).toBeLessThanOrEqual(1);
    expect(refused.headers.get("ratelimit-policy")).toBe('"team";q=2');
  });

  it("USAGE_EXCEEDED → 429, with Retry-After until the refill only when one is set", async () => {
    const costly = appWith({ binding: "KEYGATE_PINNED", cost: 2 });
    const once = await withFields({ credits: { remaining: 3 } });
    const spent = await send(costly, bearer(once.key));
    expect(spent.status).toBe(200);
    expect(spent.body.apiKey.credits).toEqual({ remaining: 1, refill_at: null });
    const empty = await send(costly, bearer(once.key));
    expectProblem(empty, 429, "USAGE_EXCEEDED");
    expect(empty.headers.get("retry-after")).toBeNull();

    await clearOfBoundary(86_400_000, 60_000); // refused before the refill, not after it
    const daily = await withFields({
      credits: { remaining: 0, refill: { interval: "daily", amount: 10 } },
    });
    const refused = await send(costly, bearer(daily.key));
    expectProblem(refused, 429, "USAGE_EXCEEDED");
    const midnight = Math.ceil((Date.now() + 1) / 86_400_000) * 86_400_000;
    const seconds = Number(refused.headers.get("retry-after"));
    expect(Math.abs(seconds - Math.ceil((midnight - Date.now()) / 1000))).toBeLessThanOrEqual(1);
  });
});

describe("keygate({ url }) over HTTP", () => {
  const keygateFetch = async (request: Request) => {
    const ctx = createExecutionContext();
    const response = await worker.fetch(
      request as Request<unknown, IncomingRequestCfProperties>,
      env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
    return response;
  };
  const app = appWith({
    url: `${BASE}/`,
    fetch: keygateFetch,
    requiredScopes: ["read"],
    allowUnpinned: true,
  });

  it("gives the same verdicts as POST /v1/keys/verify", async () => {
    const ok = await send(app, bearer(pinned.read.key));
    expect(ok.status).toBe(200);
    const direct = await verify(pinned.read.key, { required_scopes: ["read"] });
    expect(ok.body.apiKey).toEqual(direct.body);
    expectProblem(await send(app, bearer(pinned.revoked)), 401, "REVOKED");
    const writer = appWith({
      url: BASE,
      fetch: keygateFetch,
      requiredScopes: ["write"],
      allowUnpinned: true,
    });
    expectProblem(await send(writer, bearer(pinned.read.key)), 403, "INSUFFICIENT_SCOPE");
  });

  it("answers 503 when Keygate answers anything but 200", async () => {
    const down = appWith({
      url: BASE,
      organizationId: PINNED_ORG,
      fetch: async () => new Response("unavailable", { status: 503 }),
    });
    const answer = await send(down, bearer(pinned.read.key));
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBe("1");
  });

  it("sends the verifier key and the request's pins in the body", async () => {
    const seen: { authorization: string | null; body: unknown }[] = [];
    const recording = appWith({
      url: BASE,
      verifierKey: "capy_live_verifier",
      organizationId: "org_x",
      projectId: "p1",
      cost: 3,
      ratelimits: [{ name: "burst", cost: 2 }],
      fetch: async (request) => {
        seen.push({
          authorization: request.headers.get("authorization"),
          body: await request.json(),
        });
        return Response.json(await env.TEST_KEYGATE.verify(pinned.read.key));
      },
    });
    await send(recording, { ...bearer(pinned.read.key), "cf-connecting-ip": "203.0.113.9" });
    expect(seen).toEqual([
      {
        authorization: "Bearer capy_live_verifier",
        body: {
          key: pinned.read.key,
          organization_id: "org_x",
          project_id: "p1",
          ip: "203.0.113.9",
          cost: 3,
          ratelimits: [{ name: "burst", cost: 2 }],
        },
      },
    ]);
  });
});

describe("a pin option that resolves to nothing (a missing secret) fails closed", () => {
  const key = bearer("capy_live_whatever");
  /** A fetch that records every call and answers VALID: the middleware must not call it. */
  const recorder = () => {
    const calls: Request[] = [];
    const fetch = async (request: Request) => {
      calls.push(request);
      return Response.json(verdict("VALID"));
    };
    return { calls, fetch };
  };

  it("keygate({ url }) needs verifierKey or organizationId, unless allowUnpinned: true", () => {
    expect(() => keygate({ url: BASE })).toThrow(/allowUnpinned/);
    expect(() => keygate({ url: BASE, projectId: "p1" })).toThrow(TypeError);
    expect(() => keygate({ url: BASE, allowUnpinned: true })).not.toThrow();
    expect(() => keygate({ url: BASE, verifierKey: (c) => c.env.KEYGATE_VERIFIER })).not.toThrow();
    expect(() => keygate({ url: BASE, organizationId: "org_1" })).not.toThrow();
    expect(() => keygate({ binding: "KEYGATE" })).not.toThrow();
  });

  it("verifierKey: c => c.env.KEYGATE_VERIFIER with the secret unset or empty → 503, logged once", async () => {
    const errors = vi.spyOn(console, "error").mockImplementation(() => {});
    const { calls, fetch } = recorder();
    const app = appWith({ url: BASE, fetch, verifierKey: (c) => c.env.KEYGATE_VERIFIER });
    for (const bindings of [{}, { KEYGATE_VERIFIER: "" }, { KEYGATE_VERIFIER: null }]) {
      const answer = await send(app, key, bindings);
      expect(answer.status).toBe(503);
      expect(answer.body).toMatchObject({ type: "https://keygate.dev/problems/unavailable" });
    }
    expect(calls).toEqual([]);
    expect(errors).toHaveBeenCalledTimes(1);
    expect(String(errors.mock.calls[0]?.[0])).toMatch(/`verifierKey` is configured/);
    // Set, it is sent.
    const set = await send(app, key, { KEYGATE_VERIFIER: "capy_live_verifier" });
    expect(set.status).toBe(200);
    expect(calls[0]?.headers.get("authorization")).toBe("Bearer capy_live_verifier");
  });

  it("organizationId / projectId that resolve to nothing → 503 over HTTP and over the binding", async () => {
    vi.spyOn(console, "error").mockImplementation(() => {});
    const http = recorder();
    const unset = (c: { env: Record<string, unknown> }) => c.env.MISSING as string | undefined;
    for (const option of ["organizationId", "projectId"] as const) {
      const overHttp = appWith({ url: BASE, fetch: http.fetch, verifierKey: "v", [option]: unset });
      expect((await send(overHttp, key, {})).status).toBe(503);
      const { bindings, calls } = fake(verdict("VALID"));
      for (const value of [undefined, null, "", () => "", async () => undefined]) {
        const app = appWith({ binding: "KEYGATE", [option]: value } as KeygateOptions);
        expect((await send(app, key, bindings)).status).toBe(503);
      }
      expect(calls).toEqual([]);
      // Resolved to a value, the same route verifies.
      const fine = appWith({ binding: "KEYGATE", [option]: () => "org_or_project" });
      expect((await send(fine, key, bindings)).status).toBe(200);
    }
    expect(http.calls).toEqual([]);
  });
});

/** A SPEC-shaped verdict for the fake binding. */
function verdict(code: VerifyResult["code"], extra: Partial<VerifyResult> = {}): VerifyResult {
  const genuine = code === "VALID" || code === "RATE_LIMITED" || code === "USAGE_EXCEEDED";
  return {
    valid: code === "VALID",
    code,
    key_id: genuine ? "key_1" : null,
    organization_id: genuine ? PINNED_ORG : null,
    project_id: genuine ? "project_1" : null,
    environment_id: genuine ? "env_1" : null,
    scopes: genuine ? ["read"] : null,
    expires_at: null,
    in_grace: false,
    name: genuine ? "fake" : null,
    enabled: genuine ? true : null,
    meta: genuine ? { plan: "pro" } : null,
    external_id: null,
    credits: null,
    ratelimits: null,
    identity: null,
    ...extra,
  };
}

/** A binding that answers `result` and records what it was asked. */
function fake(result: VerifyResult | Error) {
  const calls: { key: string; options: unknown }[] = [];
  const binding: KeygateBinding = {
    async verify(key, options) {
      calls.push({ key, options });
      if (result instanceof Error) throw result;
      return result;
    },
  };
  return { calls, bindings: { KEYGATE: binding } };
}

describe("every verdict → status and headers (fake binding, SPEC-shaped results)", () => {
  const app = appWith({ binding: "KEYGATE" });
  const key = { authorization: "Bearer capy_live_whatever" };

  it.each([
    ["MALFORMED", 401],
    ["NOT_FOUND", 401],
    ["REVOKED", 401],
    ["EXPIRED", 401],
    ["DISABLED", 401],
    ["WRONG_PROJECT", 403],
    ["IP_NOT_ALLOWED", 403],
    ["INSUFFICIENT_SCOPE", 403],
  ] as const)("%s → %i", async (code, status) => {
    const { bindings } = fake(verdict(code));
    const answer = await send(app, key, bindings);
    expectProblem(answer, status, code);
    expect(answer.headers.get("retry-after")).toBeNull();
  });

  it("RATE_LIMITED → 429, Retry-After to the earliest refusing window, RateLimit fields", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T10:00:00.000Z"), toFake: ["Date"] });
    const { bindings } = fake(
      verdict("RATE_LIMITED", {
        ratelimits: [
          { name: "daily", limit: 1000, remaining: 400, reset_at: "2026-12-02T00:00:00.000Z" },
          { name: "burst", limit: 10, remaining: 0, reset_at: "2026-12-01T10:00:42.500Z" },
          { name: "minute", limit: 60, remaining: 0, reset_at: "2026-12-01T10:01:00.000Z" },
        ],
      }),
    );
    const answer = await send(app, key, bindings);
    expectProblem(answer, 429, "RATE_LIMITED");
    expect(answer.body.type).toBe("https://keygate.dev/problems/rate-limited");
    expect(answer.headers.get("retry-after")).toBe("43");
    expect(answer.headers.get("ratelimit-policy")).toBe('"burst";q=10');
    expect(answer.headers.get("ratelimit")).toBe('"burst";r=0;t=43');
  });

  it("RATE_LIMITED with a cost: a limit refuses when it has fewer units left than the cost", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T10:00:00.000Z"), toFake: ["Date"] });
    const costly = appWith({ binding: "KEYGATE", cost: 5 });
    const { bindings, calls } = fake(
      verdict("RATE_LIMITED", {
        ratelimits: [
          { name: "soon", limit: 100, remaining: 50, reset_at: "2026-12-01T10:00:05.000Z" },
          { name: "later", limit: 10, remaining: 3, reset_at: "2026-12-01T10:00:30.000Z" },
        ],
      }),
    );
    const answer = await send(costly, key, bindings);
    expect(calls[0]?.options).toEqual({ cost: 5 });
    expect(answer.headers.get("retry-after")).toBe("30");
    expect(answer.headers.get("ratelimit")).toBe('"later";r=3;t=30');
  });

  it("USAGE_EXCEEDED → 429 with Retry-After until the next refill", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T23:59:00.000Z"), toFake: ["Date"] });
    const { bindings } = fake(
      verdict("USAGE_EXCEEDED", {
        credits: { remaining: 0, refill_at: "2026-12-02T00:00:00.000Z" },
      }),
    );
    const answer = await send(app, key, bindings);
    expectProblem(answer, 429, "USAGE_EXCEEDED");
    expect(answer.body.type).toBe("https://keygate.dev/problems/usage-exceeded");
    expect(answer.headers.get("retry-after")).toBe("60");
    expect(answer.headers.get("ratelimit")).toBeNull();
  });

  it("RATE_LIMITED by the identity's limit → Retry-After to the identity window's reset", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T10:00:00.000Z"), toFake: ["Date"] });
    const { bindings } = fake(
      verdict("RATE_LIMITED", {
        ratelimits: [
          { name: "burst", limit: 10, remaining: 9, reset_at: "2026-12-01T10:00:05.000Z" },
        ],
        identity: {
          id: "identity_1",
          external_id: "cust_42",
          meta: null,
          credits: null,
          ratelimits: [
            { name: "burst", limit: 100, remaining: 0, reset_at: "2026-12-01T10:00:20.000Z" },
          ],
        },
      }),
    );
    const answer = await send(app, key, bindings);
    expectProblem(answer, 429, "RATE_LIMITED");
    expect(answer.headers.get("retry-after")).toBe("20");
    expect(answer.headers.get("ratelimit-policy")).toBe('"burst";q=100');
  });

  it("USAGE_EXCEEDED by the identity's credits → Retry-After until the identity's refill", async () => {
    vi.useFakeTimers({ now: Date.parse("2026-12-01T23:58:00.000Z"), toFake: ["Date"] });
    const { bindings } = fake(
      verdict("USAGE_EXCEEDED", {
        credits: { remaining: 5, refill_at: null },
        identity: {
          id: "identity_1",
          external_id: "cust_42",
          meta: null,
          credits: { remaining: 0, refill_at: "2026-12-02T00:00:00.000Z" },
          ratelimits: null,
        },
      }),
    );
    const answer = await send(app, key, bindings);
    expectProblem(answer, 429, "USAGE_EXCEEDED");
    expect(answer.headers.get("retry-after")).toBe("120");
  });

  it("USAGE_EXCEEDED without a refill → 429 without Retry-After", async () => {
    const { bindings } = fake(
      verdict("USAGE_EXCEEDED", { credits: { remaining: 0, refill_at: null } }),
    );
    const answer = await send(app, key, bindings);
    expectProblem(answer, 429, "USAGE_EXCEEDED");
    expect(answer.headers.get("retry-after")).toBeNull();
  });

  it("a thrown verification → 503 with Retry-After: 1", async () => {
    const { bindings } = fake(new Error("Key storage is unavailable"));
    const answer = await send(app, key, bindings);
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBe("1");
    expect(answer.body).toMatchObject({
      type: "https://keygate.dev/problems/unavailable",
      status: 503,
    });
  });

  it("VALID puts the whole result on c.var.apiKey", async () => {
    const result = verdict("VALID", {
      credits: { remaining: 9, refill_at: null },
      ratelimits: [{ name: "burst", limit: 10, remaining: 9, reset_at: "2026-12-01T10:00:10Z" }],
    });
    const answer = await send(app, key, fake(result).bindings);
    expect(answer.status).toBe(200);
    expect(answer.body.apiKey).toEqual(result);
  });

  it("passes the route's options and the client address to verify", async () => {
    const configured = appWith({
      binding: "KEYGATE",
      requiredScopes: ["read"],
      projectId: "project_1",
      organizationId: PINNED_ORG,
      cost: 0,
      ratelimits: async () => [{ name: "burst" }],
    });
    const { bindings, calls } = fake(verdict("VALID"));
    await send(configured, { ...key, "cf-connecting-ip": "2001:db8::1" }, bindings);
    expect(calls).toEqual([
      {
        key: "capy_live_whatever",
        options: {
          requiredScopes: ["read"],
          projectId: "project_1",
          organizationId: PINNED_ORG,
          ip: "2001:db8::1",
          cost: 0,
          ratelimits: [{ name: "burst" }],
        },
      },
    ]);
    const noIp = appWith({ binding: "KEYGATE", ip: false });
    const second = fake(verdict("VALID"));
    await send(noIp, { ...key, "cf-connecting-ip": "2001:db8::1" }, second.bindings);
    expect(second.calls[0]?.options).toEqual({});
  });

  it("refuses to be built with neither or both of binding and url", () => {
    expect(() => keygate({})).toThrow(TypeError);
    expect(() => keygate({ binding: "KEYGATE", url: BASE })).toThrow(TypeError);
  });
});
