// Idempotent writes (SPEC Part 2): `Idempotency-Key` on every POST that creates or rotates.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { expectProblem, type Json } from "./hardening";
import { call, newKey, newOrg, sessionToken } from "./helpers";

const DAY = 24 * 60 * 60 * 1000;

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

type Org = Awaited<ReturnType<typeof newOrg>>;

interface Write {
  name: string;
  success: number;
  /** A fresh request (path and body) for this organization; `variant` changes the body. */
  request(org: Org, variant?: number): Promise<{ path: string; body?: unknown }>;
  /** How many of the things it makes exist (so a replay is seen to make none). */
  count(org: Org): Promise<number>;
}

const keysOf = async (org: Org) =>
  (
    await env.DB.prepare("select count(*) as n from api_keys where organization_id = ?")
      .bind(org.org)
      .first<{ n: number }>()
  )?.n ?? 0;

const WRITES: Write[] = [
  {
    name: "create a project",
    success: 201,
    request: async (_org, variant = 0) => ({ path: "/v1/projects", body: { name: `p${variant}` } }),
    count: async (org) =>
      (
        await env.DB.prepare("select count(*) as n from projects where organization_id = ?")
          .bind(org.org)
          .first<{ n: number }>()
      )?.n ?? 0,
  },
  {
    name: "create an environment",
    success: 201,
    request: async (org, variant = 0) => ({
      path: `/v1/projects/${org.project.id}/environments`,
      body: { name: `staging${variant}` },
    }),
    count: async (org) =>
      (
        await env.DB.prepare("select count(*) as n from environments where organization_id = ?")
          .bind(org.org)
          .first<{ n: number }>()
      )?.n ?? 0,
  },
  {
    name: "create a key (seed 001)",
    success: 201,
    request: async (org, variant = 0) => ({
      path: "/v1/api-keys",
      body: { project_id: org.project.id, name: `k${variant}` },
    }),
    count: keysOf,
  },
  {
    name: "create a key (seed 000)",
    success: 201,
    request: async (org, variant = 0) => ({
      path: `/v1/organizations/${org.org}/api-keys`,
      body: { name: `k${variant}`, scopes: [], project_id: org.project.id },
    }),
    count: keysOf,
  },
  {
    name: "create a key (seed 002)",
    success: 201,
    request: async (org, variant = 0) => ({
      path: `/api/v1/projects/${org.project.id}/keys`,
      body: { name: `k${variant}` },
    }),
    count: keysOf,
  },
  {
    name: "rotate a key",
    success: 201,
    request: async (org, variant = 0) => ({
      path: `/v1/api-keys/${(await newKey(org.admin, org.project.id)).id}/rotate`,
      body: { grace_period_seconds: variant },
    }),
    count: keysOf,
  },
  {
    name: "rotate the webhook signing secret",
    success: 200,
    request: async (org) => ({ path: `/v1/projects/${org.project.id}/webhook-secret` }),
    count: async (org) =>
      (
        await env.DB.prepare(
          "select count(*) as n from audit_events where organization_id = ? and action = 'project.webhook_secret_rotated'",
        )
          .bind(org.org)
          .first<{ n: number }>()
      )?.n ?? 0,
  },
];

const post = (token: string, path: string, body: unknown, key?: string) =>
  call("POST", path, {
    token,
    ...(body === undefined ? {} : { body }),
    headers: key === undefined ? {} : { "idempotency-key": key },
  });

