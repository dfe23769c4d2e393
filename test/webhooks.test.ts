import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DELIVERY_BATCH, MAX_ATTEMPTS } from "../src/core/webhooks";
import {
  call,
  iso,
  newKey,
  newOrg,
  nextLink,
  runCron,
  sessionToken,
  until,
  verify,
} from "./helpers";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected field by field
type Json = any;

interface Sent {
  url: string;
  method: string;
  headers: Headers;
  body: string;
  init: RequestInit | undefined;
}

type Receiver = (sent: Sent, attempt: number) => Response | Promise<Response>;

/**
 * Replace outbound fetch (the Worker runs in this isolate) with receivers by URL. Any other
 * URL — a delivery left over by another test — gets a 204, so no request leaves the machine.
 */
function receivers(routes: Record<string, Receiver>) {
  const sent: Sent[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    const hook: Sent = {
      url: request.url,
      method: request.method,
      headers: request.headers,
      body: await request.text(),
      init,
    };
    sent.push(hook);
    const receive = routes[hook.url];
    if (!receive) return new Response(null, { status: 204 });
    return receive(hook, sent.filter((s) => s.url === hook.url).length);
  });
  return { to: (url: string) => sent.filter((s) => s.url === url) };
}

const ok: Receiver = () => new Response("ok");
const status =
  (code: number): Receiver =>
  () =>
    new Response("nope", { status: code });

let hookCounter = 0;
const hookUrl = (name: string) => `https://hooks.example/${name}/${++hookCounter}`;

/** A project, a key with a rotation webhook, and a manual rotation that queued a delivery. */
async function rotatedKey(name: string, fields: Record<string, unknown> = {}) {
  const org = await newOrg(name);
  const url = hookUrl(name);
  const key = await newKey(org.admin, org.project.id, { rotation_webhook_url: url, ...fields });
  const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
    token: org.admin,
    body: { grace_period_seconds: 3600 },
  });
  expect(rotated.status).toBe(201);
  const [delivery] = await deliveries(org.admin, org.project.id);
  return { ...org, url, key, rotation: rotated.body, delivery };
}

async function deliveries(token: string, projectId: string): Promise<Json[]> {
  const listed = await call("GET", `/v1/projects/${projectId}/webhook-deliveries`, { token });
  expect(listed.status).toBe(200);
  expect(listed.body).toEqual({ webhook_deliveries: expect.any(Array) });
  return listed.body.webhook_deliveries;
}

const deliveryRow = (id: string) =>
  env.DB.prepare("select * from webhook_deliveries where id = ?")
    .bind(id)
    .first<Record<string, unknown>>();

/**
 * Standard Webhooks verification by the reference library, on the receiver's real clock: it
 * refuses a timestamp more than 5 minutes off, whatever instant the cron run was for.
 */
function standardVerify(secret: string, hook: Sent): unknown {
  return new Webhook(secret).verify(hook.body, Object.fromEntries(hook.headers.entries()));
}

/** `webhook-timestamp` is the attempt's real send time (seconds), not the run's instant. */
function expectSentNow(hook: Sent): void {
  const sentAt = Number(hook.headers.get("webhook-timestamp")) * SECOND;
  expect(Math.abs(sentAt - Date.now())).toBeLessThan(60 * SECOND);
}

/** The same signature computed by hand: base64 HMAC-SHA256 of `id.timestamp.body`. */
async function expectedSignature(secret: string, hook: Sent): Promise<string> {
  const raw = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [
    "sign",
  ]);
  const signed = `${hook.headers.get("webhook-id")}.${hook.headers.get("webhook-timestamp")}.${hook.body}`;
  const mac = new Uint8Array(
    await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(signed)),
  );
  return `v1,${btoa(String.fromCharCode(...mac))}`;
}

