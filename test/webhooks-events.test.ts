import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { EXPIRY_BATCH } from "../src/core/keys";
import { dash } from "./dashboard-harness";
import { addEndpoint, deliverNow, keyObject, queued, verifySignature } from "./events-harness";
import { call, newKey, newOrg, runCron, verify } from "./helpers";
import {
  DAY,
  deliveryRow,
  HOUR,
  hookUrl,
  type Json,
  receivers,
  type Sent,
  status,
} from "./webhooks-harness";

// Every run delivers what is due, other tests' rows too: no request leaves the machine.
beforeEach(() => {
  receivers({});
});

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;

/** Exactly `{ type, timestamp, data: { api_key, actor, ...extra } }`. */
function expectEvent(body: Json, type: string, key: Json, actor: Json, extra: Json = {}) {
  expect(Object.keys(body).sort()).toEqual(["data", "timestamp", "type"]);
  expect(body.type).toBe(type);
  expect(body.timestamp).toMatch(RFC3339);
  expect(Object.keys(body.data).sort()).toEqual(["actor", "api_key", ...Object.keys(extra)].sort());
  expect(body.data.actor).toEqual(actor);
  expect(body.data.api_key).toEqual(key);
  for (const [name, value] of Object.entries(extra)) expect(body.data[name]).toEqual(value);
  expect(JSON.stringify(body)).not.toMatch(/"key":|_[A-Za-z0-9]{20,}_[A-Za-z0-9]{6}"/);
}

describe("key lifecycle events", () => {
  it("api_key.created, updated, revoked: the key object as the change left it, the actor, signed", async () => {
    const org = await newOrg("ev-life");
    const endpoint = await addEndpoint(org);
    const key = await newKey(org.admin, org.project.id, { name: "first" });
    expect(
      (
        await call("PATCH", `/v1/api-keys/${key.id}`, {
          token: org.admin,
          body: { name: "second" },
        })
      ).status,
    ).toBe(200);
    const updated = await keyObject(org.admin, key.id);
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin })).status).toBe(204);
    const revoked = await keyObject(org.admin, key.id);

    const rows = await queued(endpoint.id);
    expect(rows.map((r) => r.event_type)).toEqual([
      "api_key.created",
      "api_key.updated",
      "api_key.revoked",
    ]);
    expect(rows.every((r) => r.encrypted_key === null && r.key_id === key.id)).toBe(true);

    const received = await deliverNow();
    // Sent in parallel: put them in queue order by their webhook-id.
    const hooks = rows.map((row) => {
      const hook = received(endpoint.url).find((h) => h.headers.get("webhook-id") === row.id);
      if (!hook) throw new Error(`${row.event_type} was not sent`);
      return hook;
    });
    expect(received(endpoint.url)).toHaveLength(3);
    const events = await Promise.all(
      hooks.map((h) => verifySignature(org.project.webhook_signing_secret, h)),
    );
    const actor = { type: "user", id: expect.stringMatching(/^user_admin_/) };
    const { key: _plaintext, ...created } = key;
    expectEvent(events[0], "api_key.created", { ...created }, actor);
    expectEvent(events[1], "api_key.updated", updated, actor);
    expectEvent(events[2], "api_key.revoked", revoked, actor);
    for (const [i, hook] of hooks.entries()) {
      expect(hook.headers.get("webhook-id")).toBe(rows[i].id);
      expect(hook.body).not.toContain(key.key);
    }
    // A tampered body fails the verifier.
    await expect(
      verifySignature(org.project.webhook_signing_secret, {
        ...(hooks[0] as Sent),
        body: `${hooks[0]?.body} `,
      }),
    ).rejects.toThrow();
  });

  it("api_key.rotated: the rotated key (successor in replaced_by_key_id), never the plaintext", async () => {
    const org = await newOrg("ev-rotate");
    const endpoint = await addEndpoint(org, ["api_key.rotated"]);
    const own = hookUrl("own");
    const key = await newKey(org.admin, org.project.id, { rotation_webhook_url: own });
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 60 },
    });
    expect(rotated.status).toBe(201);
    const old = await keyObject(org.admin, key.id);
    expect(old.replaced_by_key_id).toBe(rotated.body.new_key_id);

    const rows = await queued(endpoint.id);
    expect(rows.map((r) => r.event_type)).toEqual(["api_key.rotated"]);
    expect(JSON.stringify(rows)).not.toContain(rotated.body.key);
    const received = await deliverNow();
    const [hook] = received(endpoint.url);
    const body = await verifySignature(org.project.webhook_signing_secret, hook as Sent);
    expectEvent(body, "api_key.rotated", old, {
      type: "user",
      id: expect.stringMatching(/^user_admin_/),
    });
    expect(hook?.body).not.toContain(rotated.body.key);
    // The key's own rotation webhook still gets the plaintext, with no endpoint.
    const [toOwn] = received(own);
    expect(JSON.parse(toOwn?.body as string).data.key).toBe(rotated.body.key);
    const { results } = await env.DB.prepare(
      "select endpoint_id from webhook_deliveries where url = ?",
    )
      .bind(own)
      .all();
    expect(results).toEqual([{ endpoint_id: null }]);
  });

  it("goes to the enabled endpoints of the key's project that subscribe: '*', the type; not others", async () => {
    const org = await newOrg("ev-filter");
    const all = await addEndpoint(org, ["*"]);
    const revokedOnly = await addEndpoint(org, ["api_key.revoked", "api_key.leaked"]);
    const createdOnly = await addEndpoint(org, ["api_key.created"]);
    const disabled = await addEndpoint(org, ["*"], { enabled: false });
    const second = await call("POST", "/v1/projects", { token: org.admin, body: { name: "B" } });
    const otherProject = await addEndpoint(org, ["*"], { projectId: second.body.id });
    const stranger = await newOrg("ev-filter-other");
    const otherOrg = await addEndpoint(stranger, ["*"]);

    const key = await newKey(org.admin, org.project.id);
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });

    const types = async (id: string) => (await queued(id)).map((r) => r.event_type);
    expect(await types(all.id)).toEqual(["api_key.created", "api_key.revoked"]);
    expect(await types(revokedOnly.id)).toEqual(["api_key.revoked"]);
    expect(await types(createdOnly.id)).toEqual(["api_key.created"]);
    expect(await types(disabled.id)).toEqual([]);
    expect(await types(otherProject.id)).toEqual([]);
    expect(await types(otherOrg.id)).toEqual([]);
    // Unique per (event, endpoint): one event to two endpoints is two webhook-ids.
    const ids = [...(await queued(all.id)), ...(await queued(revokedOnly.id))].map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
    for (const id of ids) expect(id).toMatch(/^msg_[0-9a-f]{32}_\d+$/);
  });

  it("org-scoped keys produce no events (the audit log has them)", async () => {
    const org = await newOrg("ev-orgkey");
    const endpoint = await addEndpoint(org);
    const created = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "ops", scopes: [] },
    });
    expect(created.status).toBe(201);
    const id = created.body.api_key.id;
    await call("PATCH", `/v1/api-keys/${id}`, { token: org.admin, body: { name: "ops2" } });
    await call("DELETE", `/v1/api-keys/${id}`, { token: org.admin });
    expect(await queued(endpoint.id)).toEqual([]);
    const { results } = await env.DB.prepare(
      "select action from audit_events where target_id = ? order by seq",
    )
      .bind(id)
      .all();
    expect(results.map((r) => r.action)).toEqual([
      "api_key.created",
      "api_key.updated",
      "api_key.revoked",
    ]);
  });

  it("5 concurrent revokes: one api_key.revoked per endpoint", async () => {
    const org = await newOrg("ev-race");
    const a = await addEndpoint(org, ["api_key.revoked"]);
    const b = await addEndpoint(org, ["*"]);
    const key = await newKey(org.admin, org.project.id);
    const answers = await Promise.all(
      Array.from({ length: 5 }, () =>
        call("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin }),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual([204, 204, 204, 204, 204]);
    expect((await queued(a.id)).map((r) => r.event_type)).toEqual(["api_key.revoked"]);
    expect((await queued(b.id)).map((r) => r.event_type)).toEqual([
      "api_key.created",
      "api_key.revoked",
    ]);
  });

  it("a change refused or lost to a race queues nothing", async () => {
    const org = await newOrg("ev-lost");
    const endpoint = await addEndpoint(org, ["api_key.rotated", "api_key.updated"]);
    const key = await newKey(org.admin, org.project.id);
    const rotations = await Promise.all(
      Array.from({ length: 4 }, () =>
        call("POST", `/v1/api-keys/${key.id}/rotate`, { token: org.admin, body: {} }),
      ),
    );
    expect(rotations.filter((r) => r.status === 201)).toHaveLength(1);
    expect(rotations.filter((r) => r.status === 409)).toHaveLength(3);
    // A PATCH of the replaced key is refused: no api_key.updated.
    const refused = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      body: { name: "late" },
    });
    expect(refused.status).toBe(409);
    expect((await queued(endpoint.id)).map((r) => r.event_type)).toEqual(["api_key.rotated"]);
  });

  it("the grace sweep's revocation of a replaced key is an api_key.revoked by the scheduler, once", async () => {
    const org = await newOrg("ev-sweep");
    const endpoint = await addEndpoint(org, ["api_key.revoked"]);
    const key = await newKey(org.admin, org.project.id);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 60 },
    });
    const graceEnd = Date.parse(rotated.body.grace_expires_at);
    await Promise.all([runCron(graceEnd + 1), runCron(graceEnd + 1)]);
    await runCron(graceEnd + 60_000);
    const rows = await queued(endpoint.id);
    expect(rows).toHaveLength(1);
    const body = JSON.parse(rows[0].payload);
    expect(body.data.actor).toEqual({ type: "system", id: "scheduler" });
    expect(body.data.api_key).toEqual(await keyObject(org.admin, key.id));
  });

  it("a credits operation is an api_key.updated with the new balance", async () => {
    const org = await newOrg("ev-credits-op");
    const endpoint = await addEndpoint(org, ["api_key.updated"]);
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    const adjusted = await call("POST", `/v1/api-keys/${key.id}/credits`, {
      token: org.admin,
      body: { operation: "decrement", value: 3 },
    });
    expect(adjusted.status).toBe(200);
    const [row] = await queued(endpoint.id);
    expect(row.event_type).toBe("api_key.updated");
    expect(JSON.parse(row.payload).data.api_key.credits).toEqual({ remaining: 7, refill: null });
  });
});

