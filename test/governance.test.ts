// Key governance (SPEC Part 2): enabled, meta, external_id, ip_allowlist, ratelimits and
// credits on every surface, and what verify does with them, through the real verify path
// (HTTP and RPC) and the real KeyUsage Durable Object.
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { hashKey } from "../src/core/key-material";
import { memoryCache } from "../src/core/verify";
import { call, clearOfBoundary, newKey, newOrg, rejectedResult, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** The error an RPC call failed with (awaited in one place, so no rejection goes unhandled). */
async function rpcError(call: () => Promise<unknown>): Promise<Error> {
  try {
    await call();
  } catch (error) {
    return error as Error;
  }
  throw new Error("the RPC call succeeded");
}

const DAY = 86_400_000;
const limit = (name: string, max: number, duration_ms = DAY) => ({ name, limit: max, duration_ms });

/** How many of each code a batch of verify answers holds. */
const tally = (bodies: { code: string }[]) =>
  bodies.reduce<Record<string, number>>((count, { code }) => {
    count[code] = (count[code] ?? 0) + 1;
    return count;
  }, {});

const verifyMany = async (key: string, n: number, extra: Record<string, unknown> = {}) => {
  const answers = await Promise.all(Array.from({ length: n }, () => verify(key, extra)));
  for (const answer of answers) expect(answer.status).toBe(200);
  return answers.map((a) => a.body);
};

/** Make the caches forget a key, so the next verification reads D1 again. */
async function forget(plaintext: string) {
  memoryCache.clear();
  await env.KEY_CACHE.delete(`key:${await hashKey(plaintext)}`);
}

const getKey = async (org: Org, id: string) =>
  (await call("GET", `/v1/api-keys/${id}`, { token: org.admin })).body;

const patch = (org: Org, id: string, body: Record<string, unknown>) =>
  call("PATCH", `/v1/api-keys/${id}`, { token: org.admin, body });

describe("governance fields on the key object", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_fields");
  });

  it("are null (enabled true) when unset, on create and on GET", async () => {
    const key = await newKey(org.admin, org.project.id);
    const expected = {
      enabled: true,
      meta: null,
      external_id: null,
      ip_allowlist: null,
      ratelimits: null,
      credits: null,
    };
    expect(key).toMatchObject(expected);
    expect(await getKey(org, key.id)).toMatchObject(expected);
  });

  it("round-trip on seed 001 create and GET, normalised", async () => {
    const key = await newKey(org.admin, org.project.id, {
      enabled: false,
      meta: { plan: "pro", nested: { list: [1, "two", null] } },
      external_id: "user_42@acme",
      ip_allowlist: ["10.1.2.3/8", "2001:DB8:0:0::1", "::ffff:192.0.2.1"],
      ratelimits: [limit("burst", 10, 1000), limit("daily", 1000)],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000 } },
    });
    const expected = {
      enabled: false,
      is_active: false,
      meta: { plan: "pro", nested: { list: [1, "two", null] } },
      external_id: "user_42@acme",
      ip_allowlist: ["10.0.0.0/8", "2001:db8::1", "192.0.2.1"],
      ratelimits: [limit("burst", 10, 1000), limit("daily", 1000)],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000, day: 1 } },
    };
    expect(key).toMatchObject(expected);
    expect(await getKey(org, key.id)).toMatchObject(expected);
  });

  it("a daily refill shows day null; day with daily is a 400 naming it", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 5, refill: { interval: "daily", amount: 5 } },
    });
    expect(key.credits).toEqual({
      remaining: 5,
      refill: { interval: "daily", amount: 5, day: null },
    });
    const bad = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: {
        project_id: org.project.id,
        name: "bad",
        credits: { remaining: 5, refill: { interval: "daily", amount: 5, day: 2 } },
      },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: { location: string }) => e.location)).toEqual([
      "body.credits.refill.day",
    ]);
  });

  it("meta: 4 KiB accepted and returned by verify, 4 KiB + 1 refused", async () => {
    const overhead = JSON.stringify({ pad: "" }).length;
    const meta = { pad: "é".repeat((4096 - overhead) / 2) }; // 2 UTF-8 bytes each
    expect(new TextEncoder().encode(JSON.stringify(meta)).length).toBe(4096);
    const key = await newKey(org.admin, org.project.id, { meta });
    expect((await verify(key.key)).body.meta).toEqual(meta);
    const over = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "big", meta: { ...meta, x: 1 } },
    });
    expect(over.status).toBe(400);
    expect(over.body.errors[0].location).toBe("body.meta");
    const patched = await patch(org, key.id, { meta: { pad: `${meta.pad}x` } });
    expect(patched.status).toBe(400);
  });

  it("meta with a __proto__ member is a 400 on create and PATCH, and nothing is stored", async () => {
    const body = `{"project_id":"${org.project.id}","name":"proto","meta":{"plan":"free","__proto__":{"plan":"pro","isAdmin":true}}}`;
    const created = await call("POST", "/v1/api-keys", {
      token: org.admin,
      rawBody: body,
      headers: { "content-type": "application/json" },
    });
    expect(created.status).toBe(400);
    expect(created.body.errors[0].location).toBe("body.meta");
    const key = await newKey(org.admin, org.project.id, { meta: { plan: "free" } });
    const patched = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      rawBody: '{"meta":{"a":{"__proto__":{"isAdmin":true}}}}',
      headers: { "content-type": "application/json" },
    });
    expect(patched.status).toBe(400);
    expect((await verify(key.key)).body.meta).toEqual({ plan: "free" });
  });

  it("PATCH credits.refill alone changes the refill and keeps the live balance", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    for (let i = 0; i < 4; i++) expect((await verify(key.key)).body.code).toBe("VALID");
    const refill = { interval: "daily", amount: 50 };
    const patched = await patch(org, key.id, { credits: { refill } });
    expect(patched.status).toBe(200);
    expect(patched.body.credits).toEqual({ remaining: 6, refill: { ...refill, day: null } });
    expect((await verify(key.key)).body.credits.remaining).toBe(5);
    const rpc = await exports.KeyService.verify(key.key);
    expect(rpc.credits?.remaining).toBe(4);
    // Taking the refill away keeps the balance too.
    const cleared = await patch(org, key.id, { credits: { refill: null } });
    expect(cleared.body.credits).toEqual({ remaining: 4, refill: null });
    // A key without credits needs a balance; an empty change is refused.
    const bare = await newKey(org.admin, org.project.id);
    const noCredits = await patch(org, bare.id, { credits: { refill } });
    expect(noCredits.status).toBe(400);
    expect(noCredits.body.errors[0].location).toBe("body.credits.remaining");
    expect((await patch(org, key.id, { credits: {} })).status).toBe(400);
  });

  it("PATCH null clears each field; [] is the same as null", async () => {
    const key = await newKey(org.admin, org.project.id, {
      meta: { a: 1 },
      external_id: "owner",
      ip_allowlist: ["192.0.2.0/24"],
      ratelimits: [limit("a", 5)],
      credits: { remaining: 5 },
    });
    const cleared = await patch(org, key.id, {
      meta: null,
      external_id: null,
      ip_allowlist: [],
      ratelimits: [],
      credits: null,
    });
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({
      meta: null,
      external_id: null,
      ip_allowlist: null,
      ratelimits: null,
      credits: null,
    });
    expect(await getKey(org, key.id)).toMatchObject(cleared.body);
    // Cleared limits and credits stop applying at once.
    const answer = (await verify(key.key)).body;
    expect(answer).toMatchObject({ code: "VALID", credits: null, ratelimits: null });
    const nulls = await newKey(org.admin, org.project.id, { ip_allowlist: [], ratelimits: [] });
    expect(nulls).toMatchObject({ ip_allowlist: null, ratelimits: null });
  });

  it("seed 000 and seed 002 take the fields on create and keep their response shapes", async () => {
    const fields = { external_id: "shape", meta: { s: 1 }, credits: { remaining: 3 } };
    const before = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "s0", scopes: [], project_id: org.project.id },
    });
    const seed000 = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "s0", scopes: [], project_id: org.project.id, ...fields },
    });
    expect(seed000.status).toBe(201);
    expect(Object.keys(seed000.body.api_key).sort()).toEqual(
      Object.keys(before.body.api_key).sort(),
    );
    expect((await verify(seed000.body.plaintext_api_key)).body).toMatchObject({
      external_id: "shape",
      meta: { s: 1 },
      credits: { remaining: 2 },
    });
    const base = `/api/v1/projects/${org.project.id}/keys`;
    const plain = await call("POST", base, { token: org.admin, body: {} });
    const seed002 = await call("POST", base, { token: org.admin, body: fields });
    expect(seed002.status).toBe(201);
    expect(Object.keys(seed002.body).sort()).toEqual(Object.keys(plain.body).sort());
    expect((await verify(seed002.body.key)).body).toMatchObject({ external_id: "shape" });
  });

  it("?external_id= filters every key list", async () => {
    const owner = `owner_${crypto.randomUUID().slice(0, 8)}`;
    const mine = await newKey(org.admin, org.project.id, { external_id: owner });
    await newKey(org.admin, org.project.id, { external_id: `${owner}_other` });
    await newKey(org.admin, org.project.id);
    const orgWide = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: [], external_id: owner },
    });
    const ids = (list: { id?: string; key_id?: string }[]) => list.map((k) => k.id ?? k.key_id);
    const q = `external_id=${encodeURIComponent(owner)}`;
    const seed001 = await call("GET", `/v1/api-keys?project_id=${org.project.id}&${q}`, {
      token: org.admin,
    });
    expect(ids(seed001.body)).toEqual([mine.id]);
    const seed000 = await call("GET", `/v1/organizations/${org.org}/api-keys?${q}`, {
      token: org.admin,
    });
    expect(ids(seed000.body.api_keys)).toEqual([mine.id, orgWide.body.api_key.id]);
    const seed000Project = await call(
      "GET",
      `/v1/organizations/${org.org}/api-keys?${q}&project_id=${org.project.id}`,
      { token: org.admin },
    );
    expect(ids(seed000Project.body.api_keys)).toEqual([mine.id]);
    const seed002 = await call("GET", `/api/v1/projects/${org.project.id}/keys?${q}`, {
      token: org.admin,
    });
    expect(ids(seed002.body)).toEqual([mine.id]);
    const bad = await call("GET", `/v1/api-keys?project_id=${org.project.id}&external_id=a%20b`, {
      token: org.admin,
    });
    expect(bad.status).toBe(400);
  });

  it("rotation copies every field to the successor; a disabled key rotates disabled", async () => {
    const fields = {
      enabled: false,
      meta: { m: true },
      external_id: "rot",
      ip_allowlist: ["192.0.2.7"],
      ratelimits: [limit("r", 3)],
      credits: { remaining: 9, refill: { interval: "daily", amount: 9 } },
    };
    const key = await newKey(org.admin, org.project.id, fields);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 60 },
    });
    expect(rotated.status).toBe(201);
    const successor = await getKey(org, rotated.body.new_key_id);
    expect(successor).toMatchObject({
      ...fields,
      ratelimits: [limit("r", 3)],
      credits: { remaining: 9, refill: { interval: "daily", amount: 9, day: null } },
      is_active: false,
    });
    expect((await verify(rotated.body.key)).body).toEqual(rejectedResult("DISABLED"));
  });

  it("records an audit event for every governance change", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 1 } });
    await patch(org, key.id, { enabled: false, external_id: "audited" });
    await patch(org, key.id, { enabled: true });
    await call("POST", `/v1/api-keys/${key.id}/credits`, {
      token: org.admin,
      body: { operation: "increment", value: 4 },
    });
    const log = await call("GET", `/v1/organizations/${org.org}/audit-log?limit=100`, {
      token: org.admin,
    });
    // The log is newest first.
    const events = log.body.audit_events
      .filter((e: { target_id: string }) => e.target_id === key.id)
      .reverse();
    expect(events.map((e: { action: string }) => e.action)).toEqual([
      "api_key.created",
      "api_key.updated",
      "api_key.updated",
      "api_key.credits_adjusted",
    ]);
    expect(events[0].metadata).toMatchObject({ credits: { remaining: 1, refill: null } });
    // `fields` names what changed by the key object's field names, not the columns behind them.
    expect(events[1].metadata).toEqual({
      fields: ["enabled", "external_id"],
      enabled: false,
      external_id: "audited",
    });
    expect(events[2].metadata).toEqual({ fields: ["enabled"], enabled: true });
    expect(events[3].metadata).toMatchObject({ operation: "increment", value: 4, remaining: 5 });
  });

  it("names credits and the rotation schedule in an update's audit fields as the API does", async () => {
    const key = await newKey(org.admin, org.project.id, { name: "fields" });
    await patch(org, key.id, {
      credits: { remaining: 3, refill: { interval: "daily", amount: 3 } },
      rotation_interval_days: 30,
      rotation_webhook_url: "https://example.com/hook",
      meta: { plan: "pro" },
    });
    const log = await call("GET", `/v1/organizations/${org.org}/audit-log?limit=100`, {
      token: org.admin,
    });
    const updated = log.body.audit_events.find(
      (e: { target_id: string; action: string }) =>
        e.target_id === key.id && e.action === "api_key.updated",
    );
    expect([...updated.metadata.fields].sort()).toEqual([
      "credits",
      "meta",
      "rotation_interval_days",
      "rotation_webhook_url",
    ]);
    expect(updated.metadata.meta).toBe("changed");
  });
});