const signatures = (hook: Sent) => (hook.headers.get("webhook-signature") ?? "").split(" ");

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("the outbox", () => {
  it("queues an api_key.rotated delivery, its key encrypted, when a key with a webhook URL is rotated", async () => {
    const { admin, project, url, rotation, delivery } = await rotatedKey("queue");

    expect(delivery).toMatchObject({
      id: expect.stringMatching(/^msg_/),
      project_id: project.id,
      key_id: rotation.new_key_id,
      event_type: "api_key.rotated",
      url,
      status: "pending",
      attempts: 0,
      last_status_code: null,
      delivered_at: null,
    });
    const row = await deliveryRow(delivery.id);
    expect(row?.encrypted_key).toMatch(/^v1\./);
    expect(JSON.stringify(row)).not.toContain(rotation.key);
    const listed = await call("GET", `/v1/projects/${project.id}/webhook-deliveries`, {
      token: admin,
    });
    expect(listed.text).not.toContain(rotation.key);
    expect(listed.text).not.toContain(String(row?.encrypted_key));
  });

  it("queues nothing for a key without a webhook URL", async () => {
    const { admin, project } = await newOrg("nohook");
    const key = await newKey(admin, project.id);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, { token: admin, body: {} });
    expect(rotated.status).toBe(201);
    expect(await deliveries(admin, project.id)).toEqual([]);
  });

  it("lists a project's deliveries newest first, a page at a time", async () => {
    const { admin, project } = await newOrg("pages");
    const url = hookUrl("pages");
    let key = await newKey(admin, project.id, { rotation_webhook_url: url });
    const newKeyIds: string[] = [];
    for (let i = 0; i < 3; i++) {
      const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
        token: admin,
        body: {},
      });
      newKeyIds.push(rotated.body.new_key_id);
      key = { id: rotated.body.new_key_id };
    }

    const first = await call("GET", `/v1/projects/${project.id}/webhook-deliveries?limit=2`, {
      token: admin,
    });
    expect(first.body.webhook_deliveries.map((d: Json) => d.key_id)).toEqual([
      newKeyIds[2],
      newKeyIds[1],
    ]);
    const next = nextLink(first.headers);
    expect(next).not.toBeNull();
    const second = await call("GET", next as string, { token: admin });
    expect(second.body.webhook_deliveries.map((d: Json) => d.key_id)).toEqual([newKeyIds[0]]);
    expect(second.headers.get("link")).toBeNull();
  });

  it("hides a project's deliveries from other organizations", async () => {
    const { project } = await rotatedKey("private");
    const stranger = await newOrg("stranger");
    const listed = await call("GET", `/v1/projects/${project.id}/webhook-deliveries`, {
      token: stranger.admin,
    });
    expect(listed.status).toBe(404);
  });
});

describe("delivery", () => {
  it("delivers a manual rotation signed per Standard Webhooks, with the new key in the body", async () => {
    const { admin, project, url, key, rotation, delivery } = await rotatedKey("deliver", {
      scopes: ["deploy"],
    });
    const hooks = receivers({ [url]: ok });
    const runAt = Date.now();

    await runCron(runAt);

    const [hook] = hooks.to(url);
    expect(hooks.to(url)).toHaveLength(1);
    if (!hook) throw new Error("no delivery");
    expect(hook.method).toBe("POST");
    expect(hook.headers.get("content-type")).toBe("application/json");
    expect(hook.headers.get("webhook-id")).toBe(delivery.id);
    expectSentNow(hook);
    expect(signatures(hook)).toEqual([expect.stringMatching(/^v1,[A-Za-z0-9+/]+={0,2}$/)]);
    expect(signatures(hook)).toEqual([
      await expectedSignature(project.webhook_signing_secret, hook),
    ]);
    expect(standardVerify(project.webhook_signing_secret, hook)).toEqual(JSON.parse(hook.body));
    // A receiver that does not follow redirects, and gives up on a slow receiver.
    expect(hook.init?.redirect).toBe("manual");
    expect(hook.init?.signal).toBeInstanceOf(AbortSignal);

    const event = JSON.parse(hook.body);
    expect(event).toMatchObject({
      type: "api_key.rotated",
      timestamp: expect.any(String),
      data: {
        old_key_id: key.id,
        new_key_id: rotation.new_key_id,
        key: rotation.key,
        key_prefix: rotation.key_prefix,
        project_id: project.id,
        grace_expires_at: rotation.grace_expires_at,
        scopes: ["deploy"],
        name: key.name,
      },
    });
    expect((await verify(event.data.key)).body).toMatchObject({
      valid: true,
      key_id: rotation.new_key_id,
    });

    const [after] = await deliveries(admin, project.id);
    expect(after).toMatchObject({
      id: delivery.id,
      status: "delivered",
      attempts: 1,
      last_status_code: 200,
      next_attempt_at: null,
      delivered_at: iso(runAt),
    });
    expect((await deliveryRow(delivery.id))?.encrypted_key).toBeNull();

    await runCron(runAt + HOUR);
    expect(hooks.to(url)).toHaveLength(1);
  });

  it("rejects a tampered body or a wrong secret", async () => {
    const { project, url } = await rotatedKey("tamper");
    const hooks = receivers({ [url]: ok });
    await runCron(Date.now());
    const [hook] = hooks.to(url);
    if (!hook) throw new Error("no delivery");

    const tampered = { ...hook, body: hook.body.replace("api_key.rotated", "api_key.revoked") };
    expect(() => standardVerify(project.webhook_signing_secret, tampered)).toThrow();
    const other = await newOrg("tamper-other");
    expect(() => standardVerify(other.project.webhook_signing_secret, hook)).toThrow();
  });

  it("delivers a scheduled rotation in the same cron run that performed it", async () => {
    const { admin, project } = await newOrg("scheduled");
    const url = hookUrl("scheduled");
    const key = await newKey(admin, project.id, {
      rotation_interval_days: 2,
      rotation_webhook_url: url,
    });
    const runAt = Date.parse(key.next_rotation_at);
    const hooks = receivers({ [url]: ok });

    await runCron(runAt);

    expect(hooks.to(url)).toHaveLength(1);
    const [hook] = hooks.to(url);
    if (!hook) throw new Error("no delivery");
    // The run is for a day ahead; the receiver's clock is today's, and it still verifies.
    expect(runAt - Date.now()).toBeGreaterThan(60 * 60 * SECOND);
    expectSentNow(hook);
    expect(signatures(hook)).toEqual([
      await expectedSignature(project.webhook_signing_secret, hook),
    ]);
    standardVerify(project.webhook_signing_secret, hook);

    const event = JSON.parse(hook.body);
    const [delivery] = await deliveries(admin, project.id);
    expect(event).toMatchObject({
      type: "api_key.rotated",
      timestamp: iso(runAt),
      data: {
        old_key_id: key.id,
        new_key_id: delivery.key_id,
        project_id: project.id,
        grace_expires_at: iso(runAt + DAY),
        next_rotation_at: iso(runAt + 2 * DAY),
        key: expect.stringMatching(/^capy_live_/),
      },
    });
    expect((await verify(event.data.key)).body).toMatchObject({
      valid: true,
      in_grace: false,
      key_id: delivery.key_id,
    });
    expect((await verify(key.key)).body).toMatchObject({ valid: true, in_grace: true });
    expect(delivery).toMatchObject({ status: "delivered", attempts: 1 });
  });

  it("delivers an attempt once when two runs overlap", async () => {
    const { admin, project, url, delivery } = await rotatedKey("overlap");
    const hooks = receivers({ [url]: ok });
    const runAt = Date.now();

    await Promise.all([runCron(runAt), runCron(runAt), runCron(runAt)]);

    expect(hooks.to(url)).toHaveLength(1);
    const [after] = await deliveries(admin, project.id);
    expect(after).toMatchObject({ id: delivery.id, status: "delivered", attempts: 1 });
  });
});

