// Key governance (SPEC Part 2): enabled, meta, external_id, ip_allowlist, ratelimits and
// credits on every surface, and what verify does with them, through the real verify path
// (HTTP and RPC) and the real KeyUsage Durable Object.
import { exports } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { getKey, limit, type Org, patch } from "./governance-harness";
import { call, newKey, newOrg, rejectedResult, verify } from "./helpers";

describe("governance fields on the key object", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_fields");
  });

  it("are null (enabled true) when unset, on create and on GET", async () => {
    const key = await newKey(org.admin, org.project.id);
    const expected = {
      enabled: true,
      meta: null,
      external_id: null,
      ip_allowlist: null,
      ratelimits: null,
      credits: null,
    };
    expect(key).toMatchObject(expected);
    expect(await getKey(org, key.id)).toMatchObject(expected);
  });

  it("round-trip on seed 001 create and GET, normalised", async () => {
    const key = await newKey(org.admin, org.project.id, {
      enabled: false,
      meta: { plan: "pro", nested: { list: [1, "two", null] } },
      external_id: "user_42@acme",
      ip_allowlist: ["10.1.2.3/8", "2001:DB8:0:0::1", "::ffff:192.0.2.1"],
      ratelimits: [limit("burst", 10, 1000), limit("daily", 1000)],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000 } },
    });
    const expected = {
      enabled: false,
      is_active: false,
      meta: { plan: "pro", nested: { list: [1, "two", null] } },
      external_id: "user_42@acme",
      ip_allowlist: ["10.0.0.0/8", "2001:db8::1", "192.0.2.1"],
      ratelimits: [limit("burst", 10, 1000), limit("daily", 1000)],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000, day: 1 } },
    };
    expect(key).toMatchObject(expected);
    expect(await getKey(org, key.id)).toMatchObject(expected);
  });

  it("a daily refill shows day null; day with daily is a 400 naming it", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 5, refill: { interval: "daily", amount: 5 } },
    });
    expect(key.credits).toEqual({
      remaining: 5,
      refill: { interval: "daily", amount: 5, day: null },
    });
    const bad = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: {
        project_id: org.project.id,
        name: "bad",
        credits: { remaining: 5, refill: { interval: "daily", amount: 5, day: 2 } },
      },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.errors.map((e: { location: string }) => e.location)).toEqual([
      "body.credits.refill.day",
    ]);
  });

  it("meta: 4 KiB accepted and returned by verify, 4 KiB + 1 refused", async () => {
    const overhead = JSON.stringify({ pad: "" }).length;
    const meta = { pad: "é".repeat((4096 - overhead) / 2) }; // 2 UTF-8 bytes each
    expect(new TextEncoder().encode(JSON.stringify(meta)).length).toBe(4096);
    const key = await newKey(org.admin, org.project.id, { meta });
    expect((await verify(key.key)).body.meta).toEqual(meta);
    const over = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "big", meta: { ...meta, x: 1 } },
    });
    expect(over.status).toBe(400);
    expect(over.body.errors[0].location).toBe("body.meta");
    const patched = await patch(org, key.id, { meta: { pad: `${meta.pad}x` } });
    expect(patched.status).toBe(400);
  });

  it("meta with a __proto__ member is a 400 on create and PATCH, and nothing is stored", async () => {
    const body = `{"project_id":"${org.project.id}","name":"proto","meta":{"plan":"free","__proto__":{"plan":"pro","isAdmin":true}}}`;
    const created = await call("POST", "/v1/api-keys", {
      token: org.admin,
      rawBody: body,
      headers: { "content-type": "application/json" },
    });
    expect(created.status).toBe(400);
    expect(created.body.errors[0].location).toBe("body.meta");
    const key = await newKey(org.admin, org.project.id, { meta: { plan: "free" } });
    const patched = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      rawBody: '{"meta":{"a":{"__proto__":{"isAdmin":true}}}}',
      headers: { "content-type": "application/json" },
    });
    expect(patched.status).toBe(400);
    expect((await verify(key.key)).body.meta).toEqual({ plan: "free" });
  });

  it("PATCH credits.refill alone changes the refill and keeps the live balance", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    for (let i = 0; i < 4; i++) expect((await verify(key.key)).body.code).toBe("VALID");
    const refill = { interval: "daily", amount: 50 };
    const patched = await patch(org, key.id, { credits: { refill } });
    expect(patched.status).toBe(200);
    expect(patched.body.credits).toEqual({ remaining: 6, refill: { ...refill, day: null } });
    expect((await verify(key.key)).body.credits.remaining).toBe(5);
    const rpc = await exports.KeyService.verify(key.key);
    expect(rpc.credits?.remaining).toBe(4);
    // Taking the refill away keeps the balance too.
    const cleared = await patch(org, key.id, { credits: { refill: null } });
    expect(cleared.body.credits).toEqual({ remaining: 4, refill: null });
    // A key without credits needs a balance; an empty change is refused.
    const bare = await newKey(org.admin, org.project.id);
    const noCredits = await patch(org, bare.id, { credits: { refill } });
    expect(noCredits.status).toBe(400);
    expect(noCredits.body.errors[0].location).toBe("body.credits.remaining");
    expect((await patch(org, key.id, { credits: {} })).status).toBe(400);
  });

  it("PATCH null clears each field; [] is the same as null", async () => {
    const key = await newKey(org.admin, org.project.id, {
      meta: { a: 1 },
      external_id: "owner",
      ip_allowlist: ["192.0.2.0/24"],
      ratelimits: [limit("a", 5)],
      credits: { remaining: 5 },
    });
    const cleared = await patch(org, key.id, {
      meta: null,
      external_id: null,
      ip_allowlist: [],
      ratelimits: [],
      credits: null,
    });
    expect(cleared.status).toBe(200);
    expect(cleared.body).toMatchObject({
      meta: null,
      external_id: null,
      ip_allowlist: null,
      ratelimits: null,
      credits: null,
    });
    expect(await getKey(org, key.id)).toMatchObject(cleared.body);
    // Cleared limits and credits stop applying at once.
    const answer = (await verify(key.key)).body;
    expect(answer).toMatchObject({ code: "VALID", credits: null, ratelimits: null });
    const nulls = await newKey(org.admin, org.project.id, { ip_allowlist: [], ratelimits: [] });
    expect(nulls).toMatchObject({ ip_allowlist: null, ratelimits: null });
  });

  it("seed 000 and seed 002 take the fields on create and keep their response shapes", async () => {
    const fields = { external_id: "shape", meta: { s: 1 }, credits: { remaining: 3 } };
    const before = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "s0", scopes: [], project_id: org.project.id },
    });
    const seed000 = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "s0", scopes: [], project_id: org.project.id, ...fields },
    });
    expect(seed000.status).toBe(201);
    expect(Object.keys(seed000.body.api_key).sort()).toEqual(
      Object.keys(before.body.api_key).sort(),
    );
    expect((await verify(seed000.body.plaintext_api_key)).body).toMatchObject({
      external_id: "shape",
      meta: { s: 1 },
      credits: { remaining: 2 },
    });
    const base = `/api/v1/projects/${org.project.id}/keys`;
    const plain = await call("POST", base, { token: org.admin, body: {} });
    const seed002 = await call("POST", base, { token: org.admin, body: fields });
    expect(seed002.status).toBe(201);
    expect(Object.keys(seed002.body).sort()).toEqual(Object.keys(plain.body).sort());
    expect((await verify(seed002.body.key)).body).toMatchObject({ external_id: "shape" });
  });

  it("?external_id= filters every key list", async () => {
    const owner = `owner_${crypto.randomUUID().slice(0, 8)}`;
    const mine = await newKey(org.admin, org.project.id, { external_id: owner });
    await newKey(org.admin, org.project.id, { external_id: `${owner}_other` });
    await newKey(org.admin, org.project.id);
    const orgWide = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: [], external_id: owner },
    });
    const ids = (list: { id?: string; key_id?: string }[]) => list.map((k) => k.id ?? k.key_id);
    const q = `external_id=${encodeURIComponent(owner)}`;
    const seed001 = await call("GET", `/v1/api-keys?project_id=${org.project.id}&${q}`, {
      token: org.admin,
    });
    expect(ids(seed001.body)).toEqual([mine.id]);
    const seed000 = await call("GET", `/v1/organizations/${org.org}/api-keys?${q}`, {
      token: org.admin,
    });
    expect(ids(seed000.body.api_keys)).toEqual([mine.id, orgWide.body.api_key.id]);
    const seed000Project = await call(
      "GET",
      `/v1/organizations/${org.org}/api-keys?${q}&project_id=${org.project.id}`,
      { token: org.admin },
    );
    expect(ids(seed000Project.body.api_keys)).toEqual([mine.id]);
    const seed002 = await call("GET", `/api/v1/projects/${org.project.id}/keys?${q}`, {
      token: org.admin,
    });
    expect(ids(seed002.body)).toEqual([mine.id]);
    const bad = await call("GET", `/v1/api-keys?project_id=${org.project.id}&external_id=a%20b`, {
      token: org.admin,
    });
    expect(bad.status).toBe(400);
  });

  it("rotation copies every field to the successor; a disabled key rotates disabled", async () => {
    const fields = {
      enabled: false,
      meta: { m: true },
      external_id: "rot",
      ip_allowlist: ["192.0.2.7"],
      ratelimits: [limit("r", 3)],
      credits: { remaining: 9, refill: { interval: "daily", amount: 9 } },
    };
    const key = await newKey(org.admin, org.project.id, fields);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 60 },
    });
    expect(rotated.status).toBe(201);
    const successor = await getKey(org, rotated.body.new_key_id);
    expect(successor).toMatchObject({
      ...fields,
      ratelimits: [limit("r", 3)],
      credits: { remaining: 9, refill: { interval: "daily", amount: 9, day: null } },
      is_active: false,
    });
    expect((await verify(rotated.body.key)).body).toEqual(rejectedResult("DISABLED"));
  });

  it("records an audit event for every governance change", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 1 } });
    await patch(org, key.id, { enabled: false, external_id: "audited" });
    await patch(org, key.id, { enabled: true });
    await call("POST", `/v1/api-keys/${key.id}/credits`, {
      token: org.admin,
      body: { operation: "increment", value: 4 },
    });
    const log = await call("GET", `/v1/organizations/${org.org}/audit-log?limit=100`, {
      token: org.admin,
    });
    // The log is newest first.
    const events = log.body.audit_events
      .filter((e: { target_id: string }) => e.target_id === key.id)
      .reverse();
    expect(events.map((e: { action: string }) => e.action)).toEqual([
      "api_key.created",
      "api_key.updated",
      "api_key.updated",
      "api_key.credits_adjusted",
    ]);
    expect(events[0].metadata).toMatchObject({ credits: { remaining: 1, refill: null } });
    // `fields` names what changed by the key object's field names, not the columns behind them.
    expect(events[1].metadata).toEqual({
      fields: ["enabled", "external_id"],
      enabled: false,
      external_id: "audited",
    });
    expect(events[2].metadata).toEqual({ fields: ["enabled"], enabled: true });
    expect(events[3].metadata).toMatchObject({ operation: "increment", value: 4, remaining: 5 });
  });

  it("names credits and the rotation schedule in an update's audit fields as the API does", async () => {
    const key = await newKey(org.admin, org.project.id, { name: "fields" });
    await patch(org, key.id, {
      credits: { remaining: 3, refill: { interval: "daily", amount: 3 } },
      rotation_interval_days: 30,
      rotation_webhook_url: "https://example.com/hook",
      meta: { plan: "pro" },
    });
    const log = await call("GET", `/v1/organizations/${org.org}/audit-log?limit=100`, {
      token: org.admin,
    });
    const updated = log.body.audit_events.find(
      (e: { target_id: string; action: string }) =>
        e.target_id === key.id && e.action === "api_key.updated",
    );
    expect([...updated.metadata.fields].sort()).toEqual([
      "credits",
      "meta",
      "rotation_interval_days",
      "rotation_webhook_url",
    ]);
    expect(updated.metadata.meta).toBe("changed");
  });
});