describe("verify, extended", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_verify");
  });

  it("VALID carries the key's metadata and, for limited keys, its usage", async () => {
    await clearOfBoundary(DAY, 60_000); // its daily limit and refill must not reset mid-test
    const key = await newKey(org.admin, org.project.id, {
      name: "billing",
      scopes: ["read"],
      meta: { plan: "pro" },
      external_id: "cust_1",
      ratelimits: [limit("day", 100)],
      credits: { remaining: 10, refill: { interval: "daily", amount: 10 } },
    });
    const now = Date.now();
    const answer = (await verify(key.key)).body;
    const nextDay = new Date((Math.floor(now / DAY) + 1) * DAY).toISOString();
    expect(answer).toEqual({
      valid: true,
      code: "VALID",
      key_id: key.id,
      organization_id: org.org,
      project_id: org.project.id,
      environment_id: key.environment_id,
      scopes: ["read"],
      expires_at: null,
      in_grace: false,
      name: "billing",
      enabled: true,
      meta: { plan: "pro" },
      external_id: "cust_1",
      credits: { remaining: 9, refill_at: nextDay },
      ratelimits: [{ name: "day", limit: 100, remaining: 99, reset_at: nextDay }],
    });
    const plain = await newKey(org.admin, org.project.id, { name: "plain" });
    expect((await verify(plain.key)).body).toMatchObject({
      valid: true,
      name: "plain",
      enabled: true,
      meta: null,
      external_id: null,
      credits: null,
      ratelimits: null,
    });
  });

  it("RATE_LIMITED and USAGE_EXCEEDED carry the metadata; the other refusals none", async () => {
    await clearOfBoundary(DAY, 60_000);
    const limited = await newKey(org.admin, org.project.id, {
      meta: { m: 1 },
      ratelimits: [limit("one", 1)],
    });
    await verify(limited.key);
    const rateLimited = (await verify(limited.key)).body;
    expect(rateLimited).toMatchObject({
      valid: false,
      code: "RATE_LIMITED",
      key_id: limited.id,
      organization_id: org.org,
      meta: { m: 1 },
      enabled: true,
      credits: null,
      ratelimits: [{ name: "one", limit: 1, remaining: 0 }],
    });
    expect(Date.parse(rateLimited.ratelimits[0].reset_at)).toBe(
      (Math.floor(Date.now() / DAY) + 1) * DAY,
    );
    const exhausted = await newKey(org.admin, org.project.id, { credits: { remaining: 0 } });
    expect((await verify(exhausted.key)).body).toMatchObject({
      valid: false,
      code: "USAGE_EXCEEDED",
      key_id: exhausted.id,
      credits: { remaining: 0, refill_at: null },
      ratelimits: null,
    });
    // Every Part 2 member is null on the answers without metadata (a real one, not the helper).
    const disabled = await newKey(org.admin, org.project.id, { enabled: false, meta: { m: 2 } });
    expect((await verify(disabled.key)).body).toMatchObject({
      code: "DISABLED",
      name: null,
      enabled: null,
      meta: null,
      external_id: null,
      credits: null,
      ratelimits: null,
    });
  });

  it("checks in SPEC order: each refusal wins over every later one", async () => {
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "o" } });
    const everything = {
      scopes: [],
      ip_allowlist: ["192.0.2.1"],
      ratelimits: [limit("l", 1)],
      credits: { remaining: 1 },
    };
    const ask = { project_id: other.body.id, ip: "198.51.100.1", required_scopes: ["x"] };
    // REVOKED over EXPIRED over DISABLED over all the rest.
    const revoked = await newKey(org.admin, org.project.id, { ...everything, enabled: false });
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
      .bind(Date.now() - 1000, revoked.id)
      .run();
    await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    expect((await verify(revoked.key, ask)).body).toEqual(rejectedResult("REVOKED"));
    const expired = await newKey(org.admin, org.project.id, { ...everything, enabled: false });
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
      .bind(Date.now() - 1000, expired.id)
      .run();
    await forget(expired.key);
    expect((await verify(expired.key, ask)).body).toEqual(rejectedResult("EXPIRED"));
    const disabled = await newKey(org.admin, org.project.id, { ...everything, enabled: false });
    expect((await verify(disabled.key, ask)).body).toEqual(rejectedResult("DISABLED"));
    // WRONG_PROJECT over IP_NOT_ALLOWED over INSUFFICIENT_SCOPE over the usage checks.
    const key = await newKey(org.admin, org.project.id, everything);
    expect((await verify(key.key, ask)).body).toEqual(rejectedResult("WRONG_PROJECT"));
    const inProject = { ...ask, project_id: org.project.id };
    expect((await verify(key.key, inProject)).body).toEqual(rejectedResult("IP_NOT_ALLOWED"));
    const fromIp = { ...inProject, ip: "192.0.2.1" };
    expect((await verify(key.key, fromIp)).body).toEqual(rejectedResult("INSUFFICIENT_SCOPE"));
    // None of those spent anything: the one unit and the one credit are still there.
    const scoped = { ...fromIp, required_scopes: [] };
    expect((await verify(key.key, scoped)).body.code).toBe("VALID");
    // RATE_LIMITED over USAGE_EXCEEDED (both are exhausted now).
    expect((await verify(key.key, scoped)).body.code).toBe("RATE_LIMITED");
    await patch(org, key.id, { ratelimits: null });
    expect((await verify(key.key, scoped)).body.code).toBe("USAGE_EXCEEDED");
  });

  it("verify answers 200 whatever the verdict", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 0 } });
    const answer = await verify(key.key);
    expect(answer.status).toBe(200);
    expect(answer.body.code).toBe("USAGE_EXCEEDED");
  });

  it("cost 0 answers as cost 1 would, spending nothing", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 1 },
      ratelimits: [limit("l", 5)],
    });
    for (let i = 0; i < 3; i++) {
      expect((await verify(key.key, { cost: 0 })).body).toMatchObject({
        code: "VALID",
        credits: { remaining: 1 },
        ratelimits: [{ name: "l", remaining: 5 }],
      });
    }
    expect((await verify(key.key)).body).toMatchObject({
      code: "VALID",
      credits: { remaining: 0 },
      ratelimits: [{ remaining: 4 }],
    });
    expect((await verify(key.key, { cost: 0 })).body).toMatchObject({
      code: "USAGE_EXCEEDED",
      credits: { remaining: 0 },
      ratelimits: [{ remaining: 4 }],
    });
  });

  it("cost spends credits and units; ratelimits picks limits with their own costs", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 100 },
      ratelimits: [limit("a", 10), limit("b", 10)],
    });
    expect((await verify(key.key, { cost: 3 })).body).toMatchObject({
      credits: { remaining: 97 },
      ratelimits: [
        { name: "a", remaining: 7 },
        { name: "b", remaining: 7 },
      ],
    });
    const picked = (await verify(key.key, { cost: 2, ratelimits: [{ name: "b", cost: 5 }] })).body;
    expect(picked).toMatchObject({ code: "VALID", credits: { remaining: 95 } });
    expect(picked.ratelimits).toEqual([
      { name: "b", limit: 10, remaining: 2, reset_at: expect.any(String) },
    ]);
    const defaulted = (await verify(key.key, { cost: 2, ratelimits: [{ name: "b" }] })).body;
    expect(defaulted.ratelimits).toMatchObject([{ name: "b", remaining: 0 }]);
    const unknown = await verify(key.key, { ratelimits: [{ name: "nope" }] });
    expect(unknown.status).toBe(400);
    expect(unknown.body.errors[0].location).toBe("body.ratelimits.0.name");
    expect((await verify(key.key, { cost: 1001 })).status).toBe(400);
  });

  it("a refused request spends nothing, either way round", async () => {
    const limitedFirst = await newKey(org.admin, org.project.id, {
      credits: { remaining: 10 },
      ratelimits: [limit("two", 2)],
    });
    await verifyMany(limitedFirst.key, 2);
    expect(tally(await verifyMany(limitedFirst.key, 5))).toEqual({ RATE_LIMITED: 5 });
    expect((await getKey(org, limitedFirst.id)).credits.remaining).toBe(8);

    const creditsFirst = await newKey(org.admin, org.project.id, {
      credits: { remaining: 1 },
      ratelimits: [limit("five", 5)],
    });
    await verify(creditsFirst.key);
    expect(tally(await verifyMany(creditsFirst.key, 3))).toEqual({ USAGE_EXCEEDED: 3 });
    await call("POST", `/v1/api-keys/${creditsFirst.id}/credits`, {
      token: org.admin,
      body: { operation: "set", value: 100 },
    });
    expect((await verify(creditsFirst.key)).body.ratelimits).toMatchObject([{ remaining: 3 }]);
  });

  it("200 concurrent verifications of 10 credits: exactly 10 VALID", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    expect(tally(await verifyMany(key.key, 200))).toEqual({ VALID: 10, USAGE_EXCEEDED: 190 });
    expect((await getKey(org, key.id)).credits.remaining).toBe(0);
  });

  it("100 concurrent verifications on 7 per 60 s: exactly 7 VALID", async () => {
    const key = await newKey(org.admin, org.project.id, { ratelimits: [limit("m", 7, 60_000)] });
    await clearOfBoundary(60_000, 10_000);
    expect(tally(await verifyMany(key.key, 100))).toEqual({ VALID: 7, RATE_LIMITED: 93 });
  });

  it("over RPC too: exact, with the same result members", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 5 },
      meta: { rpc: true },
    });
    const answers = await Promise.all(
      Array.from({ length: 40 }, () => exports.KeyService.verify(key.key)),
    );
    expect(tally(answers)).toEqual({ VALID: 5, USAGE_EXCEEDED: 35 });
    expect(answers.find((a) => a.code === "USAGE_EXCEEDED")).toMatchObject({
      meta: { rpc: true },
      credits: { remaining: 0, refill_at: null },
    });
    const unknownLimit = await rpcError(() =>
      exports.KeyService.verify(key.key, { ratelimits: [{ name: "nope" }] }),
    );
    expect(unknownLimit).toBeInstanceOf(TypeError);
    expect(unknownLimit.message).toMatch(/ratelimits\.0\.name/);
    const badIp = await rpcError(() => exports.KeyService.verify(key.key, { ip: "1.2.3" }));
    expect(badIp).toBeInstanceOf(TypeError);
  });

  it("rotation during use shares the counter and never refills", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 50, refill: { interval: "daily", amount: 50 } },
      ratelimits: [limit("d", 1000)],
    });
    const before = verifyMany(key.key, 40);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 3600 },
    });
    expect(rotated.status).toBe(201);
    const after = verifyMany(rotated.body.key, 40);
    const all = [...(await before), ...(await after)];
    expect(tally(all)).toEqual({ VALID: 50, USAGE_EXCEEDED: 30 });
    expect((await getKey(org, rotated.body.new_key_id)).credits.remaining).toBe(0);
    expect((await getKey(org, key.id)).credits.remaining).toBe(0);
    // The window is shared too: 50 units of 1000 used by both keys together.
    await call("POST", `/v1/api-keys/${rotated.body.new_key_id}/credits`, {
      token: org.admin,
      body: { operation: "set", value: 1 },
    });
    expect((await verify(rotated.body.key)).body.ratelimits).toMatchObject([{ remaining: 949 }]);
  });

  it("disable answers DISABLED at once in this isolate; enable restores; revoked stays", async () => {
    const key = await newKey(org.admin, org.project.id);
    expect((await verify(key.key)).body.code).toBe("VALID");
    const disabled = await patch(org, key.id, { enabled: false });
    expect(disabled.body).toMatchObject({ enabled: false, is_active: false });
    expect((await verify(key.key)).body).toEqual(rejectedResult("DISABLED"));
    // The KV record carries it too (the same publish path as revoke).
    const record = await env.KEY_CACHE.get(`key:${await hashKey(key.key)}`, "json");
    expect(record).toMatchObject({ enabled: false });
    // A disabled key is no management credential either.
    const admin = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    await patch(org, admin.id, { enabled: false });
    expect((await call("GET", `/v1/api-keys/${key.id}`, { token: admin.key })).status).toBe(401);
    await patch(org, key.id, { enabled: true });
    expect((await verify(key.key)).body.code).toBe("VALID");
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect((await patch(org, key.id, { enabled: true })).status).toBe(409);
    expect((await verify(key.key)).body.code).toBe("REVOKED");
  });

  it("PATCH credits sets the live balance; PATCH ratelimits resets changed windows only", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 3 },
      ratelimits: [limit("a", 2), limit("b", 2)],
    });
    await verifyMany(key.key, 2);
    expect((await verify(key.key)).body.code).toBe("RATE_LIMITED");
    const patched = await patch(org, key.id, {
      credits: { remaining: 7 },
      ratelimits: [limit("a", 3), limit("b", 2)],
    });
    expect(patched.body.credits.remaining).toBe(7);
    // "a" changed: a fresh window; "b" did not: still spent, so still limited.
    expect((await verify(key.key, { ratelimits: [{ name: "a" }] })).body).toMatchObject({
      code: "VALID",
      credits: { remaining: 6 },
      ratelimits: [{ name: "a", remaining: 2 }],
    });
    expect((await verify(key.key)).body.code).toBe("RATE_LIMITED");
  });
});

