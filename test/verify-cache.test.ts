// Verification's hot path: the memory → KV → D1 tiers, invalidation on change, fail-closed
// storage faults, junk that never touches storage, and the last-used throttle.
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createCore } from "../src/context";
import { generateKey, hashKey } from "../src/core/key-material";
import { verifyKey } from "../src/core/verify";
import { type KeyRecord, kvKey, MEMORY_TTL_MS, memoryCache } from "../src/core/verify/cache";
import { breakD1, breakKv, storageDuring } from "./bindings";
import { call, newKey, newOrg, rejectedResult, until, verify } from "./helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

/** Storage reads made by `run`, counted at the bindings. */
const readsDuring = storageDuring;

/** Background work (the KV fill) follows the response: wait for it. */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean): Promise<T> {
  let value = await read();
  await until(async () => {
    value = await read();
    return done(value);
  }, "background work");
  return value;
}

const kvRecord = async (plaintext: string) =>
  env.KEY_CACHE.get<KeyRecord>(kvKey(await hashKey(plaintext)), "json");

const filledKv = (plaintext: string) =>
  eventually(
    () => kvRecord(plaintext),
    (r) => r !== null,
  );

/** A core with a clock the test controls, and the background work it queued. */
function manualCore(now: number) {
  const pending: Promise<unknown>[] = [];
  const clock = { now };
  const core = createCore(env, { waitUntil: (p) => pending.push(p) }, { now: () => clock.now });
  return { core, clock, pending, settle: () => Promise.all(pending.splice(0)) };
}

/** A fresh key, verified once through a core on a manual clock, its background work done. */
async function primedCore() {
  const { admin, project } = await newOrg();
  const key = await newKey(admin, project.id);
  const start = Date.now();
  const manual = manualCore(start);
  await verifyKey(manual.core, key.key);
  await manual.settle();
  return { admin, key, start, ...manual };
}

describe("tiers: memory → KV → D1", () => {
  it("first verify reads D1 and fills KV and memory; the second is a memory hit", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id, { scopes: ["read"] });

    // D1 twice: once to answer, once after the response to check that the KV fill did not
    // overwrite a change published meanwhile.
    let first: Awaited<ReturnType<typeof verify>> | undefined;
    expect(await readsDuring(async () => (first = await verify(key.key)))).toEqual({
      kv: 1,
      d1: 2,
    });
    expect(first?.body).toMatchObject({ valid: true, code: "VALID", key_id: key.id });
    const record = await filledKv(key.key);
    expect(record).toMatchObject({ id: key.id, scopes: ["read"], revokedAt: null });

    const d1 = vi.spyOn(env.DB, "prepare");
    const kv = vi.spyOn(env.KEY_CACHE, "get");
    let second: Awaited<ReturnType<typeof verify>> | undefined;
    expect(await readsDuring(async () => (second = await verify(key.key)))).toEqual({
      kv: 0,
      d1: 0,
    });
    expect(second?.body).toEqual(first?.body);
    expect(kv).not.toHaveBeenCalled();
    // Not even a last-used stamp: the first verify wrote it a moment ago.
    expect(d1).not.toHaveBeenCalled();
  });

  it("with the isolate cache cleared, a verify reads KV and not D1", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    await verify(key.key);
    await filledKv(key.key);

    memoryCache.clear();
    const reads = await readsDuring(async () => {
      expect((await verify(key.key)).body).toMatchObject({ valid: true, key_id: key.id });
    });
    expect(reads).toEqual({ kv: 1, d1: 0 });
    // …and KV's answer went back into memory.
    expect(await readsDuring(() => verify(key.key))).toEqual({ kv: 0, d1: 0 });
  });

  it("a KV record of another shape is a miss: D1 answers and the fill repairs it", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin });
    const record = await kvRecord(key.key);
    const { revokedAt, ...rest } = record as KeyRecord;
    // Another deployment's spelling of the same record: read naively, it would be valid.
    const foreign = JSON.stringify({ ...rest, revoked_at: revokedAt });
    await env.KEY_CACHE.put(kvKey(await hashKey(key.key)), foreign);
    memoryCache.clear();

    const reads = await readsDuring(async () => {
      expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
    });
    expect(reads).toEqual({ kv: 1, d1: 2 }); // the answer, and the re-check after the fill
    const repaired = await eventually(
      () => kvRecord(key.key),
      (r) => r !== null && r.revokedAt !== undefined,
    );
    expect(repaired?.revokedAt).toBe(revokedAt);
  });

  it("a memory entry expires after MEMORY_TTL_MS and the next verify asks KV", async () => {
    const { key, core, clock, settle, start } = await primedCore();

    clock.now = start + MEMORY_TTL_MS;
    expect(await readsDuring(() => verifyKey(core, key.key))).toEqual({ kv: 0, d1: 0 });
    clock.now = start + MEMORY_TTL_MS + 1;
    expect(await readsDuring(() => verifyKey(core, key.key))).toEqual({ kv: 1, d1: 0 });
    await settle();
  });
});

