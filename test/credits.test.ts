// Key governance (SPEC Part 2): enabled, meta, external_id, ip_allowlist, ratelimits and
// credits on every surface, and what verify does with them, through the real verify path
// (HTTP and RPC) and the real KeyUsage Durable Object.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { listedCredits } from "../src/core/keys";
import { DAY, getKey, type Org, patch, verifyMany } from "./governance-harness";
import { call, newKey, newOrg, until, verify } from "./helpers";

describe("POST /v1/api-keys/{keyID}/credits", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_credits");
  });
  const adjust = (id: string, body: unknown, token = org.admin) =>
    call("POST", `/v1/api-keys/${id}/credits`, { token, body });

  it("sets, increments and decrements; GET one shows the exact balance", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    await verifyMany(key.key, 3);
    expect((await getKey(org, key.id)).credits.remaining).toBe(7);
    expect(await adjust(key.id, { operation: "increment", value: 5 })).toMatchObject({
      status: 200,
      body: { remaining: 12 },
    });
    expect((await adjust(key.id, { operation: "decrement", value: 2 })).body).toEqual({
      remaining: 10,
    });
    expect((await adjust(key.id, { operation: "decrement", value: 99 })).body).toEqual({
      remaining: 0,
    });
    expect((await verify(key.key)).body.code).toBe("USAGE_EXCEEDED");
    expect((await adjust(key.id, { operation: "set", value: 2 })).body).toEqual({ remaining: 2 });
    expect((await adjust(key.id, { operation: "increment", value: 1e12 })).body).toEqual({
      remaining: 1e12,
    });
    expect((await getKey(org, key.id)).credits.remaining).toBe(1e12);
    expect((await verify(key.key)).body.credits.remaining).toBe(1e12 - 1);
  });

  it("concurrent operations never lose an update", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 0 } });
    await Promise.all(
      Array.from({ length: 20 }, () => adjust(key.id, { operation: "increment", value: 1 })),
    );
    expect((await getKey(org, key.id)).credits.remaining).toBe(20);
  });

  it("is a 409 on a key without credits, a 400 on a bad body, a 404 elsewhere", async () => {
    const key = await newKey(org.admin, org.project.id);
    expect((await adjust(key.id, { operation: "set", value: 1 })).status).toBe(409);
    const limited = await newKey(org.admin, org.project.id, { credits: { remaining: 1 } });
    for (const body of [
      { operation: "add", value: 1 },
      { operation: "set", value: -1 },
      { operation: "set", value: 1.5 },
      { operation: "set", value: 1e12 + 1 },
      { operation: "set" },
    ]) {
      expect((await adjust(limited.id, body)).status, JSON.stringify(body)).toBe(400);
    }
    const stranger = await newOrg("gov_credits_other");
    expect((await adjust(limited.id, { operation: "set", value: 1 }, stranger.admin)).status).toBe(
      404,
    );
    const reader = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    expect((await adjust(limited.id, { operation: "set", value: 1 }, reader.key)).status).toBe(403);
  });

  it("is a 409 on an expired key, as PATCH is: a dead key's settings do not change", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 5 } });
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
      .bind(Date.now() - 1_000, key.id)
      .run();
    expect((await adjust(key.id, { operation: "increment", value: 1 })).status).toBe(409);
    expect((await patch(org, key.id, { credits: { remaining: 9 } })).status).toBe(409);
    expect((await getKey(org, key.id)).credits.remaining).toBe(5);
  });
});

describe("refill at the boundary instant", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_refill");
  });

  /** Verify with the Worker's clock at `iso` (the verdict and the usage object take it). */
  const verifyAt = async (iso: string, key: string, extra: Record<string, unknown> = {}) => {
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date(iso));
    try {
      return (await verify(key, extra)).body;
    } finally {
      vi.useRealTimers();
    }
  };

  it("daily: refilled at 00:00:00.000 UTC, not a millisecond before", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 0, refill: { interval: "daily", amount: 3 } },
    });
    const day = new Date((Math.floor(Date.now() / DAY) + 2) * DAY);
    const before = new Date(day.getTime() - 1).toISOString();
    // The refill of the day before `before` has already happened: spend it all.
    expect(await verifyAt(before, key.key, { cost: 3 })).toMatchObject({
      code: "VALID",
      credits: { remaining: 0, refill_at: day.toISOString() },
    });
    expect((await verifyAt(before, key.key)).code).toBe("USAGE_EXCEEDED");
    expect(await verifyAt(day.toISOString(), key.key)).toMatchObject({
      code: "VALID",
      credits: { remaining: 2, refill_at: new Date(day.getTime() + DAY).toISOString() },
    });
  });

  it("monthly on the 31st: the last day of a 30-day month", async () => {
    const key = await newKey(org.admin, org.project.id, {
      credits: { remaining: 0, refill: { interval: "monthly", amount: 5, day: 31 } },
    });
    // The next April after now (30 days): its refill instant is April 30th, 00:00 UTC.
    const now = new Date();
    const year = now.getUTCMonth() >= 3 ? now.getUTCFullYear() + 1 : now.getUTCFullYear();
    const refill = Date.UTC(year, 3, 30);
    const before = new Date(refill - 1).toISOString();
    expect(await verifyAt(before, key.key, { cost: 5 })).toMatchObject({
      code: "VALID",
      credits: { remaining: 0, refill_at: new Date(refill).toISOString() },
    });
    expect((await verifyAt(before, key.key)).code).toBe("USAGE_EXCEEDED");
    expect(await verifyAt(new Date(refill).toISOString(), key.key)).toMatchObject({
      code: "VALID",
      credits: { remaining: 4, refill_at: new Date(Date.UTC(year, 4, 31)).toISOString() },
    });
  });
});

