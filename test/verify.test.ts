// POST /v1/keys/verify: the key in the body is the credential; each outcome has its code.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { generateKey } from "../src/core/key-material";
import { call, newKey, newOrg, rejectedResult, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

describe("verify over HTTP", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("verify");
  });

  it("answers VALID with the key's metadata, without an Authorization header", async () => {
    const expires = new Date(Date.now() + 3_600_000).toISOString();
    const key = await newKey(org.admin, org.project.id, {
      scopes: ["read", "write"],
      expires_at: expires,
    });
    const response = await verify(key.key);
    expect(response.status).toBe(200);
    expect(response.body).toEqual({
      valid: true,
      code: "VALID",
      key_id: key.id,
      organization_id: org.org,
      project_id: org.project.id,
      environment_id: key.environment_id,
      scopes: ["read", "write"],
      expires_at: expires,
      in_grace: false,
      name: "test key",
      enabled: true,
      meta: null,
      external_id: null,
      credits: null,
      ratelimits: null,
      identity: null,
    });
  });

  it("answers MALFORMED for strings that are not keys", async () => {
    const key = await newKey(org.admin, org.project.id);
    const badChecksum = `${key.key.slice(0, -1)}${key.key.endsWith("A") ? "B" : "A"}`;
    for (const candidate of ["", "hello", badChecksum, `${key.key}x`, key.key.toUpperCase()]) {
      const response = await verify(candidate);
      expect(response.body, candidate).toEqual(rejectedResult("MALFORMED"));
    }
  });

  it("answers NOT_FOUND for a well-formed key that was never issued", async () => {
    const { generateKey } = await import("../src/core/key-material");
    const stranger = await generateKey("capy", "live");
    expect((await verify(stranger.plaintext)).body).toEqual(rejectedResult("NOT_FOUND"));
  });

  it("answers REVOKED for a revoked key", async () => {
    const key = await newKey(org.admin, org.project.id);
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect((await verify(key.key)).body).toEqual(rejectedResult("REVOKED"));
  });

  it("answers EXPIRED for a key past its expires_at", async () => {
    const key = await newKey(org.admin, org.project.id);
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
      .bind(Date.now() - 1000, key.id)
      .run();
    expect((await verify(key.key)).body).toEqual(rejectedResult("EXPIRED"));
    const listed = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(listed.body.is_active).toBe(false);
  });

  it("answers INSUFFICIENT_SCOPE unless the key holds every required scope", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    expect((await verify(key.key, { required_scopes: ["read"] })).body.valid).toBe(true);
    expect((await verify(key.key, { required_scopes: ["read", "write"] })).body).toEqual(
      rejectedResult("INSUFFICIENT_SCOPE"),
    );
    const star = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    expect((await verify(star.key, { required_scopes: ["anything"] })).body.valid).toBe(true);
  });

  it("answers WRONG_PROJECT for a key of another project", async () => {
    const key = await newKey(org.admin, org.project.id);
    expect((await verify(key.key, { project_id: org.project.id })).body.valid).toBe(true);
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "other" } });
    expect((await verify(key.key, { project_id: other.body.id })).body).toEqual(
      rejectedResult("WRONG_PROJECT"),
    );
  });

  it("lets an org-scoped key match every project of its org, and no other", async () => {
    const orgKey = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: [] },
    });
    const plaintext = orgKey.body.plaintext_api_key;
    expect((await verify(plaintext, { project_id: org.project.id })).body).toMatchObject({
      valid: true,
      project_id: null,
    });
    const stranger = await newOrg("verify-stranger");
    expect((await verify(plaintext, { project_id: stranger.project.id })).body.code).toBe(
      "WRONG_PROJECT",
    );
    expect((await verify(plaintext, { project_id: crypto.randomUUID() })).body.code).toBe(
      "WRONG_PROJECT",
    );
  });

  it("answers in_grace for a rotated key inside its grace period", async () => {
    const key = await newKey(org.admin, org.project.id);
    await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 600 },
    });
    expect((await verify(key.key)).body).toMatchObject({
      valid: true,
      code: "VALID",
      in_grace: true,
    });
  });

  it("answers REVOKED once the grace is over, even before the sweep", async () => {
    const key = await newKey(org.admin, org.project.id);
    await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 600 },
    });
    // Move the grace end into the past behind the caches' back, then drop the cached records.
    await env.DB.prepare("update api_keys set grace_expires_at = ? where id = ?")
      .bind(Date.now() - 1, key.id)
      .run();
    const { memoryCache } = await import("../src/core/verify");
    const { hashKey } = await import("../src/core/key-material");
    memoryCache.clear();
    await env.KEY_CACHE.delete(`key:${await hashKey(key.key)}`);
    expect((await verify(key.key)).body).toEqual(rejectedResult("REVOKED"));
    const fresh = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(fresh.body.is_active).toBe(false);
  });

  it("validates its body", async () => {
    const missing = await call("POST", "/v1/keys/verify", { body: {} });
    expect(missing.status).toBe(400);
    expect(missing.body.errors[0].location).toBe("body.key");
    const wrongType = await call("POST", "/v1/keys/verify", {
      body: { key: "x", required_scopes: "read" },
    });
    expect(wrongType.status).toBe(400);
  });
});

