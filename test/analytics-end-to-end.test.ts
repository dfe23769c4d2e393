import { createExecutionContext, createMessageBatch, getQueueResult } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import worker from "../src/index";
import {
  DAY,
  expectCounts,
  HOUR,
  keyStats,
  MINUTE,
  message,
  minuteOf,
  seed,
  setUp,
  shownCounts,
} from "./analytics-harness";
import { expectProblem } from "./hardening";
import { call, clearOfBoundary, newKey, newOrg, runCron, verify } from "./helpers";

describe("through the Worker and the real queue", () => {
  it("counts mixed outcomes exactly, per code and minute, over HTTP verify and RPC", async () => {
    // The good key's verifications all fall in one minute: start well clear of its end.
    await clearOfBoundary(MINUTE, 25_000);
    const org = await newOrg("analytics-e2e");
    const good = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    const revoked = await newKey(org.admin, org.project.id);
    await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    const soon = await newKey(org.admin, org.project.id, {
      expires_at: new Date(Date.now() + 1_500).toISOString(),
    });
    const other = await newOrg("analytics-e2e-other");
    const started = Date.now();
    for (let i = 0; i < 3; i++) expect((await verify(good.key)).body.code).toBe("VALID");
    for (let i = 0; i < 2; i++) {
      expect((await verify(good.key, { required_scopes: ["admin"] })).body.code).toBe(
        "INSUFFICIENT_SCOPE",
      );
    }
    expect((await verify(good.key, { project_id: other.project.id })).body.code).toBe(
      "WRONG_PROJECT",
    );
    expect((await exports.KeyService.verify(good.key)).code).toBe("VALID");
    expect(minuteOf(Date.now()), "the good key's verifications span one minute").toBe(
      minuteOf(started),
    );
    for (let i = 0; i < 2; i++) expect((await verify(revoked.key)).body.code).toBe("REVOKED");
    // Not genuine: never counted anywhere.
    // The last character changed (one key in 62 ends in "x"): the checksum fails.
    const broken = `${good.key.slice(0, -1)}${good.key.endsWith("x") ? "y" : "x"}`;
    expect((await verify(broken)).body.code).toBe("MALFORMED");
    // The clock, not a sleep, takes the short-lived key past its expiry (Date only: timers run).
    vi.useFakeTimers({ toFake: ["Date"] });
    try {
      vi.setSystemTime(Date.now() + 2_000);
      expect((await verify(soon.key)).body.code).toBe("EXPIRED");
    } finally {
      vi.useRealTimers();
    }

    await expectCounts(org.admin, good.id, { VALID: 4, INSUFFICIENT_SCOPE: 2, WRONG_PROJECT: 1 });
    await expectCounts(org.admin, revoked.id, { REVOKED: 2 });
    await expectCounts(org.admin, soon.id, { EXPIRED: 1 });
    const minutes = await call("GET", `/v1/api-keys/${good.id}/verifications?granularity=minute`, {
      token: org.admin,
    });
    expect(minutes.body).toEqual({
      key_id: good.id,
      granularity: "minute",
      buckets: [
        {
          start: minuteOf(started),
          total: 7,
          counts: { INSUFFICIENT_SCOPE: 2, VALID: 4, WRONG_PROJECT: 1 },
        },
      ],
    });
  }, 60_000);

  it("governance refusals count; a key hidden by a tenant pin (NOT_FOUND) does not", async () => {
    await clearOfBoundary(86_400_000, 60_000); // the daily limit must not reset mid-test
    const org = await newOrg("analytics-governance");
    const disabled = await newKey(org.admin, org.project.id, { enabled: false });
    const limited = await newKey(org.admin, org.project.id, {
      ratelimits: [{ name: "tight", limit: 1, duration_ms: 86_400_000 }],
    });
    expect((await verify(disabled.key)).body.code).toBe("DISABLED");
    expect((await verify(limited.key)).body.code).toBe("VALID");
    expect((await verify(limited.key)).body.code).toBe("RATE_LIMITED");
    // KEYGATE_PINNED is pinned to another organization by its props.
    expect((await env.KEYGATE_PINNED.verify(limited.key)).code).toBe("NOT_FOUND");
    await expectCounts(org.admin, disabled.id, { DISABLED: 1 });
    await expectCounts(org.admin, limited.id, { RATE_LIMITED: 1, VALID: 1 });
  });

  it("a key used as a management credential is not counted", async () => {
    const org = await newOrg("analytics-credential");
    const manager = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const target = await newKey(org.admin, org.project.id);
    expect((await verify(target.key)).body.code).toBe("VALID");
    for (let i = 0; i < 3; i++) {
      const listed = await call("GET", `/v1/api-keys/${target.id}/verifications`, {
        token: manager.key,
      });
      expect(listed.status).toBe(200);
    }
    // A verifier key pinning HTTP verify is a credential too.
    const verifier = await newKey(org.admin, org.project.id, { scopes: ["keys:verify"] });
    const pinned = await call("POST", "/v1/keys/verify", {
      token: verifier.key,
      body: { key: target.key },
    });
    expect(pinned.body.code).toBe("VALID");
    await expectCounts(org.admin, target.id, { VALID: 2 });
    expect(await shownCounts(org.admin, manager.id)).toEqual({});
    expect(await shownCounts(org.admin, verifier.id)).toEqual({});
    const key = await call("GET", `/v1/api-keys/${manager.id}`, { token: org.admin });
    expect(key.body.last_used_at).toBeNull();
  });

  it("last_used_at follows VALID answers within 60 s, on every surface", async () => {
    const org = await newOrg("analytics-last-used");
    const key = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    const refused = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    const before = Date.now();
    expect((await verify(key.key)).body.valid).toBe(true);
    expect((await verify(refused.key, { required_scopes: ["write"] })).body.valid).toBe(false);
    const shown = async () =>
      (await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin })).body.last_used_at;
    await vi.waitUntil(async () => (await shown()) !== null, { timeout: 10_000, interval: 50 });
    const stamp = Date.parse(await shown());
    expect(stamp).toBeGreaterThanOrEqual(before);
    expect(stamp).toBeLessThanOrEqual(Date.now());
    // Seed 001 lists show the same stamp; the refused key has none.
    const listed = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: org.admin,
    });
    const byId = new Map(listed.body.map((k: { id: string }) => [k.id, k]));
    expect((byId.get(key.id) as { last_used_at: string }).last_used_at).toBe(
      new Date(stamp).toISOString(),
    );
    expect((byId.get(refused.id) as { last_used_at: string | null }).last_used_at).toBeNull();
  });

  it("the queue() door counts a batch delivered twice once", async () => {
    const { org, a } = await setUp();
    const minute = Math.floor(Date.now() / MINUTE) * MINUTE;
    const bodies = [
      message([{ key: a, minute, code: "VALID", n: 5 }], { [a.id]: Date.now() }),
      message([{ key: a, minute, code: "REVOKED", n: 2 }]),
    ];
    for (let delivery = 1; delivery <= 2; delivery++) {
      const batch = createMessageBatch("keygate-verification-events", [
        ...bodies.map((body, i) => ({
          id: `message-${i}`,
          timestamp: new Date(),
          attempts: delivery,
          body,
        })),
      ]);
      const ctx = createExecutionContext();
      await worker.queue(batch, env, ctx);
      const result = await getQueueResult(batch, ctx);
      expect(result.explicitAcks.length + (result.ackAll ? bodies.length : 0)).toBe(2);
    }
    expect(await shownCounts(org.admin, a.id)).toEqual({ REVOKED: 2, VALID: 5 });
  });

  it("counts never leak across organizations", async () => {
    const one = await newOrg("analytics-leak-a");
    const two = await newOrg("analytics-leak-b");
    const key = await newKey(one.admin, one.project.id);
    const theirs = await newKey(two.admin, two.project.id);
    expect((await verify(key.key)).body.code).toBe("VALID");
    await expectCounts(one.admin, key.id, { VALID: 1 });
    const foreign = await call("GET", `/v1/api-keys/${key.id}/verifications`, { token: two.admin });
    expectProblem(foreign, 404);
    const foreignProject = await call("GET", `/v1/projects/${one.project.id}/verifications`, {
      token: two.admin,
    });
    expectProblem(foreignProject, 404);
    const own = await call("GET", `/v1/projects/${two.project.id}/verifications`, {
      token: two.admin,
    });
    expect(own.body).toMatchObject({ project_id: two.project.id, buckets: [], top_keys: [] });
    expect(await shownCounts(two.admin, theirs.id)).toEqual({});
  });

  it("a project key sees its own project's analytics only", async () => {
    const org = await newOrg("analytics-reach");
    const second = await call("POST", "/v1/projects", { token: org.admin, body: { name: "Two" } });
    const reader = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const elsewhere = await newKey(org.admin, second.body.id);
    const mine = await newKey(org.admin, org.project.id);
    const get = (path: string) => call("GET", path, { token: reader.key });
    expect((await get(`/v1/projects/${org.project.id}/verifications`)).status).toBe(200);
    expect((await get(`/v1/api-keys/${mine.id}/verifications`)).status).toBe(200);
    expectProblem(await get(`/v1/projects/${second.body.id}/verifications`), 404);
    expectProblem(await get(`/v1/api-keys/${elsewhere.id}/verifications`), 404);
    const noScope = await newKey(org.admin, org.project.id, { scopes: ["projects:read"] });
    expectProblem(
      await call("GET", `/v1/projects/${org.project.id}/verifications`, { token: noScope.key }),
      403,
    );
  });

  it("the project endpoint: buckets of the project's keys and top_keys", async () => {
    const org = await newOrg("analytics-project");
    const busy = await newKey(org.admin, org.project.id, { name: "busy" });
    const quiet = await newKey(org.admin, org.project.id, { name: "quiet" });
    for (let i = 0; i < 3; i++) await verify(busy.key);
    await verify(quiet.key);
    await expectCounts(org.admin, quiet.id, { VALID: 1 });
    await expectCounts(org.admin, busy.id, { VALID: 3 });
    const response = await call("GET", `/v1/projects/${org.project.id}/verifications`, {
      token: org.member,
    });
    expect(response.status, response.text).toBe(200);
    expect(response.body.granularity).toBe("hour");
    expect(response.body.buckets.reduce((n: number, b: { total: number }) => n + b.total, 0)).toBe(
      4,
    );
    expect(response.body.top_keys).toEqual([
      { key_id: busy.id, name: "busy", total: 3 },
      { key_id: quiet.id, name: "quiet", total: 1 },
    ]);
  });

  it("bad start, end or granularity is a 400 naming the field; over 1 000 buckets says why", async () => {
    const org = await newOrg("analytics-400");
    const key = await newKey(org.admin, org.project.id);
    const path = `/v1/api-keys/${key.id}/verifications`;
    const get = (query: string) => call("GET", `${path}?${query}`, { token: org.admin });
    for (const [query, field] of [
      ["start=yesterday", "query.start"],
      ["end=2026-13-01T00:00:00Z", "query.end"],
      ["granularity=week", "query.granularity"],
      ["start=2026-12-01T10:00:00Z&end=2026-12-01T09:00:00Z", "query.start"],
    ] as const) {
      const body = expectProblem(await get(query), 400);
      expect(body.errors.map((e: { location: string }) => e.location)).toContain(field);
    }
    const tooMany = expectProblem(
      await get("granularity=minute&start=2026-11-01T00:00:00Z&end=2026-11-02T00:00:00Z"),
      400,
    );
    expect(tooMany.detail).toMatch(/1440 minute buckets; at most 1000/);
    const projectTooMany = expectProblem(
      await call(
        "GET",
        `/v1/projects/${org.project.id}/verifications?granularity=hour&start=2026-01-01T00:00:00Z&end=2026-03-01T00:00:00Z`,
        { token: org.admin },
      ),
      400,
    );
    expect(projectTooMany.detail).toMatch(/at most 1000/);
    const fine = await get(
      "granularity=minute&start=2026-11-01T00:00:00Z&end=2026-11-01T16:40:00Z",
    );
    expect(fine.body).toEqual({ key_id: key.id, granularity: "minute", buckets: [] });
  });

  it("is in the OpenAPI document", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    expect(doc.paths["/v1/api-keys/{keyID}/verifications"]?.get).toBeDefined();
    expect(doc.paths["/v1/projects/{id}/verifications"]?.get).toBeDefined();
  });

  it("the cron folds old minute rows at its scheduledTime, once across overlapping runs", async () => {
    const { a, principal } = await setUp();
    const old = Date.UTC(2026, 0, 10, 12);
    const rows = [];
    for (let i = 0; i < 90; i++) rows.push({ key: a, at: old + i * MINUTE, code: "VALID", n: 2 });
    await seed(rows);
    const at = old + 8 * DAY;
    await Promise.all([runCron(at), runCron(at), runCron(at + MINUTE)]);
    const range = { start: old, end: old + 2 * HOUR };
    const hours = await keyStats(principal, a, { ...range, granularity: "hour" }, at);
    expect(hours.buckets).toEqual([
      { start: new Date(old).toISOString(), total: 120, counts: { VALID: 120 } },
      { start: new Date(old + HOUR).toISOString(), total: 60, counts: { VALID: 60 } },
    ]);
    const minutes = await keyStats(principal, a, { ...range, granularity: "minute" }, at);
    expect(minutes.buckets).toEqual([]);
  });
});
