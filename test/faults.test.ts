// Fault injection: D1 and KV failing or slow on every path. The Worker runs in this isolate
// and `env` here is the object it sees, so a spy on a binding is a fault in production's
// shape. Verification fails closed (a 503 problem, never `valid: true`); management answers
// a 503 problem with Retry-After and leaves no partial write.
import { env } from "cloudflare:workers";
import { inspect } from "node:util";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateKey, hashKey } from "../src/core/key-material";
import { memoryCache } from "../src/core/verify";
import { kvKey } from "../src/core/verify/cache";
import { d1Snapshot, expectProblem, type Json, send } from "./hardening";
import { call, newKey, newOrg, runCron, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

afterEach(() => {
  vi.restoreAllMocks();
});

// Faults carry messages no pattern would recognise: a fault is known by its origin.
const fault = () => new Error("injected fault");
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

interface D1Call {
  kind: "prepare" | "batch";
  n: number;
  sql?: string;
}

/** D1 calls (prepare and batch, in order) go through `behave`: it may throw or delay. */
function instrumentD1(behave: (call: D1Call) => void | Promise<void>): D1Call[] {
  const prepare = env.DB.prepare;
  const batch = env.DB.batch;
  const calls: D1Call[] = [];
  vi.spyOn(env.DB, "prepare").mockImplementation((sql: string) => {
    const call: D1Call = { kind: "prepare", n: calls.length + 1, sql };
    calls.push(call);
    const outcome = behave(call);
    if (outcome instanceof Promise) {
      // A slow prepare: hand back the statement, delay its execution instead.
      return slowStatement(prepare.call(env.DB, sql), outcome);
    }
    return prepare.call(env.DB, sql);
  });
  vi.spyOn(env.DB, "batch").mockImplementation(async (statements) => {
    const call: D1Call = { kind: "batch", n: calls.length + 1 };
    calls.push(call);
    await behave(call);
    return batch.call(env.DB, statements.map(realStatement)) as Json;
  });
  return calls;
}

const slowStatements = new WeakMap<object, D1PreparedStatement>();
const realStatement = (s: D1PreparedStatement) => slowStatements.get(s) ?? s;

function slowStatement(statement: D1PreparedStatement, delay: Promise<void>): D1PreparedStatement {
  const proxy = new Proxy(statement, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property === "bind") {
        return (...args: unknown[]) => slowStatement(value.apply(target, args), delay);
      }
      return async (...args: unknown[]) => {
        await delay;
        return value.apply(target, args);
      };
    },
  });
  slowStatements.set(proxy, statement);
  return proxy;
}

/** KV operations go through `behave` too. */
function instrumentKv(
  behave: (op: "get" | "put" | "delete" | "list") => void | Promise<void>,
): string[] {
  const ops: string[] = [];
  for (const op of ["get", "put", "delete", "list"] as const) {
    const original = env.KEY_CACHE[op] as (...args: unknown[]) => Promise<unknown>;
    vi.spyOn(env.KEY_CACHE, op).mockImplementation((async (...args: unknown[]) => {
      ops.push(op);
      await behave(op);
      return original.apply(env.KEY_CACHE, args);
    }) as Json);
  }
  return ops;
}