describe("unknown keys are limited per client address", () => {
  // TEST_VERIFY_MISS_LIMITER: 5 per 60 s (vitest.config.mts), for wrangler.toml's 600 per 60 s.
  const LIMIT = 5;
  const limited = { VERIFY_MISS_RATE_LIMITER: env.TEST_VERIFY_MISS_LIMITER };
  const verifyFrom = (address: string, body: Record<string, unknown>) =>
    call("POST", "/v1/keys/verify", {
      body,
      headers: { "cf-connecting-ip": address },
      env: limited,
    });
  const unknownKey = async () => (await generateKey("capy", "live")).plaintext;

  it("answers 429 once an address has sent too many unknown keys; genuine keys still verify", async () => {
    const org = await newOrg("verify-miss");
    const genuine = await newKey(org.admin, org.project.id);
    const address = `203.0.113.${Math.floor(Math.random() * 250)}`;
    const answers: number[] = [];
    // At most two windows' budgets: a window boundary mid-test only delays the 429.
    for (let i = 0; i < 2 * LIMIT + 1 && !answers.includes(429); i++) {
      const answered = await verifyFrom(address, { key: await unknownKey() });
      answers.push(answered.status);
      if (answered.status === 429) {
        expect(answered.headers.get("retry-after")).toBe("60");
        expect(answered.headers.get("content-type")).toContain("application/problem+json");
      } else {
        expect(answered.body).toEqual(rejectedResult("NOT_FOUND"));
      }
    }
    expect(answers).toContain(429);

    const valid = await verifyFrom(address, { key: genuine.key });
    expect(valid.status).toBe(200);
    expect(valid.body).toMatchObject({ valid: true, code: "VALID" });
    const malformed = await verifyFrom(address, { key: "capy_live_nope" });
    expect(malformed.body.code).toBe("MALFORMED");
    const elsewhere = await verifyFrom("198.51.100.7", { key: await unknownKey() });
    expect(elsewhere.body.code).toBe("NOT_FOUND");
  });

  /**
   * The statuses of sends until a 429 (at most two windows' budgets: a window boundary
   * mid-test only delays it).
   */
  const statusesUntilLimited = async (send: (i: number) => Promise<{ status: number }>) => {
    const statuses: number[] = [];
    for (let i = 0; i < 2 * LIMIT + 1 && !statuses.includes(429); i++) {
      statuses.push((await send(i)).status);
    }
    return statuses;
  };
  const randomAddress = () =>
    `198.18.${Math.floor(Math.random() * 250)}.${Math.floor(Math.random() * 250)}`;

  it("counts random verifier keys (Authorization on verify) against the client's budget", async () => {
    const org = await newOrg("verifier-miss");
    const genuine = await newKey(org.admin, org.project.id);
    const address = randomAddress();
    const statuses = await statusesUntilLimited(async () =>
      call("POST", "/v1/keys/verify", {
        body: { key: genuine.key },
        token: await unknownKey(),
        headers: { "cf-connecting-ip": address },
        env: limited,
      }),
    );
    expect(statuses.at(-1)).toBe(429);
    expect(new Set(statuses.slice(0, -1))).toEqual(new Set([401]));
    // The genuine key itself still verifies from there.
    expect((await verifyFrom(address, { key: genuine.key })).body.code).toBe("VALID");
  });

  it("counts random bearer keys on management routes against the client's budget", async () => {
    const org = await newOrg("bearer-miss");
    const address = randomAddress();
    const statuses = await statusesUntilLimited(async () =>
      call("GET", "/v1/projects", {
        token: await unknownKey(),
        headers: { "cf-connecting-ip": address },
        env: limited,
      }),
    );
    expect(statuses.at(-1)).toBe(429);
    expect(new Set(statuses.slice(0, -1))).toEqual(new Set([401]));
    // A genuine credential from the same address is not refused.
    const listed = await call("GET", "/v1/projects", {
      token: org.admin,
      headers: { "cf-connecting-ip": address },
      env: limited,
    });
    expect(listed.status).toBe(200);
  });

  it("counts an IPv6 client by its /64, whatever address of it each request comes from", async () => {
    const prefix = `2001:db8:${Math.floor(Math.random() * 0xffff).toString(16)}:7`;
    const statuses = await statusesUntilLimited(async (i) =>
      verifyFrom(`${prefix}:${(i + 1).toString(16)}::${(i * 7 + 3).toString(16)}`, {
        key: await unknownKey(),
      }),
    );
    expect(statuses.at(-1)).toBe(429);
    // The neighbouring /64 is another client.
    const neighbour = await verifyFrom(`${prefix.slice(0, -1)}8::1`, { key: await unknownKey() });
    expect(neighbour.body.code).toBe("NOT_FOUND");
  });

  it("trusts no client-set address header; callers without CF-Connecting-IP count apart from the public", async () => {
    const statuses = await statusesUntilLimited(async (i) =>
      call("POST", "/v1/keys/verify", {
        body: { key: await unknownKey() },
        headers: { "x-real-ip": `203.0.113.${i}`, "x-forwarded-for": `203.0.113.${i}` },
        env: limited,
      }),
    );
    expect(statuses.at(-1)).toBe(429);
    // Their bucket is not any address's: the public still gets its answers.
    expect((await verifyFrom(randomAddress(), { key: await unknownKey() })).body.code).toBe(
      "NOT_FOUND",
    );
  });

  it("bounds look-ups of project ids that do not exist, per key", async () => {
    const org = await newOrg("project-miss");
    const orgKey = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: [] },
    });
    expect(orgKey.status).toBe(201);
    const key = orgKey.body.plaintext_api_key;
    const projectReads = () =>
      vi.mocked(env.DB.prepare).mock.calls.filter(([sql]) => /from "projects"/.test(String(sql)))
        .length;
    vi.spyOn(env.DB, "prepare");
    // Past two windows' budgets, random ids stop costing a D1 read each.
    for (let i = 0; i < 2 * LIMIT + 1; i++) {
      const answered = await verifyFrom("192.0.2.1", { key, project_id: crypto.randomUUID() });
      expect(answered.body.code).toBe("WRONG_PROJECT");
    }
    const readsSoFar = projectReads();
    expect(readsSoFar).toBeGreaterThan(0); // the spy sees the look-ups
    for (let i = 0; i < 20; i++) {
      const answered = await verifyFrom("192.0.2.1", { key, project_id: crypto.randomUUID() });
      expect(answered.body.code).toBe("WRONG_PROJECT");
    }
    expect(projectReads() - readsSoFar).toBeLessThanOrEqual(1);
    // Genuine use still answers: its own project, and the key itself.
    const known = await verifyFrom("192.0.2.1", { key, project_id: org.project.id });
    expect(known.body).toMatchObject({ valid: true, code: "VALID" });
    expect((await verifyFrom("192.0.2.1", { key })).body.code).toBe("VALID");
    vi.restoreAllMocks();
  });
});
