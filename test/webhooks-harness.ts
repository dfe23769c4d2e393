// What the webhooks tests share: set-up, fixtures and helpers (split out of one test file).
import { env } from "cloudflare:workers";
import { Webhook } from "standardwebhooks";
import { afterEach, expect, vi } from "vitest";
import { call, newKey, newOrg } from "./helpers";
export const SECOND = 1000;
export const MINUTE = 60 * SECOND;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected field by field
export type Json = any;

export interface Sent {
  url: string;
  method: string;
  headers: Headers;
  body: string;
  init: RequestInit | undefined;
}

export type Receiver = (sent: Sent, attempt: number) => Response | Promise<Response>;

/**
 * Replace outbound fetch (the Worker runs in this isolate) with receivers by URL. Any other
 * URL — a delivery left over by another test — gets a 204, so no request leaves the machine.
 */
export function receivers(routes: Record<string, Receiver>) {
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

export const ok: Receiver = () => new Response("ok");
export const status =
  (code: number): Receiver =>
  () =>
    new Response("nope", { status: code });

export let hookCounter = 0;
export const hookUrl = (name: string) => `https://hooks.example/${name}/${++hookCounter}`;

/** A project, a key with a rotation webhook, and a manual rotation that queued a delivery. */
export async function rotatedKey(name: string, fields: Record<string, unknown> = {}) {
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

export async function deliveries(token: string, projectId: string): Promise<Json[]> {
  const listed = await call("GET", `/v1/projects/${projectId}/webhook-deliveries`, { token });
  expect(listed.status).toBe(200);
  expect(listed.body).toEqual({ webhook_deliveries: expect.any(Array) });
  return listed.body.webhook_deliveries;
}

export const deliveryRow = (id: string) =>
  env.DB.prepare("select * from webhook_deliveries where id = ?")
    .bind(id)
    .first<Record<string, unknown>>();

/**
 * Standard Webhooks verification by the reference library, on the receiver's real clock: it
 * refuses a timestamp more than 5 minutes off, whatever instant the cron run was for.
 */
export function standardVerify(secret: string, hook: Sent): unknown {
  return new Webhook(secret).verify(hook.body, Object.fromEntries(hook.headers.entries()));
}

/** `webhook-timestamp` is the attempt's real send time (seconds), not the run's instant. */
export function expectSentNow(hook: Sent): void {
  const sentAt = Number(hook.headers.get("webhook-timestamp")) * SECOND;
  expect(Math.abs(sentAt - Date.now())).toBeLessThan(60 * SECOND);
}

/** The same signature computed by hand: base64 HMAC-SHA256 of `id.timestamp.body`. */
export async function expectedSignature(secret: string, hook: Sent): Promise<string> {
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

export const signatures = (hook: Sent) => (hook.headers.get("webhook-signature") ?? "").split(" ");

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

/** Make a delivery due at `at` (ms), so a run at a chosen instant sees only this test's rows. */
export const dueAt = (id: string, at: number) =>
  env.DB.prepare("update webhook_deliveries set next_attempt_at = ? where id = ?")
    .bind(at, id)
    .run();

/** `count` more pending rows like delivery `id` (same organization, URL and key), due at `at`. */
export const cloneDelivery = (id: string, count: number, at: number) =>
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
export function gate() {
  let open: () => void = () => {};
  const opened = new Promise<void>((resolve) => {
    open = resolve;
  });
  return { open, opened };
}