describe("refreshing an expired memory entry", () => {
  it("concurrent verifies make one KV read; the others keep the entry's answer", async () => {
    const { key, core, clock, start } = await primedCore();

    clock.now = start + MEMORY_TTL_MS + 1;
    const reads = await readsDuring(async () => {
      const results = await Promise.all(Array.from({ length: 8 }, () => verifyKey(core, key.key)));
      for (const { result } of results) expect(result).toMatchObject({ valid: true });
    });
    expect(reads).toEqual({ kv: 1, d1: 0 });
    // Refreshed: fresh again for a full TTL.
    clock.now = start + 2 * MEMORY_TTL_MS;
    expect(await readsDuring(() => verifyKey(core, key.key))).toEqual({ kv: 0, d1: 0 });
  });

  it("a failed refresh drops the expired entry, so verification fails closed", async () => {
    const { key, core, clock, start } = await primedCore();

    clock.now = start + MEMORY_TTL_MS + 1;
    breakKv();
    breakD1();
    await expect(verifyKey(core, key.key)).rejects.toMatchObject({ kind: "unavailable" });
    // Within what would have been the refresh grace: still no stale answer.
    await expect(verifyKey(core, key.key)).rejects.toMatchObject({ kind: "unavailable" });
  });

  it("a change published while a lookup is reading wins over what the lookup read", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    // Filled longer ago than the memory TTL by the clock of this core: expired now.
    const past = manualCore(Date.now() - MEMORY_TTL_MS - 10_000);
    await verifyKey(past.core, key.key);
    await past.settle();
    const stale = await kvRecord(key.key);

    let release = () => {};
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    const kvGet = vi
      .spyOn(env.KEY_CACHE, "get")
      .mockImplementation((() => gate.then(() => stale)) as never);
    const now = manualCore(Date.now());
    const refreshing = verifyKey(now.core, key.key);
    await eventually(
      async () => kvGet.mock.calls.length,
      (calls) => calls > 0,
    );

    // The revoke lands while the refresh is still waiting for KV's (pre-revoke) answer.
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    release();
    await refreshing;
    vi.restoreAllMocks();

    now.clock.now = Date.now();
    const reads = await readsDuring(async () => {
      expect((await verifyKey(now.core, key.key)).result.code).toBe("REVOKED");
    });
    expect(reads).toEqual({ kv: 0, d1: 0 });
    await now.settle();
  });
});

