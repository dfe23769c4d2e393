// A project's webhook endpoints (SPEC Part 3 "Key lifecycle events"): the resource, its rules,
// its limit of 10 under concurrency, who may read and change it, and the deliveries list's
// `event_type` and `endpoint_id`.
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { KEY_EVENT_TYPES, subscribes } from "../src/core/event-types";
import { d1Snapshot, expectProblem } from "./hardening";
import { call, newKey, newOrg, orgKey, RFC3339_UTC } from "./helpers";
import { deliveries, type Json, rotatedKey } from "./webhooks-harness";

type Org = Awaited<ReturnType<typeof newOrg>>;

const endpointsPath = (projectId: string) => `/v1/projects/${projectId}/webhook-endpoints`;

const create = (
  token: string,
  projectId: string,
  body: unknown,
  headers?: Record<string, string>,
) => call("POST", endpointsPath(projectId), { token, body, ...(headers ? { headers } : {}) });

async function newEndpoint(org: Org, body: Record<string, unknown> = {}) {
  const created = await create(org.admin, org.project.id, {
    url: "https://hooks.example/keygate",
    events: ["*"],
    ...body,
  });
  expect(created.status, created.text).toBe(201);
  return created.body;
}

const auditOf = async (org: Org) => {
  const log = await call("GET", `/v1/organizations/${org.org}/audit-log`, { token: org.admin });
  expect(log.status, log.text).toBe(200);
  return log.body.audit_events
    .filter((e: Json) => e.target_type === "webhook_endpoint")
    .reverse()
    .map((e: Json) => [e.action, e.target_id, e.project_id, e.metadata]);
};

const locations = (problem: Json) => problem.errors.map((e: { location: string }) => e.location);