describe("a retry with the same Idempotency-Key and body", () => {
  for (const write of WRITES) {
    it(`${write.name}: answers the first response again, and does it once`, async () => {
      const org = await newOrg("idem");
      const { path, body } = await write.request(org);
      const key = crypto.randomUUID();

      const first = await post(org.admin, path, body, key);
      expect(first.status, first.text).toBe(write.success);
      expect(first.headers.get("idempotency-key")).toBe(key);
      expect(first.headers.get("idempotent-replayed")).toBeNull();
      const made = await write.count(org);

      const again = await post(org.admin, path, body, key);
      expect(again.status).toBe(write.success);
      expect(again.text).toBe(first.text);
      expect(again.headers.get("content-type")).toBe(first.headers.get("content-type"));
      expect(again.headers.get("idempotent-replayed")).toBe("true");
      expect(again.headers.get("idempotency-key")).toBe(key);
      expect(await write.count(org)).toBe(made);

      // Without the header, the same request runs again as ever.
      if (write.name !== "rotate the webhook signing secret" && write.name !== "rotate a key") {
        expect((await post(org.admin, path, body)).status).not.toBe(500);
      }
    });
  }

  it("gives a retried rotation the same new key, where a plain retry is a 409", async () => {
    const org = await newOrg("idem-rotate");
    const old = await newKey(org.admin, org.project.id);
    const path = `/v1/api-keys/${old.id}/rotate`;
    const first = await post(org.admin, path, {}, "rotate-1");
    const retried = await post(org.admin, path, {}, "rotate-1");
    expect(retried.status).toBe(201);
    expect(retried.body.key).toBe(first.body.key);
    expect(retried.body.new_key_id).toBe(first.body.new_key_id);
    expect((await post(org.admin, path, {})).status).toBe(409);
  });
});

describe("a replay is authorized again", () => {
  it("refuses a caller demoted since the first request: a member gets no org key's plaintext", async () => {
    const org = await newOrg("idem-demoted");
    const user = `user_demoted_${crypto.randomUUID().slice(0, 8)}`;
    const asAdmin = await sessionToken({ org: org.org, user, role: "admin" });
    const asMember = await sessionToken({ org: org.org, user, role: "member" });
    const path = `/v1/organizations/${org.org}/api-keys`;
    const body = { name: "root", scopes: ["*"] };
    const first = await post(asAdmin, path, body, "demoted-1");
    expect(first.status).toBe(201);
    const replay = await post(asMember, path, body, "demoted-1");
    expectProblem(replay, 403);
    expect(replay.text).not.toContain(first.body.plaintext_api_key);
    // Still an admin: the replay is answered.
    expect((await post(asAdmin, path, body, "demoted-1")).body.plaintext_api_key).toBe(
      first.body.plaintext_api_key,
    );
  });

  it("refuses an API key whose scopes were narrowed since the first request", async () => {
    const org = await newOrg("idem-narrowed");
    const caller = await newKey(org.admin, org.project.id, { scopes: ["keys:read", "keys:write"] });
    const body = { project_id: org.project.id, name: "made by a key" };
    const first = await post(caller.key, "/v1/api-keys", body, "narrowed-1");
    expect(first.status).toBe(201);
    const narrowed = await call("PATCH", `/v1/api-keys/${caller.id}`, {
      token: org.admin,
      body: { scopes: ["keys:read"] },
    });
    expect(narrowed.status).toBe(200);
    const replay = await post(caller.key, "/v1/api-keys", body, "narrowed-1");
    expectProblem(replay, 403);
    expect(replay.text).not.toContain(first.body.key);
  });

  it("never sends a key's plaintext again once that key is revoked or replaced", async () => {
    const org = await newOrg("idem-revoked");
    const body = { project_id: org.project.id, name: "soon revoked" };
    const created = await post(org.admin, "/v1/api-keys", body, "revoked-1");
    expect(created.status).toBe(201);
    expect(
      (await call("DELETE", `/v1/api-keys/${created.body.id}`, { token: org.admin })).status,
    ).toBe(204);
    const replay = await post(org.admin, "/v1/api-keys", body, "revoked-1");
    expectProblem(replay, 409);
    expect(replay.text).not.toContain(created.body.key);
    expect(replay.text).not.toContain('"is_active":true');

    const old = await newKey(org.admin, org.project.id);
    const rotated = await post(org.admin, `/v1/api-keys/${old.id}/rotate`, {}, "rotated-1");
    expect(rotated.status).toBe(201);
    const again = await post(org.admin, `/v1/api-keys/${rotated.body.new_key_id}/rotate`, {});
    expect(again.status).toBe(201);
    const stale = await post(org.admin, `/v1/api-keys/${old.id}/rotate`, {}, "rotated-1");
    expectProblem(stale, 409);
    expect(stale.text).not.toContain(rotated.body.key);
  });
});

