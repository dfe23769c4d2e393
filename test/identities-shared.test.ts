// Identities (SPEC Part 3), part 2: one atomic decision per verification over the key's and
// its identity's limits and credits, in one KeyUsage object call, with the real objects.
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCore } from "../src/context";
import { DEFAULT_REVOCATION_BOUND_MS } from "../src/core/config";
import { IsolateView, verifyKey } from "../src/core/verify";
import { call, clearOfBoundary, newKey, newOrg, RFC3339_UTC, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

afterEach(() => {
  vi.restoreAllMocks();
});

async function newIdentity(org: Org, body: Record<string, unknown> = {}) {
  const created = await call("POST", "/v1/identities", {
    token: org.admin,
    body: { external_id: `cust_${crypto.randomUUID()}`, ...body },
  });
  if (created.status !== 201) throw new Error(`identity create failed: ${created.text}`);
  return created.body as { id: string; external_id: string };
}

const identityCredits = async (org: Org, id: string) =>
  (await call("GET", `/v1/identities/${id}`, { token: org.admin })).body.credits?.remaining;

const keyCredits = async (org: Org, id: string) =>
  (await call("GET", `/v1/api-keys/${id}`, { token: org.admin })).body.credits?.remaining;

const patchKey = (org: Org, id: string, body: unknown) =>
  call("PATCH", `/v1/api-keys/${id}`, { token: org.admin, body });

/** KeyUsage objects asked while the test runs: each verification's stub comes from `get`. */
const usageCalls = () => {
  const calls: string[] = [];
  const namespace = env.KEY_USAGE;
  const get = namespace.get.bind(namespace);
  const idFromName = namespace.idFromName.bind(namespace);
  const names = new Map<string, string>();
  vi.spyOn(namespace, "idFromName").mockImplementation((name) => {
    const id = idFromName(name);
    names.set(id.toString(), name);
    return id;
  });
  vi.spyOn(namespace, "get").mockImplementation((id, options) => {
    calls.push(names.get(id.toString()) ?? id.toString());
    return get(id, options);
  });
  return calls;
};

const MINUTE = 60_000;

describe("identities: one decision over the key's and its identity's limits and credits", () => {
  it("200 concurrent verifies over 5 keys of an identity with 10 credits → exactly 10 VALID", async () => {
    const org = await newOrg("shared-exact");
    const identity = await newIdentity(org, { credits: { remaining: 10 } });
    const keys = await Promise.all(
      Array.from({ length: 5 }, () =>
        newKey(org.admin, org.project.id, { external_id: identity.external_id }),
      ),
    );
    const answers = await Promise.all(
      Array.from({ length: 200 }, (_, i) => verify(keys[i % 5]?.key as string)),
    );
    const codes = answers.map((a) => a.body.code);
    expect(codes.filter((c) => c === "VALID")).toHaveLength(10);
    expect(codes.filter((c) => c === "USAGE_EXCEEDED")).toHaveLength(190);
    const remaining = answers
      .filter((a) => a.body.valid)
      .map((a) => a.body.identity.credits.remaining)
      .sort((a, b) => a - b);
    expect(remaining).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await identityCredits(org, identity.id)).toBe(0);
  });

  it("answers `identity` with its id, external_id, meta, credits and applied limits (HTTP and RPC)", async () => {
    const org = await newOrg("shared-shape");
    await clearOfBoundary(MINUTE, 5_000);
    const identity = await newIdentity(org, {
      meta: { plan: "pro" },
      ratelimits: [{ name: "api", limit: 100, duration_ms: MINUTE }],
      credits: { remaining: 50, refill: { interval: "daily", amount: 50 } },
    });
    const key = await newKey(org.admin, org.project.id, { external_id: identity.external_id });
    const answer = await verify(key.key, { cost: 2 });
    expect(answer.body).toMatchObject({
      valid: true,
      code: "VALID",
      credits: null,
      ratelimits: null,
    });
    expect(answer.body.identity).toEqual({
      id: identity.id,
      external_id: identity.external_id,
      meta: { plan: "pro" },
      credits: { remaining: 48, refill_at: expect.stringMatching(RFC3339_UTC) },
      ratelimits: [
        { name: "api", limit: 100, remaining: 98, reset_at: expect.stringMatching(RFC3339_UTC) },
      ],
    });
    const overRpc = await exports.KeyService.verify(key.key);
    expect(overRpc.identity).toMatchObject({
      id: identity.id,
      credits: { remaining: 47 },
      ratelimits: [{ name: "api", remaining: 97 }],
    });
    // A key outside any identity, and a refusal without metadata: null.
    const alone = await newKey(org.admin, org.project.id, { external_id: "nobody" });
    expect((await verify(alone.key)).body.identity).toBeNull();
    const scoped = await verify(key.key, { required_scopes: ["admin"] });
    expect(scoped.body).toMatchObject({ code: "INSUFFICIENT_SCOPE", identity: null });
  });

  it("a refusal by the key spends nothing from the identity, and the reverse", async () => {
    const org = await newOrg("shared-refusals");
    await clearOfBoundary(MINUTE, 5_000);
    const identity = await newIdentity(org, {
      credits: { remaining: 10 },
      ratelimits: [{ name: "shared", limit: 1_000, duration_ms: MINUTE }],
    });
    // The key refuses: its own credits are gone.
    const poor = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      credits: { remaining: 0 },
    });
    const refusedByKey = await verify(poor.key);
    expect(refusedByKey.body).toMatchObject({ code: "USAGE_EXCEEDED", credits: { remaining: 0 } });
    expect(refusedByKey.body.identity.credits.remaining).toBe(10);
    expect(refusedByKey.body.identity.ratelimits[0].remaining).toBe(1_000);
    // The key refuses: its own limit is used up.
    const limited = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      ratelimits: [{ name: "own", limit: 1, duration_ms: MINUTE }],
    });
    expect((await verify(limited.key)).body.code).toBe("VALID");
    const limitedAgain = await verify(limited.key);
    expect(limitedAgain.body.code).toBe("RATE_LIMITED");
    expect(limitedAgain.body.identity.credits.remaining).toBe(9);
    expect(limitedAgain.body.identity.ratelimits[0].remaining).toBe(999);
    expect(await identityCredits(org, identity.id)).toBe(9);

    // The identity refuses: its credits are gone; the key's credits and window stay.
    const empty = await newIdentity(org, {
      credits: { remaining: 0 },
    });
    const rich = await newKey(org.admin, org.project.id, {
      external_id: empty.external_id,
      credits: { remaining: 5 },
      ratelimits: [{ name: "own", limit: 10, duration_ms: MINUTE }],
    });
    const refusedByIdentity = await verify(rich.key);
    expect(refusedByIdentity.body).toMatchObject({
      code: "USAGE_EXCEEDED",
      credits: { remaining: 5 },
      ratelimits: [{ name: "own", remaining: 10 }],
      identity: { credits: { remaining: 0, refill_at: null } },
    });
    expect(await keyCredits(org, rich.id)).toBe(5);
    // The identity refuses: its limit is used up.
    const narrow = await newIdentity(org, {
      ratelimits: [{ name: "shared", limit: 1, duration_ms: MINUTE }],
    });
    const member = await newKey(org.admin, org.project.id, {
      external_id: narrow.external_id,
      credits: { remaining: 5 },
    });
    expect((await verify(member.key)).body.credits.remaining).toBe(4);
    const refusedByLimit = await verify(member.key);
    expect(refusedByLimit.body).toMatchObject({
      code: "RATE_LIMITED",
      credits: { remaining: 4 },
      identity: { ratelimits: [{ name: "shared", limit: 1, remaining: 0 }] },
    });
    expect(await keyCredits(org, member.id)).toBe(4);
  });

  it("the identity's rate limit is shared by its keys; the refusal names the identity window's reset", async () => {
    const org = await newOrg("shared-limit");
    await clearOfBoundary(MINUTE, 5_000);
    const identity = await newIdentity(org, {
      ratelimits: [{ name: "api", limit: 3, duration_ms: MINUTE }],
    });
    const keys = await Promise.all(
      Array.from({ length: 3 }, () =>
        newKey(org.admin, org.project.id, { external_id: identity.external_id }),
      ),
    );
    const answers = await Promise.all(
      Array.from({ length: 9 }, (_, i) => verify(keys[i % 3]?.key as string)),
    );
    expect(answers.filter((a) => a.body.valid)).toHaveLength(3);
    const refused = answers.find((a) => a.body.code === "RATE_LIMITED");
    expect(refused?.body.identity.ratelimits[0]).toMatchObject({ name: "api", remaining: 0 });
    const reset = Date.parse(refused?.body.identity.ratelimits[0].reset_at);
    expect(reset).toBe((Math.floor(Date.now() / MINUTE) + 1) * MINUTE);
  });

  it("a limit named on both key and identity: both apply, each its own window", async () => {
    const org = await newOrg("shared-same-name");
    await clearOfBoundary(MINUTE, 5_000);
    const identity = await newIdentity(org, {
      ratelimits: [{ name: "api", limit: 5, duration_ms: MINUTE }],
    });
    const tight = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      ratelimits: [{ name: "api", limit: 2, duration_ms: MINUTE }],
    });
    const loose = await newKey(org.admin, org.project.id, { external_id: identity.external_id });
    const first = await verify(tight.key, { ratelimits: [{ name: "api" }] });
    expect(first.body).toMatchObject({
      code: "VALID",
      ratelimits: [{ name: "api", limit: 2, remaining: 1 }],
      identity: { ratelimits: [{ name: "api", limit: 5, remaining: 4 }] },
    });
    expect((await verify(tight.key)).body.code).toBe("VALID");
    // The key's window is full; the identity's still has 3.
    const byKey = await verify(tight.key);
    expect(byKey.body).toMatchObject({
      code: "RATE_LIMITED",
      ratelimits: [{ remaining: 0 }],
      identity: { ratelimits: [{ remaining: 3 }] },
    });
    const codes: string[] = [];
    for (let i = 0; i < 4; i++) codes.push((await verify(loose.key)).body.code);
    expect(codes).toEqual(["VALID", "VALID", "VALID", "RATE_LIMITED"]);
  });

  it("cost is spent from the identity's credits and from the key's", async () => {
    const org = await newOrg("shared-cost");
    const identity = await newIdentity(org, { credits: { remaining: 10 } });
    const key = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      credits: { remaining: 10 },
    });
    const spent = await verify(key.key, { cost: 3 });
    expect(spent.body).toMatchObject({
      code: "VALID",
      credits: { remaining: 7 },
      identity: { credits: { remaining: 7 } },
    });
    // 8 would fit the identity's 7? no: both must cover it, and neither is touched.
    await call("POST", `/v1/identities/${identity.id}/credits`, {
      token: org.admin,
      body: { operation: "set", value: 100 },
    });
    const tooMuch = await verify(key.key, { cost: 8 });
    expect(tooMuch.body).toMatchObject({
      code: "USAGE_EXCEEDED",
      credits: { remaining: 7 },
      identity: { credits: { remaining: 100 } },
    });
    expect(await keyCredits(org, key.id)).toBe(7);
    expect(await identityCredits(org, identity.id)).toBe(100);
  });
});