describe("webhook endpoints: the resource", () => {
  it("is created, read, listed, changed and deleted, each change in the audit log", async () => {
    const org = await newOrg("endpoint-crud");
    const path = endpointsPath(org.project.id);
    const created = await create(org.admin, org.project.id, {
      url: "https://hooks.example/keygate",
      events: ["api_key.revoked", "api_key.leaked"],
      description: "Billing sync",
    });
    expect(created.status, created.text).toBe(201);
    const endpoint = created.body;
    expect(endpoint).toEqual({
      id: expect.any(String),
      project_id: org.project.id,
      url: "https://hooks.example/keygate",
      events: ["api_key.revoked", "api_key.leaked"],
      description: "Billing sync",
      enabled: true,
      created_at: expect.stringMatching(RFC3339_UTC),
      updated_at: expect.stringMatching(RFC3339_UTC),
    });
    expect(Object.keys(endpoint)).toHaveLength(8);
    const one = `${path}/${endpoint.id}`;
    expect((await call("GET", one, { token: org.admin })).body).toEqual(endpoint);
    const second = await newEndpoint(org, { url: "http://localhost:9000/hooks" });
    expect(second).toMatchObject({ events: ["*"], description: null, enabled: true });
    // Members read.
    const listed = await call("GET", path, { token: org.member });
    expect(listed.status, listed.text).toBe(200);
    expect(listed.body).toEqual({ webhook_endpoints: [endpoint, second] });

    const patched = await call("PATCH", one, {
      token: org.admin,
      body: {
        url: "https://hooks.example:443/other",
        events: ["*"],
        description: null,
        enabled: false,
      },
    });
    expect(patched.status, patched.text).toBe(200);
    expect(patched.body).toEqual({
      ...endpoint,
      url: "https://hooks.example/other",
      events: ["*"],
      description: null,
      enabled: false,
      updated_at: expect.stringMatching(RFC3339_UTC),
    });
    expect((await call("GET", one, { token: org.admin })).body).toEqual(patched.body);
    // An empty PATCH changes nothing and records nothing.
    expect((await call("PATCH", one, { token: org.admin, body: {} })).body).toEqual(patched.body);
    const enabled = await call("PATCH", one, { token: org.admin, body: { enabled: true } });
    expect(enabled.body).toMatchObject({ enabled: true, url: "https://hooks.example/other" });

    const deleted = await call("DELETE", one, { token: org.admin });
    expect(deleted.status).toBe(204);
    expect(deleted.text).toBe("");
    expectProblem(await call("GET", one, { token: org.admin }), 404);
    expectProblem(await call("DELETE", one, { token: org.admin }), 404);
    expect((await call("GET", path, { token: org.admin })).body).toEqual({
      webhook_endpoints: [second],
    });

    const project = org.project.id;
    expect(await auditOf(org)).toEqual([
      [
        "webhook_endpoint.created",
        endpoint.id,
        project,
        {
          url: "https://hooks.example/keygate",
          events: ["api_key.revoked", "api_key.leaked"],
          description: "Billing sync",
        },
      ],
      [
        "webhook_endpoint.created",
        second.id,
        project,
        { url: "http://localhost:9000/hooks", events: ["*"] },
      ],
      [
        "webhook_endpoint.updated",
        endpoint.id,
        project,
        {
          changes: {
            url: "https://hooks.example/other",
            events: ["*"],
            description: null,
            enabled: false,
          },
        },
      ],
      ["webhook_endpoint.updated", endpoint.id, project, { changes: { enabled: true } }],
      ["webhook_endpoint.deleted", endpoint.id, project, { url: "https://hooks.example/other" }],
    ]);
  });

  it("refuses a bad url, events or description with a 400 naming the field, writing nothing", async () => {
    const org = await newOrg("endpoint-400");
    const existing = await newEndpoint(org);
    const before = await d1Snapshot();
    const url = "https://hooks.example/ok";
    for (const [body, fields] of [
      [{ url: "http://hooks.example/plain", events: ["*"] }, ["body.url"]],
      [{ url: "https://10.0.0.1/private", events: ["*"] }, ["body.url"]],
      [{ url: "https://user:pw@hooks.example/", events: ["*"] }, ["body.url"]],
      [{ url: `https://hooks.example/${"a".repeat(2048)}`, events: ["*"] }, ["body.url"]],
      [{ events: ["*"] }, ["body.url"]],
      [{ url }, ["body.events"]],
      [{ url, events: [] }, ["body.events"]],
      [{ url, events: "*" }, ["body.events"]],
      [{ url, events: ["*", "api_key.created"] }, ["body.events"]],
      [{ url, events: ["api_key.created", "api_key.created"] }, ["body.events"]],
      [{ url, events: ["api_key.deleted"] }, ["body.events.0"]],
      [{ url, events: ["*"], description: "d".repeat(129) }, ["body.description"]],
      [{ url, events: ["*"], enabled: false }, ["body.enabled"]],
    ] as const) {
      const problem = expectProblem(await create(org.admin, org.project.id, body), 400);
      expect(locations(problem), JSON.stringify(body).slice(0, 80)).toEqual(fields);
    }
    // 128 characters (an emoji is one) is the longest description.
    const longest = "🔑".repeat(128);
    const one = `${endpointsPath(org.project.id)}/${existing.id}`;
    for (const [body, field] of [
      [{ url: "ftp://hooks.example/" }, "body.url"],
      [{ url: null }, "body.url"],
      [{ events: null }, "body.events"],
      [{ events: ["*", "*"] }, "body.events"],
      [{ enabled: "yes" }, "body.enabled"],
      [{ description: `${longest}x` }, "body.description"],
      [{ project_id: org.project.id }, "body.project_id"],
    ] as const) {
      const problem = expectProblem(await call("PATCH", one, { token: org.admin, body }), 400);
      expect(locations(problem), JSON.stringify(body).slice(0, 80)).toEqual([field]);
    }
    expect(await d1Snapshot()).toEqual(before);
    const patched = await call("PATCH", one, { token: org.admin, body: { description: longest } });
    expect(patched.status, patched.text).toBe(200);
  });

  it("holds at most 10 per project: of 12 concurrent creates exactly 10 succeed", async () => {
    const org = await newOrg("endpoint-limit");
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "Other" } });
    const answers = await Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        create(org.admin, org.project.id, { url: `https://hooks.example/${i}`, events: ["*"] }),
      ),
    );
    const statuses = answers.map((a) => a.status).sort();
    expect(statuses).toEqual([...Array(10).fill(201), 409, 409]);
    for (const refused of answers.filter((a) => a.status === 409)) {
      expect(expectProblem(refused, 409).detail).toContain("at most 10");
    }
    const rows = await env.DB.prepare(
      "select count(*) as n from webhook_endpoints where project_id = ?",
    )
      .bind(org.project.id)
      .first<{ n: number }>();
    expect(rows?.n).toBe(10);
    // Only the inserts that happened are in the audit log.
    const created = (await auditOf(org)).filter(
      (entry: string[]) => entry[0] === "webhook_endpoint.created",
    );
    expect(created).toHaveLength(10);
    const listed = await call("GET", endpointsPath(org.project.id), { token: org.admin });
    expect(listed.body.webhook_endpoints).toHaveLength(10);
    // The limit is per project; a deleted endpoint makes room again.
    expect(
      (await create(org.admin, other.body.id, { url: "https://h.example/", events: ["*"] })).status,
    ).toBe(201);
    const first = listed.body.webhook_endpoints[0].id;
    await call("DELETE", `${endpointsPath(org.project.id)}/${first}`, { token: org.admin });
    expect(
      (await create(org.admin, org.project.id, { url: "https://h.example/", events: ["*"] }))
        .status,
    ).toBe(201);
  });

  it("takes an Idempotency-Key on create: a repeat answers the same endpoint, creating one", async () => {
    const org = await newOrg("endpoint-idem");
    const body = { url: "https://hooks.example/once", events: ["api_key.created"] };
    const headers = { "Idempotency-Key": crypto.randomUUID() };
    const first = await create(org.admin, org.project.id, body, headers);
    const again = await create(org.admin, org.project.id, body, headers);
    expect(first.status).toBe(201);
    expect(again.status).toBe(201);
    expect(again.body).toEqual(first.body);
    const listed = await call("GET", endpointsPath(org.project.id), { token: org.admin });
    expect(listed.body.webhook_endpoints).toHaveLength(1);
  });
});