describe("changes are visible at once", () => {
  type Target = { org: string; project: string; id: string };
  const revokers = [
    ["DELETE /v1/api-keys/{keyID}", (t: Target) => `/v1/api-keys/${t.id}`],
    [
      "DELETE /v1/organizations/{orgID}/api-keys/{keyID}",
      (t: Target) => `/v1/organizations/${t.org}/api-keys/${t.id}`,
    ],
    [
      "DELETE /api/v1/projects/{projectId}/keys/{keyId}",
      (t: Target) => `/api/v1/projects/${t.project}/keys/${t.id}`,
    ],
  ] as const;

  it.each(revokers)("a cached key revoked by %s fails verification at once", async (_, path) => {
    const { org, admin, project } = await newOrg();
    const key = await newKey(admin, project.id, { scopes: ["read"] });
    expect((await verify(key.key)).body.valid).toBe(true);
    await filledKv(key.key);

    const revoked = await call("DELETE", path({ org, project: project.id, id: key.id }), {
      token: admin,
    });
    expect(revoked.status).toBeLessThan(300);

    const after = await verify(key.key);
    expect(after.body).toEqual(rejectedResult("REVOKED"));
    // KV was overwritten too: a fresh isolate (empty memory) sees the revocation from KV.
    expect((await kvRecord(key.key))?.revokedAt).not.toBeNull();
    memoryCache.clear();
    const reads = await readsDuring(async () => {
      expect((await verify(key.key)).body.code).toBe("REVOKED");
    });
    expect(reads).toEqual({ kv: 1, d1: 0 });
  });

  it("rotation with grace 0 revokes the cached old key at once; the new key verifies", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id, { scopes: ["read"] });
    expect((await verify(key.key)).body.valid).toBe(true);
    await filledKv(key.key);

    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: admin,
      body: { grace_period_seconds: 0 },
    });
    expect(rotated.status).toBe(201);
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
    expect((await verify(rotated.body.key)).body).toMatchObject({
      valid: true,
      key_id: rotated.body.new_key_id,
      scopes: ["read"],
      in_grace: false,
    });
    memoryCache.clear();
    expect((await verify(key.key)).body.code).toBe("REVOKED");
  });

  it("rotation with a grace keeps the cached old key valid, marked in_grace", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    expect((await verify(key.key)).body.in_grace).toBe(false);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: admin,
      body: { grace_period_seconds: 3600 },
    });
    expect(rotated.status).toBe(201);
    expect((await verify(key.key)).body).toMatchObject({ valid: true, in_grace: true });
  });

  it("a PATCH of scopes is visible at once, in memory and in KV", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id, { scopes: ["read"] });
    const needsWrite = { required_scopes: ["write"] };
    expect((await verify(key.key, needsWrite)).body.code).toBe("INSUFFICIENT_SCOPE");
    await filledKv(key.key);

    const granted = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: admin,
      body: { scopes: ["read", "write"] },
    });
    expect(granted.status).toBe(200);
    expect((await verify(key.key, needsWrite)).body).toMatchObject({
      valid: true,
      scopes: ["read", "write"],
    });

    const narrowed = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: admin,
      body: { scopes: ["write"] },
    });
    expect(narrowed.status).toBe(200);
    expect((await verify(key.key, { required_scopes: ["read"] })).body.code).toBe(
      "INSUFFICIENT_SCOPE",
    );
    memoryCache.clear();
    const reads = await readsDuring(async () => {
      expect((await verify(key.key, { required_scopes: ["read"] })).body.code).toBe(
        "INSUFFICIENT_SCOPE",
      );
    });
    expect(reads).toEqual({ kv: 1, d1: 0 });
  });
});

describe("storage faults fail closed", () => {
  // The app logs every 5xx; these ones are the point of the test.
  beforeEach(() => {
    vi.spyOn(console, "error").mockImplementation(() => undefined);
  });

  it("D1 down and nothing cached: 503 problem, never valid", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    breakD1();
    const response = await verify(key.key);
    expect(response.status).toBe(503);
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(response.headers.get("retry-after")).toBe("1");
    expect(response.body).toMatchObject({ status: 503, title: "Service Unavailable" });
    expect(response.body.valid).toBeUndefined();

    vi.restoreAllMocks();
    expect((await verify(key.key)).body).toMatchObject({ valid: true, key_id: key.id });
  });

  it("KV and D1 both down and nothing cached: 503 problem", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    breakKv();
    breakD1();
    const response = await verify(key.key);
    expect(response.status).toBe(503);
    expect(response.body.valid).toBeUndefined();
  });

  it("KV down with nothing in memory: D1 answers", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    breakKv();
    const reads = await readsDuring(async () => {
      expect((await verify(key.key)).body).toMatchObject({ valid: true, key_id: key.id });
    });
    expect(reads).toEqual({ kv: 1, d1: 1 });
  });

  it("D1 down with KV cached: KV answers (a revocation there still holds)", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    await verify(key.key);
    await filledKv(key.key);
    await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin });
    memoryCache.clear();
    breakD1();
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("a KV answer holds while D1 is down, and verification writes nothing to D1", async () => {
    const { key, core, clock, settle, start } = await primedCore();
    // A minute on: memory has expired, KV still answers. last_used_at now comes from the
    // analytics queue (test/analytics.test.ts), never from a write on the verify path.
    clock.now = start + 60_000;
    const d1 = breakD1();
    expect((await verifyKey(core, key.key)).result).toMatchObject({ valid: true, key_id: key.id });
    await settle();
    expect(d1).not.toHaveBeenCalled();
  });

  it("an answer in memory holds through a storage outage", async () => {
    const { admin, project } = await newOrg();
    const key = await newKey(admin, project.id);
    await verify(key.key);
    breakKv();
    breakD1();
    expect((await verify(key.key)).body).toMatchObject({ valid: true, key_id: key.id });
  });

  it("an org-scoped key checked against an unknown project fails closed when D1 is down", async () => {
    const { org, admin } = await newOrg();
    const created = await call("POST", `/v1/organizations/${org}/api-keys`, {
      token: admin,
      body: { name: "org-wide", scopes: [] },
    });
    expect(created.status).toBe(201);
    const key = created.body.plaintext_api_key;
    await verify(key);
    breakD1();
    const response = await verify(key, { project_id: crypto.randomUUID() });
    expect(response.status).toBe(503);
  });
});

