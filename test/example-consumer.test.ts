// examples/consumer (built on @keygate/hono) with Keygate behind a real service binding pinned
// to one organization by props, as its wrangler.toml pins it.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import consumer, { type Env as ConsumerEnv } from "../examples/consumer/src/index";
import worker from "../src/index";
import { call, newKey, newOrg, sessionToken } from "./helpers";

// vitest.config.mts pins KEYGATE_PINNED to this organization.
const PINNED_ORG = "org_pinned";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Keygate's HTTP API, in process: what the consumer's KEYGATE_API binding reaches. */
async function keygateFetch(request: Request) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    request as Request<unknown, IncomingRequestCfProperties>,
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
}

const consumerEnv = {
  KEYGATE: env.KEYGATE_PINNED,
  KEYGATE_API: { fetch: keygateFetch },
} as unknown as ConsumerEnv;

async function send(method: string, path: string, key?: string) {
  const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
  const ctx = createExecutionContext();
  const response = await consumer.fetch(
    new Request(`http://consumer.test${path}`, { method, headers }) as Request<
      unknown,
      IncomingRequestCfProperties
    >,
    consumerEnv,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return {
    status: response.status,
    headers: response.headers,
    body: (await response.json()) as Record<string, unknown>,
  };
}

let org: { admin: string; project: { id: string } };
let reader: { id: string; key: string };

beforeAll(async () => {
  const admin = await sessionToken({ org: PINNED_ORG, user: "user_consumer_admin" });
  const project = await call("POST", "/v1/projects", { token: admin, body: { name: "Shop" } });
  org = { admin, project: project.body };
  reader = await newKey(admin, org.project.id, { scopes: ["read"] });
});

describe("the example consumer (examples/consumer)", () => {
  it("lets a key with scope read through /protected", async () => {
    const ok = await send("GET", "/protected", reader.key);
    expect(ok).toMatchObject({
      status: 200,
      body: { ok: true, key_id: reader.id, organization_id: PINNED_ORG, scopes: ["read"] },
    });
    expect((await send("GET", `/protected?project_id=${org.project.id}`, reader.key)).status).toBe(
      200,
    );
  });

  it("answers 401 without a good key and 403 without the scope or project", async () => {
    const missing = await send("GET", "/protected");
    expect(missing.status).toBe(401);
    expect(missing.headers.get("www-authenticate")).toBe("Bearer");
    const malformed = await send("GET", "/protected", `${reader.key.slice(0, -1)}!`);
    expect(malformed).toMatchObject({ status: 401, body: { code: "MALFORMED" } });
    const other = await call("POST", "/v1/projects", { token: org.admin, body: { name: "B" } });
    const elsewhere = await send("GET", `/protected?project_id=${other.body.id}`, reader.key);
    expect(elsewhere).toMatchObject({ status: 403, body: { code: "WRONG_PROJECT" } });
    const writer = await newKey(org.admin, org.project.id, { scopes: ["write"] });
    expect(await send("GET", "/protected", writer.key)).toMatchObject({
      status: 403,
      body: { code: "INSUFFICIENT_SCOPE" },
    });
  });

  it("refuses a key of another organization (the binding's pin)", async () => {
    const foreign = await newOrg("consumer_other");
    const key = await newKey(foreign.admin, foreign.project.id, { scopes: ["read"] });
    expect(await send("GET", "/protected", key.key)).toMatchObject({
      status: 401,
      body: { code: "NOT_FOUND" },
    });
  });

  it("spends 5 credits per POST /reports, then answers 429", async () => {
    const plain = await newKey(org.admin, org.project.id, { scopes: ["reports"] });
    const answer = await send("POST", "/reports", plain.key);
    expect(answer).toMatchObject({ status: 200, body: { ok: true, key_id: plain.id } });
    expect(answer.body.credits).toBeNull(); // a key without credits is unlimited
    // A key with 12 credits pays for two reports.
    const metered = await newKey(org.admin, org.project.id, {
      scopes: ["reports"],
      credits: { remaining: 12 },
    });
    expect((await send("POST", "/reports", metered.key)).body.credits).toMatchObject({
      remaining: 7,
    });
    expect((await send("POST", "/reports", metered.key)).body.credits).toMatchObject({
      remaining: 2,
    });
    const refused = await send("POST", "/reports", metered.key);
    expect(refused).toMatchObject({ status: 429, body: { code: "USAGE_EXCEEDED" } });
    expect(refused.headers.get("retry-after")).toBeNull();
  });

  it("fails closed with 503 when Keygate cannot verify", async () => {
    const key = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    vi.spyOn(env.DB, "prepare").mockImplementation(() => {
      throw new Error("D1_ERROR: Network connection lost.");
    });
    vi.spyOn(env.KEY_CACHE, "get").mockImplementation(() => {
      throw new Error("KV GET failed: 503 Service Unavailable");
    });
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const answer = await send("GET", "/protected", key.key);
    expect(answer.status).toBe(503);
    expect(answer.headers.get("retry-after")).toBe("1");
  });

  it("has a no-op RPC route and forwards everything else to Keygate", async () => {
    expect(await send("GET", "/noop")).toMatchObject({ status: 200, body: { ok: "pong" } });
    expect(await send("GET", "/healthz")).toMatchObject({ status: 200, body: { status: "ok" } });
  });
});
