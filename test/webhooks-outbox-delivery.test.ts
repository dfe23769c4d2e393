import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_ATTEMPTS } from "../src/core/webhooks";
import { call, iso, newKey, newOrg, nextLink, runCron, until, verify } from "./helpers";
import {
  DAY,
  deliveries,
  deliveryRow,
  expectedSignature,
  expectSentNow,
  HOUR,
  hookUrl,
  type Json,
  ok,
  receivers,
  rotatedKey,
  SECOND,
  signatures,
  standardVerify,
  status,
} from "./webhooks-harness";

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
