import { beforeAll, describe, expect, it } from "vitest";
import { call, newKey, newOrg, nextLink } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;
type AuditEvent = {
  action: string;
  actor_type: string;
  actor_id: string;
  target_id: string;
  target_type: string;
  ip: string | null;
  user_agent: string | null;
  created_at: string;
  metadata: Record<string, unknown>;
};

describe("audit log", () => {
  let org: Org;
  const secrets: string[] = [];
  let keyId: string;
  let byKeyId: string;
  let actingKey: { id: string; key: string };

  beforeAll(async () => {
    org = await newOrg("audit");
    secrets.push(org.project.webhook_signing_secret);
    const headers = { "cf-connecting-ip": "203.0.113.7", "user-agent": "audit-test/1.0" };
    const created = await call("POST", "/v1/api-keys", {
      token: org.admin,
      headers,
      body: { project_id: org.project.id, name: "audited", scopes: ["x"] },
    });
    keyId = created.body.id;
    secrets.push(created.body.key);
    await call("PATCH", `/v1/api-keys/${keyId}`, {
      token: org.admin,
      headers,
      body: { name: "renamed" },
    });
    const rotated = await call("POST", `/v1/api-keys/${keyId}/rotate`, {
      token: org.admin,
      headers,
      body: {},
    });
    secrets.push(rotated.body.key);
    await call("DELETE", `/v1/api-keys/${rotated.body.new_key_id}`, { token: org.admin, headers });
    actingKey = await newKey(org.admin, org.project.id, { scopes: ["keys:write", "audit:read"] });
    secrets.push(actingKey.key);
    const byKey = await call("POST", "/v1/api-keys", {
      token: actingKey.key,
      body: { project_id: org.project.id, name: "by key" },
    });
    byKeyId = byKey.body.id;
    secrets.push(byKey.body.key);
  });

  it("records who did what to which target, when and from where, newest first", async () => {
    const response = await call("GET", `/v1/organizations/${org.org}/audit-log`, {
      token: org.member,
    });
    expect(response.status).toBe(200);
    const events: AuditEvent[] = response.body.audit_events;
    const actions = events.map((e) => e.action);
    expect(actions).toEqual([
      "api_key.created",
      "api_key.created",
      "api_key.revoked",
      "api_key.rotated",
      "api_key.updated",
      "api_key.created",
      "project.created",
    ]);
    const [byKey, , revoked, rotated, updated, created] = events as AuditEvent[] & { length: 7 };
    expect(created).toMatchObject({
      actor_type: "user",
      target_type: "api_key",
      target_id: keyId,
      ip: "203.0.113.7",
      user_agent: "audit-test/1.0",
    });
    expect(created?.actor_id).toMatch(/^user_admin_/);
    expect(updated?.metadata).toEqual({ fields: ["name"] });
    expect(rotated?.target_id).toBe(keyId);
    expect(revoked?.action).toBe("api_key.revoked");
    expect(byKey).toMatchObject({
      actor_type: "api_key",
      actor_id: actingKey.id,
      target_id: byKeyId,
    });
    for (const event of events) expect(Date.parse(event.created_at)).not.toBeNaN();
  });

  it("never contains a plaintext key, a key hash or a webhook secret", async () => {
    const response = await call("GET", `/v1/organizations/${org.org}/audit-log?limit=100`, {
      token: org.admin,
    });
    for (const secret of secrets) expect(response.text).not.toContain(secret);
    expect(response.text).not.toMatch(/[0-9a-f]{64}/);
  });

  it("pages with Link rel=next", async () => {
    const first = await call("GET", `/v1/organizations/${org.org}/audit-log?limit=3`, {
      token: org.admin,
    });
    expect(first.body.audit_events).toHaveLength(3);
    const next = nextLink(first.headers) as string;
    const second = await call("GET", next, { token: org.admin });
    expect(second.body.audit_events).toHaveLength(3);
    expect(second.body.audit_events[0].action).toBe("api_key.rotated");
  });

  it("needs audit:read for keys, and is the caller's org only", async () => {
    const noScope = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const path = `/v1/organizations/${org.org}/audit-log`;
    expect((await call("GET", path, { token: noScope.key })).status).toBe(403);
    const other = await newOrg("audit-other");
    expect((await call("GET", path, { token: other.admin })).status).toBe(404);
    expect((await call("GET", path)).status).toBe(401);
  });
});
