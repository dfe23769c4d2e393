// KeyService over a real service binding (exports.KeyService is a loopback binding to the
// named entrypoint): the same verdicts as HTTP, fail-closed. (The example consumer on top:
// test/example-consumer.test.ts.)
import { exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { generateKey } from "../src/core/key-material";
import { memoryCache } from "../src/core/verify";
import { breakD1, breakKv, storageDuring } from "./bindings";
import { call, newKey, newOrg, rejectedResult, rpc, verify } from "./helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

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
      identity: null,
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
    await expect(rpc(() => exports.KeyService.verify(key.key))).rejects.toThrow(/unavailable/i);
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
    const badScopes = rpc(() => service.verify("capy_live_x", { requiredScopes: "r" }));
    await expect(badScopes).rejects.toThrow(TypeError);
    await expect(badScopes).rejects.toThrow(/requiredScopes/);
    await expect(rpc(() => service.verify("capy_live_x", { projectId: 7 }))).rejects.toThrow(
      /projectId/,
    );
  });

  it("refuses the options HTTP verify refuses: one contract for both doors", async () => {
    const { keys } = await fixtures();
    const tooMany = Array.from({ length: 5_000 }, (_, i) => `scope${i}`);
    const overHttp = await verify(keys.project, { required_scopes: tooMany });
    expect(overHttp.status).toBe(400);
    const overRpc = rpc(() => exports.KeyService.verify(keys.project, { requiredScopes: tooMany }));
    await expect(overRpc).rejects.toThrow(TypeError);
    await expect(overRpc).rejects.toThrow(/requiredScopes/);
    await expect(
      rpc(() => exports.KeyService.verify(keys.project, { requiredScopes: ["has space"] })),
    ).rejects.toThrow(/requiredScopes/);
    // A misspelled option is refused over both doors, never answered as if it was not asked.
    const misspeltHttp = await verify(keys.project, { required_scope: ["admin"] });
    expect(misspeltHttp.status).toBe(400);
    const misspeltRpc = rpc(() =>
      exports.KeyService.verify(keys.project, {
        requiredScope: ["admin"],
      } as never),
    );
    await expect(misspeltRpc).rejects.toThrow(TypeError);
    await expect(misspeltRpc).rejects.toThrow(/requiredScope/);
  });
});