/** Make a delivery due at `at` (ms), so a run at a chosen instant sees only this test's rows. */
const dueAt = (id: string, at: number) =>
  env.DB.prepare("update webhook_deliveries set next_attempt_at = ? where id = ?")
    .bind(at, id)
    .run();

/** `count` more pending rows like delivery `id` (same organization, URL and key), due at `at`. */
const cloneDelivery = (id: string, count: number, at: number) =>
  env.DB.prepare(
    `with recursive n(i) as (select 1 union all select i + 1 from n where i < ?)
     insert into webhook_deliveries (id, organization_id, project_id, key_id, event_type, url,
       payload, encrypted_key, status, attempts, next_attempt_at, created_at, updated_at)
     select 'msg_' || lower(hex(randomblob(16))), organization_id, project_id, key_id,
       event_type, url, payload, encrypted_key, 'pending', 0, ?, created_at, updated_at
     from webhook_deliveries, n where id = ?`,
  )
    .bind(count, at, id)
    .run();

/** A promise and the function that resolves it: a test waits on an event, never on a timer. */
function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}

describe("fairness and leases", () => {
  it("delivers another tenant's due delivery in the first run, behind one tenant's 75 failing ones", async () => {
    // Runs a day back: no delivery left by the other tests of this file is due then.
    const runAt = Date.now() - DAY;
    const busy = await rotatedKey("backlog");
    await dueAt(busy.delivery.id, runAt - 2 * HOUR);
    await cloneDelivery(busy.delivery.id, 74, runAt - 2 * HOUR);
    const quiet = await rotatedKey("quiet");
    await dueAt(quiet.delivery.id, runAt - HOUR);
    const hooks = receivers({ [busy.url]: status(500), [quiet.url]: ok });

    await runCron(runAt);

    expect(hooks.to(quiet.url)).toHaveLength(1);
    expect((await deliveries(quiet.admin, quiet.project.id))[0]).toMatchObject({
      status: "delivered",
    });
    // The busy tenant still got the rest of the run's batch.
    expect(hooks.to(busy.url)).toHaveLength(DELIVERY_BATCH - 1);
  });

  it("never claims again an attempt still in flight, even when the run that sent it was late", async () => {
    const { admin, project, url, delivery } = await rotatedKey("late-run");
    await dueAt(delivery.id, Date.now() - 5 * MINUTE);
    const sent = gate();
    let release: (response: Response) => void = () => {};
    const answer = new Promise<Response>((resolve) => {
      release = resolve;
    });
    const hooks = receivers({
      [url]: (_sent, attempt) => {
        if (attempt > 1) return new Response("a second send");
        sent.open();
        return answer;
      },
    });

    // A run 70 s late: its scheduledTime is 70 s behind the wall clock.
    const late = runCron(Date.now() - 70 * SECOND);
    await sent.opened;
    await runCron(Date.now());
    expect(hooks.to(url)).toHaveLength(1);

    release(new Response("ok"));
    await late;
    expect(hooks.to(url)).toHaveLength(1);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({
      status: "delivered",
      attempts: 1,
    });
  });
});

