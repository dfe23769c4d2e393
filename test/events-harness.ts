// What the lifecycle-event tests share: endpoints, the events a receiver got, and a Standard
// Webhooks verifier written here (HMAC-SHA256 over `id.timestamp.body`, the secret's bytes).
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { call, runCron } from "./helpers";
import { hookUrl, type Json, ok, receivers, type Sent } from "./webhooks-harness";

export interface Org {
  org: string;
  admin: string;
  project: Json;
}

/** A webhook endpoint of the org's project, subscribed to `events` (D1 row, as the API stores it). */
export async function addEndpoint(
  org: Org,
  events: string[] = ["*"],
  options: { enabled?: boolean; projectId?: string } = {},
) {
  const id = crypto.randomUUID();
  const url = hookUrl("endpoint");
  const now = Date.now();
  await env.DB.prepare(
    `insert into webhook_endpoints (id, organization_id, project_id, url, events, description,
       enabled, created_at, updated_at) values (?, ?, ?, ?, ?, null, ?, ?, ?)`,
  )
    .bind(
      id,
      org.org,
      options.projectId ?? org.project.id,
      url,
      JSON.stringify(events),
      options.enabled === false ? 0 : 1,
      now,
      now,
    )
    .run();
  return { id, url };
}

/** The event rows queued for an endpoint, oldest first. */
export async function queued(endpointId: string): Promise<Json[]> {
  const { results } = await env.DB.prepare(
    "select * from webhook_deliveries where endpoint_id = ? order by seq",
  )
    .bind(endpointId)
    .all();
  return results;
}

/** Run the cron now (delivering what is due) and return what each URL received, parsed. */
export async function deliverNow(at = Date.now()) {
  const inbox = receivers({});
  await runCron(at);
  return (url: string) => inbox.to(url);
}

export const bodies = (hooks: Sent[]): Json[] => hooks.map((h) => JSON.parse(h.body));

/** Standard Webhooks verification, by hand: throws unless one `v1,` signature matches. */
export async function verifySignature(secret: string, hook: Sent): Promise<Json> {
  const id = hook.headers.get("webhook-id");
  const timestamp = hook.headers.get("webhook-timestamp");
  const header = hook.headers.get("webhook-signature");
  if (!id || !timestamp || !header) throw new Error("missing webhook headers");
  if (Math.abs(Date.now() / 1000 - Number(timestamp)) > 300) throw new Error("stale timestamp");
  const raw = Uint8Array.from(atob(secret.replace(/^whsec_/, "")), (c) => c.charCodeAt(0));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, [
    "verify",
  ]);
  const signed = new TextEncoder().encode(`${id}.${timestamp}.${hook.body}`);
  for (const part of header.split(" ")) {
    const [version, signature] = part.split(",");
    if (version !== "v1" || !signature) continue;
    const mac = Uint8Array.from(atob(signature), (c) => c.charCodeAt(0));
    if (await crypto.subtle.verify("HMAC", key, mac, signed)) return JSON.parse(hook.body);
  }
  throw new Error("no signature matches");
}

/** The key object as GET /v1/api-keys/{id} shows it, for comparing with `data.api_key`. */
export async function keyObject(token: string, keyId: string): Promise<Json> {
  const got = await call("GET", `/v1/api-keys/${keyId}`, { token });
  expect(got.status).toBe(200);
  return got.body;
}

export { ok };
