// Management requests are limited per caller with the Workers Rate Limiting binding
// (simulated by miniflare: fixed 10 s windows on the wall clock). The requests here run
// against a limiter of 30 per 10 s (vitest.config.mts) instead of wrangler.toml's 3 000.
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { callerOf } from "../src/core/principal";
import { MANAGEMENT_WINDOW_SECONDS } from "../src/core/rate-limit";
import { expectProblem } from "./hardening";
import { type CallOptions, call as callAny, newKey, newOrg, sessionToken, verify } from "./helpers";

/** vitest.config.mts's `simple.limit` for TEST_MANAGEMENT_LIMITER. */
const LIMIT = 30;
const limiter = () => env.TEST_MANAGEMENT_LIMITER;
const call = (method: string, path: string, options: CallOptions = {}) =>
  callAny(method, path, { ...options, env: { MANAGEMENT_RATE_LIMITER: limiter() } });
const WINDOW_MS = MANAGEMENT_WINDOW_SECONDS * 1000;

afterEach(() => {
  vi.restoreAllMocks();
});

/** Wait, if need be, until the current window has at least `ms` left. */
async function windowWithRoom(ms: number) {
  const into = Date.now() % WINDOW_MS;
  if (WINDOW_MS - into < ms) {
    await new Promise((resolve) => setTimeout(resolve, WINDOW_MS - into + 50));
  }
}

/** Spend a caller's whole budget for this window, straight through the binding. */
async function exhaust(key: string) {
  for (let i = 0; i < LIMIT; i++) await limiter().limit({ key });
}

describe("management rate limit", () => {
  it("answers 429 with Retry-After once a caller's budget is spent, and writes nothing", async () => {
    const org = await newOrg("limited");
    const apiKey = await newKey(org.admin, org.project.id, { scopes: ["*"] });
    const user = `user_admin_limited_${crypto.randomUUID()}`;
    const token = await sessionToken({ org: org.org, user, role: "admin" });
    expect((await call("GET", "/v1/projects", { token })).status).toBe(200);

    await windowWithRoom(7_000);
    await exhaust(callerOf({ type: "user", organizationId: org.org, userId: user, isAdmin: true }));

    const refused = await call("GET", "/v1/projects", { token });
    const problem = expectProblem(refused, 429);
    expect(refused.headers.get("retry-after")).toBe(String(MANAGEMENT_WINDOW_SECONDS));
    expect(problem.title).toBe("Too Many Requests");

    const before = await call("GET", "/v1/projects", { token: org.admin });
    const create = await call("POST", "/v1/projects", { token, body: { name: "over budget" } });
    expectProblem(create, 429);
    const after = await call("GET", "/v1/projects", { token: org.admin });
    expect(after.body).toEqual(before.body);

    // Another user of the same org, an API key, and verification are not affected.
    expect((await call("GET", "/v1/projects", { token: org.admin })).status).toBe(200);
    expect(
      (await call("GET", `/v1/api-keys?project_id=${org.project.id}`, { token: apiKey.key }))
        .status,
    ).toBe(200);
    expect((await verify(apiKey.key)).body).toMatchObject({ valid: true });
  });

  it("counts each API key on its own", async () => {
    const org = await newOrg("limitedkey");
    const spent = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const fresh = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const list = (token: string) =>
      call("GET", `/v1/api-keys?project_id=${org.project.id}`, { token });

    await windowWithRoom(7_000);
    await exhaust(`key:${spent.id}`);

    expectProblem(await list(spent.key), 429);
    expect((await list(fresh.key)).status).toBe(200);
  });

  it("lets requests through when the limiter itself fails", async () => {
    const org = await newOrg("limiterdown");
    vi.spyOn(limiter(), "limit").mockRejectedValue(new Error("rate limiter unreachable"));
    expect((await call("GET", "/v1/projects", { token: org.admin })).status).toBe(200);
  });

  it("is documented on every management route; verify and the leak report door document only their own limits", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    for (const [path, methods] of Object.entries(doc.paths as Record<string, object>)) {
      for (const [method, operation] of Object.entries(methods)) {
        const responses = (operation as { responses: Record<string, { description: string }> })
          .responses;
        const documented = "429" in responses;
        if (path === "/v1/keys/verify") {
          expect(responses["429"]?.description).toMatch(/unknown keys/);
          continue;
        }
        // The public leak door has its own limit: reports per client address.
        if (path === "/v1/leaks") {
          expect(responses["429"]?.description).toMatch(/reports this hour/);
          continue;
        }
        const open = (operation as { security?: unknown[] }).security?.length === 0;
        expect(documented, `${method} ${path}`).toBe(!open);
      }
    }
  });
});
