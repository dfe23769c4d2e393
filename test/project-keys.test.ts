// Seed 002: dashboard project keys under /api/v1/projects/{projectId}/keys.
import { beforeAll, describe, expect, it } from "vitest";
import { call, newKey, newOrg, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

const SEED_002_FIELDS = [
  "created_at",
  "created_by",
  "expires_at",
  "is_active",
  "is_admin_managed",
  "key_id",
  "key_prefix",
  "last_used_at",
  "name",
  "project_id",
  "scopes",
  "tenant_id",
].sort();

describe("seed 002 project keys", () => {
  let org: Org;
  let base: string;
  beforeAll(async () => {
    org = await newOrg("seed002");
    base = `/api/v1/projects/${org.project.id}/keys`;
  });

  it("creates a key from an empty body", async () => {
    const created = await call("POST", base, { token: org.member, body: {} });
    expect(created.status).toBe(201);
    expect(Object.keys(created.body).sort()).toEqual(["$schema", "key", ...SEED_002_FIELDS].sort());
    expect(created.body).toMatchObject({
      $schema: "/api/v1/schemas/CreateAPIKeyOutputBody.json",
      name: "Untitled key",
      scopes: [],
      expires_at: null,
      is_admin_managed: false,
      is_active: true,
      project_id: org.project.id,
      tenant_id: org.org,
      last_used_at: null,
    });
    expect(created.body.created_by).toMatch(/^user_member_/);
    expect((await verify(created.body.key)).body).toMatchObject({
      valid: true,
      key_id: created.body.key_id,
    });
  });

  it("creates a key from a bare POST without a body", async () => {
    const created = await call("POST", base, { token: org.admin });
    expect(created.status).toBe(201);
    expect(created.body.name).toBe("Untitled key");
  });

  it("accepts name, scopes, expires_at and ignores a $schema member", async () => {
    const expires = new Date(Date.now() + 3_600_000).toISOString();
    const created = await call("POST", base, {
      token: org.admin,
      body: {
        $schema: "/api/v1/schemas/CreateAPIKeyInputBody.json",
        name: "n",
        scopes: ["x"],
        expires_at: expires,
      },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "n", scopes: ["x"], expires_at: expires });
  });

  it("lists the project's keys as a bare array with seed 002 names", async () => {
    const fresh = await newOrg("seed002list");
    const path = `/api/v1/projects/${fresh.project.id}/keys`;
    const a = await call("POST", path, { token: fresh.admin, body: { name: "a" } });
    const b = await call("POST", path, { token: fresh.admin, body: { name: "b" } });
    const listed = await call("GET", path, { token: fresh.admin });
    expect(listed.status).toBe(200);
    expect(Array.isArray(listed.body)).toBe(true);
    expect(listed.body.map((k: { key_id: string }) => k.key_id)).toEqual([
      a.body.key_id,
      b.body.key_id,
    ]);
    for (const key of listed.body) expect(Object.keys(key).sort()).toEqual(SEED_002_FIELDS);
    expect(listed.text).not.toContain(a.body.key);
  });

  it("revokes with { $schema, success: true }", async () => {
    const created = await call("POST", base, { token: org.admin, body: {} });
    const revoked = await call("DELETE", `${base}/${created.body.key_id}`, { token: org.admin });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toEqual({
      $schema: "/api/v1/schemas/RevokeAPIKeyOutputBody.json",
      success: true,
    });
    expect((await verify(created.body.key)).body.code).toBe("REVOKED");
    const listed = await call("GET", base, { token: org.admin });
    const entry = listed.body.find((k: { key_id: string }) => k.key_id === created.body.key_id);
    expect(entry.is_active).toBe(false);
  });

  it("answers 404 for a key of another project in the path", async () => {
    const second = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "second" },
    });
    const key = await newKey(org.admin, second.body.id);
    const response = await call("DELETE", `${base}/${key.id}`, { token: org.admin });
    expect(response.status).toBe(404);
    expect(response.headers.get("content-type")).toContain("application/problem+json");
    expect((await verify(key.key)).body.valid).toBe(true);
  });

  it("answers 404 for another organization's project", async () => {
    const other = await newOrg("seed002other");
    const path = `/api/v1/projects/${other.project.id}/keys`;
    expect((await call("GET", path, { token: org.admin })).status).toBe(404);
    expect((await call("POST", path, { token: org.admin, body: {} })).status).toBe(404);
    const key = await newKey(other.admin, other.project.id);
    expect((await call("DELETE", `${path}/${key.id}`, { token: org.admin })).status).toBe(404);
    const unknown = await call("GET", `/api/v1/projects/${crypto.randomUUID()}/keys`, {
      token: org.admin,
    });
    expect(unknown.status).toBe(404);
    expect(unknown.body.$schema).toBe("/api/v1/schemas/ErrorModel.json");
  });
});

