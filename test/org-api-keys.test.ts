// Seed 000: org and project-scoped key management under /v1/organizations/{orgID}/api-keys.
import { beforeAll, describe, expect, it } from "vitest";
import { call, newKey, newOrg, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

const SEED_000_FIELDS = [
  "created_at",
  "created_by_user_id",
  "device_name",
  "expires_at",
  "id",
  "is_active",
  "key_prefix",
  "last_used_at",
  "name",
  "organization_id",
  "project_id",
  "revoked_at",
  "scopes",
  "source",
].sort();

describe("seed 000 organization API keys", () => {
  let org: Org;
  let base: string;
  beforeAll(async () => {
    org = await newOrg("seed000");
    base = `/v1/organizations/${org.org}/api-keys`;
  });

  it("creates an org-scoped key with exactly the 14 documented fields", async () => {
    const created = await call("POST", base, {
      token: org.admin,
      body: { name: "ops", scopes: ["keys:read", "projects:read"], device_name: "laptop" },
    });
    expect(created.status).toBe(201);
    expect(Object.keys(created.body).sort()).toEqual(["api_key", "plaintext_api_key"]);
    expect(Object.keys(created.body.api_key).sort()).toEqual(SEED_000_FIELDS);
    expect(created.body.plaintext_api_key).toMatch(/^capy_live_/);
    expect(created.body.api_key).toMatchObject({
      organization_id: org.org,
      project_id: null,
      name: "ops",
      scopes: ["keys:read", "projects:read"],
      device_name: "laptop",
      source: "dashboard",
      is_active: true,
      revoked_at: null,
    });
    expect(created.body.api_key.created_by_user_id).toMatch(/^user_admin_/);
  });

  it("creates a project key with a named environment", async () => {
    const created = await call("POST", base, {
      token: org.member,
      body: { name: "svc", scopes: ["deploy"], project_id: org.project.id, environment: "test" },
    });
    expect(created.status).toBe(201);
    expect(created.body.plaintext_api_key).toMatch(/^capy_test_/);
    expect(created.body.api_key.project_id).toBe(org.project.id);
    const unknownEnv = await call("POST", base, {
      token: org.admin,
      body: { name: "svc", scopes: [], project_id: org.project.id, environment: "nope" },
    });
    expect(unknownEnv.status).toBe(400);
    expect(unknownEnv.body.errors[0].location).toBe("body.environment");
  });

  it("requires name and scopes", async () => {
    const response = await call("POST", base, { token: org.admin, body: {} });
    expect(response.status).toBe(400);
    const locations = response.body.errors.map((e: { location: string }) => e.location);
    expect(locations).toEqual(expect.arrayContaining(["body.name", "body.scopes"]));
  });

  it("lists org-scoped and project keys, filtered by project_id", async () => {
    const fresh = await newOrg("seed000list");
    const path = `/v1/organizations/${fresh.org}/api-keys`;
    const orgKey = await call("POST", path, {
      token: fresh.admin,
      body: { name: "o", scopes: [] },
    });
    const projectKey = await newKey(fresh.admin, fresh.project.id);
    const all = await call("GET", path, { token: fresh.admin });
    expect(all.status).toBe(200);
    expect(Object.keys(all.body)).toEqual(["api_keys"]);
    expect(all.body.api_keys.map((k: { id: string }) => k.id)).toEqual([
      orgKey.body.api_key.id,
      projectKey.id,
    ]);
    for (const key of all.body.api_keys) expect(Object.keys(key).sort()).toEqual(SEED_000_FIELDS);
    const filtered = await call("GET", `${path}?project_id=${fresh.project.id}`, {
      token: fresh.admin,
    });
    expect(filtered.body.api_keys.map((k: { id: string }) => k.id)).toEqual([projectKey.id]);
  });

  it("revokes with 200 { revoked: true }", async () => {
    const key = await newKey(org.admin, org.project.id);
    const response = await call("DELETE", `${base}/${key.id}`, { token: org.admin });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ revoked: true });
    expect((await verify(key.key)).body.code).toBe("REVOKED");
  });

  it("answers 404 when orgID is not the caller's organization", async () => {
    const other = await newOrg("seed000other");
    const key = await newKey(other.admin, other.project.id);
    const path = `/v1/organizations/${other.org}/api-keys`;
    expect((await call("GET", path, { token: org.admin })).status).toBe(404);
    expect(
      (await call("POST", path, { token: org.admin, body: { name: "x", scopes: [] } })).status,
    ).toBe(404);
    expect((await call("DELETE", `${path}/${key.id}`, { token: org.admin })).status).toBe(404);
    // Through its own org path, the key of another org is not found either.
    expect((await call("DELETE", `${base}/${key.id}`, { token: org.admin })).status).toBe(404);
    expect((await verify(key.key)).body.valid).toBe(true);
  });
});