describe("the same Idempotency-Key for another request", () => {
  it("is a 422 problem for another body, and changes nothing", async () => {
    const org = await newOrg("idem-422");
    const first = await post(org.admin, "/v1/projects", { name: "one" }, "k-422");
    expect(first.status).toBe(201);
    const other = await post(org.admin, "/v1/projects", { name: "two" }, "k-422");
    const problem = expectProblem(other, 422);
    expect(problem.errors).toEqual([
      { location: "header.idempotency-key", message: expect.any(String), value: "k-422" },
    ]);
    const names = await call("GET", "/v1/projects", { token: org.admin });
    expect(names.body.projects.map((p: Json) => p.name).sort()).toEqual(["Main", "one"]);
  });

  it("is a 422 problem on another route", async () => {
    const org = await newOrg("idem-route");
    expect((await post(org.admin, "/v1/projects", { name: "x" }, "k-route")).status).toBe(201);
    const elsewhere = await post(
      org.admin,
      "/v1/api-keys",
      { project_id: org.project.id, name: "x" },
      "k-route",
    );
    expectProblem(elsewhere, 422);
  });

  it("belongs to its caller and organization: another user or org runs its own request", async () => {
    const org = await newOrg("idem-caller");
    const colleague = await sessionToken({ org: org.org, user: "user_colleague", role: "admin" });
    const stranger = await newOrg("idem-stranger");
    const mine = await post(org.admin, "/v1/projects", { name: "x" }, "shared-key");
    const theirs = await post(colleague, "/v1/projects", { name: "x" }, "shared-key");
    const strangers = await post(stranger.admin, "/v1/projects", { name: "x" }, "shared-key");
    for (const answer of [mine, theirs, strangers]) expect(answer.status).toBe(201);
    expect(new Set([mine.body.id, theirs.body.id, strangers.body.id]).size).toBe(3);
    // An API key is a caller of its own.
    const apiKey = await newKey(org.admin, org.project.id, { scopes: ["keys:write"] });
    const byKey = await post(
      apiKey.key,
      "/v1/api-keys",
      { project_id: org.project.id, name: "x" },
      "shared-key",
    );
    expect(byKey.status).toBe(201);
  });
});

describe("while the first request is still running", () => {
  it("answers a retry with a 409 problem, then the first response once it is done", async () => {
    const org = await newOrg("idem-409");
    let release: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    let entered: () => void = () => {};
    const inside = new Promise<void>((resolve) => {
      entered = resolve;
    });
    const batch = env.DB.batch.bind(env.DB);
    const spy = vi.spyOn(env.DB, "batch").mockImplementation(async (statements) => {
      entered();
      await held;
      return batch(statements);
    });

    const first = post(org.admin, "/v1/projects", { name: "slow" }, "k-409");
    await inside;
    const during = await post(org.admin, "/v1/projects", { name: "slow" }, "k-409");
    expectProblem(during, 409);
    expect(during.body.detail).toMatch(/still running/);
    release();
    const done = await first;
    expect(done.status).toBe(201);
    spy.mockRestore();

    const after = await post(org.admin, "/v1/projects", { name: "slow" }, "k-409");
    expect(after.status).toBe(201);
    expect(after.body.id).toBe(done.body.id);
  });
});

