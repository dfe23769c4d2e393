// Identities (SPEC Part 3 "Identities: one owner, many keys"), part 1: the resource, its
// credits in a usage object of its own, and the verifications of its keys.
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { d1Snapshot, expectProblem } from "./hardening";
import { call, newKey, newOrg, nextLink, orgKey, RFC3339_UTC, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

const create = (token: string, body: unknown, headers?: Record<string, string>) =>
  call("POST", "/v1/identities", { token, body, ...(headers ? { headers } : {}) });

async function newIdentity(org: Org, body: Record<string, unknown> = {}) {
  const created = await create(org.admin, { external_id: `user_${crypto.randomUUID()}`, ...body });
  if (created.status !== 201) throw new Error(`identity create failed: ${created.text}`);
  return created.body;
}

const auditActions = async (org: Org) => {
  const log = await call("GET", `/v1/organizations/${org.org}/audit-log`, { token: org.admin });
  return log.body.audit_events
    .filter((e: { target_type: string }) => e.target_type === "identity")
    .map((e: { action: string; metadata: unknown }) => [e.action, e.metadata]);
};

describe("identities: the resource", () => {
  it("is created, read, listed, changed and deleted, each change in the audit log", async () => {
    const org = await newOrg("identity-crud");
    const created = await create(org.admin, {
      external_id: "user_1234",
      meta: { plan: "pro" },
      ratelimits: [{ name: "api", limit: 100, duration_ms: 60_000 }],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000 } },
    });
    expect(created.status, created.text).toBe(201);
    const identity = created.body;
    expect(identity).toEqual({
      id: expect.any(String),
      organization_id: org.org,
      external_id: "user_1234",
      meta: { plan: "pro" },
      ratelimits: [{ name: "api", limit: 100, duration_ms: 60_000 }],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000, day: 1 } },
      created_at: expect.stringMatching(RFC3339_UTC),
      updated_at: expect.stringMatching(RFC3339_UTC),
    });
    const path = `/v1/identities/${identity.id}`;
    expect((await call("GET", path, { token: org.admin })).body).toEqual(identity);

    const listed = await call("GET", "/v1/identities", { token: org.member });
    expect(listed.body).toEqual({ identities: [identity] });

    const patched = await call("PATCH", path, {
      token: org.admin,
      body: { external_id: "user_5678", meta: null, ratelimits: [], credits: null },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toMatchObject({
      id: identity.id,
      external_id: "user_5678",
      meta: null,
      ratelimits: null,
      credits: null,
    });
    const deleted = await call("DELETE", path, { token: org.admin });
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe("");
    expectProblem(await call("GET", path, { token: org.admin }), 404);
    expectProblem(await call("DELETE", path, { token: org.admin }), 404);

    expect(await auditActions(org)).toEqual([
      ["identity.deleted", { external_id: "user_5678" }],
      [
        "identity.updated",
        { external_id: "user_5678", meta: null, ratelimits: null, credits: null },
      ],
      [
        "identity.created",
        {
          external_id: "user_1234",
          meta: "changed",
          ratelimits: [{ name: "api", limit: 100, duration_ms: 60_000 }],
          credits: { remaining: 500, refill: { interval: "monthly", amount: 1000, day: 1 } },
        },
      ],
    ]);
  });

  it("takes the key's field rules: 400 naming each bad field, nothing written", async () => {
    const org = await newOrg("identity-400");
    const existing = await newIdentity(org);
    const before = await d1Snapshot();
    const deep = { a: { b: { c: { d: { e: { f: 1 } } } } } };
    for (const [body, fields] of [
      [{}, ["body.external_id"]],
      [{ external_id: "has space" }, ["body.external_id"]],
      [{ external_id: "x".repeat(256) }, ["body.external_id"]],
      [{ external_id: "ok", meta: deep }, ["body.meta"]],
      [{ external_id: "ok", meta: { pad: "x".repeat(4100) } }, ["body.meta"]],
      [{ external_id: "ok", meta: [1] }, ["body.meta"]],
      [
        {
          external_id: "ok",
          ratelimits: [
            { name: "a", limit: 1, duration_ms: 1000 },
            { name: "a", limit: 2, duration_ms: 1000 },
          ],
        },
        ["body.ratelimits.1.name"],
      ],
      [
        { external_id: "ok", ratelimits: [{ name: "a", limit: 0, duration_ms: 999 }] },
        ["body.ratelimits.0.limit", "body.ratelimits.0.duration_ms"],
      ],
      [
        {
          external_id: "ok",
          credits: { remaining: 1, refill: { interval: "daily", amount: 5, day: 3 } },
        },
        ["body.credits.refill.day"],
      ],
      [{ external_id: "ok", credits: { remaining: -1 } }, ["body.credits.remaining"]],
      [{ external_id: "ok", enabled: false }, ["body.enabled"]],
    ] as const) {
      const body2 = expectProblem(await create(org.admin, body), 400);
      expect(
        body2.errors.map((e: { location: string }) => e.location),
        JSON.stringify(body),
      ).toEqual(fields);
    }
    const path = `/v1/identities/${existing.id}`;
    for (const [body, field] of [
      [{ external_id: null }, "body.external_id"],
      [{ credits: { remaining: 1e13 } }, "body.credits.remaining"],
      [{ scopes: [] }, "body.scopes"],
    ] as const) {
      const problem = expectProblem(await call("PATCH", path, { token: org.admin, body }), 400);
      expect(problem.errors.map((e: { location: string }) => e.location)).toEqual([field]);
    }
    const credits = `${path}/credits`;
    for (const [body, field] of [
      [{ operation: "multiply", value: 1 }, "body.operation"],
      [{ operation: "set", value: -1 }, "body.value"],
      [{ operation: "set", value: 1.5 }, "body.value"],
    ] as const) {
      const problem = expectProblem(await call("POST", credits, { token: org.admin, body }), 400);
      expect(problem.errors.map((e: { location: string }) => e.location)).toEqual([field]);
    }
    expect(await d1Snapshot()).toEqual(before);
  });

  it("an external_id names one identity per organization: 409 on create and rename", async () => {
    const org = await newOrg("identity-409");
    const first = await newIdentity(org, { external_id: "acme" });
    const second = await newIdentity(org, { external_id: "globex" });
    const before = await d1Snapshot();
    const again = expectProblem(await create(org.admin, { external_id: "acme" }), 409);
    expect(again.detail).toContain('"acme"');
    const rename = await call("PATCH", `/v1/identities/${second.id}`, {
      token: org.admin,
      body: { external_id: "acme", meta: { a: 1 } },
    });
    expectProblem(rename, 409);
    expect(await d1Snapshot()).toEqual(before);
    // Renaming onto its own name is no conflict; another organization may use the name.
    const same = await call("PATCH", `/v1/identities/${first.id}`, {
      token: org.admin,
      body: { external_id: "acme" },
    });
    expect(same.status).toBe(200);
    const other = await newOrg("identity-409-other");
    expect((await create(other.admin, { external_id: "acme" })).status).toBe(201);
    // Two concurrent creates of one owner: exactly one wins.
    const racing = await Promise.all(
      Array.from({ length: 5 }, () => create(org.admin, { external_id: "initech" })),
    );
    expect(racing.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409]);
  });

  it("another organization's identity is a 404 on every route", async () => {
    const mine = await newOrg("identity-tenant-a");
    const theirs = await newOrg("identity-tenant-b");
    const identity = await newIdentity(mine, { credits: { remaining: 5 } });
    const path = `/v1/identities/${identity.id}`;
    const before = await d1Snapshot();
    for (const [method, suffix, body] of [
      ["GET", "", undefined],
      ["PATCH", "", { meta: { x: 1 } }],
      ["DELETE", "", undefined],
      ["POST", "/credits", { operation: "set", value: 1 }],
      ["GET", "/verifications", undefined],
    ] as const) {
      expectProblem(await call(method, `${path}${suffix}`, { token: theirs.admin, body }), 404);
    }
    const listed = await call("GET", `/v1/identities?external_id=${identity.external_id}`, {
      token: theirs.admin,
    });
    expect(listed.body).toEqual({ identities: [] });
    expect(await d1Snapshot()).toEqual(before);
  });

  it("members read; only admins and org-scoped keys with keys:write change", async () => {
    const org = await newOrg("identity-roles");
    const identity = await newIdentity(org, { credits: { remaining: 5 } });
    const path = `/v1/identities/${identity.id}`;
    expect((await call("GET", path, { token: org.member })).status).toBe(200);
    expect((await call("GET", `${path}/verifications`, { token: org.member })).status).toBe(200);
    const reader = await orgKey(org, ["keys:read"]);
    const projectsOnly = await orgKey(org, ["projects:read"]);
    const before = await d1Snapshot();
    expectProblem(await create(org.member, { external_id: "by-member" }), 403);
    expectProblem(await call("PATCH", path, { token: org.member, body: { meta: null } }), 403);
    expectProblem(await call("DELETE", path, { token: org.member }), 403);
    const adjust = { operation: "increment", value: 1 };
    expectProblem(await call("POST", `${path}/credits`, { token: org.member, body: adjust }), 403);

    expect((await call("GET", path, { token: reader })).status).toBe(200);
    expectProblem(await create(reader, { external_id: "by-reader" }), 403);
    expectProblem(await call("GET", "/v1/identities", { token: projectsOnly }), 403);
    expect(await d1Snapshot()).toEqual(before);

    const writer = await orgKey(org, ["keys:read", "keys:write"]);
    expect((await create(writer, { external_id: "by-writer" })).status).toBe(201);
    expect((await call("POST", `${path}/credits`, { token: writer, body: adjust })).body).toEqual({
      remaining: 6,
    });
  });

  it("a project-scoped key never reaches identities, whatever its scopes", async () => {
    const org = await newOrg("identity-project-key");
    const identity = await newIdentity(org);
    const projectKey = (await newKey(org.admin, org.project.id, { scopes: ["*"] })).key;
    const before = await d1Snapshot();
    expectProblem(await call("GET", "/v1/identities", { token: projectKey }), 403);
    expectProblem(await create(projectKey, { external_id: "by-project" }), 403);
    const path = `/v1/identities/${identity.id}`;
    expectProblem(await call("GET", path, { token: projectKey }), 404);
    expectProblem(await call("PATCH", path, { token: projectKey, body: { meta: null } }), 404);
    expectProblem(await call("DELETE", path, { token: projectKey }), 404);
    expectProblem(await call("GET", `${path}/verifications`, { token: projectKey }), 404);
    expect(await d1Snapshot()).toEqual(before);
  });

  it("lists page with limit, cursor and Link, and ?external_id= finds one owner", async () => {
    const org = await newOrg("identity-paging");
    const made = [];
    for (let i = 0; i < 5; i++) made.push(await newIdentity(org, { external_id: `owner-${i}` }));
    const seen: string[] = [];
    let path: string | null = "/v1/identities?limit=2";
    let pages = 0;
    while (path) {
      const page = await call("GET", path, { token: org.admin });
      expect(page.status, page.text).toBe(200);
      expect(page.body.identities.length).toBeLessThanOrEqual(2);
      seen.push(...page.body.identities.map((i: { id: string }) => i.id));
      path = nextLink(page.headers);
      pages++;
    }
    expect(pages).toBe(3);
    expect(seen).toEqual(made.map((i) => i.id));
    const one = await call("GET", "/v1/identities?external_id=owner-3", { token: org.admin });
    expect(one.body.identities.map((i: { id: string }) => i.id)).toEqual([made[3].id]);
    // A cursor belongs to its list: not to the filtered one.
    const first = await call("GET", "/v1/identities?limit=1", { token: org.admin });
    const next = nextLink(first.headers) ?? "";
    const cursor = new URL(next, "http://keygate.test").searchParams.get("cursor");
    const replay = await call(
      "GET",
      `/v1/identities?external_id=owner-3&cursor=${encodeURIComponent(cursor ?? "")}`,
      { token: org.admin },
    );
    expect(expectProblem(replay, 400).errors[0].location).toBe("query.cursor");
    const bad = await call("GET", "/v1/identities?limit=0", { token: org.admin });
    expect(expectProblem(bad, 400).errors[0].location).toBe("query.limit");
  });

  it("Idempotency-Key: a retried create gets the first answer; another body is a 422", async () => {
    const org = await newOrg("identity-idempotent");
    const headers = { "idempotency-key": crypto.randomUUID() };
    const body = { external_id: "retry-me", credits: { remaining: 3 } };
    const first = await create(org.admin, body, headers);
    expect(first.status).toBe(201);
    const retry = await create(org.admin, body, headers);
    expect(retry.status).toBe(201);
    expect(retry.headers.get("idempotent-replayed")).toBe("true");
    expect(retry.body).toEqual(first.body);
    expectProblem(await create(org.admin, { external_id: "other" }, headers), 422);
    const listed = await call("GET", "/v1/identities", { token: org.admin });
    expect(listed.body.identities).toHaveLength(1);
    // The credits POST honours it too: a retried increment counts once.
    const path = `/v1/identities/${first.body.id}/credits`;
    const increment = { operation: "increment", value: 10 };
    const key = { "idempotency-key": crypto.randomUUID() };
    for (let i = 0; i < 3; i++) {
      const adjusted = await call("POST", path, {
        token: org.admin,
        body: increment,
        headers: key,
      });
      expect(adjusted.body).toEqual({ remaining: 13 });
    }
  });
});