describe("leases on the wall clock", () => {
  it("never claims again an attempt still in flight from runs whose instants lie ahead of the wall clock", async () => {
    const { admin, project, url, delivery } = await rotatedKey("ahead-runs");
    const start = Date.now();
    await dueAt(delivery.id, start - MINUTE);
    const sent = gate();
    let release: (response: Response) => void = () => {};
    const answer = new Promise<Response>((resolve) => {
      release = resolve;
    });
    const hooks = receivers({
      [url]: (_sent, attempt) => {
        if (attempt > 1) return new Response("a second send");
        sent.open();
        return answer;
      },
    });

    // Runs at t, t + 70 s and t + 140 s, all while the first attempt is still in flight.
    const first = runCron(start);
    await sent.opened;
    await runCron(start + 70 * SECOND);
    await runCron(start + 140 * SECOND);
    expect(hooks.to(url)).toHaveLength(1);

    release(new Response("ok"));
    await first;
    expect(hooks.to(url)).toHaveLength(1);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({
      status: "delivered",
      attempts: 1,
    });
  });
});

describe("retries", () => {
  it("retries a failing receiver after a backoff, with the same webhook-id, until it succeeds", async () => {
    const { admin, project, url, rotation, delivery } = await rotatedKey("flaky");
    const hooks = receivers({
      [url]: (_sent, attempt) => new Response(null, { status: attempt === 1 ? 500 : 200 }),
    });
    const t0 = Date.now();

    await runCron(t0);
    let [state] = await deliveries(admin, project.id);
    expect(state).toMatchObject({
      status: "pending",
      attempts: 1,
      last_status_code: 500,
      last_error: expect.stringContaining("500"),
      last_attempt_at: iso(t0),
      next_attempt_at: iso(t0 + 30 * SECOND),
      delivered_at: null,
    });
    expect((await deliveryRow(delivery.id))?.encrypted_key).toMatch(/^v1\./);

    await runCron(t0 + 30 * SECOND - 1);
    expect(hooks.to(url)).toHaveLength(1);

    await runCron(t0 + 30 * SECOND);
    const [first, second] = hooks.to(url);
    expect(hooks.to(url)).toHaveLength(2);
    if (!first || !second) throw new Error("missing attempts");
    expect(second.headers.get("webhook-id")).toBe(first.headers.get("webhook-id"));
    expect(second.headers.get("webhook-id")).toBe(delivery.id);
    expect(second.body).toBe(first.body);
    expectSentNow(second);
    expect(signatures(second)).toEqual([
      await expectedSignature(project.webhook_signing_secret, second),
    ]);

    const listed = await call("GET", `/v1/projects/${project.id}/webhook-deliveries`, {
      token: admin,
    });
    [state] = listed.body.webhook_deliveries;
    expect(state).toMatchObject({
      status: "delivered",
      attempts: 2,
      last_status_code: 200,
      last_error: null,
      next_attempt_at: null,
      delivered_at: iso(t0 + 30 * SECOND),
    });
    expect(listed.text).not.toContain(rotation.key);
    expect(Object.keys(state)).not.toContain("key");
    expect((await deliveryRow(delivery.id))?.encrypted_key).toBeNull();
  });

  it("backs off 30 s · 2^(n-1) and gives up after 8 attempts, erasing the key", async () => {
    const { admin, project, url, delivery } = await rotatedKey("dead");
    const hooks = receivers({ [url]: status(503) });
    const gaps: number[] = [];
    let runAt = Date.now();

    for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
      await runCron(runAt);
      expect(hooks.to(url)).toHaveLength(attempt);
      const [state] = await deliveries(admin, project.id);
      expect(state.attempts).toBe(attempt);
      if (attempt < MAX_ATTEMPTS) {
        expect(state.status).toBe("pending");
        expect((await deliveryRow(delivery.id))?.encrypted_key).toMatch(/^v1\./);
        const next = Date.parse(state.next_attempt_at);
        gaps.push((next - Date.parse(state.last_attempt_at)) / SECOND);
        runAt = next;
      }
    }
    expect(gaps).toEqual([30, 60, 120, 240, 480, 960, 1920]);
    expect(MAX_ATTEMPTS).toBe(8);

    const [failed] = await deliveries(admin, project.id);
    expect(failed).toMatchObject({
      status: "failed",
      attempts: 8,
      last_status_code: 503,
      next_attempt_at: null,
      delivered_at: null,
    });
    const row = await env.DB.prepare(
      "select encrypted_key is null as erased from webhook_deliveries where id = ?",
    )
      .bind(delivery.id)
      .first<{ erased: number }>();
    expect(row?.erased).toBe(1);
    const ids = new Set(hooks.to(url).map((h) => h.headers.get("webhook-id")));
    expect([...ids]).toEqual([delivery.id]);

    await runCron(runAt + DAY);
    expect(hooks.to(url)).toHaveLength(MAX_ATTEMPTS);
  });

  it("stops at once when the receiver answers 410 Gone", async () => {
    const { admin, project, url, delivery } = await rotatedKey("gone");
    const hooks = receivers({ [url]: status(410) });
    const runAt = Date.now();

    await runCron(runAt);
    await runCron(runAt + HOUR);

    expect(hooks.to(url)).toHaveLength(1);
    const [state] = await deliveries(admin, project.id);
    expect(state).toMatchObject({
      id: delivery.id,
      status: "failed",
      attempts: 1,
      last_status_code: 410,
      next_attempt_at: null,
    });
    expect((await deliveryRow(delivery.id))?.encrypted_key).toBeNull();
  });

  it("counts an unreachable receiver as a failed attempt and tries again later", async () => {
    const { admin, project, url } = await rotatedKey("unreachable");
    receivers({
      [url]: () => {
        throw new TypeError("Network connection lost.");
      },
    });
    const runAt = Date.now();

    await runCron(runAt);

    const [state] = await deliveries(admin, project.id);
    expect(state).toMatchObject({
      status: "pending",
      attempts: 1,
      last_status_code: null,
      last_error: expect.stringContaining("Network connection lost"),
      next_attempt_at: iso(runAt + 30 * SECOND),
    });
    receivers({ [url]: ok });
    await runCron(runAt + 30 * SECOND);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({ status: "delivered" });
  });

  it("does not let a slow or failing receiver hold up other deliveries of the run", async () => {
    const { admin, project } = await newOrg("isolation");
    const slowUrl = hookUrl("slow");
    const failingUrl = hookUrl("failing");
    const fastUrl = hookUrl("fast");
    const keys: Record<string, Json> = {};
    for (const url of [slowUrl, failingUrl, fastUrl]) {
      keys[url] = await newKey(admin, project.id, { rotation_webhook_url: url });
      const rotated = await call("POST", `/v1/api-keys/${keys[url].id}/rotate`, {
        token: admin,
        body: {},
      });
      expect(rotated.status).toBe(201);
    }
    const byUrl = async () =>
      Object.fromEntries((await deliveries(admin, project.id)).map((d) => [d.url, d]));
    let release: (response: Response) => void = () => {};
    const slowAnswer = new Promise<Response>((resolve) => {
      release = resolve;
    });
    const hooks = receivers({
      [slowUrl]: () => slowAnswer,
      [failingUrl]: () => {
        throw new TypeError("connection refused");
      },
      [fastUrl]: ok,
    });

    const run = runCron(Date.now());
    // While the slow receiver still has not answered, the others are done and recorded.
    let state = await byUrl();
    await until(async () => {
      state = await byUrl();
      return state[fastUrl].status === "delivered";
    }, "the fast receiver's delivery recorded");
    expect(hooks.to(slowUrl)).toHaveLength(1);
    expect(state[fastUrl]).toMatchObject({ status: "delivered", attempts: 1 });
    expect(state[failingUrl]).toMatchObject({ status: "pending", attempts: 1 });
    expect(state[slowUrl]).toMatchObject({ status: "pending", last_status_code: null });

    release(new Response("finally"));
    await run;
    state = await byUrl();
    expect(state[slowUrl]).toMatchObject({ status: "delivered", attempts: 1 });
  });
});