describe("event deliveries", () => {
  it("a failed event delivery can be retried, and is then sent with the same webhook-id", async () => {
    const org = await newOrg("ev-retry");
    const endpoint = await addEndpoint(org, ["api_key.created"]);
    await newKey(org.admin, org.project.id);
    const [row] = await queued(endpoint.id);
    await env.DB.prepare("update webhook_deliveries set attempts = 7 where id = ?")
      .bind(row.id)
      .run();
    const failing = receivers({ [endpoint.url]: status(500) });
    await runCron(Date.now());
    expect(failing.to(endpoint.url)).toHaveLength(1);
    expect(await deliveryRow(row.id)).toMatchObject({ status: "failed", attempts: 8 });

    const retried = await call(
      "POST",
      `/v1/projects/${org.project.id}/webhook-deliveries/${row.id}/retry`,
      { token: org.admin },
    );
    expect(retried.status).toBe(200);
    const received = await deliverNow();
    const [hook] = received(endpoint.url);
    expect(hook?.headers.get("webhook-id")).toBe(row.id);
    expect(await deliveryRow(row.id)).toMatchObject({ status: "delivered", attempts: 1 });
  });

  it("the dashboard offers Retry for a failed event delivery", async () => {
    const org = await newOrg("ev-dash-retry");
    const endpoint = await addEndpoint(org, ["api_key.created"]);
    await newKey(org.admin, org.project.id);
    const [row] = await queued(endpoint.id);
    await env.DB.prepare("update webhook_deliveries set status = 'failed' where id = ?")
      .bind(row.id)
      .run();
    const tab = await dash("GET", `/dashboard/projects/${org.project.id}/webhooks`, {
      session: org.admin,
    });
    expect(tab.status).toBe(200);
    expect(tab.text).toContain(`/projects/${org.project.id}/webhooks/${row.id}/retry`);
  });

  it("an endpoint deleted or disabled before the attempt: given up as failed, nothing sent", async () => {
    const org = await newOrg("ev-gone");
    const gone = await addEndpoint(org, ["api_key.created"]);
    const off = await addEndpoint(org, ["api_key.created"]);
    await newKey(org.admin, org.project.id);
    await env.DB.prepare("delete from webhook_endpoints where id = ?").bind(gone.id).run();
    await env.DB.prepare("update webhook_endpoints set enabled = 0 where id = ?")
      .bind(off.id)
      .run();
    const received = await deliverNow();
    expect(received(gone.url)).toEqual([]);
    expect(received(off.url)).toEqual([]);
    const [goneRow] = await queued(gone.id);
    const [offRow] = await queued(off.id);
    expect(goneRow).toMatchObject({
      status: "failed",
      attempts: 1,
      last_error: "The webhook endpoint was deleted.",
    });
    expect(offRow).toMatchObject({
      status: "failed",
      attempts: 1,
      last_error: "The webhook endpoint is disabled.",
    });
  });
});

