import {
  createExecutionContext,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { BASE, call, newOrg } from "./helpers";

/** One request through the Worker with some vars changed. */
async function callWith(
  vars: Record<string, string>,
  method: string,
  path: string,
  token?: string,
) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`${BASE}${path}`, {
      method,
      headers: token ? { authorization: `Bearer ${token}` } : {},
    }) as Request<unknown, IncomingRequestCfProperties>,
    { ...env, ...vars },
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return {
    status: response.status,
    headers: response.headers,
    body: await response.json<Record<string, unknown>>(),
  };
}

describe("KEY_PREFIX is checked", () => {
  for (const bad of ["Capy", "capy_live", "my-prefix", "1capy", "c".repeat(17), " capy"]) {
    it(`answers every request with a clear configuration problem for KEY_PREFIX ${JSON.stringify(bad)}`, async () => {
      const { admin } = await newOrg("prefix");
      for (const [method, path] of [
        ["GET", "/healthz"],
        ["GET", "/v1/projects"],
        ["POST", "/v1/projects"],
      ] as const) {
        const answered = await callWith({ KEY_PREFIX: bad }, method, path, admin);
        expect(answered.status, path).toBe(500);
        expect(answered.headers.get("content-type")).toContain("application/problem+json");
        expect(answered.body.detail).toContain("KEY_PREFIX");
        expect(answered.body.detail).toContain(JSON.stringify(bad));
      }
    });
  }

  it("accepts a lowercase slug, and no value at all (the default, capy)", async () => {
    const { admin } = await newOrg("prefix-ok");
    const ok = await callWith({ KEY_PREFIX: "acme2" }, "GET", "/v1/projects", admin);
    expect(ok.status).toBe(200);
    expect((await callWith({ KEY_PREFIX: "" }, "GET", "/healthz")).status).toBe(200);
    const created = await call("POST", "/v1/projects", { token: admin, body: { name: "p" } });
    expect(created.body.key_prefix).toBe("capy");
  });

  it("fails a cron run under a bad KEY_PREFIX instead of rotating keys with it", async () => {
    const controller = createScheduledController({ scheduledTime: Date.now(), cron: "* * * * *" });
    const ctx = createExecutionContext();
    await expect(worker.scheduled(controller, { ...env, KEY_PREFIX: "Bad" }, ctx)).rejects.toThrow(
      /KEY_PREFIX/,
    );
    await waitOnExecutionContext(ctx);
  });
});

describe("REVOCATION_BOUND_MS is checked like KEY_PREFIX", () => {
  for (const bad of ["999", "60001", "2s", "-2000", "2000.5", " 2000"]) {
    it(`answers with a clear configuration problem for REVOCATION_BOUND_MS ${JSON.stringify(bad)}`, async () => {
      const answered = await callWith({ REVOCATION_BOUND_MS: bad }, "GET", "/healthz");
      expect(answered.status).toBe(500);
      expect(answered.headers.get("content-type")).toContain("application/problem+json");
      expect(answered.body.detail).toContain("REVOCATION_BOUND_MS");
      expect(answered.body.detail).toContain(JSON.stringify(bad));
    });
  }

  it("accepts 1 000 to 60 000, and no value at all (the default, 2 000)", async () => {
    for (const ok of ["1000", "2000", "60000", ""]) {
      expect((await callWith({ REVOCATION_BOUND_MS: ok }, "GET", "/healthz")).status, ok).toBe(200);
    }
  });
});