describe("webhook endpoints: who reaches them", () => {
  it("another organization gets 404 for the project and for the endpoint", async () => {
    const org = await newOrg("endpoint-tenant");
    const theirs = await newOrg("endpoint-tenant-other");
    const endpoint = await newEndpoint(org);
    const path = endpointsPath(org.project.id);
    const before = await d1Snapshot();
    const body = { url: "https://hooks.example/x", events: ["*"] };
    expectProblem(await call("GET", path, { token: theirs.admin }), 404);
    expectProblem(await create(theirs.admin, org.project.id, body), 404);
    for (const project of [org.project.id, theirs.project.id]) {
      const one = `${endpointsPath(project)}/${endpoint.id}`;
      expectProblem(await call("GET", one, { token: theirs.admin }), 404);
      expectProblem(
        await call("PATCH", one, { token: theirs.admin, body: { enabled: false } }),
        404,
      );
      expectProblem(await call("DELETE", one, { token: theirs.admin }), 404);
    }
    const theirList = await call("GET", endpointsPath(theirs.project.id), { token: theirs.admin });
    expect(theirList.body).toEqual({ webhook_endpoints: [] });
    expect(await d1Snapshot()).toEqual(before);
    // Under another project of the same organization, too.
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "B" } });
    expectProblem(
      await call("GET", `${endpointsPath(other.body.id)}/${endpoint.id}`, { token: org.admin }),
      404,
    );
  });

  it("members read; admins and keys with projects:write change; projects:read only reads", async () => {
    const org = await newOrg("endpoint-roles");
    const endpoint = await newEndpoint(org);
    const path = endpointsPath(org.project.id);
    const one = `${path}/${endpoint.id}`;
    const body = { url: "https://hooks.example/by", events: ["*"] };
    const reader = await orgKey(org, ["projects:read"]);
    const keysOnly = await orgKey(org, ["keys:read", "keys:write"]);
    const before = await d1Snapshot();
    for (const token of [org.member, reader]) {
      expect((await call("GET", path, { token })).status).toBe(200);
      expect((await call("GET", one, { token })).body).toEqual(endpoint);
      expectProblem(await create(token, org.project.id, body), 403);
      expectProblem(await call("PATCH", one, { token, body: { enabled: false } }), 403);
      expectProblem(await call("DELETE", one, { token }), 403);
    }
    expectProblem(await call("GET", path, { token: keysOnly }), 403);
    expectProblem(await call("GET", one, { token: keysOnly }), 403);
    expectProblem(await create(keysOnly, org.project.id, body), 403);
    expect(await d1Snapshot()).toEqual(before);

    const writer = await orgKey(org, ["projects:read", "projects:write"]);
    const made = await create(writer, org.project.id, body);
    expect(made.status, made.text).toBe(201);
    const patched = await call("PATCH", one, { token: writer, body: { enabled: false } });
    expect(patched.body).toMatchObject({ enabled: false });
    expect((await call("DELETE", `${path}/${made.body.id}`, { token: writer })).status).toBe(204);
  });

  it("a project-scoped key reaches its own project's endpoints only", async () => {
    const org = await newOrg("endpoint-project-key");
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "B" } });
    const otherPath = endpointsPath(other.body.id);
    const foreign = await create(org.admin, other.body.id, {
      url: "https://hooks.example/b",
      events: ["*"],
    });
    const key = (
      await newKey(org.admin, org.project.id, { scopes: ["projects:read", "projects:write"] })
    ).key;
    const made = await create(key, org.project.id, {
      url: "https://hooks.example/a",
      events: ["*"],
    });
    expect(made.status, made.text).toBe(201);
    expect((await call("GET", endpointsPath(org.project.id), { token: key })).body).toEqual({
      webhook_endpoints: [made.body],
    });
    expectProblem(await call("GET", otherPath, { token: key }), 404);
    expectProblem(await call("GET", `${otherPath}/${foreign.body.id}`, { token: key }), 404);
    expectProblem(
      await create(key, other.body.id, { url: "https://hooks.example/c", events: ["*"] }),
      404,
    );
  });
});

