// POST /v1/keys/verify: the key in the body is the credential; each outcome has its code.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
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
