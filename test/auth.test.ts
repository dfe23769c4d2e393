import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { SignJWT } from "jose";
import { beforeAll, describe, expect, it } from "vitest";
import { createCore } from "../src/context";
import { authenticate } from "../src/core/authenticate";
import { DomainError } from "../src/core/errors";
import { call, newKey, newOrg, sessionToken, verify } from "./helpers";

const b64url = (value: string) =>
  btoa(value).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");

function expectUnauthorized(response: Awaited<ReturnType<typeof call>>) {
  expect(response.status).toBe(401);
  expect(response.headers.get("www-authenticate")).toBe("Bearer");
  expect(response.headers.get("content-type")).toContain("application/problem+json");
  expect(response.body).toMatchObject({ status: 401, title: "Unauthorized" });
  expect(response.body.error).toBe(response.body.detail);
}

describe("Clerk session tokens", () => {
  it("accepts a valid v2 token and scopes the caller to its active org", async () => {
    const token = await sessionToken({ org: "org_auth_v2" });
    const response = await call("GET", "/v1/projects", { token });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ projects: [] });
  });

  it("accepts v1 claims (org_id, org_role = org:admin)", async () => {
    const admin = await sessionToken({ org: "org_auth_v1", version: 1, role: "admin" });
    const member = await sessionToken({ org: "org_auth_v1", version: 1, role: "member" });
    const orgKey = await call("POST", "/v1/organizations/org_auth_v1/api-keys", {
      token: admin,
      body: { name: "org key", scopes: ["keys:read"] },
    });
    expect(orgKey.status).toBe(201);
    const denied = await call("POST", "/v1/organizations/org_auth_v1/api-keys", {
      token: member,
      body: { name: "org key", scopes: ["keys:read"] },
    });
    expect(denied.status).toBe(403);
  });

  it("rejects a request without credentials with 401 and WWW-Authenticate: Bearer", async () => {
    expectUnauthorized(await call("GET", "/v1/projects"));
    expectUnauthorized(
      await call("GET", "/v1/projects", { headers: { authorization: "Basic Zm9vOmJhcg==" } }),
    );
    expectUnauthorized(await call("GET", "/v1/projects", { headers: { authorization: "Bearer" } }));
  });

  it("rejects a tampered token", async () => {
    const token = await sessionToken({ org: "org_a", role: "member" });
    const [head, payload, signature] = token.split(".") as [string, string, string];
    const claims = JSON.parse(atob(payload.replaceAll("-", "+").replaceAll("_", "/")));
    claims.o.rol = "admin";
    expectUnauthorized(
      await call("GET", "/v1/projects", {
        token: `${head}.${b64url(JSON.stringify(claims))}.${signature}`,
      }),
    );
  });

  it("rejects an expired token", async () => {
    const token = await sessionToken({ expiresIn: -60 });
    expectUnauthorized(await call("GET", "/v1/projects", { token }));
  });

  it("rejects a token signed with another key", async () => {
    const token = await sessionToken({ privateKey: env.TEST_OTHER_PRIVATE_KEY });
    expectUnauthorized(await call("GET", "/v1/projects", { token }));
  });

  it('rejects alg "none"', async () => {
    const now = Math.floor(Date.now() / 1000);
    const head = b64url(JSON.stringify({ alg: "none", typ: "JWT" }));
    const body = b64url(
      JSON.stringify({
        sub: "user_x",
        o: { id: "org_x", rol: "admin" },
        iat: now,
        nbf: now,
        exp: now + 600,
      }),
    );
    expectUnauthorized(await call("GET", "/v1/projects", { token: `${head}.${body}.` }));
  });

  it("rejects HS256 signed with the public key (algorithm confusion)", async () => {
    const now = Math.floor(Date.now() / 1000);
    const token = await new SignJWT({ o: { id: "org_x", rol: "admin" } })
      .setProtectedHeader({ alg: "HS256" })
      .setSubject("user_x")
      .setIssuedAt(now)
      .setExpirationTime(now + 600)
      .sign(new TextEncoder().encode(env.CLERK_JWT_KEY));
    expectUnauthorized(await call("GET", "/v1/projects", { token }));
  });

  it("rejects garbage", async () => {
    expectUnauthorized(await call("GET", "/v1/projects", { token: "not-a-token" }));
    expectUnauthorized(await call("GET", "/v1/projects", { token: "a.b.c" }));
  });

  it("answers 403 when the session has no active organization", async () => {
    const token = await sessionToken({ org: null });
    const response = await call("GET", "/v1/projects", { token });
    expect(response.status).toBe(403);
    expect(response.body.detail).toMatch(/organization/);
  });

  it("treats a session with pending tasks (sts: pending) as signed out: 401", async () => {
    const pending = await sessionToken({ org: "org_pending", claims: { sts: "pending" } });
    expectUnauthorized(await call("GET", "/v1/projects", { token: pending }));
    const active = await sessionToken({ org: "org_pending", claims: { sts: "active" } });
    expect((await call("GET", "/v1/projects", { token: active })).status).toBe(200);
  });

  it("enforces CLERK_AUTHORIZED_PARTIES when set", async () => {
    const core = createCore(
      { ...env, CLERK_AUTHORIZED_PARTIES: "https://app.example.com, https://admin.example.com" },
      createExecutionContext(),
    );
    const good = await sessionToken({ azp: "https://admin.example.com" });
    const bad = await sessionToken({ azp: "https://evil.example.com" });
    await expect(authenticate(core, `Bearer ${good}`)).resolves.toMatchObject({ type: "user" });
    await expect(authenticate(core, `Bearer ${bad}`)).rejects.toBeInstanceOf(DomainError);
  });
});

