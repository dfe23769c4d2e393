// Key governance (SPEC Part 2): enabled, meta, external_id, ip_allowlist, ratelimits and
// credits on every surface, and what verify does with them, through the real verify path
// (HTTP and RPC) and the real KeyUsage Durable Object.
import { env, exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { hashKey } from "../src/core/key-material";
import {
  DAY,
  forget,
  getKey,
  limit,
  type Org,
  patch,
  tally,
  verifyMany,
} from "./governance-harness";
import { call, clearOfBoundary, newKey, newOrg, rejectedResult, rpc, verify } from "./helpers";

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
      identity: null,
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
      identity: null,
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
      identity: null,
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
    const unknownLimit = rpc(() =>
      exports.KeyService.verify(key.key, { ratelimits: [{ name: "nope" }] }),
    );
    await expect(unknownLimit).rejects.toThrow(TypeError);
    await expect(unknownLimit).rejects.toThrow(/ratelimits\.0\.name/);
    await expect(rpc(() => exports.KeyService.verify(key.key, { ip: "1.2.3" }))).rejects.toThrow(
      TypeError,
    );
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
    await expect(rpc(() => exports.KeyService.verify(limited.key))).rejects.toThrow(
      /usage store is unavailable/,
    );
    expect((await verify(plain.key)).body.code).toBe("VALID");
    expect((await exports.KeyService.verify(plain.key)).code).toBe("VALID");
  });
});