describe("identities: membership changes take effect from the next verification", () => {
  it("a key moved into and out of an identity (PATCH external_id) takes its own balance along", async () => {
    const org = await newOrg("shared-move");
    const identity = await newIdentity(org, { credits: { remaining: 100 } });
    const key = await newKey(org.admin, org.project.id, {
      external_id: "alone",
      credits: { remaining: 5 },
    });
    expect((await verify(key.key)).body).toMatchObject({
      credits: { remaining: 4 },
      identity: null,
    });

    const moved = await patchKey(org, key.id, { external_id: identity.external_id });
    expect(moved.status, moved.text).toBe(200);
    const inside = await verify(key.key);
    expect(inside.body).toMatchObject({
      code: "VALID",
      credits: { remaining: 3 },
      identity: { id: identity.id, credits: { remaining: 99 } },
    });
    expect(await keyCredits(org, key.id)).toBe(3);

    const out = await patchKey(org, key.id, { external_id: null });
    expect(out.status, out.text).toBe(200);
    const outside = await verify(key.key);
    expect(outside.body).toMatchObject({
      code: "VALID",
      credits: { remaining: 2 },
      identity: null,
    });
    expect(await identityCredits(org, identity.id)).toBe(99);
    expect(await keyCredits(org, key.id)).toBe(2);
  });

  it("creating an identity makes the keys that carry its external_id share it, balances kept", async () => {
    const org = await newOrg("shared-create");
    const external = `late_${crypto.randomUUID()}`;
    const key = await newKey(org.admin, org.project.id, {
      external_id: external,
      credits: { remaining: 5 },
    });
    await verify(key.key);
    expect((await verify(key.key)).body).toMatchObject({
      credits: { remaining: 3 },
      identity: null,
    });
    const identity = await newIdentity(org, { external_id: external, credits: { remaining: 1 } });
    const shared = await verify(key.key);
    expect(shared.body).toMatchObject({
      code: "VALID",
      credits: { remaining: 2 },
      identity: { id: identity.id, credits: { remaining: 0 } },
    });
    expect((await verify(key.key)).body.code).toBe("USAGE_EXCEEDED");
    expect(await keyCredits(org, key.id)).toBe(2);
  });

  it("deleting an identity ends the sharing: its keys decide alone, with their own balances", async () => {
    const org = await newOrg("shared-delete");
    const identity = await newIdentity(org, { credits: { remaining: 1 } });
    const a = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      credits: { remaining: 5 },
    });
    const b = await newKey(org.admin, org.project.id, { external_id: identity.external_id });
    expect((await verify(a.key)).body).toMatchObject({ code: "VALID", credits: { remaining: 4 } });
    expect((await verify(b.key)).body.code).toBe("USAGE_EXCEEDED");
    const deleted = await call("DELETE", `/v1/identities/${identity.id}`, { token: org.admin });
    expect(deleted.status).toBe(204);
    expect((await verify(b.key)).body).toMatchObject({ code: "VALID", identity: null });
    expect((await verify(a.key)).body).toMatchObject({
      code: "VALID",
      credits: { remaining: 3 },
      identity: null,
    });
    expect(await keyCredits(org, a.id)).toBe(3);
  });

  it("renaming an identity moves its membership to the keys of the new external_id", async () => {
    const org = await newOrg("shared-rename");
    const identity = await newIdentity(org, { credits: { remaining: 10 } });
    const before = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      credits: { remaining: 5 },
    });
    const after = await newKey(org.admin, org.project.id, {
      external_id: "renamed_to",
      credits: { remaining: 5 },
    });
    expect((await verify(before.key)).body.identity.credits.remaining).toBe(9);
    expect((await verify(after.key)).body).toMatchObject({
      credits: { remaining: 4 },
      identity: null,
    });
    const renamed = await call("PATCH", `/v1/identities/${identity.id}`, {
      token: org.admin,
      body: { external_id: "renamed_to" },
    });
    expect(renamed.status, renamed.text).toBe(200);
    expect((await verify(before.key)).body).toMatchObject({
      credits: { remaining: 3 },
      identity: null,
    });
    expect((await verify(after.key)).body).toMatchObject({
      credits: { remaining: 3 },
      identity: { id: identity.id, external_id: "renamed_to", credits: { remaining: 8 } },
    });
  });

  it("a rotation's successor stays in the identity, sharing the same balances", async () => {
    const org = await newOrg("shared-rotate");
    const identity = await newIdentity(org, { credits: { remaining: 3 } });
    const key = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      credits: { remaining: 10 },
    });
    expect((await verify(key.key)).body.identity.credits.remaining).toBe(2);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 3600 },
    });
    expect(rotated.status, rotated.text).toBe(201);
    expect((await verify(rotated.body.key)).body).toMatchObject({
      code: "VALID",
      credits: { remaining: 8 },
      identity: { id: identity.id, credits: { remaining: 1 } },
    });
    expect((await verify(key.key)).body.identity.credits.remaining).toBe(0);
    expect((await verify(rotated.body.key)).body.code).toBe("USAGE_EXCEEDED");
  });

  it("an identity change reaches another isolate within the bound (warm records refused)", async () => {
    const org = await newOrg("shared-bound");
    const identity = await newIdentity(org, { credits: { remaining: 100 } });
    const key = await newKey(org.admin, org.project.id, { external_id: identity.external_id });
    const clock = { now: Date.now() };
    const view = new IsolateView({ clock: () => clock.now, shard: 0 });
    const pending: Promise<unknown>[] = [];
    const core = createCore(env, { waitUntil: (p) => pending.push(p) }, { isolate: view });
    const result = async () => (await verifyKey(core, key.key)).result;
    expect((await result()).identity?.credits?.remaining).toBe(99);
    await Promise.all(pending.splice(0));
    // Warm in B. A takes the identity's credits away (PATCH), then B's clock passes the bound.
    expect((await result()).identity?.credits?.remaining).toBe(98);
    const patched = await call("PATCH", `/v1/identities/${identity.id}`, {
      token: org.admin,
      body: { credits: { remaining: 0 }, meta: { plan: "free" } },
    });
    expect(patched.status, patched.text).toBe(200);
    clock.now += DEFAULT_REVOCATION_BOUND_MS;
    const after = await result();
    expect(after).toMatchObject({
      code: "USAGE_EXCEEDED",
      identity: { meta: { plan: "free" }, credits: { remaining: 0 } },
    });
    // A key moved out within the bound: B no longer shares.
    const moved = await patchKey(org, key.id, { external_id: null });
    expect(moved.status).toBe(200);
    await Promise.all(pending.splice(0));
    clock.now += DEFAULT_REVOCATION_BOUND_MS;
    expect(await result()).toMatchObject({ code: "VALID", identity: null });
    // A new identity taking the key's external_id: B's record without one is refused.
    await patchKey(org, key.id, { external_id: "claimed_later" });
    await Promise.all(pending.splice(0));
    clock.now += DEFAULT_REVOCATION_BOUND_MS;
    expect((await result()).identity).toBeNull();
    await Promise.all(pending.splice(0));
    const claimed = await newIdentity(org, {
      external_id: "claimed_later",
      credits: { remaining: 0 },
    });
    clock.now += DEFAULT_REVOCATION_BOUND_MS;
    expect(await result()).toMatchObject({ code: "USAGE_EXCEEDED", identity: { id: claimed.id } });
  });
});