describe("Keygate API keys as bearer tokens", () => {
  let org: Awaited<ReturnType<typeof newOrg>>;
  beforeAll(async () => {
    org = await newOrg("bearer");
  });

  it("lets a key with the route's scope in", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const response = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: key.key,
    });
    expect(response.status).toBe(200);
  });

  it("answers 403 for a key without the route's scope", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const response = await call("POST", "/v1/api-keys", {
      token: key.key,
      body: { project_id: org.project.id, name: "x" },
    });
    expect(response.status).toBe(403);
    expect(response.body.detail).toContain("keys:write");
  });

  it("accepts the * scope for every management route", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    const created = await call("POST", "/v1/api-keys", {
      token: key.key,
      body: { project_id: org.project.id, name: "made by a key" },
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ source: "api", created_by_user_id: key.id });
  });

  it("rejects a revoked key with 401", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });
    expectUnauthorized(
      await call("GET", `/v1/api-keys?project_id=${org.project.id}`, { token: key.key }),
    );
  });

  it("rejects a key-shaped string with a bad checksum with 401", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    const broken = `${key.key.slice(0, -1)}${key.key.endsWith("0") ? "1" : "0"}`;
    expectUnauthorized(
      await call("GET", `/v1/api-keys?project_id=${org.project.id}`, { token: broken }),
    );
  });

  it("keeps a project key inside its project", async () => {
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "Other" } });
    const key = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    const foreign = await call("GET", `/v1/api-keys?project_id=${other.body.id}`, {
      token: key.key,
    });
    expect(foreign.status).toBe(404);
    const project = await call("GET", `/v1/projects/${other.body.id}`, { token: key.key });
    expect(project.status).toBe(404);
    const own = await call("GET", `/v1/projects/${org.project.id}`, { token: key.key });
    expect(own.status).toBe(200);
  });

  it("never lets a key grant management scopes it lacks", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["keys:write"] });
    const escalate = await call("POST", "/v1/api-keys", {
      token: key.key,
      body: { project_id: org.project.id, name: "x", scopes: ["*"] },
    });
    expect(escalate.status).toBe(403);
    const freeForm = await call("POST", "/v1/api-keys", {
      token: key.key,
      body: { project_id: org.project.id, name: "x", scopes: ["billing:charge", "keys:write"] },
    });
    expect(freeForm.status).toBe(201);
  });

  it("never lets a key mint, by rotation, a key with management scopes it lacks", async () => {
    const writer = await newKey(org.admin, org.project.id, { scopes: ["keys:write"] });
    const powerful = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    const escalate = await call("POST", `/v1/api-keys/${powerful.id}/rotate`, {
      token: writer.key,
      body: {},
    });
    expect(escalate.status).toBe(403);
    expect((await verify(powerful.key)).body).toMatchObject({ valid: true, in_grace: false });

    // A key of equal or lesser power may still be rotated by it.
    const peer = await newKey(org.admin, org.project.id, { scopes: ["keys:write", "deploy"] });
    const rotated = await call("POST", `/v1/api-keys/${peer.id}/rotate`, {
      token: writer.key,
      body: {},
    });
    expect(rotated.status).toBe(201);
    expect(rotated.body.scopes).toEqual(["keys:write", "deploy"]);
  });

  it("never lets a key steer a stronger key: no PATCH of its webhook, interval or expiry", async () => {
    const writer = await newKey(org.admin, org.project.id, { scopes: ["keys:write"] });
    const powerful = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    for (const body of [
      { rotation_webhook_url: "https://attacker.example/hook", rotation_interval_days: 1 },
      { expires_at: null },
      { name: "renamed" },
    ]) {
      const steer = await call("PATCH", `/v1/api-keys/${powerful.id}`, { token: writer.key, body });
      expect(steer.status, JSON.stringify(body)).toBe(403);
    }
    const unchanged = await call("GET", `/v1/api-keys/${powerful.id}`, { token: org.admin });
    expect(unchanged.body).toMatchObject({ name: powerful.name, rotation_webhook_url: null });
    // Its peers it may still change.
    const peer = await newKey(org.admin, org.project.id, { scopes: ["keys:write", "deploy"] });
    const renamed = await call("PATCH", `/v1/api-keys/${peer.id}`, {
      token: writer.key,
      body: { name: "renamed" },
    });
    expect(renamed.status).toBe(200);
  });
});