describe("seed 002 $schema documents", () => {
  it("serves every $schema the surface emits as a JSON Schema that its bodies satisfy", async () => {
    const org = await newOrg("schemas");
    const base = `/api/v1/projects/${org.project.id}/keys`;
    const created = await call("POST", base, { token: org.admin, body: { name: "s" } });
    const revoked = await call("DELETE", `${base}/${created.body.key_id}`, { token: org.admin });
    const failed = await call("DELETE", `${base}/${crypto.randomUUID()}`, { token: org.admin });
    for (const response of [created, revoked, failed]) {
      const url = response.body.$schema as string;
      expect(url).toMatch(/^\/api\/v1\/schemas\/\w+\.json$/);
      const served = await call("GET", url);
      expect(served.status, url).toBe(200);
      expect(served.body).toMatchObject({ $id: url, type: "object" });
      // Every member of the body is declared, and every required one is present.
      const { properties, required } = served.body as {
        properties: Record<string, unknown>;
        required: string[];
      };
      for (const member of Object.keys(response.body))
        expect(properties, member).toHaveProperty(member);
      for (const member of required) expect(response.body, member).toHaveProperty(member);
    }
    const missing = await call("GET", "/api/v1/schemas/Nope.json");
    expect(missing.status).toBe(404);
    expect(missing.body.$schema).toBe("/api/v1/schemas/ErrorModel.json");
  });
});

describe("admin-managed keys", () => {
  let org: Org;
  let base: string;
  beforeAll(async () => {
    org = await newOrg("adminmanaged");
    base = `/api/v1/projects/${org.project.id}/keys`;
  });

  it("only org admins create them", async () => {
    const member = await call("POST", base, {
      token: org.member,
      body: { is_admin_managed: true },
    });
    expect(member.status).toBe(403);
    const key = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    const byKey = await call("POST", base, { token: key.key, body: { is_admin_managed: true } });
    expect(byKey.status).toBe(403);
    const admin = await call("POST", base, { token: org.admin, body: { is_admin_managed: true } });
    expect(admin.status).toBe(201);
    expect(admin.body.is_admin_managed).toBe(true);
  });

  it("only org admins revoke or rotate them, on every surface", async () => {
    const created = await call("POST", base, {
      token: org.admin,
      body: { is_admin_managed: true },
    });
    const id = created.body.key_id;
    const token = org.member;
    expect((await call("DELETE", `${base}/${id}`, { token })).status).toBe(403);
    expect((await call("DELETE", `/v1/api-keys/${id}`, { token })).status).toBe(403);
    expect(
      (await call("DELETE", `/v1/organizations/${org.org}/api-keys/${id}`, { token })).status,
    ).toBe(403);
    expect((await call("POST", `/v1/api-keys/${id}/rotate`, { token, body: {} })).status).toBe(403);
    expect(
      (await call("PATCH", `/v1/api-keys/${id}`, { token, body: { scopes: ["*"] } })).status,
    ).toBe(403);
    expect((await verify(created.body.key)).body.valid).toBe(true);
    const rotated = await call("POST", `/v1/api-keys/${id}/rotate`, { token: org.admin, body: {} });
    expect(rotated.status).toBe(201);
    const fresh = await call("GET", `/v1/api-keys/${rotated.body.new_key_id}`, {
      token: org.admin,
    });
    expect(fresh.body.is_admin_managed).toBe(true);
    expect(
      (await call("DELETE", `${base}/${rotated.body.new_key_id}`, { token: org.admin })).status,
    ).toBe(200);
  });
});