describe("webhook signing secret", () => {
  it("is readable and rotatable by org admins only", async () => {
    const { admin, member, project } = await newOrg("secret-acl");
    const path = `/v1/projects/${project.id}/webhook-secret`;

    expect((await call("GET", path, { token: member })).status).toBe(403);
    expect((await call("POST", path, { token: member })).status).toBe(403);
    const stranger = await newOrg("secret-stranger");
    expect((await call("POST", path, { token: stranger.admin })).status).toBe(404);
    expect((await call("GET", path, { token: stranger.admin })).status).toBe(404);

    const read = await call("GET", path, { token: admin });
    expect(read.status).toBe(200);
    expect(read.body).toEqual({
      webhook_signing_secret: project.webhook_signing_secret,
      previous_webhook_signing_secret: null,
      previous_secret_expires_at: null,
    });
  });

  it("signs with both the new and the old secret for 24 h after a rotation", async () => {
    const { admin, project } = await newOrg("secret-rotation");
    const oldSecret = project.webhook_signing_secret;
    const before = Date.now();
    const rotatedSecret = await call("POST", `/v1/projects/${project.id}/webhook-secret`, {
      token: admin,
    });
    expect(rotatedSecret.status).toBe(200);
    const newSecret = rotatedSecret.body.webhook_signing_secret;
    expect(newSecret).toMatch(/^whsec_/);
    expect(newSecret).not.toBe(oldSecret);
    expect(rotatedSecret.body.previous_webhook_signing_secret).toBe(oldSecret);
    const previousUntil = Date.parse(rotatedSecret.body.previous_secret_expires_at);
    expect(previousUntil).toBeGreaterThanOrEqual(before + DAY);
    expect(previousUntil).toBeLessThanOrEqual(Date.now() + DAY);
    const read = await call("GET", `/v1/projects/${project.id}/webhook-secret`, { token: admin });
    expect(read.body).toEqual(rotatedSecret.body);

    const url = hookUrl("two-secrets");
    const key = await newKey(admin, project.id, { rotation_webhook_url: url });
    const first = await call("POST", `/v1/api-keys/${key.id}/rotate`, { token: admin, body: {} });
    const hooks = receivers({ [url]: ok });
    await runCron(Date.now());

    const [both] = hooks.to(url);
    if (!both) throw new Error("no delivery");
    expect(signatures(both)).toHaveLength(2);
    expect(new Set(signatures(both))).toEqual(
      new Set([await expectedSignature(newSecret, both), await expectedSignature(oldSecret, both)]),
    );
    expect(standardVerify(newSecret, both)).toEqual(JSON.parse(both.body));
    expect(standardVerify(oldSecret, both)).toEqual(JSON.parse(both.body));

    // A day later the old secret is no longer used.
    const second = await call("POST", `/v1/api-keys/${first.body.new_key_id}/rotate`, {
      token: admin,
      body: {},
    });
    expect(second.status).toBe(201);
    await runCron(previousUntil + MINUTE);
    const [, one] = hooks.to(url);
    if (!one) throw new Error("no second delivery");
    expect(signatures(one)).toEqual([await expectedSignature(newSecret, one)]);
    standardVerify(newSecret, one);
    expect(() => standardVerify(oldSecret, one)).toThrow();
  });
});

