// KeyService over a real service binding (exports.KeyService is a loopback binding to the
// named entrypoint): the same verdicts as HTTP, fail-closed, and the example consumer on top.
import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import consumer, { type Env as ConsumerEnv } from "../examples/consumer/src/index";
import { generateKey } from "../src/core/key-material";
import { memoryCache } from "../src/core/verify";
import { breakD1, breakKv, storageDuring } from "./bindings";
import { call, newKey, newOrg, rejectedResult, verify } from "./helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

/** The error an RPC call failed with (awaited in one place, so no rejection goes unhandled). */
async function rpcError(call: () => Promise<unknown>): Promise<Error> {
  try {
    await call();
  } catch (error) {
    return error as Error;
  }
  throw new Error("the RPC call succeeded");
}

const breakStorage = () => {
  breakD1();
  breakKv();
};

/** Two organizations, project keys, an org-scoped key, a revoked key and junk. */
async function fixtures() {
  const a = await newOrg("rpc_a");
  const b = await newOrg("rpc_b");
  const projectKey = await newKey(a.admin, a.project.id, { scopes: ["read", "billing:*"] });
  const orgWide = await call("POST", `/v1/organizations/${a.org}/api-keys`, {
    token: a.admin,
    body: { name: "org-wide", scopes: ["*"] },
  });
  expect(orgWide.status).toBe(201);
  const revoked = await newKey(a.admin, a.project.id);
  await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: a.admin });
  const unknown = await generateKey("capy", "live");
  return {
    a,
    b,
    keys: {
      project: projectKey.key as string,
      orgWide: orgWide.body.plaintext_api_key as string,
      revoked: revoked.key as string,
      unknown: unknown.plaintext,
      malformed: `${(projectKey.key as string).slice(0, -1)}!`,
    },
  };
}

describe("KeyService over a service binding", () => {
  it("ping answers over the binding", async () => {
    expect(await exports.KeyService.ping()).toBe("pong");
  });

  it("verify gives exactly the HTTP verdict, case by case", async () => {
    const { a, b, keys } = await fixtures();
    const cases: [string, string, { requiredScopes?: string[]; projectId?: string }, string][] = [
      ["project key", keys.project, {}, "VALID"],
      ["held scope", keys.project, { requiredScopes: ["read"] }, "VALID"],
      ["scope strings are literal", keys.project, { requiredScopes: ["billing:*"] }, "VALID"],
      [
        "only * is a wildcard",
        keys.project,
        { requiredScopes: ["billing:x"] },
        "INSUFFICIENT_SCOPE",
      ],
      ["missing scope", keys.project, { requiredScopes: ["read", "write"] }, "INSUFFICIENT_SCOPE"],
      ["own project", keys.project, { projectId: a.project.id }, "VALID"],
      ["other project", keys.project, { projectId: b.project.id }, "WRONG_PROJECT"],
      ["org key, own org's project", keys.orgWide, { projectId: a.project.id }, "VALID"],
      ["org key, other org's project", keys.orgWide, { projectId: b.project.id }, "WRONG_PROJECT"],
      ["org key, any scope", keys.orgWide, { requiredScopes: ["anything"] }, "VALID"],
      ["revoked", keys.revoked, {}, "REVOKED"],
      ["never issued", keys.unknown, {}, "NOT_FOUND"],
      ["malformed", keys.malformed, { requiredScopes: ["read"] }, "MALFORMED"],
    ];
    for (const [label, key, options, code] of cases) {
      const overRpc = await exports.KeyService.verify(key, options);
      const overHttp = await verify(key, {
        required_scopes: options.requiredScopes,
        project_id: options.projectId,
      });
      expect(overHttp.status, label).toBe(200);
      expect(overRpc, label).toEqual(overHttp.body);
      expect(overRpc.code, label).toBe(code);
      expect(overRpc.valid, label).toBe(code === "VALID");
    }
  });

  it("a valid verdict carries the key's metadata; an invalid one none", async () => {
    const { a, keys } = await fixtures();
    expect(await exports.KeyService.verify(keys.project)).toEqual({
      valid: true,
      code: "VALID",
      key_id: expect.any(String),
      organization_id: a.org,
      project_id: a.project.id,
      environment_id: expect.any(String),
      scopes: ["read", "billing:*"],
      expires_at: null,
      in_grace: false,
      name: "test key",
      enabled: true,
      meta: null,
      external_id: null,
      credits: null,
      ratelimits: null,
    });
    expect(await exports.KeyService.verify(keys.revoked)).toEqual(rejectedResult("REVOKED"));
  });

  it("a revocation is visible over RPC at once, even for a cached key", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    expect((await exports.KeyService.verify(key.key)).valid).toBe(true);
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin });
    expect((await exports.KeyService.verify(key.key)).code).toBe("REVOKED");
  });

  it("storage down with nothing cached: verify throws, never answers valid", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    breakStorage();
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    const error = await rpcError(() => exports.KeyService.verify(key.key));
    expect(error.message).toMatch(/unavailable/i);
  });

  it("a warm verify makes no storage read, a malformed one none ever (counted at the bindings)", async () => {
    const { keys } = await fixtures();
    // Primed over HTTP, which waits for the background KV fill, so none of it is counted.
    await verify(keys.project);
    const warm = await storageDuring(async () => {
      for (let i = 0; i < 20; i++) {
        expect((await exports.KeyService.verify(keys.project)).valid).toBe(true);
        expect((await exports.KeyService.verify(keys.malformed)).code).toBe("MALFORMED");
      }
    });
    expect(warm).toEqual({ kv: 0, d1: 0 });

    memoryCache.clear();
    const cold = await storageDuring(() => exports.KeyService.verify(keys.malformed));
    expect(cold).toEqual({ kv: 0, d1: 0 });
  });

  it("rejects arguments of the wrong type instead of guessing", async () => {
    const service = exports.KeyService as unknown as {
      verify(key: unknown, options?: unknown): Promise<{ code: string }>;
    };
    expect((await service.verify(42)).code).toBe("MALFORMED");
    expect((await service.verify(null)).code).toBe("MALFORMED");
    const badScopes = await rpcError(() => service.verify("capy_live_x", { requiredScopes: "r" }));
    expect(badScopes).toBeInstanceOf(TypeError);
    expect(badScopes.message).toMatch(/requiredScopes/);
    const badProject = await rpcError(() => service.verify("capy_live_x", { projectId: 7 }));
    expect(badProject.message).toMatch(/projectId/);
  });

  it("refuses the options HTTP verify refuses: one contract for both doors", async () => {
    const { keys } = await fixtures();
    const tooMany = Array.from({ length: 5_000 }, (_, i) => `scope${i}`);
    const overHttp = await verify(keys.project, { required_scopes: tooMany });
    expect(overHttp.status).toBe(400);
    const overRpc = await rpcError(() =>
      exports.KeyService.verify(keys.project, { requiredScopes: tooMany }),
    );
    expect(overRpc).toBeInstanceOf(TypeError);
    expect(overRpc.message).toMatch(/requiredScopes/);
    const badScope = await rpcError(() =>
      exports.KeyService.verify(keys.project, { requiredScopes: ["has space"] }),
    );
    expect(badScope.message).toMatch(/requiredScopes/);
  });
});