describe("roles and org-scoped keys", () => {
  let org: Org;
  let base: string;
  let orgKey: { plaintext_api_key: string; api_key: { id: string } };
  beforeAll(async () => {
    org = await newOrg("roles");
    base = `/v1/organizations/${org.org}/api-keys`;
    const created = await call("POST", base, {
      token: org.admin,
      body: {
        name: "automation",
        scopes: ["keys:read", "keys:write", "projects:read", "projects:write"],
      },
    });
    orgKey = created.body;
  });

  it("only admins create org-scoped keys", async () => {
    const member = await call("POST", base, { token: org.member, body: { name: "x", scopes: [] } });
    expect(member.status).toBe(403);
    const byKey = await call("POST", base, {
      token: orgKey.plaintext_api_key,
      body: { name: "x", scopes: [] },
    });
    expect(byKey.status).toBe(403);
  });

  it("an org-scoped key holding * acts as an org admin; a project key holding * does not", async () => {
    const full = await call("POST", base, {
      token: org.admin,
      body: { name: "admin automation", scopes: ["*"] },
    });
    const token = full.body.plaintext_api_key as string;
    // The seed's own example, with the seed's own credential: an org-scoped key.
    const created = await call("POST", base, { token, body: { name: "string", scopes: ["x"] } });
    expect(created.status).toBe(201);
    expect(created.body.api_key).toMatchObject({ project_id: null, source: "api" });
    const managed = await call("POST", `/api/v1/projects/${org.project.id}/keys`, {
      token,
      body: { is_admin_managed: true },
    });
    expect(managed.status).toBe(201);
    const revoked = await call("DELETE", `${base}/${created.body.api_key.id}`, { token });
    expect(revoked.body).toEqual({ revoked: true });

    const projectStar = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    for (const [path, body] of [
      [base, { name: "x", scopes: [] }],
      [`/api/v1/projects/${org.project.id}/keys`, { is_admin_managed: true }],
    ] as const) {
      expect((await call("POST", path, { token: projectStar.key, body })).status, path).toBe(403);
    }
    expect(
      (
        await call("GET", `/v1/projects/${org.project.id}/webhook-secret`, {
          token: projectStar.key,
        })
      ).status,
    ).toBe(403);
  });

  it("refuses a rotation webhook or a rotation schedule on an org-scoped key", async () => {
    const target = await call("POST", base, { token: org.admin, body: { name: "t", scopes: [] } });
    const id = target.body.api_key.id;
    for (const [field, value] of [
      ["rotation_webhook_url", "https://hooks.example/org"],
      ["rotation_interval_days", 30],
    ] as const) {
      const patched = await call("PATCH", `/v1/api-keys/${id}`, {
        token: org.admin,
        body: { [field]: value },
      });
      expect(patched.status, field).toBe(400);
      expect(patched.body.errors[0].location).toBe(`body.${field}`);
    }
    const unchanged = await call("GET", `/v1/api-keys/${id}`, { token: org.admin });
    expect(unchanged.body).toMatchObject({ rotation_interval_days: null, next_rotation_at: null });
  });

  it("members see no org-scoped key: not in the organization's list, not by id", async () => {
    const own = await newOrg("org-keys-members");
    const orgWide = await call("POST", `/v1/organizations/${own.org}/api-keys`, {
      token: own.admin,
      body: { name: "wide", scopes: ["*"] },
    });
    const projectKey = await newKey(own.admin, own.project.id);
    const listed = (token: string) =>
      call("GET", `/v1/organizations/${own.org}/api-keys`, { token }).then((r) =>
        r.body.api_keys.map((k: { id: string }) => k.id),
      );
    expect(await listed(own.admin)).toEqual(
      expect.arrayContaining([orgWide.body.api_key.id, projectKey.id]),
    );
    const memberSees = await listed(own.member);
    expect(memberSees).toContain(projectKey.id);
    expect(memberSees).not.toContain(orgWide.body.api_key.id);
    const byId = await call("GET", `/v1/api-keys/${orgWide.body.api_key.id}`, {
      token: own.member,
    });
    expect(byId.status).toBe(403);
    expect(byId.text).not.toContain("wide");
    expect(
      (await call("GET", `/v1/api-keys/${orgWide.body.api_key.id}`, { token: own.admin })).status,
    ).toBe(200);
  });

  it("only admins revoke or rotate org-scoped keys", async () => {
    const target = await call("POST", base, { token: org.admin, body: { name: "t", scopes: [] } });
    const id = target.body.api_key.id;
    expect((await call("DELETE", `${base}/${id}`, { token: org.member })).status).toBe(403);
    expect(
      (await call("POST", `/v1/api-keys/${id}/rotate`, { token: org.member, body: {} })).status,
    ).toBe(403);
    expect((await call("DELETE", `${base}/${id}`, { token: org.admin })).status).toBe(200);
  });

  it("an org key manages every project of its org", async () => {
    const second = await call("POST", "/v1/projects", {
      token: orgKey.plaintext_api_key,
      body: { name: "made by org key" },
    });
    expect(second.status).toBe(201);
    for (const projectId of [org.project.id, second.body.id]) {
      const created = await call("POST", base, {
        token: orgKey.plaintext_api_key,
        body: { name: "k", scopes: ["deploy"], project_id: projectId },
      });
      expect(created.status).toBe(201);
      expect(created.body.api_key).toMatchObject({
        source: "api",
        created_by_user_id: orgKey.api_key.id,
      });
      const revoked = await call("DELETE", `${base}/${created.body.api_key.id}`, {
        token: orgKey.plaintext_api_key,
      });
      expect(revoked.body).toEqual({ revoked: true });
    }
    const listed = await call("GET", base, { token: orgKey.plaintext_api_key });
    expect(listed.body.api_keys.length).toBeGreaterThan(2);
  });

  it("an org key reaches nothing outside its org", async () => {
    const other = await newOrg("roles-other");
    const foreign = await newKey(other.admin, other.project.id);
    const token = orgKey.plaintext_api_key;
    expect((await call("GET", `/v1/projects/${other.project.id}`, { token })).status).toBe(404);
    expect((await call("GET", `/v1/api-keys/${foreign.id}`, { token })).status).toBe(404);
    expect(
      (await call("GET", `/v1/api-keys?project_id=${other.project.id}`, { token })).status,
    ).toBe(404);
    expect((await call("GET", `/v1/organizations/${other.org}/api-keys`, { token })).status).toBe(
      404,
    );
  });

  it("a project key sees only its project's keys in the org list", async () => {
    const second = await call("POST", "/v1/projects", { token: org.admin, body: { name: "P2" } });
    const elsewhere = await newKey(org.admin, second.body.id);
    const projectKey = await newKey(org.admin, org.project.id, {
      scopes: ["keys:read", "keys:write"],
    });
    const listed = await call("GET", base, { token: projectKey.key });
    expect(listed.status).toBe(200);
    const ids = listed.body.api_keys.map((k: { id: string; project_id: string }) => k.project_id);
    expect(new Set(ids)).toEqual(new Set([org.project.id]));
    expect(
      (await call("DELETE", `${base}/${elsewhere.id}`, { token: projectKey.key })).status,
    ).toBe(404);
    expect(
      (await call("DELETE", `${base}/${orgKey.api_key.id}`, { token: projectKey.key })).status,
    ).toBe(404);
    const orgWide = await call("POST", base, {
      token: projectKey.key,
      body: { name: "x", scopes: [] },
    });
    expect(orgWide.status).toBe(403);
  });
});