describe("webhook signing secret history", () => {
  it("refuses a second rotation (409) while the previous secret is in its 24 h, then allows it", async () => {
    const { org, admin, project } = await newOrg("secret-history");
    const path = `/v1/projects/${project.id}/webhook-secret`;
    const first = await call("POST", path, { token: admin });
    expect(first.status).toBe(200);

    const again = await call("POST", path, { token: admin });
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toContain("application/problem+json");
    expect(again.body.detail).toContain(first.body.previous_secret_expires_at);
    // Nothing changed: the original secret still signs beside the new one.
    const read = await call("GET", path, { token: admin });
    expect(read.body).toEqual(first.body);
    expect(read.body.previous_webhook_signing_secret).toBe(project.webhook_signing_secret);

    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(Date.parse(first.body.previous_secret_expires_at) + SECOND);
    const later = await call("POST", path, { token: await sessionToken({ org, role: "admin" }) });
    expect(later.status).toBe(200);
    expect(later.body.previous_webhook_signing_secret).toBe(first.body.webhook_signing_secret);
  });
});

describe("rotation_webhook_url", () => {
  const rejected = ["http://example.com/hook", "ftp://example.com/hook", "not a url"];
  const accepted = [
    "http://localhost:3000/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::1]:9000/hook",
    "https://example.com/hooks/keygate",
  ];

  it("must be https, or http to a loopback host, when a key is created", async () => {
    const { admin, project } = await newOrg("url-create");
    for (const url of rejected) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(400);
      expect(created.headers.get("content-type")).toContain("application/problem+json");
      expect(created.body.errors.map((e: Json) => e.location)).toContain(
        "body.rotation_webhook_url",
      );
    }
    for (const url of accepted) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(201);
      expect(created.body.rotation_webhook_url).toBe(url);
    }
  });

  it("must be https, or http to a loopback host, when a key is changed", async () => {
    const { admin, project } = await newOrg("url-patch");
    const key = await newKey(admin, project.id);
    const patch = (url: string | null) =>
      call("PATCH", `/v1/api-keys/${key.id}`, {
        token: admin,
        body: { rotation_webhook_url: url },
      });
    for (const url of rejected) {
      const patched = await patch(url);
      expect(patched.status, url).toBe(400);
      expect(patched.body.errors.map((e: Json) => e.location)).toContain(
        "body.rotation_webhook_url",
      );
    }
    for (const url of accepted) {
      const patched = await patch(url);
      expect(patched.status, url).toBe(200);
      expect(patched.body.rotation_webhook_url).toBe(url);
    }
    expect((await patch(null)).body.rotation_webhook_url).toBeNull();
  });
});

