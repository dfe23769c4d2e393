import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, newOrg } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

describe("projects and environments", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("projects");
  });

  it("creates a project with live and test environments and a signing secret shown once", async () => {
    const created = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "Billing" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      name: "Billing",
      organization_id: org.org,
      key_prefix: "capy",
    });
    expect(created.body.environments.map((e: { name: string }) => e.name)).toEqual([
      "live",
      "test",
    ]);
    expect(created.body.webhook_signing_secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const fetched = await call("GET", `/v1/projects/${created.body.id}`, { token: org.admin });
    expect(fetched.body).not.toHaveProperty("webhook_signing_secret");
    // Stored encrypted: the secret is nowhere in D1.
    const row = await env.DB.prepare("select * from projects where id = ?")
      .bind(created.body.id)
      .first();
    expect(JSON.stringify(row)).not.toContain(created.body.webhook_signing_secret.slice(6));
  });

  it("uses a custom key prefix for the project's keys", async () => {
    const created = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "Acme", key_prefix: "acme" },
    });
    const key = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: created.body.id, name: "k" },
    });
    expect(key.body.key).toMatch(/^acme_live_/);
    const bad = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "Bad", key_prefix: "has_underscore" },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors[0].location).toBe("body.key_prefix");
  });

  it("lists, gets and patches projects", async () => {
    const fresh = await newOrg("projects-list");
    const second = await call("POST", "/v1/projects", {
      token: fresh.admin,
      body: { name: "Second" },
    });
    const listed = await call("GET", "/v1/projects", { token: fresh.member });
    expect(listed.status).toBe(200);
    expect(listed.body.projects.map((p: { id: string }) => p.id)).toEqual([
      fresh.project.id,
      second.body.id,
    ]);
    const patched = await call("PATCH", `/v1/projects/${second.body.id}`, {
      token: fresh.admin,
      body: { name: "Renamed" },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.name).toBe("Renamed");
    expect(Date.parse(patched.body.updated_at)).toBeGreaterThanOrEqual(
      Date.parse(patched.body.created_at),
    );
    const fetched = await call("GET", `/v1/projects/${second.body.id}`, { token: fresh.admin });
    expect(fetched.body.name).toBe("Renamed");
    await call("PATCH", `/v1/projects/${second.body.id}`, {
      token: fresh.admin,
      body: { key_prefix: "renamed" },
    });
    // The audit log says what changed by the project object's field names.
    const log = await call("GET", `/v1/organizations/${fresh.org}/audit-log?limit=100`, {
      token: fresh.admin,
    });
    const updates = log.body.audit_events
      .filter((e: { action: string }) => e.action === "project.updated")
      .map((e: { metadata: unknown }) => e.metadata);
    expect(updates).toEqual([
      { changes: { key_prefix: "renamed" } },
      { changes: { name: "Renamed" } },
    ]);
  });

  it("lists and creates environments; a duplicate name is a 409", async () => {
    const path = `/v1/projects/${org.project.id}/environments`;
    const created = await call("POST", path, { token: org.admin, body: { name: "staging" } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ name: "staging", project_id: org.project.id });
    const listed = await call("GET", path, { token: org.admin });
    expect(listed.body.environments.map((e: { name: string }) => e.name)).toEqual([
      "live",
      "test",
      "staging",
    ]);
    const duplicate = await call("POST", path, { token: org.admin, body: { name: "staging" } });
    expect(duplicate.status).toBe(409);
    const invalid = await call("POST", path, { token: org.admin, body: { name: "Not A Slug" } });
    expect(invalid.status).toBe(400);
    const key = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "k", environment_id: created.body.id },
    });
    expect(key.body.key).toMatch(/^capy_staging_/);
  });

  it("shows the webhook secret to org admins only, and rotates it", async () => {
    const created = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "Hooks" },
    });
    const path = `/v1/projects/${created.body.id}/webhook-secret`;
    const read = await call("GET", path, { token: org.admin });
    expect(read.status).toBe(200);
    expect(read.body).toEqual({
      webhook_signing_secret: created.body.webhook_signing_secret,
      previous_webhook_signing_secret: null,
      previous_secret_expires_at: null,
    });
    expect((await call("GET", path, { token: org.member })).status).toBe(403);
    expect((await call("POST", path, { token: org.member })).status).toBe(403);
    const rotated = await call("POST", path, { token: org.admin });
    expect(rotated.status).toBe(200);
    expect(rotated.body.webhook_signing_secret).not.toBe(created.body.webhook_signing_secret);
    expect(rotated.body.previous_webhook_signing_secret).toBe(created.body.webhook_signing_secret);
    expect(Date.parse(rotated.body.previous_secret_expires_at)).toBeGreaterThan(
      Date.now() + 23 * 3_600_000,
    );
  });

  it("keeps project keys to their project and read-only keys read-only", async () => {
    const reader = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "reader", scopes: ["projects:read"] },
    });
    const token = reader.body.key;
    expect((await call("GET", `/v1/projects/${org.project.id}`, { token })).status).toBe(200);
    const listed = await call("GET", "/v1/projects", { token });
    expect(listed.body.projects.map((p: { id: string }) => p.id)).toEqual([org.project.id]);
    expect(
      (await call("PATCH", `/v1/projects/${org.project.id}`, { token, body: { name: "x" } }))
        .status,
    ).toBe(403);
    expect((await call("POST", "/v1/projects", { token, body: { name: "x" } })).status).toBe(403);
  });
});