/** Put a key's expiry (and the notice it owes) where a test wants it. */
async function expireAt(keyId: string, expiresAt: number, noticeAt = expiresAt - 7 * DAY) {
  await env.DB.prepare("update api_keys set expires_at = ?, expiry_notice_at = ? where id = ?")
    .bind(expiresAt, noticeAt, keyId)
    .run();
}

const expiryEvents = async (endpointId: string) =>
  (await queued(endpointId)).map((r) => {
    const body = JSON.parse(r.payload);
    return [body.type, body.data.expires_in_days];
  });

describe("expiry events", () => {
  it("creating with expires_at and PATCHing it set expiry_notice_at to 7 days before (null when cleared)", async () => {
    const org = await newOrg("ev-notice-at");
    const expiresAt = Date.now() + 30 * DAY;
    const key = await newKey(org.admin, org.project.id, {
      expires_at: new Date(expiresAt).toISOString(),
    });
    const noticeAt = async () =>
      (
        await env.DB.prepare("select expiry_notice_at from api_keys where id = ?")
          .bind(key.id)
          .first<{ expiry_notice_at: number | null }>()
      )?.expiry_notice_at;
    expect(await noticeAt()).toBe(expiresAt - 7 * DAY);
    const later = expiresAt + 10 * DAY;
    await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      body: { expires_at: new Date(later).toISOString() },
    });
    expect(await noticeAt()).toBe(later - 7 * DAY);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: {},
    });
    const successor = await env.DB.prepare("select expiry_notice_at from api_keys where id = ?")
      .bind(rotated.body.new_key_id)
      .first<{ expiry_notice_at: number }>();
    expect(successor?.expiry_notice_at).toBe(later - 7 * DAY);
    expect(await noticeAt()).toBeNull(); // replaced: owes nothing
    await call("PATCH", `/v1/api-keys/${rotated.body.new_key_id}`, {
      token: org.admin,
      body: { expires_at: null },
    });
    const cleared = await env.DB.prepare("select expiry_notice_at from api_keys where id = ?")
      .bind(rotated.body.new_key_id)
      .first<{ expiry_notice_at: number | null }>();
    expect(cleared?.expiry_notice_at).toBeNull();
  });

  it("expiring 7, expiring 1, then expired: each once, by the cron runs after each instant", async () => {
    const org = await newOrg("ev-expiry");
    const endpoint = await addEndpoint(org, ["api_key.expiring", "api_key.expired"]);
    const key = await newKey(org.admin, org.project.id);
    const base = Date.now() + 3650 * DAY; // far ahead of every other test's keys
    const expiresAt = base + 10 * DAY;
    await expireAt(key.id, expiresAt);
    const inbox = receivers({});

    await runCron(expiresAt - 7 * DAY - 1);
    expect(await expiryEvents(endpoint.id)).toEqual([]);
    await runCron(expiresAt - 7 * DAY);
    await runCron(expiresAt - 2 * DAY);
    expect(await expiryEvents(endpoint.id)).toEqual([["api_key.expiring", 7]]);
    await runCron(expiresAt - DAY + 1);
    await runCron(expiresAt - 1);
    expect(await expiryEvents(endpoint.id)).toEqual([
      ["api_key.expiring", 7],
      ["api_key.expiring", 1],
    ]);
    await runCron(expiresAt + 30_000);
    await runCron(expiresAt + 90_000);
    expect(await expiryEvents(endpoint.id)).toEqual([
      ["api_key.expiring", 7],
      ["api_key.expiring", 1],
      ["api_key.expired", undefined],
    ]);
    // Each was sent by the run that queued it, signed; the payload field by field.
    const rows = await queued(endpoint.id);
    expect(rows.map((r) => r.status)).toEqual(["delivered", "delivered", "delivered"]);
    const sent = await Promise.all(
      inbox.to(endpoint.url).map((h) => verifySignature(org.project.webhook_signing_secret, h)),
    );
    const byType = (type: string, days?: number) =>
      sent.find((e) => e.type === type && e.data.expires_in_days === days);
    const stored = await keyObject(org.admin, key.id);
    const scheduler = { type: "system", id: "scheduler" };
    expectEvent(byType("api_key.expiring", 7), "api_key.expiring", stored, scheduler, {
      expires_in_days: 7,
    });
    expectEvent(byType("api_key.expiring", 1), "api_key.expiring", stored, scheduler, {
      expires_in_days: 1,
    });
    expectEvent(
      byType("api_key.expired"),
      "api_key.expired",
      { ...stored, is_active: false },
      scheduler,
    );
    expect(sent).toHaveLength(3);
  });

  it("skips the stages already past: a key 12 h from expiry gets only the 1-day notice, then expired", async () => {
    const org = await newOrg("ev-skip");
    const endpoint = await addEndpoint(org);
    const key = await newKey(org.admin, org.project.id);
    const expiresAt = Date.now() + 3660 * DAY;
    await expireAt(key.id, expiresAt);
    await runCron(expiresAt - 12 * HOUR);
    await runCron(expiresAt + 1);
    expect((await expiryEvents(endpoint.id)).slice(1)).toEqual([
      ["api_key.expiring", 1],
      ["api_key.expired", undefined],
    ]);
  });

  it("revoked and replaced keys owe nothing", async () => {
    const org = await newOrg("ev-expiry-dead");
    const endpoint = await addEndpoint(org, ["api_key.expiring", "api_key.expired"]);
    const revoked = await newKey(org.admin, org.project.id);
    const expiresAt = Date.now() + 3670 * DAY;
    await expireAt(revoked.id, expiresAt);
    await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    // Even a revoked key left owing (a row from before): the cron clears it, sends nothing.
    await env.DB.prepare("update api_keys set expiry_notice_at = ? where id = ?")
      .bind(expiresAt - 7 * DAY, revoked.id)
      .run();
    await runCron(expiresAt + 1);
    expect(await expiryEvents(endpoint.id)).toEqual([]);
    const row = await env.DB.prepare("select expiry_notice_at from api_keys where id = ?")
      .bind(revoked.id)
      .first();
    expect(row?.expiry_notice_at).toBeNull();
  });

  it("two overlapping cron runs at the same instant queue each notice once", async () => {
    const org = await newOrg("ev-overlap");
    const endpoint = await addEndpoint(org, ["api_key.expiring", "api_key.expired"]);
    const other = await addEndpoint(org, ["*"]);
    const keys = await Promise.all([1, 2, 3].map(() => newKey(org.admin, org.project.id)));
    const expiresAt = Date.now() + 3680 * DAY;
    for (const key of keys) await expireAt(key.id, expiresAt);
    for (const at of [expiresAt - 3 * DAY, expiresAt - HOUR, expiresAt + 1]) {
      await Promise.all([runCron(at), runCron(at), runCron(at)]);
    }
    const rows = await queued(endpoint.id);
    expect(rows).toHaveLength(9);
    for (const key of keys) {
      expect(
        rows
          .filter((r) => r.key_id === key.id)
          .map((r) => [JSON.parse(r.payload).type, JSON.parse(r.payload).data.expires_in_days]),
      ).toEqual([
        ["api_key.expiring", 7],
        ["api_key.expiring", 1],
        ["api_key.expired", undefined],
      ]);
    }
    expect((await queued(other.id)).filter((r) => r.event_type !== "api_key.created")).toHaveLength(
      9,
    );
  });

  it(`a run reads at most ${EXPIRY_BATCH} due keys: ${3 * EXPIRY_BATCH} due keys take 3 runs`, async () => {
    const org = await newOrg("ev-bounded");
    const endpoint = await addEndpoint(org, ["api_key.expired"]);
    const key = await newKey(org.admin, org.project.id);
    const expiresAt = Date.now() + 3700 * DAY;
    // 3 batches of keys copied from one (same org and project), all due at once.
    await env.DB.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < ?)
       insert into api_keys (id, organization_id, project_id, environment_id, environment, name,
         key_hash, key_prefix, scopes, source, is_admin_managed, created_at, updated_at,
         expires_at, enabled, lineage_id, version, expiry_notice_at)
       select lower(hex(randomblob(16))), organization_id, project_id, environment_id,
         environment, name, lower(hex(randomblob(32))), key_prefix, scopes, source,
         is_admin_managed, created_at, updated_at, ?, enabled, lineage_id, 0, ?
       from api_keys, n where id = ?`,
    )
      .bind(3 * EXPIRY_BATCH, expiresAt, expiresAt, key.id)
      .run();
    const count = async () => (await queued(endpoint.id)).length;
    await runCron(expiresAt + 1);
    expect(await count()).toBe(EXPIRY_BATCH);
    await runCron(expiresAt + 2);
    expect(await count()).toBe(2 * EXPIRY_BATCH);
    await runCron(expiresAt + 3);
    expect(await count()).toBe(3 * EXPIRY_BATCH);
    await runCron(expiresAt + 4);
    expect(await count()).toBe(3 * EXPIRY_BATCH);
    // The due keys are found through the index, not a scan of every key.
    const plan = await env.DB.prepare(
      "explain query plan select * from api_keys where expiry_notice_at is not null and expiry_notice_at <= ? order by expiry_notice_at limit ?",
    )
      .bind(expiresAt, EXPIRY_BATCH)
      .all<{ detail: string }>();
    expect(plan.results.map((r) => r.detail).join(" ")).toContain("api_keys_expiry_notice");
  });
});

describe("api_key.credits_exhausted", () => {
  it("the first USAGE_EXCEEDED after the credits were set or refilled, once; again after a set or PATCH", async () => {
    const org = await newOrg("ev-exhausted");
    const endpoint = await addEndpoint(org, ["api_key.credits_exhausted"]);
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 1 } });
    const codes = [];
    // No D1 write per refused verification: the event rows are written once, not 4 times.
    const prepared = vi.spyOn(env.DB, "prepare");
    for (let i = 0; i < 5; i++) codes.push((await verify(key.key)).body.code);
    expect(codes).toEqual(["VALID", ...Array(4).fill("USAGE_EXCEEDED")]);
    const eventWrites = prepared.mock.calls.filter(([query]) =>
      query.includes("webhook_deliveries"),
    );
    expect(eventWrites).toHaveLength(1);
    prepared.mockRestore();
    let rows = await queued(endpoint.id);
    expect(rows).toHaveLength(1);
    const body = JSON.parse(rows[0].payload);
    // last_used_at is stamped by the analytics consumer in the background: either side of it.
    const stored = await keyObject(org.admin, key.id);
    expect([null, stored.last_used_at]).toContain(body.data.api_key.last_used_at);
    const asStored = { ...stored, last_used_at: body.data.api_key.last_used_at };
    expectEvent(body, "api_key.credits_exhausted", asStored, {
      type: "system",
      id: "verification",
    });
    expect(body.data.api_key.credits).toEqual({ remaining: 0, refill: null });
    const inbox = receivers({});
    await runCron(Date.now());
    const [hook] = inbox.to(endpoint.url);
    expect(await verifySignature(org.project.webhook_signing_secret, hook as Sent)).toEqual(body);

    // Topped up by POST …/credits: the next exhaustion is a new one.
    const set = await call("POST", `/v1/api-keys/${key.id}/credits`, {
      token: org.admin,
      body: { operation: "set", value: 1 },
    });
    expect(set.status).toBe(200);
    for (let i = 0; i < 3; i++) await verify(key.key);
    rows = await queued(endpoint.id);
    expect(rows).toHaveLength(2);
    // A decrement adds nothing: no new exhaustion.
    await call("POST", `/v1/api-keys/${key.id}/credits`, {
      token: org.admin,
      body: { operation: "decrement", value: 1 },
    });
    await verify(key.key);
    expect(await queued(endpoint.id)).toHaveLength(2);
    // Set again by PATCH.
    await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      body: { credits: { remaining: 2 } },
    });
    for (let i = 0; i < 4; i++) await verify(key.key);
    rows = await queued(endpoint.id);
    expect(rows).toHaveLength(3);
    expect(new Set(rows.map((r) => r.id)).size).toBe(3);
    // No D1 write per refused verification: the audit log has one row per exhaustion.
    const { results } = await env.DB.prepare(
      "select count(*) as n from audit_events where target_id = ? and action = 'api_key.credits_exhausted'",
    )
      .bind(key.id)
      .all<{ n: number }>();
    expect(results[0]?.n).toBe(3);
  });

  it("is the key's own credits running out, not its identity's", async () => {
    const org = await newOrg("ev-exhausted-identity");
    const endpoint = await addEndpoint(org, ["api_key.credits_exhausted"]);
    const identity = await call("POST", "/v1/identities", {
      token: org.admin,
      body: { external_id: "cust_exhaust", credits: { remaining: 1 } },
    });
    expect(identity.status).toBe(201);
    const bare = await newKey(org.admin, org.project.id, { external_id: "cust_exhaust" });
    const funded = await newKey(org.admin, org.project.id, {
      external_id: "cust_exhaust",
      credits: { remaining: 5 },
    });
    const codes = [];
    for (const key of [bare, bare, funded]) codes.push((await verify(key.key)).body.code);
    // The identity's one credit went to the first verification; then it refuses both keys.
    expect(codes).toEqual(["VALID", "USAGE_EXCEEDED", "USAGE_EXCEEDED"]);
    expect(await queued(endpoint.id)).toHaveLength(0);
  });

  it("concurrent refusals report one exhaustion", async () => {
    const org = await newOrg("ev-exhausted-race");
    const endpoint = await addEndpoint(org, ["api_key.credits_exhausted"]);
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 0 } });
    await Promise.all(Array.from({ length: 8 }, () => verify(key.key)));
    expect(await queued(endpoint.id)).toHaveLength(1);
  });
});