describe("rotation_webhook_url: no private or special addresses, in any spelling", () => {
  const refused = [
    // private, loopback (other than the three loopback hosts), link-local, unspecified
    "https://10.0.0.1/hook",
    "https://172.16.5.4/hook",
    "https://192.168.1.1/hook",
    "https://100.64.0.1/hook",
    "https://169.254.169.254/latest/meta-data",
    "https://127.0.0.2/hook",
    "https://0.0.0.0/hook",
    "https://255.255.255.255/hook",
    "https://224.0.0.1/hook",
    // the same addresses in other IPv4 spellings
    "https://167772161/hook", // 10.0.0.1 as one decimal number
    "https://0xa000001/hook",
    "https://0x0a.0.0.1/hook",
    "https://012.0.0.1/hook", // octal 10
    "https://0251.0376.0251.0376/", // 169.254.169.254 in octal
    "https://10.1/hook",
    "https://10.0.0.1./hook",
    "https://%31%30.0.0.1/hook",
    "https://0/hook",
    // IPv6: unspecified, link-local, unique-local, site-local, multicast, mapped, NAT64
    "https://[::]/hook",
    "https://[0:0:0:0:0:0:0:0]/hook",
    "https://[fe80::1]/hook",
    "https://[FE80:0000::1]/hook",
    "https://[fc00::1]/hook",
    "https://[fd12:3456:789a::1]/hook",
    "https://[fec0::1]/hook",
    "https://[ff02::1]/hook",
    "https://[::ffff:10.0.0.1]/hook",
    "https://[::ffff:a00:1]/hook",
    "https://[::ffff:8.8.8.8]/hook",
    "https://[0:0:0:0:0:ffff:7f00:1]/hook",
    "https://[::127.0.0.1]/hook",
    "https://[::2]/hook",
    "https://[64:ff9b::a00:1]/hook",
    "https://[2002:a00:1::]/hook",
    "https://[0::1]:8443/hook", // loopback, but only the spellings localhost, 127.0.0.1, [::1]
    "https://0x7f.1/hook",
    "https://2130706433/hook",
    "http://0x7f000001/hook",
    "https://[0:0:0:0:0:0:0:1]/hook",
    // user info, ports off loopback, other schemes
    "https://user:pass@example.com/hook",
    "https://user@example.com/hook",
    "https://example.com:8443/hook",
    "http://example.com/hook",
    "HTTPS://example.com/hook",
    "http://localhost.example.com/hook",
    "http://127.0.0.1.nip.io/hook",
    "ftp://example.com/hook",
    "javascript:alert(1)",
    // names that only resolve inside, control characters, Teredo (2001::/32)
    "https://localhost./hook",
    "https://api.localhost/hook",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://internal./hook",
    "https://exa\tmple.com/hook",
    "https://example.com/ho\nok",
    "https://example.com\u0001/hook",
    "https://[2001::1]/hook",
    "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/hook",
  ];
  const allowed = [
    "https://example.com/hook",
    "https://example.com",
    "https://example.com?x=1",
    "https://8.8.8.8/hook",
    "https://[2606:4700:4700::1111]/hook",
    "http://localhost/hook",
    "http://localhost:3000/hook",
    "https://localhost:8443/hook",
    "http://127.0.0.1:8080/hook",
    "http://[::1]:9000/hook",
  ];

  it("refuses each refused spelling with one 400 naming the field, and accepts the others", async () => {
    const { admin, project } = await newOrg("url-ssrf");
    for (const url of refused) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(400);
      expect(created.body.errors, url).toEqual([
        { location: "body.rotation_webhook_url", message: expect.any(String), value: url },
      ]);
    }
    for (const url of allowed) {
      const created = await call("POST", "/v1/api-keys", {
        token: admin,
        body: { project_id: project.id, name: "k", rotation_webhook_url: url },
      });
      expect(created.status, url).toBe(201);
    }
  });

  it("accepts an explicit default port as the same URL, and keeps it without the port", async () => {
    const { admin, project } = await newOrg("url-port");
    const created = await call("POST", "/v1/api-keys", {
      token: admin,
      body: {
        project_id: project.id,
        name: "k",
        rotation_webhook_url: "https://example.com:443/hook",
      },
    });
    expect(created.status).toBe(201);
    expect(created.body.rotation_webhook_url).toBe("https://example.com/hook");
    const patched = await call("PATCH", `/v1/api-keys/${created.body.id}`, {
      token: admin,
      body: { rotation_webhook_url: "https://[2606:4700:4700::1111]:443" },
    });
    expect(patched.status).toBe(200);
    expect(patched.body.rotation_webhook_url).toBe("https://[2606:4700:4700::1111]");
  });

  it("states the rule in the OpenAPI document: format uri, a pattern and a description", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const schemas = JSON.stringify(doc);
    expect(schemas).toContain('"format":"uri"');
    const create = doc.paths["/v1/api-keys"].post.requestBody.content["application/json"].schema;
    const properties =
      create.properties ?? doc.components.schemas[create.$ref.split("/").pop()].properties;
    const field = properties.rotation_webhook_url;
    const url = field.anyOf ? field.anyOf.find((s: Json) => s.type === "string") : field;
    expect(url).toMatchObject({ format: "uri", maxLength: 2048 });
    expect(url.description).toMatch(/private/);
    const pattern = new RegExp(url.pattern);
    for (const ok of allowed) expect(pattern.test(ok), ok).toBe(true);
    for (const shape of ["https://user@example.com/", "https://example.com:8443/", "HTTPS://a/"]) {
      expect(pattern.test(shape), shape).toBe(false);
    }
  });
});