describe("identities: credits", () => {
  it("set, increment and decrement the live balance; GET shows it; 409 without credits", async () => {
    const org = await newOrg("identity-credits");
    const identity = await newIdentity(org, { credits: { remaining: 100 } });
    const path = `/v1/identities/${identity.id}`;
    const adjust = (operation: string, value: number) =>
      call("POST", `${path}/credits`, { token: org.admin, body: { operation, value } });
    expect((await adjust("decrement", 30)).body).toEqual({ remaining: 70 });
    expect((await adjust("increment", 5)).body).toEqual({ remaining: 75 });
    expect((await adjust("decrement", 1_000)).body).toEqual({ remaining: 0 });
    expect((await adjust("set", 42)).body).toEqual({ remaining: 42 });
    expect((await adjust("increment", 1e12)).body).toEqual({ remaining: 1e12 });
    expect((await adjust("set", 42)).body).toEqual({ remaining: 42 });
    // GET reads the usage object; the stored value is still the one PATCH/create set.
    expect((await call("GET", path, { token: org.admin })).body.credits.remaining).toBe(42);
    const stored = await env.DB.prepare("SELECT credits_remaining FROM identities WHERE id = ?")
      .bind(identity.id)
      .first<{ credits_remaining: number }>();
    expect(stored?.credits_remaining).toBe(100);
    // PATCH credits sets the live balance afresh.
    const patched = await call("PATCH", path, {
      token: org.admin,
      body: { credits: { remaining: 7 } },
    });
    expect(patched.body.credits).toEqual({ remaining: 7, refill: null });
    expect((await adjust("increment", 1)).body).toEqual({ remaining: 8 });

    const unlimited = await newIdentity(org);
    const refused = await call("POST", `/v1/identities/${unlimited.id}/credits`, {
      token: org.admin,
      body: { operation: "set", value: 1 },
    });
    expectProblem(refused, 409);
    expect(
      (await auditActions(org)).filter(([a]: [string]) => a.endsWith("adjusted")),
    ).toHaveLength(7);
  });

  it("concurrent increments lose nothing", async () => {
    const org = await newOrg("identity-credits-race");
    const identity = await newIdentity(org, { credits: { remaining: 0 } });
    const path = `/v1/identities/${identity.id}/credits`;
    const results = await Promise.all(
      Array.from({ length: 25 }, () =>
        call("POST", path, { token: org.admin, body: { operation: "increment", value: 2 } }),
      ),
    );
    expect(results.every((r) => r.status === 200)).toBe(true);
    // Every answer is a distinct step of one sequence: no two saw the same balance.
    const balances = results.map((r) => r.body.remaining as number).sort((a, b) => a - b);
    expect(balances).toEqual(Array.from({ length: 25 }, (_, i) => 2 * (i + 1)));
    const shown = await call("GET", `/v1/identities/${identity.id}`, { token: org.admin });
    expect(shown.body.credits.remaining).toBe(50);
  });

  it("keeps its balance apart from any key's, even a key of the same owner", async () => {
    const org = await newOrg("identity-credits-apart");
    const identity = await newIdentity(org, { external_id: "shared", credits: { remaining: 10 } });
    const key = await newKey(org.admin, org.project.id, {
      external_id: "shared",
      credits: { remaining: 3 },
    });
    await call("POST", `/v1/identities/${identity.id}/credits`, {
      token: org.admin,
      body: { operation: "decrement", value: 4 },
    });
    const shown = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(shown.body.credits.remaining).toBe(3);
    const mine = await call("GET", `/v1/identities/${identity.id}`, { token: org.admin });
    expect(mine.body.credits.remaining).toBe(6);
  });
});