describe("POST /v1/api-keys/{keyID}/credits", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_credits");
  });
  const adjust = (id: string, body: unknown, token = org.admin) =>
    call("POST", `/v1/api-keys/${id}/credits`, { token, body });

  it("sets, increments and decrements; GET one shows the exact balance", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    await verifyMany(key.key, 3);
    expect((await getKey(org, key.id)).credits.remaining).toBe(7);
    expect(await adjust(key.id, { operation: "increment", value: 5 })).toMatchObject({
      status: 200,
      body: { remaining: 12 },
    });
    expect((await adjust(key.id, { operation: "decrement", value: 2 })).body).toEqual({
      remaining: 10,
    });
    expect((await adjust(key.id, { operation: "decrement", value: 99 })).body).toEqual({
      remaining: 0,
    });
    expect((await verify(key.key)).body.code).toBe("USAGE_EXCEEDED");
    expect((await adjust(key.id, { operation: "set", value: 2 })).body).toEqual({ remaining: 2 });
    expect((await adjust(key.id, { operation: "increment", value: 1e12 })).body).toEqual({
      remaining: 1e12,
    });
    expect((await getKey(org, key.id)).credits.remaining).toBe(1e12);
    expect((await verify(key.key)).body.credits.remaining).toBe(1e12 - 1);
  });

  it("concurrent operations never lose an update", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 0 } });
    await Promise.all(
      Array.from({ length: 20 }, () => adjust(key.id, { operation: "increment", value: 1 })),
    );
    expect((await getKey(org, key.id)).credits.remaining).toBe(20);
  });

  it("is a 409 on a key without credits, a 400 on a bad body, a 404 elsewhere", async () => {
    const key = await newKey(org.admin, org.project.id);
    expect((await adjust(key.id, { operation: "set", value: 1 })).status).toBe(409);
    const limited = await newKey(org.admin, org.project.id, { credits: { remaining: 1 } });
    for (const body of [
      { operation: "add", value: 1 },
      { operation: "set", value: -1 },
      { operation: "set", value: 1.5 },
      { operation: "set", value: 1e12 + 1 },
      { operation: "set" },
    ]) {
      expect((await adjust(limited.id, body)).status, JSON.stringify(body)).toBe(400);
    }
    const stranger = await newOrg("gov_credits_other");
    expect((await adjust(limited.id, { operation: "set", value: 1 }, stranger.admin)).status).toBe(
      404,
    );
    const reader = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    expect((await adjust(limited.id, { operation: "set", value: 1 }, reader.key)).status).toBe(403);
  });

  it("is a 409 on an expired key, as PATCH is: a dead key's settings do not change", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 5 } });
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
      .bind(Date.now() - 1_000, key.id)
      .run();
    expect((await adjust(key.id, { operation: "increment", value: 1 })).status).toBe(409);
    expect((await patch(org, key.id, { credits: { remaining: 9 } })).status).toBe(409);
    expect((await getKey(org, key.id)).credits.remaining).toBe(5);
  });
});