describe("the deliveries list", () => {
  it("shows each delivery's event_type and endpoint_id (null for a rotation delivery)", async () => {
    const { admin, project, delivery, key } = await rotatedKey("endpoint-deliveries");
    expect(delivery).toMatchObject({ event_type: "api_key.rotated", endpoint_id: null });
    const org = { admin, project } as Org;
    const endpoint = await newEndpoint(org, { events: ["api_key.revoked"] });
    // A delivery to an endpoint, as the event fan-out queues them.
    const now = Date.now();
    await env.DB.prepare(
      `insert into webhook_deliveries (id, organization_id, project_id, key_id, event_type,
         endpoint_id, url, payload, status, attempts, next_attempt_at, created_at, updated_at)
       select 'msg_endpoint_test', organization_id, project_id, ?, 'api_key.revoked', ?, ?, '{}',
         'pending', 0, ?, ?, ?
       from webhook_endpoints where id = ?`,
    )
      .bind(key.id, endpoint.id, endpoint.url, now, now, now, endpoint.id)
      .run();
    const [newest, oldest] = await deliveries(admin, project.id);
    expect(newest).toMatchObject({
      id: "msg_endpoint_test",
      key_id: key.id,
      event_type: "api_key.revoked",
      endpoint_id: endpoint.id,
      url: endpoint.url,
    });
    expect(oldest).toMatchObject({ id: delivery.id, endpoint_id: null });
  });
});

describe("event types", () => {
  it("are the eight lifecycle events; ['*'] subscribes to each, a list to its own", () => {
    expect(KEY_EVENT_TYPES).toEqual([
      "api_key.created",
      "api_key.updated",
      "api_key.revoked",
      "api_key.rotated",
      "api_key.expiring",
      "api_key.expired",
      "api_key.leaked",
      "api_key.credits_exhausted",
    ]);
    for (const type of KEY_EVENT_TYPES) expect(subscribes({ events: ["*"] }, type)).toBe(true);
    const some = { events: ["api_key.revoked", "api_key.leaked"] };
    expect(KEY_EVENT_TYPES.filter((type) => subscribes(some, type))).toEqual([
      "api_key.revoked",
      "api_key.leaked",
    ]);
  });
});