async function kvSnapshot(): Promise<Record<string, string | null>> {
  const values: Record<string, string | null> = {};
  let cursor: string | undefined;
  do {
    const page = await env.KEY_CACHE.list(cursor ? { cursor } : {});
    for (const { name } of page.keys) values[name] = await env.KEY_CACHE.get(name);
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  return values;
}

const storage = async () => ({ d1: await d1Snapshot(), kv: await kvSnapshot() });

/** Forget every cached verification: the next one reads storage, as in a fresh isolate. */
async function coldCaches() {
  memoryCache.clear();
  for (const name of Object.keys(await kvSnapshot())) await env.KEY_CACHE.delete(name);
}

function expectUnavailable(response: Awaited<ReturnType<typeof send>>) {
  const body = expectProblem(response, 503);
  expect(response.headers.get("retry-after")).toBe("1");
  expect(body.valid).toBeUndefined();
  return body;
}

const issueKey = (org: Org, fields: Record<string, unknown> = {}) =>
  newKey(org.admin, org.project.id, { name: "fault key", scopes: ["*"], ...fields }) as Promise<{
    id: string;
    key: string;
  }>;

let org: Org;
beforeAll(async () => {
  org = await newOrg("faults");
});

describe("verification fails closed", () => {
  it("answers 503 when D1 is down and nothing is cached — for live, revoked and unknown keys", async () => {
    const live = await issueKey(org);
    const revoked = await issueKey(org);
    expect((await send("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin })).status).toBe(
      204,
    );
    const unknown = (await generateKey("capy", "live")).plaintext;
    await coldCaches();
    instrumentD1(() => {
      throw fault();
    });
    for (const key of [live.key, revoked.key, unknown]) {
      expectUnavailable(await verify(key));
      expectUnavailable(await verify(key, { required_scopes: ["*"] }));
    }
  });

  it("answers 503 when D1 and KV are both down", async () => {
    const live = await issueKey(org);
    await coldCaches();
    instrumentD1(() => {
      throw fault();
    });
    instrumentKv(() => {
      throw fault();
    });
    expectUnavailable(await verify(live.key));
  });

  it("answers 503 when D1 fails mid-lookup (the read rejects, not the prepare)", async () => {
    const live = await issueKey(org);
    await coldCaches();
    vi.spyOn(env.DB, "prepare").mockImplementation(
      () =>
        ({
          bind() {
            return this;
          },
          all: () => Promise.reject(fault()),
          raw: () => Promise.reject(fault()),
          first: () => Promise.reject(fault()),
          run: () => Promise.reject(fault()),
        }) as unknown as D1PreparedStatement,
    );
    expectUnavailable(await verify(live.key));
  });

  it("falls back to D1 when KV fails, with the right verdict", async () => {
    const live = await issueKey(org);
    const revoked = await issueKey(org);
    await send("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    await coldCaches();
    instrumentKv(() => {
      throw fault();
    });
    expect((await verify(live.key)).body).toMatchObject({ valid: true, key_id: live.id });
    memoryCache.clear();
    expect((await verify(revoked.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("treats an unreadable KV value as a miss and asks D1", async () => {
    const revoked = await issueKey(org);
    await send("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    await coldCaches();
    vi.spyOn(env.KEY_CACHE, "get").mockImplementation((async () => {
      throw new SyntaxError("Unexpected token < in JSON");
    }) as Json);
    expect((await verify(revoked.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("treats a KV record it does not understand as a miss and asks D1", async () => {
    const revoked = await issueKey(org);
    await send("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    await coldCaches();
    // A record of another shape: an older or newer deployment's, or a damaged one.
    const renamed = {
      id: revoked.id,
      organizationId: org.org,
      projectId: org.project.id,
      environmentId: null,
      scopes: ["*"],
      expiresAt: null,
      revoked_at: Date.now(), // another deployment's spelling
      graceExpiresAt: null,
    };
    const records = [renamed, {}, { id: revoked.id }, { revokedAt: "yes" }, "revoked", [], 42];
    for (const value of records) {
      memoryCache.clear();
      vi.spyOn(env.KEY_CACHE, "get").mockImplementation((async () => value) as Json);
      const response = await verify(revoked.key);
      vi.restoreAllMocks();
      const label = `${JSON.stringify(value)}: ${response.text}`;
      expect(response.body?.valid, label).not.toBe(true);
      expect(response.status, label).toBe(200);
      expect(response.body, label).toMatchObject({ valid: false, code: "REVOKED" });
    }
  });

  it("keeps answering from a cached record while storage is down (revoked stays revoked)", async () => {
    const live = await issueKey(org);
    const revoked = await issueKey(org);
    await send("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    expect((await verify(live.key)).body.valid).toBe(true);
    expect((await verify(revoked.key)).body.code).toBe("REVOKED");
    instrumentD1(() => {
      throw fault();
    });
    instrumentKv(() => {
      throw fault();
    });
    expect((await verify(live.key)).body.valid).toBe(true);
    expect((await verify(revoked.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("answers 503 when an org-scoped key is checked against a project and D1 is down", async () => {
    const created = await send("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org-wide", scopes: ["*"] },
    });
    const key = created.body.plaintext_api_key as string;
    expect((await verify(key)).body.valid).toBe(true); // cached now
    instrumentD1(() => {
      throw fault();
    });
    expectUnavailable(await verify(key, { project_id: crypto.randomUUID() }));
  });

  it("rejects malformed keys without touching storage, even when it is down", async () => {
    const d1 = instrumentD1(() => {
      throw fault();
    });
    const kv = instrumentKv(() => {
      throw fault();
    });
    for (const key of ["", "capy_live_nope", `capy_live_${"A".repeat(49)}`]) {
      expect((await verify(key)).body).toMatchObject({ valid: false, code: "MALFORMED" });
    }
    expect(d1).toEqual([]);
    expect(kv).toEqual([]);
  });

  it("gives the same verdicts when D1 and KV are slow", async () => {
    const live = await issueKey(org);
    const revoked = await issueKey(org);
    await send("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    await coldCaches();
    instrumentD1(() => sleep(40));
    instrumentKv(() => sleep(40));
    const [a, b] = await Promise.all([verify(live.key), verify(revoked.key)]);
    expect(a.body).toMatchObject({ valid: true, key_id: live.id });
    expect(b.body).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("answers an API-key-authenticated management call with 503, not 401, when D1 is down", async () => {
    const key = await issueKey(org);
    await coldCaches();
    instrumentD1(() => {
      throw fault();
    });
    const response = await send("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: key.key,
    });
    expectUnavailable(response);
    expect(response.headers.get("www-authenticate")).toBeNull();
  });
});

// ---------- management ----------

interface Op {
  name: string;
  success: number;
  /** Fresh state for one attempt; returns the request to make. */
  setup(): Promise<{ method: string; path: string; body?: unknown }>;
}

async function rotatedDelivery(): Promise<string> {
  const key = await issueKey(org, { rotation_webhook_url: "https://example.com/hooks/faults" });
  const rotated = await send("POST", `/v1/api-keys/${key.id}/rotate`, {
    token: org.admin,
    body: { grace_period_seconds: 60 },
  });
  expect(rotated.status).toBe(201);
  const list = await send("GET", `/v1/projects/${org.project.id}/webhook-deliveries?limit=1`, {
    token: org.admin,
  });
  return list.body.webhook_deliveries[0].id;
}

const unique = () => `e${crypto.randomUUID().replaceAll("-", "").slice(0, 12)}`;

const OPS: Op[] = [
  {
    name: "create a project",
    success: 201,
    setup: async () => ({ method: "POST", path: "/v1/projects", body: { name: "p" } }),
  },
  {
    name: "update a project",
    success: 200,
    setup: async () => ({
      method: "PATCH",
      path: `/v1/projects/${org.project.id}`,
      body: { name: unique() },
    }),
  },
  {
    name: "create an environment",
    success: 201,
    setup: async () => ({
      method: "POST",
      path: `/v1/projects/${org.project.id}/environments`,
      body: { name: unique() },
    }),
  },
  {
    name: "rotate the webhook signing secret",
    success: 200,
    // A fresh project each time: a second rotation within 24 h of the first is a 409.
    setup: async () => {
      const fresh = await call("POST", "/v1/projects", { token: org.admin, body: { name: "p" } });
      return { method: "POST", path: `/v1/projects/${fresh.body.id}/webhook-secret` };
    },
  },
  {
    name: "create a key (seed 001)",
    success: 201,
    setup: async () => ({
      method: "POST",
      path: "/v1/api-keys",
      body: { project_id: org.project.id, name: "k", rotation_interval_days: 30 },
    }),
  },
  {
    name: "create a key (seed 000)",
    success: 201,
    setup: async () => ({
      method: "POST",
      path: `/v1/organizations/${org.org}/api-keys`,
      body: { name: "k", scopes: ["read"], project_id: org.project.id, environment: "test" },
    }),
  },
  {
    name: "create an org-scoped key (seed 000)",
    success: 201,
    setup: async () => ({
      method: "POST",
      path: `/v1/organizations/${org.org}/api-keys`,
      body: { name: "k", scopes: ["read"] },
    }),
  },
  {
    name: "create a key (seed 002)",
    success: 201,
    setup: async () => ({
      method: "POST",
      path: `/api/v1/projects/${org.project.id}/keys`,
      body: { is_admin_managed: true },
    }),
  },
  {
    name: "update a key",
    success: 200,
    setup: async () => ({
      method: "PATCH",
      path: `/v1/api-keys/${(await issueKey(org)).id}`,
      body: { name: "renamed", scopes: ["a"] },
    }),
  },
  {
    name: "revoke a key (seed 001)",
    success: 204,
    setup: async () => ({ method: "DELETE", path: `/v1/api-keys/${(await issueKey(org)).id}` }),
  },
  {
    name: "revoke a key (seed 000)",
    success: 200,
    setup: async () => ({
      method: "DELETE",
      path: `/v1/organizations/${org.org}/api-keys/${(await issueKey(org)).id}`,
    }),
  },
  {
    name: "revoke a key (seed 002)",
    success: 200,
    setup: async () => ({
      method: "DELETE",
      path: `/api/v1/projects/${org.project.id}/keys/${(await issueKey(org)).id}`,
    }),
  },
  {
    name: "rotate a key that has a webhook",
    success: 201,
    setup: async () => {
      const key = await issueKey(org, { rotation_webhook_url: "https://example.com/hooks/r" });
      return {
        method: "POST",
        path: `/v1/api-keys/${key.id}/rotate`,
        body: { grace_period_seconds: 0 },
      };
    },
  },
  {
    name: "retry a webhook delivery",
    success: 200,
    setup: async () => ({
      method: "POST",
      path: `/v1/projects/${org.project.id}/webhook-deliveries/${await rotatedDelivery()}/retry`,
    }),
  },
  {
    name: "list keys",
    success: 200,
    setup: async () => ({ method: "GET", path: `/v1/api-keys?project_id=${org.project.id}` }),
  },
  {
    name: "read the audit log",
    success: 200,
    setup: async () => ({ method: "GET", path: `/v1/organizations/${org.org}/audit-log` }),
  },
  {
    name: "read the webhook secret",
    success: 200,
    setup: async () => ({ method: "GET", path: `/v1/projects/${org.project.id}/webhook-secret` }),
  },
];

const run = (request: { method: string; path: string; body?: unknown }) =>
  send(request.method, request.path, { token: org.admin, body: request.body });

describe("management fails with 503 and writes nothing", () => {
  for (const op of OPS) {
    it(`${op.name}: D1 failing at each of its steps`, async () => {
      // A clean run counts the D1 steps (reads, statement builds, the batch).
      const first = await op.setup();
      const steps = instrumentD1(() => {});
      const clean = await run(first);
      vi.restoreAllMocks();
      expect(clean.status, clean.text).toBe(op.success);
      const count = steps.length;
      expect(count).toBeGreaterThan(0);

      for (let k = 1; k <= count; k++) {
        const request = await op.setup();
        const before = await storage();
        const calls = instrumentD1((call) => {
          if (call.n === k) throw fault();
        });
        const response = await run(request);
        vi.restoreAllMocks();
        expect(calls.length, `${op.name}: step ${k} was reached`).toBeGreaterThanOrEqual(k);
        expectUnavailable(response);
        expect(await storage(), `${op.name}: failure at step ${k} left a write`).toEqual(before);
      }
    });

    it(`${op.name}: succeeds, unchanged, when D1 and KV are slow`, async () => {
      const request = await op.setup();
      instrumentD1(() => sleep(25));
      instrumentKv(() => sleep(25));
      const response = await run(request);
      expect(response.status, response.text).toBe(op.success);
    });
  }
});

describe("a cache refresh that fails after the change is committed", () => {
  const kvDown = () =>
    instrumentKv((op) => {
      if (op === "put" || op === "delete") throw fault();
    });

  it("revoke: 204 — announced and committed, a KV record it could not replace is refused", async () => {
    const key = await issueKey(org);
    expect((await verify(key.key)).body.valid).toBe(true);
    kvDown();
    const response = await run({ method: "DELETE", path: `/v1/api-keys/${key.id}` });
    expect(response.status, response.text).toBe(204);
    vi.restoreAllMocks();
    // D1 has it (the truth), and this isolate already answers REVOKED.
    const row = await env.DB.prepare("select revoked_at from api_keys where id = ?")
      .bind(key.id)
      .first<{ revoked_at: number | null }>();
    expect(row?.revoked_at).not.toBeNull();
    expect((await verify(key.key)).body.code).toBe("REVOKED");
    // KV still holds the VALID record (its put failed): its version is older than the one the
    // feed announced, so an isolate with nothing in memory passes over it and asks D1.
    expect(
      (await env.KEY_CACHE.get<{ revokedAt: number | null }>(kvKey(await hashKey(key.key)), "json"))
        ?.revokedAt,
    ).toBeNull();
    memoryCache.clear();
    expect((await verify(key.key)).body.code).toBe("REVOKED");
    // A retry is idempotent and writes no second audit event.
    expect((await run({ method: "DELETE", path: `/v1/api-keys/${key.id}` })).status).toBe(204);
    const audit = await env.DB.prepare(
      "select count(*) as n from audit_events where action = 'api_key.revoked' and target_id = ?",
    )
      .bind(key.id)
      .first<{ n: number }>();
    expect(audit?.n).toBe(1);
  });

  it("rotate: still 201 with the new key — a committed rotation never loses its plaintext", async () => {
    const key = await issueKey(org);
    kvDown();
    const response = await run({
      method: "POST",
      path: `/v1/api-keys/${key.id}/rotate`,
      body: { grace_period_seconds: 0 },
    });
    vi.restoreAllMocks();
    expect(response.status, response.text).toBe(201);
    expect((await verify(response.body.key)).body).toMatchObject({
      valid: true,
      key_id: response.body.new_key_id,
    });
    // The old key is revoked where the rotation ran, at once.
    expect((await verify(key.key)).body.code).toBe("REVOKED");
  });
});

describe("logs under storage faults", () => {
  it("never logs a query's parameters (they can hold a key's ciphertext)", async () => {
    const org = await newOrg("quietlogs");
    const key = await newKey(org.admin, org.project.id, {
      rotation_webhook_url: "https://hooks.example/quiet",
    });
    expect(
      (await call("POST", `/v1/api-keys/${key.id}/rotate`, { token: org.admin, body: {} })).status,
    ).toBe(201);
    const sealed = (
      await env.DB.prepare(
        "select encrypted_key from webhook_deliveries where key_id = (select replaced_by_key_id from api_keys where id = ?)",
      )
        .bind(key.id)
        .first<{ encrypted_key: string }>()
    )?.encrypted_key as string;
    expect(sealed).toMatch(/^v1\./);

    vi.spyOn(globalThis, "fetch").mockResolvedValue(new Response(null, { status: 500 }));
    const prepare = env.DB.prepare.bind(env.DB);
    vi.spyOn(env.DB, "prepare").mockImplementation((sql: string) => {
      const statement = prepare(sql);
      // Recording the attempt's outcome fails when it runs: drizzle wraps that error with
      // the statement's SQL and parameters ("Failed query: … params: …").
      if (!/^update "webhook_deliveries" set "status"/.test(sql)) return statement;
      const failing = (target: D1PreparedStatement): D1PreparedStatement =>
        new Proxy(target, {
          get(inner, property) {
            if (property === "bind") {
              return (...values: unknown[]) => failing(inner.bind(...values));
            }
            if (["run", "all", "raw", "first"].includes(String(property))) {
              return async () => {
                throw new Error("D1_ERROR: overloaded");
              };
            }
            return Reflect.get(inner, property, inner);
          },
        });
      return failing(statement);
    });
    const logged: string[] = [];
    vi.spyOn(console, "error").mockImplementation((...args: unknown[]) => {
      // As a console prints them: errors with their messages, causes and properties.
      logged.push(
        args.map((a) => (typeof a === "string" ? a : inspect(a, { depth: 6 }))).join(" "),
      );
    });
    await runCron(Date.now()).catch(() => undefined);

    expect(logged.join("\n")).toContain("D1_ERROR: overloaded");
    for (const line of logged) {
      expect(line).not.toContain(sealed.slice(3, 30));
      expect(line).not.toMatch(/params:/);
    }
  });
});