describe("refill at the boundary instant", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_refill");
  });

  /** Verify with the Worker's clock at `iso` (the verdict and the usage object take it). */
  const verifyAt = async (iso: string, key: string, extra: Record<string, unknown> = {}) => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date(iso));
    try {
      return (await verify(key, extra)).body;
    } finally {
      vi.useRealTimers();
    }
  };

  it("daily: refilled at 00:00:00.000 UTC, not a millisecond before", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 0, refill: { interval: "daily", amount: 3 } },
    });
    const day = new Date((Math.floor(Date.now() / DAY) + 2) * DAY);
    const before = new Date(day.getTime() - 1).toISOString();
    // The refill of the day before `before` has already happened: spend it all.
    expect(await verifyAt(before, key.key, { cost: 3 })).toMatchObject({
      code: "VALID",
      credits: { remaining: 0, refill_at: day.toISOString() },
    });
    expect((await verifyAt(before, key.key)).code).toBe("USAGE_EXCEEDED");
    expect(await verifyAt(day.toISOString(), key.key)).toMatchObject({
      code: "VALID",
      credits: { remaining: 2, refill_at: new Date(day.getTime() + DAY).toISOString() },
    });
  });

  it("monthly on the 31st: the last day of a 30-day month", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 0, refill: { interval: "monthly", amount: 5, day: 31 } },
    });
    // The next April after now (30 days): its refill instant is April 30th, 00:00 UTC.
    const now = new Date();
    const year = now.getUTCMonth() >= 3 ? now.getUTCFullYear() + 1 : now.getUTCFullYear();
    const refill = Date.UTC(year, 3, 30);
    const before = new Date(refill - 1).toISOString();
    expect(await verifyAt(before, key.key, { cost: 5 })).toMatchObject({
      code: "VALID",
      credits: { remaining: 0, refill_at: new Date(refill).toISOString() },
    });
    expect((await verifyAt(before, key.key)).code).toBe("USAGE_EXCEEDED");
    expect(await verifyAt(new Date(refill).toISOString(), key.key)).toMatchObject({
      code: "VALID",
      credits: { remaining: 4, refill_at: new Date(Date.UTC(year, 4, 31)).toISOString() },
    });
  });
});