describe("junk never reaches storage", () => {
  it("a revoked org-scoped key cannot make Keygate look up projects", async () => {
    const { org, admin } = await newOrg();
    const created = await call("POST", `/v1/organizations/${org}/api-keys`, {
      token: admin,
      body: { name: "org-wide", scopes: [] },
    });
    const key = created.body.plaintext_api_key as string;
    await call("DELETE", `/v1/organizations/${org}/api-keys/${created.body.api_key.id}`, {
      token: admin,
    });
    expect((await verify(key)).body.code).toBe("REVOKED"); // now cached
    const reads = await readsDuring(async () => {
      for (let i = 0; i < 5; i++) {
        const response = await verify(key, { project_id: crypto.randomUUID() });
        expect(response.body).toMatchObject({ valid: false, code: "REVOKED" });
      }
    });
    expect(reads).toEqual({ kv: 0, d1: 0 });
  });

  it("MALFORMED keys (format or checksum) make zero storage reads", async () => {
    const { admin, project } = await newOrg();
    const key: string = (await newKey(admin, project.id)).key;
    const last = key.at(-1) === "A" ? "B" : "A";
    const junk = [
      `${key.slice(0, -1)}${last}`, // checksum off by one character
      `${key.slice(0, 20)}${key.slice(21)}`, // one character short
      `${key}0`, // one too many
      key.replace("capy_live_", "capy-live-"),
      key.toUpperCase(),
      "capy_live_",
      "",
      "eyJhbGciOiJSUzI1NiJ9.e30.sig",
      "x".repeat(512),
    ];
    const d1 = vi.spyOn(env.DB, "prepare");
    const kv = vi.spyOn(env.KEY_CACHE, "get");
    const reads = await readsDuring(async () => {
      for (const candidate of junk) {
        const response = await verify(candidate);
        expect(response.status, candidate).toBe(200);
        expect(response.body, candidate).toMatchObject({
          valid: false,
          code: "MALFORMED",
          key_id: null,
          scopes: null,
        });
      }
    });
    expect(reads).toEqual({ kv: 0, d1: 0 });
    expect(d1).not.toHaveBeenCalled();
    expect(kv).not.toHaveBeenCalled();
  });

  it("an unknown well-formed key is NOT_FOUND and is written nowhere", async () => {
    const unknown = await generateKey("capy", "live"); // valid checksum, never issued
    const before = new Set((await env.KEY_CACHE.list()).keys.map((k) => k.name));

    expect(
      await readsDuring(async () => {
        expect((await verify(unknown.plaintext)).body).toMatchObject({
          valid: false,
          code: "NOT_FOUND",
          key_id: null,
        });
      }),
    ).toEqual({ kv: 1, d1: 1 });

    // No background work queued (no KV fill), and memory was not filled either.
    const { core, pending } = manualCore(Date.now());
    await verifyKey(core, unknown.plaintext);
    expect(pending).toHaveLength(0);
    expect(await readsDuring(() => verify(unknown.plaintext))).toEqual({ kv: 1, d1: 1 });

    const after = (await env.KEY_CACHE.list()).keys.map((k) => k.name);
    expect(after.filter((name) => !before.has(name))).toEqual([]);
    expect(after).not.toContain(kvKey(unknown.hash));
  });
});