describe("balances in lists", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("gov_listed");
  });

  /** env.KEY_USAGE that counts the objects a request reaches. */
  function countedUsage() {
    const counted = { gets: 0 };
    const namespace = {
      idFromName: (name: string) => env.KEY_USAGE.idFromName(name),
      get: (id: DurableObjectId) => {
        counted.gets++;
        return env.KEY_USAGE.get(id);
      },
    } as unknown as typeof env.KEY_USAGE;
    return { counted, namespace };
  }

  const listed = async (id: string, usage?: typeof env.KEY_USAGE) => {
    const list = await call("GET", `/v1/api-keys?project_id=${org.project.id}&limit=100`, {
      token: org.admin,
      ...(usage ? { env: { KEY_USAGE: usage } } : {}),
    });
    expect(list.status).toBe(200);
    return (list.body as { id: string; credits: { remaining: number } | null }[]).find(
      (key) => key.id === id,
    )?.credits?.remaining;
  };

  it("show the balance the latest verification left, with no usage-object call per key", async () => {
    const keys = await Promise.all(
      [10, 20, 30].map((remaining) =>
        newKey(org.admin, org.project.id, { credits: { remaining } }),
      ),
    );
    const [first] = keys as [(typeof keys)[number]];
    await verifyMany(first.key, 3);
    // The queue consumer notes it (batches leave at once in tests; delivery within ~50 ms).
    await until(async () => (await listed(first.id)) === 7, "the list shows 7");
    const { counted, namespace } = countedUsage();
    expect(await listed(first.id, namespace)).toBe(7);
    expect(counted.gets, "a list reads no usage object").toBe(0);
    // GET of one key stays exact, from its usage object.
    expect((await getKey(org, first.id)).credits.remaining).toBe(7);
  });

  it("show a credits operation's result at once, and PATCH's new balance", async () => {
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    await call("POST", `/v1/api-keys/${key.id}/credits`, {
      token: org.admin,
      body: { operation: "set", value: 42 },
    });
    expect(await listed(key.id)).toBe(42);
    await patch(org, key.id, { credits: { remaining: 5 } });
    expect(await listed(key.id)).toBe(5);
  });

  it("show the refill amount once a refill instant has passed since the last known balance", () => {
    const setAt = Date.UTC(2026, 11, 1, 12);
    const row = {
      creditsRemaining: 10,
      creditsRefill: { interval: "daily" as const, amount: 100, day: null },
      creditsVersion: setAt,
      creditsSeen: 3,
      creditsSeenAt: setAt + 60_000,
      createdAt: setAt - DAY,
    };
    expect(listedCredits(row, setAt + 2 * 60_000)).toBe(3);
    expect(listedCredits(row, Date.UTC(2026, 11, 2, 0, 0, 1))).toBe(100);
    // A balance D1 set after the one seen wins over it.
    expect(listedCredits({ ...row, creditsVersion: setAt + 120_000 }, setAt + 180_000)).toBe(10);
    expect(listedCredits({ ...row, creditsRemaining: null }, setAt)).toBeNull();
  });

  it("of identities show a credits operation's result, with no usage-object call", async () => {
    const created = await call("POST", "/v1/identities", {
      token: org.admin,
      body: { external_id: "listed-owner", credits: { remaining: 10, refill: null } },
    });
    const id = created.body.id as string;
    await call("POST", `/v1/identities/${id}/credits`, {
      token: org.admin,
      body: { operation: "decrement", value: 4 },
    });
    const { counted, namespace } = countedUsage();
    const list = await call("GET", "/v1/identities?external_id=listed-owner", {
      token: org.admin,
      env: { KEY_USAGE: namespace },
    });
    expect(list.body.identities[0].credits.remaining).toBe(6);
    expect(counted.gets).toBe(0);
  });
});