describe("IP allowlists through verify", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_ip");
  });

  it("IPv4, IPv6 and CIDR edges; no ip or another ip is IP_NOT_ALLOWED", async () => {
    const key = await newKey(org.admin, org.project.id, {
      ip_allowlist: ["203.0.113.0/24", "198.51.100.7", "2001:db8:abcd::/48", "::1"],
    });
    const code = async (ip?: string) =>
      (await verify(key.key, ip === undefined ? {} : { ip })).body.code;
    expect(await code()).toBe("IP_NOT_ALLOWED");
    for (const ip of [
      "203.0.113.0",
      "203.0.113.255",
      "198.51.100.7",
      "::ffff:203.0.113.9",
      "2001:db8:abcd::",
      "2001:0DB8:ABCD:FFFF:FFFF:FFFF:FFFF:FFFF",
      "0:0:0:0:0:0:0:1",
    ]) {
      expect(await code(ip), ip).toBe("VALID");
    }
    for (const ip of ["203.0.112.255", "203.0.114.0", "198.51.100.8", "2001:db8:abce::", "::2"]) {
      expect(await code(ip), ip).toBe("IP_NOT_ALLOWED");
    }
    const malformed = await verify(key.key, { ip: "203.0.113.256" });
    expect(malformed.status).toBe(400);
    expect(malformed.body.errors[0].location).toBe("body.ip");
    const anyIp = await newKey(org.admin, org.project.id);
    expect((await verify(anyIp.key, { ip: "192.0.2.1" })).body.code).toBe("VALID");
  });
});