describe("retrying a delivery", () => {
  const retry = (token: string, projectId: string, deliveryId: string) =>
    call("POST", `/v1/projects/${projectId}/webhook-deliveries/${deliveryId}/retry`, { token });
  const retriesAudited = async (deliveryId: string) =>
    (
      await env.DB.prepare(
        "select count(*) as n from audit_events where action = 'webhook_delivery.retried' and target_id = ?",
      )
        .bind(deliveryId)
        .first<{ n: number }>()
    )?.n;

  it("requeues a pending delivery now, then refuses once it has been delivered", async () => {
    const { admin, project, url, delivery } = await rotatedKey("retry");
    const hooks = receivers({
      [url]: (_sent, attempt) => new Response(null, { status: attempt === 1 ? 500 : 200 }),
    });
    const t0 = Date.now();
    await runCron(t0);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({
      status: "pending",
      next_attempt_at: iso(t0 + 30 * SECOND),
    });

    const requeued = await retry(admin, project.id, delivery.id);
    expect(requeued.status).toBe(200);
    expect(requeued.body).toMatchObject({ id: delivery.id, status: "pending", attempts: 0 });
    const requeuedAt = Date.parse(requeued.body.next_attempt_at);
    expect(requeuedAt).toBeLessThan(t0 + 30 * SECOND);

    await runCron(requeuedAt);
    expect(hooks.to(url)).toHaveLength(2);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({
      status: "delivered",
      attempts: 1,
    });

    const again = await retry(admin, project.id, delivery.id);
    expect(again.status).toBe(409);
    expect(again.headers.get("content-type")).toContain("application/problem+json");
    expect(await retriesAudited(delivery.id)).toBe(1);
  });

  /** A cron run whose attempt at `url` has been sent and waits for `release(response)`. */
  async function attemptInFlight(url: string) {
    let release: (response: Response) => void = () => {};
    const answer = new Promise<Response>((resolve) => {
      release = resolve;
    });
    const hooks = receivers({ [url]: () => answer });
    const run = runCron(Date.now());
    await until(() => hooks.to(url).length > 0, "the attempt sent");
    expect(hooks.to(url)).toHaveLength(1);
    return { hooks, run, release };
  }

  it("records the success of an attempt that was in flight when a retry was asked for", async () => {
    const { admin, project, url, delivery } = await rotatedKey("retry-inflight");
    const { hooks, run, release } = await attemptInFlight(url);

    expect((await retry(admin, project.id, delivery.id)).status).toBe(200);
    release(new Response("ok"));
    await run;

    expect((await deliveries(admin, project.id))[0]).toMatchObject({ status: "delivered" });
    expect((await deliveryRow(delivery.id))?.encrypted_key).toBeNull();
    await runCron(Date.now() + HOUR);
    expect(hooks.to(url)).toHaveLength(1);
  });

  it("keeps a retry asked for while a failing attempt was in flight", async () => {
    const { admin, project, url, delivery } = await rotatedKey("retry-inflight-fail");
    const { run, release } = await attemptInFlight(url);

    const requeued = await retry(admin, project.id, delivery.id);
    expect(requeued.status).toBe(200);
    release(new Response("down", { status: 500 }));
    await run;

    // The failure did not overwrite the retry: pending, attempts from 0, due at once.
    expect((await deliveries(admin, project.id))[0]).toMatchObject({
      status: "pending",
      attempts: 0,
      next_attempt_at: requeued.body.next_attempt_at,
    });
    expect((await deliveryRow(delivery.id))?.encrypted_key).toMatch(/^v1\./);
  });

  it("requeues a failed delivery that still holds its key", async () => {
    const { admin, project, url, delivery } = await rotatedKey("retry-failed");
    // Given up while the key was still held (e.g. by an operator): retry brings it back.
    await env.DB.prepare(
      "update webhook_deliveries set status = 'failed', attempts = 8, next_attempt_at = null where id = ?",
    )
      .bind(delivery.id)
      .run();
    const hooks = receivers({ [url]: ok });

    const requeued = await retry(admin, project.id, delivery.id);
    expect(requeued.status).toBe(200);
    expect(requeued.body).toMatchObject({ status: "pending", attempts: 0 });
    await runCron(Date.parse(requeued.body.next_attempt_at));

    expect(hooks.to(url)).toHaveLength(1);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({ status: "delivered" });
  });

  it("refuses a delivery that was given up and its key erased", async () => {
    const { admin, project, url, delivery } = await rotatedKey("retry-gone");
    receivers({ [url]: status(410) });
    await runCron(Date.now());

    const refused = await retry(admin, project.id, delivery.id);
    expect(refused.status).toBe(409);
    expect(await retriesAudited(delivery.id)).toBe(0);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({ status: "failed" });
  });

  it("answers 404 for an unknown delivery or another organization's project", async () => {
    const { admin, project, delivery } = await rotatedKey("retry-404");
    const stranger = await newOrg("retry-stranger");

    expect((await retry(admin, project.id, "msg_doesnotexist")).status).toBe(404);
    expect((await retry(stranger.admin, project.id, delivery.id)).status).toBe(404);
    expect((await retry(stranger.admin, stranger.project.id, delivery.id)).status).toBe(404);
    expect((await deliveries(admin, project.id))[0]).toMatchObject({ status: "pending" });
  });
});