describe("what is kept", () => {
  it("keeps the first response 24 h, sealed: no plaintext key in D1", async () => {
    const org = await newOrg("idem-sealed");
    const created = await post(
      org.admin,
      "/v1/api-keys",
      { project_id: org.project.id, name: "sealed" },
      "k-sealed",
    );
    expect(created.status).toBe(201);
    const { results } = await env.DB.prepare(
      "select * from idempotency_keys where organization_id = ?",
    )
      .bind(org.org)
      .all<Record<string, unknown>>();
    expect(results).toHaveLength(1);
    const row = JSON.stringify(results);
    expect(row).not.toContain(created.body.key);
    expect(row).not.toContain(created.body.key.slice(10, 40));
    expect(row).not.toContain("k-sealed");
    expect(results[0]?.status).toBe(201);

    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.now() + DAY + 1000);
    const token = await sessionToken({ org: org.org, user: "user_admin_x", role: "admin" });
    // A day on, the key is free: another request under it runs.
    const later = await post(
      token,
      "/v1/api-keys",
      { project_id: org.project.id, name: "later" },
      "k-sealed",
    );
    expect(later.status).toBe(201);
  });

  it("keeps no error: a refused first request can be retried under the same key", async () => {
    const org = await newOrg("idem-error");
    const refused = await post(org.admin, "/v1/api-keys", { project_id: "nope", name: "x" }, "k-e");
    expect(refused.status).toBe(404);
    const fixed = await post(
      org.admin,
      "/v1/api-keys",
      { project_id: org.project.id, name: "x" },
      "k-e",
    );
    expect(fixed.status).toBe(201);
  });

  it("keeps nothing of a request that failed on storage (503): the retry runs", async () => {
    const org = await newOrg("idem-503");
    const batch = env.DB.batch.bind(env.DB);
    const spy = vi.spyOn(env.DB, "batch").mockImplementationOnce(async () => {
      throw new Error("D1_ERROR: overloaded");
    });
    const failed = await post(org.admin, "/v1/projects", { name: "x" }, "k-503");
    expect(failed.status).toBe(503);
    spy.mockImplementation(batch);
    const retried = await post(org.admin, "/v1/projects", { name: "x" }, "k-503");
    expect(retried.status).toBe(201);
    expect(retried.headers.get("idempotent-replayed")).toBeNull();
  });
});

describe("the Idempotency-Key header", () => {
  const bad = ["", "x".repeat(256), "tab\there", "café"];
  for (const value of bad) {
    it(`refuses ${JSON.stringify(value.length > 20 ? `${value.slice(0, 5)}…(${value.length})` : value)} with a 400 naming the header`, async () => {
      const org = await newOrg("idem-400");
      const answered = await post(org.admin, "/v1/projects", { name: "x" }, value);
      const problem = expectProblem(answered, 400);
      expect(problem.errors.map((e: Json) => e.location)).toEqual(["header.idempotency-key"]);
      const projects = await call("GET", "/v1/projects", { token: org.admin });
      expect(projects.body.projects).toHaveLength(1);
    });
  }

  it("takes 255 printable ASCII characters", async () => {
    const org = await newOrg("idem-255");
    const key = `${" !~"}${"a".repeat(252)}`;
    expect((await post(org.admin, "/v1/projects", { name: "x" }, key)).status).toBe(201);
  });

  it("is in the OpenAPI document on every create and rotate, with its 409 and 422", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const operations: [string, string][] = [
      ["/v1/projects", "post"],
      ["/v1/projects/{id}/environments", "post"],
      ["/v1/projects/{id}/webhook-secret", "post"],
      ["/v1/api-keys", "post"],
      ["/v1/api-keys/{keyID}/rotate", "post"],
      ["/v1/organizations/{orgID}/api-keys", "post"],
      ["/api/v1/projects/{projectId}/keys", "post"],
      ["/v1/identities", "post"],
      ["/v1/identities/{identityID}/credits", "post"],
    ];
    for (const [path, method] of operations) {
      const operation = doc.paths[path][method];
      const header = operation.parameters.find((p: Json) => p.in === "header");
      expect(header.name.toLowerCase(), path).toBe("idempotency-key");
      expect(header.required ?? false).toBe(false);
      expect(header.schema).toMatchObject({ type: "string", pattern: expect.any(String) });
      expect(operation.responses, path).toHaveProperty("409");
      expect(operation.responses, path).toHaveProperty("422");
      const success = Object.entries(operation.responses).find(([s]) => s.startsWith("2"));
      expect((success as Json)[1].headers, path).toHaveProperty("Idempotency-Key");
    }
  });
});
