// Seed 001: project-level key management, plus Keygate's own get/patch of one key.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, newKey, newOrg, RFC3339_UTC, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

const SEED_001_FIELDS = [
  "id",
  "project_id",
  "name",
  "key_prefix",
  "scopes",
  "expires_at",
  "last_used_at",
  "created_at",
  "revoked_at",
  "replaced_by_key_id",
  "grace_expires_at",
  "environment_id",
  "rotation_interval_days",
  "next_rotation_at",
  "rotation_webhook_url",
];

describe("seed 001 API keys", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("seed001");
  });

  it("creates a key and shows its plaintext once", async () => {
    const expires = new Date(Date.now() + 86_400_000).toISOString();
    const created = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: {
        project_id: org.project.id,
        name: "CI",
        scopes: ["deploy", "keys:read"],
        expires_at: expires,
        rotation_interval_days: 30,
        rotation_webhook_url: "https://hooks.example.com/keygate",
      },
    });
    expect(created.status).toBe(201);
    const key = created.body;
    for (const field of [...SEED_001_FIELDS, "key"]) expect(key, field).toHaveProperty(field);
    expect(key.key).toMatch(/^capy_live_[0-9A-Za-z]{49}$/);
    expect(key.key_prefix).toBe(key.key.slice(0, 14));
    expect(key).toMatchObject({
      project_id: org.project.id,
      organization_id: org.org,
      name: "CI",
      scopes: ["deploy", "keys:read"],
      expires_at: expires,
      rotation_interval_days: 30,
      rotation_webhook_url: "https://hooks.example.com/keygate",
      revoked_at: null,
      last_used_at: null,
      replaced_by_key_id: null,
      grace_expires_at: null,
      source: "dashboard",
      is_active: true,
      is_admin_managed: false,
    });
    expect(key.created_at).toMatch(RFC3339_UTC);
    expect(Date.parse(key.next_rotation_at) - Date.parse(key.created_at)).toBe(30 * 86_400_000);
    const live = org.project.environments.find((e: { name: string }) => e.name === "live");
    expect(key.environment_id).toBe(live.id);

    const listed = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: org.admin,
    });
    const entry = listed.body.find((k: { id: string }) => k.id === key.id);
    expect(entry).not.toHaveProperty("key");
    expect(JSON.stringify(listed.body)).not.toContain(key.key);
    const one = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(one.body).toEqual(entry);
  });

  it("creates a key in a chosen environment with that environment in its prefix", async () => {
    const test = org.project.environments.find((e: { name: string }) => e.name === "test");
    const key = await newKey(org.admin, org.project.id, { environment_id: test.id });
    expect(key.key).toMatch(/^capy_test_/);
    expect(key.environment_id).toBe(test.id);
  });

  it("lists a project's keys as a bare array", async () => {
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "Two" } });
    const mine = await newKey(org.admin, other.body.id);
    const listed = await call("GET", `/v1/api-keys?project_id=${other.body.id}`, {
      token: org.admin,
    });
    expect(listed.status).toBe(200);
    expect(listed.body.map((k: { id: string }) => k.id)).toEqual([mine.id]);
  });

  it("revokes with 204 and an empty body; the key stops verifying", async () => {
    const key = await newKey(org.admin, org.project.id);
    expect((await verify(key.key)).body.valid).toBe(true);
    const revoked = await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(revoked.status).toBe(204);
    expect(revoked.text).toBe("");
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
    const one = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(one.body).toMatchObject({ is_active: false });
    expect(one.body.revoked_at).toMatch(RFC3339_UTC);
    // Revoking again is harmless.
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin })).status).toBe(204);
  });

  it("rotates without grace: the old key is revoked at once", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["a", "b"], name: "rot" });
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: {},
    });
    expect(rotated.status).toBe(201);
    expect(Object.keys(rotated.body).sort()).toEqual(
      [
        "old_key_id",
        "new_key_id",
        "project_id",
        "name",
        "key",
        "key_prefix",
        "scopes",
        "expires_at",
        "created_at",
        "grace_expires_at",
      ].sort(),
    );
    expect(rotated.body).toMatchObject({
      old_key_id: key.id,
      project_id: org.project.id,
      name: "rot",
      scopes: ["a", "b"],
    });
    expect(rotated.body.key).not.toBe(key.key);
    expect((await verify(key.key)).body.code).toBe("REVOKED");
    expect((await verify(rotated.body.key)).body).toMatchObject({
      valid: true,
      key_id: rotated.body.new_key_id,
    });
    const old = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(old.body).toMatchObject({
      replaced_by_key_id: rotated.body.new_key_id,
      is_active: false,
    });
    const fresh = await call("GET", `/v1/api-keys/${rotated.body.new_key_id}`, {
      token: org.admin,
    });
    expect(fresh.body).toMatchObject({ source: "rotation", environment_id: key.environment_id });
  });

  it("rotates with grace: the old key works until the grace ends", async () => {
    const key = await newKey(org.admin, org.project.id);
    const before = Date.now();
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 3600 },
    });
    expect(rotated.status).toBe(201);
    const grace = Date.parse(rotated.body.grace_expires_at);
    expect(grace).toBeGreaterThanOrEqual(before + 3_600_000);
    expect(grace).toBeLessThan(Date.now() + 3_600_000 + 1000);
    expect((await verify(key.key)).body).toMatchObject({ valid: true, in_grace: true });
    expect((await verify(rotated.body.key)).body).toMatchObject({ valid: true, in_grace: false });
    const old = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(old.body).toMatchObject({
      is_active: true,
      revoked_at: null,
      replaced_by_key_id: rotated.body.new_key_id,
      grace_expires_at: rotated.body.grace_expires_at,
    });
  });

  it("answers 409 when rotating a replaced or revoked key", async () => {
    const key = await newKey(org.admin, org.project.id);
    await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 60 },
    });
    const again = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: {},
    });
    expect(again.status).toBe(409);
    const revoked = await newKey(org.admin, org.project.id);
    await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    const rotateRevoked = await call("POST", `/v1/api-keys/${revoked.id}/rotate`, {
      token: org.admin,
      body: {},
    });
    expect(rotateRevoked.status).toBe(409);
    expect(rotateRevoked.headers.get("content-type")).toContain("application/problem+json");
  });

  it("rotates exactly once when rotations race", async () => {
    const key = await newKey(org.admin, org.project.id);
    const results = await Promise.all(
      Array.from({ length: 5 }, () =>
        call("POST", `/v1/api-keys/${key.id}/rotate`, {
          token: org.admin,
          body: { grace_period_seconds: 60 },
        }),
      ),
    );
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409]);
    const successors = await env.DB.prepare(
      "select count(*) as n from api_keys where rotated_from_key_id = ?",
    )
      .bind(key.id)
      .first<{ n: number }>();
    expect(successors?.n).toBe(1);
    const old = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    const winner = results.find((r) => r.status === 201);
    expect(old.body.replaced_by_key_id).toBe(winner?.body.new_key_id);
  });

  it("patches name, scopes, expiry and rotation settings, effective at once", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    expect((await verify(key.key, { required_scopes: ["write"] })).body.code).toBe(
      "INSUFFICIENT_SCOPE",
    );
    const patched = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      body: { name: "renamed", scopes: ["read", "write"], rotation_interval_days: 7 },
    });
    expect(patched.status).toBe(200);
    expect(patched.body).toMatchObject({
      name: "renamed",
      scopes: ["read", "write"],
      rotation_interval_days: 7,
    });
    expect(patched.body.next_rotation_at).toMatch(RFC3339_UTC);
    expect((await verify(key.key, { required_scopes: ["write"] })).body.valid).toBe(true);

    const cleared = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      body: {
        rotation_interval_days: null,
        expires_at: new Date(Date.now() + 60_000).toISOString(),
      },
    });
    expect(cleared.body).toMatchObject({ rotation_interval_days: null, next_rotation_at: null });
    expect(cleared.body.expires_at).toMatch(RFC3339_UTC);
  });

  it("refuses to patch a revoked key", async () => {
    const key = await newKey(org.admin, org.project.id);
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });
    const patched = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      body: { name: "x" },
    });
    expect(patched.status).toBe(409);
  });

  it("keeps an expired key dead: a PATCH of its expiry (or anything) is a 409", async () => {
    const key = await newKey(org.admin, org.project.id, {
      expires_at: new Date(Date.now() + 60_000).toISOString(),
    });
    // Expire it in storage, as the clock would a minute on.
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
      .bind(Date.now() - 1000, key.id)
      .run();
    for (const body of [
      { expires_at: new Date(Date.now() + 86_400_000).toISOString() },
      { expires_at: null },
      { name: "revived?" },
    ]) {
      const patched = await call("PATCH", `/v1/api-keys/${key.id}`, { token: org.admin, body });
      expect(patched.status, JSON.stringify(body)).toBe(409);
    }
    expect((await verify(key.key)).body.code).toBe("EXPIRED");
  });

  it("answers 404 for a key that does not exist", async () => {
    const id = crypto.randomUUID();
    expect((await call("GET", `/v1/api-keys/${id}`, { token: org.admin })).status).toBe(404);
    expect((await call("DELETE", `/v1/api-keys/${id}`, { token: org.admin })).status).toBe(404);
    expect(
      (await call("POST", `/v1/api-keys/${id}/rotate`, { token: org.admin, body: {} })).status,
    ).toBe(404);
    expect(
      (await call("PATCH", `/v1/api-keys/${id}`, { token: org.admin, body: { name: "x" } })).status,
    ).toBe(404);
  });

  it("lets members manage ordinary project keys", async () => {
    const key = await newKey(org.member, org.project.id);
    expect(key.created_by_user_id).toMatch(/^user_member_/);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.member,
      body: {},
    });
    expect(rotated.status).toBe(201);
  });
});