describe("identities: Durable Object calls, counted at the binding", () => {
  it("a plain key calls none; a key with limits one; a key with an identity one, not two", async () => {
    const org = await newOrg("shared-calls");
    const identity = await newIdentity(org, {
      credits: { remaining: 100 },
      ratelimits: [{ name: "api", limit: 100, duration_ms: MINUTE }],
    });
    const plain = await newKey(org.admin, org.project.id);
    const limited = await newKey(org.admin, org.project.id, {
      ratelimits: [{ name: "api", limit: 100, duration_ms: MINUTE }],
    });
    const member = await newKey(org.admin, org.project.id, {
      external_id: identity.external_id,
      credits: { remaining: 100 },
      ratelimits: [{ name: "api", limit: 100, duration_ms: MINUTE }],
    });
    const bare = await newIdentity(org);
    const unlimitedMember = await newKey(org.admin, org.project.id, {
      external_id: bare.external_id,
    });
    for (const k of [plain, limited, member, unlimitedMember]) await verify(k.key); // warm
    const calls = usageCalls();
    await verify(plain.key);
    await verify(unlimitedMember.key);
    expect(calls).toEqual([]);
    await verify(limited.key);
    expect(calls).toHaveLength(1);
    const answer = await verify(member.key);
    expect(answer.body).toMatchObject({
      credits: { remaining: 98 },
      identity: { credits: { remaining: 98 } },
    });
    expect(calls).toHaveLength(2);
    expect(calls[1]).toBe(`identity:${identity.id}`);
  });
});