describe("the usage store is touched only by limited keys, and fails closed", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_do");
  });

  /** Counts every call at the KEY_USAGE binding. */
  const countUsageCalls = () => {
    const binding = env.KEY_USAGE;
    const counts = { idFromName: 0, get: 0 };
    const idFromName = binding.idFromName.bind(binding);
    const get = binding.get.bind(binding);
    vi.spyOn(binding, "idFromName").mockImplementation((name) => {
      counts.idFromName++;
      return idFromName(name);
    });
    vi.spyOn(binding, "get").mockImplementation((id, options) => {
      counts.get++;
      return get(id, options);
    });
    return counts;
  };

  it("keys without ratelimits and credits never call the Durable Object", async () => {
    const plain = await newKey(org.admin, org.project.id, { meta: { a: 1 }, external_id: "x" });
    const limited = await newKey(org.admin, org.project.id, { ratelimits: [limit("l", 100)] });
    const counts = countUsageCalls();
    await verifyMany(plain.key, 20);
    for (let i = 0; i < 5; i++) await exports.KeyService.verify(plain.key);
    expect(counts).toEqual({ idFromName: 0, get: 0 });
    await verifyMany(limited.key, 3);
    expect(counts.get).toBe(3);
  });

  it("a failing usage store: limited keys 503 / throw, unlimited keys unaffected", async () => {
    const plain = await newKey(org.admin, org.project.id);
    const limited = await newKey(org.admin, org.project.id, { credits: { remaining: 5 } });
    await verify(limited.key); // warm: the failure is the usage store's, not storage's
    vi.spyOn(env.KEY_USAGE, "get").mockImplementation(() => {
      throw new Error("Durable Object is overloaded");
    });
    const answer = await verify(limited.key);
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBe("1");
    expect(answer.body.valid).toBeUndefined();
    expect((await rpcError(() => exports.KeyService.verify(limited.key))).message).toMatch(
      /usage store is unavailable/,
    );
    expect((await verify(plain.key)).body.code).toBe("VALID");
    expect((await exports.KeyService.verify(plain.key)).code).toBe("VALID");
  });
});