describe("identities: verifications of their keys", () => {
  it("counts the keys whose external_id is the identity's, in its organization only", async () => {
    const org = await newOrg("identity-verifications");
    const identity = await newIdentity(org, { external_id: "acme" });
    const one = await newKey(org.admin, org.project.id, { name: "one", external_id: "acme" });
    const two = await newKey(org.admin, org.project.id, { name: "two", external_id: "acme" });
    const orgScoped = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: [], external_id: "acme" },
    });
    const stranger = await newKey(org.admin, org.project.id, { external_id: "globex" });
    const other = await newOrg("identity-verifications-other");
    const foreign = await newKey(other.admin, other.project.id, { external_id: "acme" });
    for (let i = 0; i < 3; i++) await verify(one.key);
    await verify(two.key, { required_scopes: ["nope"] });
    await verify(orgScoped.body.plaintext_api_key);
    await verify(stranger.key);
    await verify(foreign.key);

    const path = `/v1/identities/${identity.id}/verifications?granularity=day`;
    const total = async () => {
      const response = await call("GET", path, { token: org.admin });
      return response.body.buckets.reduce((n: number, b: { total: number }) => n + b.total, 0);
    };
    await vi.waitUntil(async () => (await total()) >= 5, { timeout: 10_000, interval: 50 });
    // Everything else the queue held has arrived too once the stranger's count shows.
    await vi.waitUntil(
      async () =>
        (await call("GET", `/v1/api-keys/${stranger.id}/verifications`, { token: org.admin })).body
          .buckets.length > 0,
      { timeout: 10_000, interval: 50 },
    );
    const response = await call("GET", path, { token: org.member });
    expect(response.status, response.text).toBe(200);
    const counts: Record<string, number> = {};
    for (const bucket of response.body.buckets) {
      for (const [code, n] of Object.entries(bucket.counts as Record<string, number>)) {
        counts[code] = (counts[code] ?? 0) + n;
      }
    }
    expect(response.body).toMatchObject({ identity_id: identity.id, granularity: "day" });
    expect(counts).toEqual({ VALID: 4, INSUFFICIENT_SCOPE: 1 });
    expect(response.body.top_keys).toEqual([
      { key_id: one.id, name: "one", total: 3 },
      ...[
        { key_id: two.id, name: "two", total: 1 },
        { key_id: orgScoped.body.api_key.id, name: "org", total: 1 },
      ].sort((a, b) => a.key_id.localeCompare(b.key_id)),
    ]);
    const tooMany = await call(
      "GET",
      `/v1/identities/${identity.id}/verifications?granularity=minute&start=2026-11-01T00:00:00Z&end=2026-11-02T00:00:00Z`,
      { token: org.admin },
    );
    expect(expectProblem(tooMany, 400).detail).toMatch(/at most 1000/);
  });

  it("every identity route is in the OpenAPI document", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    expect(Object.keys(doc.paths["/v1/identities"])).toEqual(["get", "post"]);
    expect(Object.keys(doc.paths["/v1/identities/{identityID}"]).sort()).toEqual([
      "delete",
      "get",
      "patch",
    ]);
    expect(doc.paths["/v1/identities/{identityID}/credits"].post).toBeDefined();
    expect(doc.paths["/v1/identities/{identityID}/verifications"].get).toBeDefined();
    const createParams = doc.paths["/v1/identities"].post.parameters ?? [];
    expect(createParams.map((p: { name: string }) => p.name)).toContain("idempotency-key");
  });
});