describe("the example consumer (examples/consumer)", () => {
  const consumerEnv = {
    KEYGATE: exports.KeyService,
    REQUIRED_SCOPE: "read",
  } as unknown as ConsumerEnv;
  const get = async (path: string, key?: string) => {
    const headers: Record<string, string> = key ? { authorization: `Bearer ${key}` } : {};
    const request = new Request(`http://consumer.test${path}`, { headers });
    const response = await consumer.fetch(
      request as Request<unknown, IncomingRequestCfProperties>,
      consumerEnv,
    );
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };

  it("lets a key with the required scope through /protected", async () => {
    const { a, keys } = await fixtures();
    const ok = await get("/protected", keys.project);
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({
      ok: true,
      organization_id: a.org,
      scopes: ["read", "billing:*"],
    });
    expect((await get(`/protected?project_id=${a.project.id}`, keys.project)).status).toBe(200);
  });

  it("answers 401 without a good key and 403 without the scope or project", async () => {
    const { b, keys } = await fixtures();
    expect((await get("/protected")).status).toBe(401);
    expect(await get("/protected", keys.malformed)).toMatchObject({
      status: 401,
      body: { code: "MALFORMED" },
    });
    expect((await get("/protected", keys.revoked)).body.code).toBe("REVOKED");
    expect((await get(`/protected?project_id=${b.project.id}`, keys.project)).status).toBe(403);
    const { admin, project } = await newOrg();
    const writer = await newKey(admin, project.id, { scopes: ["write"] });
    expect(await get("/protected", writer.key)).toMatchObject({
      status: 403,
      body: { code: "INSUFFICIENT_SCOPE" },
    });
  });

  it("fails closed with 503 when Keygate cannot verify", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id, { scopes: ["read"] });
    breakStorage();
    vi.spyOn(console, "error").mockImplementation(() => undefined);
    expect((await get("/protected", key.key)).status).toBe(503);
  });

  it("has a no-op RPC route", async () => {
    expect(await get("/noop")).toEqual({ status: 200, body: { ok: "pong" } });
  });
});