describe("an API key's own bounds", () => {
  const HOUR = 60 * 60 * 1000;
  let org: Awaited<ReturnType<typeof newOrg>>;
  beforeAll(async () => {
    org = await newOrg("bounds");
  });
  const writerUntil = async (until: number) =>
    newKey(org.admin, org.project.id, {
      scopes: ["keys:write", "keys:read"],
      expires_at: new Date(until).toISOString(),
    });

  it("gives a key it creates without an expiry its own, and refuses a later one", async () => {
    const until = Date.now() + HOUR;
    const writer = await writerUntil(until);
    const made = await call("POST", "/v1/api-keys", {
      token: writer.key,
      body: { project_id: org.project.id, name: "child" },
    });
    expect(made.status).toBe(201);
    expect(made.body.expires_at).toBe(new Date(until).toISOString());
    const explicitNull = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: writer.key,
      body: { name: "child", scopes: [], project_id: org.project.id, expires_at: null },
    });
    expect(explicitNull.status).toBe(201);
    expect(explicitNull.body.api_key.expires_at).toBe(new Date(until).toISOString());
    const later = await call("POST", `/api/v1/projects/${org.project.id}/keys`, {
      token: writer.key,
      body: { name: "child", expires_at: new Date(until + HOUR).toISOString() },
    });
    expect(later.status).toBe(400);
    expect(later.body.errors.map((e: { location: string }) => e.location)).toEqual([
      "body.expires_at",
    ]);
    const earlier = await call("POST", "/v1/api-keys", {
      token: writer.key,
      body: {
        project_id: org.project.id,
        name: "c",
        expires_at: new Date(until - 1000).toISOString(),
      },
    });
    expect(earlier.status).toBe(201);
  });

  it("bounds a successor it rotates, and a PATCH of another key's expiry", async () => {
    const until = Date.now() + HOUR;
    const writer = await writerUntil(until);
    const forever = await newKey(org.admin, org.project.id, { scopes: ["deploy"] });
    const rotated = await call("POST", `/v1/api-keys/${forever.id}/rotate`, {
      token: writer.key,
      body: {},
    });
    expect(rotated.status).toBe(201);
    expect(rotated.body.expires_at).toBe(new Date(until).toISOString());

    const other = await newKey(org.admin, org.project.id, { scopes: ["deploy"] });
    const later = await call("PATCH", `/v1/api-keys/${other.id}`, {
      token: writer.key,
      body: { expires_at: new Date(until + HOUR).toISOString() },
    });
    expect(later.status).toBe(400);
    const removed = await call("PATCH", `/v1/api-keys/${other.id}`, {
      token: writer.key,
      body: { expires_at: null },
    });
    expect(removed.status).toBe(200);
    expect(removed.body.expires_at).toBe(new Date(until).toISOString());
  });

  it("never lets a key move its own expiry later or remove it", async () => {
    const until = Date.now() + HOUR;
    const writer = await writerUntil(until);
    const self = `/v1/api-keys/${writer.id}`;
    const later = await call("PATCH", self, {
      token: writer.key,
      body: { expires_at: new Date(until + HOUR).toISOString() },
    });
    expect(later.status).toBe(400);
    const removed = await call("PATCH", self, { token: writer.key, body: { expires_at: null } });
    expect(removed.status).toBe(200);
    expect(removed.body.expires_at).toBe(new Date(until).toISOString());
    const sooner = await call("PATCH", self, {
      token: writer.key,
      body: { expires_at: new Date(until - HOUR / 2).toISOString() },
    });
    expect(sooner.status).toBe(200);
    // A Clerk admin is not bounded.
    const admin = await call("PATCH", self, { token: org.admin, body: { expires_at: null } });
    expect(admin.body.expires_at).toBeNull();
  });

  it("revokes only keys whose management scopes it holds", async () => {
    const writer = await newKey(org.admin, org.project.id, { scopes: ["keys:write"] });
    const powerful = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    for (const path of [
      `/v1/api-keys/${powerful.id}`,
      `/v1/organizations/${org.org}/api-keys/${powerful.id}`,
      `/api/v1/projects/${org.project.id}/keys/${powerful.id}`,
    ]) {
      expect((await call("DELETE", path, { token: writer.key })).status, path).toBe(403);
    }
    expect((await verify(powerful.key)).body.valid).toBe(true);
    const peer = await newKey(org.admin, org.project.id, { scopes: ["keys:write", "deploy"] });
    expect((await call("DELETE", `/v1/api-keys/${peer.id}`, { token: writer.key })).status).toBe(
      204,
    );
  });
});
