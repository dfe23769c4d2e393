// The KeyUsage Durable Object through its real binding: exact limits and credits under
// concurrency, nothing spent on a refusal, window and refill instants to the millisecond.
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { nextRefillAt, windowOf } from "../src/core/usage";
import type {
  CreditsSpec,
  LimitSpec,
  RefillSpec,
  SpendRequest,
  SpendResult,
} from "../src/durable/key-usage";

/** A fresh object per test: one key lineage each. */
const lineage = () => env.KEY_USAGE.get(env.KEY_USAGE.idFromName(crypto.randomUUID()));

const at = (iso: string) => Date.parse(iso);
const MINUTE = 60_000;
/** An instant well inside a 60 s window, so `NOW + a few ms` stays in it. */
const NOW = at("2026-12-01T10:00:30.000Z");

const credits = (
  remaining: number,
  refill: RefillSpec | null = null,
  version = 1,
): CreditsSpec => ({
  remaining,
  refill,
  version,
});
const limit = (name: string, max: number, durationMs = MINUTE): LimitSpec => ({
  name,
  limit: max,
  durationMs,
});
const spendOf = (request: Partial<SpendRequest> & { limitsAt?: LimitSpec[] }): SpendRequest => ({
  now: request.now ?? NOW,
  cost: request.cost ?? 1,
  limits:
    request.limits ?? (request.limitsAt ?? []).map((spec) => ({ spec, cost: request.cost ?? 1 })),
  credits: request.credits ?? null,
});
/** The error a call failed with (awaited in one place, so no RPC rejection goes unhandled). */
async function failure(call: () => Promise<unknown>): Promise<Error> {
  try {
    await call();
  } catch (error) {
    return error as Error;
  }
  throw new Error("the call succeeded");
}
const codes = (results: SpendResult[]) =>
  results.reduce<Record<string, number>>((count, { code }) => {
    count[code] = (count[code] ?? 0) + 1;
    return count;
  }, {});

describe("exact under concurrency", () => {
  it("grants exactly 10 of 200 concurrent spends on 10 credits", async () => {
    const usage = lineage();
    const spec = credits(10);
    const results = await Promise.all(
      Array.from({ length: 200 }, () => usage.spend(spendOf({ credits: spec }))),
    );
    expect(codes(results)).toEqual({ VALID: 10, USAGE_EXCEEDED: 190 });
    const granted = results.filter((r) => r.code === "VALID").map((r) => r.credits?.remaining);
    expect(granted.sort((a, b) => (a ?? 0) - (b ?? 0))).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(await usage.readCredits({ now: NOW, credits: spec })).toEqual({
      remaining: 0,
      refillAt: null,
    });
  });

  it("grants exactly 7 of 100 concurrent spends on a limit of 7 per 60 s", async () => {
    const usage = lineage();
    const perMinute = limit("api", 7);
    const results = await Promise.all(
      Array.from({ length: 100 }, (_, i) =>
        // Spread over the window: every instant of it shares one counter.
        usage.spend(spendOf({ now: NOW + (i % 20), limitsAt: [perMinute] })),
      ),
    );
    expect(codes(results)).toEqual({ VALID: 7, RATE_LIMITED: 93 });
    const window = windowOf(NOW, MINUTE);
    for (const result of results) {
      expect(result.ratelimits).toHaveLength(1);
      expect(result.ratelimits[0]).toMatchObject({ name: "api", limit: 7, resetAt: window.end });
    }
    const left = results.filter((r) => r.code === "VALID").map((r) => r.ratelimits[0]?.remaining);
    expect(left.sort()).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(
      results.filter((r) => r.code === "RATE_LIMITED").map((r) => r.ratelimits[0]?.remaining),
    ).toEqual(Array(93).fill(0));
  });

  it("counts all of 100 concurrent increments", async () => {
    const usage = lineage();
    const spec = credits(0);
    await Promise.all(
      Array.from({ length: 100 }, () =>
        usage.adjustCredits({ now: NOW, credits: spec, operation: "increment", value: 1 }),
      ),
    );
    expect((await usage.readCredits({ now: NOW, credits: spec })).remaining).toBe(100);
  });

  it("never grants a refilled credit twice when many spend right after the refill", async () => {
    const usage = lineage();
    const spec = credits(0, { interval: "daily", amount: 10, day: null }, NOW);
    const midnight = at("2026-12-02T00:00:00.000Z");
    const results = await Promise.all(
      Array.from({ length: 60 }, (_, i) =>
        usage.spend(spendOf({ now: midnight + (i % 3), credits: spec })),
      ),
    );
    expect(codes(results)).toEqual({ VALID: 10, USAGE_EXCEEDED: 50 });
  });
});

describe("a refusal spends nothing", () => {
  it("a rate limit refusing leaves the credits untouched", async () => {
    const usage = lineage();
    const spec = credits(10);
    const once = limit("once", 1);
    expect((await usage.spend(spendOf({ limitsAt: [once], credits: spec }))).code).toBe("VALID");
    const refused = await usage.spend(spendOf({ now: NOW + 1, limitsAt: [once], credits: spec }));
    expect(refused).toEqual({
      code: "RATE_LIMITED",
      ratelimits: [{ name: "once", limit: 1, remaining: 0, resetAt: windowOf(NOW, MINUTE).end }],
      credits: { remaining: 9, refillAt: null },
    });
    expect((await usage.readCredits({ now: NOW + 2, credits: spec })).remaining).toBe(9);
  });

  it("credits refusing leave the windows untouched", async () => {
    const usage = lineage();
    const spec = credits(1);
    const five = limit("five", 5);
    const first = await usage.spend(spendOf({ limitsAt: [five], credits: spec }));
    expect(first.code).toBe("VALID");
    expect(first.ratelimits[0]?.remaining).toBe(4);
    const refused = await usage.spend(spendOf({ limitsAt: [five], credits: spec }));
    expect(refused.code).toBe("USAGE_EXCEEDED");
    expect(refused.ratelimits[0]?.remaining).toBe(4);
    expect(refused.credits).toEqual({ remaining: 0, refillAt: null });
    // The refused units were not counted: four more fit once credits are back.
    await usage.adjustCredits({ now: NOW, credits: spec, operation: "set", value: 100 });
    const after = await Promise.all(
      Array.from({ length: 6 }, () => usage.spend(spendOf({ limitsAt: [five], credits: spec }))),
    );
    expect(codes(after)).toEqual({ VALID: 4, RATE_LIMITED: 2 });
    expect((await usage.readCredits({ now: NOW, credits: spec })).remaining).toBe(96);
  });

  it("several limits with their own costs: one refusing spends on none", async () => {
    const usage = lineage();
    const wide = limit("wide", 10);
    const narrow = limit("narrow", 5, 1_000);
    const spec = credits(100);
    const first = await usage.spend({
      now: NOW,
      cost: 2,
      limits: [
        { spec: wide, cost: 3 },
        { spec: narrow, cost: 5 },
      ],
      credits: spec,
    });
    expect(first.code).toBe("VALID");
    expect(first.ratelimits).toEqual([
      { name: "wide", limit: 10, remaining: 7, resetAt: windowOf(NOW, MINUTE).end },
      { name: "narrow", limit: 5, remaining: 0, resetAt: windowOf(NOW, 1_000).end },
    ]);
    expect(first.credits?.remaining).toBe(98);
    const refused = await usage.spend({
      now: NOW + 1,
      cost: 2,
      limits: [
        { spec: wide, cost: 3 },
        { spec: narrow, cost: 1 },
      ],
      credits: spec,
    });
    expect(refused.code).toBe("RATE_LIMITED");
    expect(refused.ratelimits.map((r) => r.remaining)).toEqual([7, 0]);
    expect(refused.credits?.remaining).toBe(98);
    // Only the limits named are applied: the wide one alone still has its 7.
    const wideOnly = await usage.spend({
      now: NOW + 2,
      cost: 7,
      limits: [{ spec: wide, cost: 7 }],
      credits: spec,
    });
    expect(wideOnly.code).toBe("VALID");
    expect(wideOnly.ratelimits).toEqual([
      { name: "wide", limit: 10, remaining: 0, resetAt: windowOf(NOW, MINUTE).end },
    ]);
    expect(wideOnly.credits?.remaining).toBe(91);
  });

  it("a cost above the limit is refused and spends nothing", async () => {
    const usage = lineage();
    const three = limit("three", 3);
    expect((await usage.spend(spendOf({ cost: 4, limitsAt: [three] }))).code).toBe("RATE_LIMITED");
    expect((await usage.spend(spendOf({ cost: 3, limitsAt: [three] }))).code).toBe("VALID");
  });
});

describe("cost 0", () => {
  it("checks a limit as cost 1 would, spending nothing", async () => {
    const usage = lineage();
    const once = limit("once", 1);
    const check = await usage.spend(spendOf({ cost: 0, limitsAt: [once] }));
    expect(check.code).toBe("VALID");
    expect(check.ratelimits[0]?.remaining).toBe(1);
    const spent = await usage.spend(spendOf({ cost: 1, limitsAt: [once] }));
    expect(spent.code).toBe("VALID");
    expect(spent.ratelimits[0]?.remaining).toBe(0);
    // Cost 1 would now be refused, so cost 0 is too.
    expect((await usage.spend(spendOf({ cost: 0, limitsAt: [once] }))).code).toBe("RATE_LIMITED");
  });

  it("checks credits as cost 1 would, spending nothing", async () => {
    const usage = lineage();
    const one = credits(1);
    const check = await usage.spend(spendOf({ cost: 0, credits: one }));
    expect(check).toEqual({
      code: "VALID",
      ratelimits: [],
      credits: { remaining: 1, refillAt: null },
    });
    expect((await usage.spend(spendOf({ cost: 0, credits: one }))).credits?.remaining).toBe(1);
    const none = lineage();
    const empty = await none.spend(spendOf({ cost: 0, credits: credits(0) }));
    expect(empty.code).toBe("USAGE_EXCEEDED");
  });

  it("with neither limits nor credits answers VALID with nothing to show", async () => {
    const usage = lineage();
    expect(await usage.spend(spendOf({}))).toEqual({
      code: "VALID",
      ratelimits: [],
      credits: null,
    });
  });
});

describe("fixed windows aligned to the epoch", () => {
  it("the last ms of a window and the first of the next are different windows", async () => {
    const usage = lineage();
    const once = limit("once", 1);
    const boundary = at("2026-12-01T10:01:00.000Z");
    const last = await usage.spend(spendOf({ now: boundary - 1, limitsAt: [once] }));
    expect(last).toMatchObject({
      code: "VALID",
      ratelimits: [{ remaining: 0, resetAt: boundary }],
    });
    const stillLast = await usage.spend(spendOf({ now: boundary - 1, limitsAt: [once] }));
    expect(stillLast).toMatchObject({ code: "RATE_LIMITED", ratelimits: [{ resetAt: boundary }] });
    const first = await usage.spend(spendOf({ now: boundary, limitsAt: [once] }));
    expect(first).toMatchObject({
      code: "VALID",
      ratelimits: [{ remaining: 0, resetAt: boundary + MINUTE }],
    });
  });

  it("a window is [k·d, (k+1)·d) for any duration", () => {
    expect(windowOf(0, 1_000)).toEqual({ index: 0, start: 0, end: 1_000 });
    expect(windowOf(999, 1_000)).toEqual({ index: 0, start: 0, end: 1_000 });
    expect(windowOf(1_000, 1_000)).toEqual({ index: 1, start: 1_000, end: 2_000 });
    // 7 s windows count from the epoch, not from the minute: 10:00:30 is in [10:00:27, 10:00:34).
    expect(windowOf(NOW, 7_000)).toMatchObject({
      start: at("2026-12-01T10:00:27.000Z"),
      end: at("2026-12-01T10:00:34.000Z"),
    });
  });

  it("changing a limit's limit or duration starts fresh windows", async () => {
    const usage = lineage();
    expect((await usage.spend(spendOf({ limitsAt: [limit("api", 1)] }))).code).toBe("VALID");
    expect((await usage.spend(spendOf({ limitsAt: [limit("api", 1)] }))).code).toBe("RATE_LIMITED");
    const raised = await usage.spend(spendOf({ limitsAt: [limit("api", 2)] }));
    expect(raised).toMatchObject({ code: "VALID", ratelimits: [{ remaining: 1 }] });
    const longer = await usage.spend(spendOf({ limitsAt: [limit("api", 2, 2 * MINUTE)] }));
    expect(longer).toMatchObject({ code: "VALID", ratelimits: [{ remaining: 1 }] });
    // Another name is another limit; the same name and spec shares its window.
    expect((await usage.spend(spendOf({ limitsAt: [limit("other", 1)] }))).code).toBe("VALID");
    expect((await usage.spend(spendOf({ limitsAt: [limit("api", 2)] }))).code).toBe("VALID");
    expect((await usage.spend(spendOf({ limitsAt: [limit("api", 2)] }))).code).toBe("RATE_LIMITED");
  });

  it("prunes windows long over and keeps state across eviction", async () => {
    const usage = lineage();
    const perSecond = limit("fast", 2, 1_000);
    for (let second = 0; second < 200; second++) {
      await usage.spend(spendOf({ now: NOW + second * 1_000, cost: 2, limitsAt: [perSecond] }));
    }
    const last = NOW + 199 * 1_000;
    const rows = await runInDurableObject(usage, (_, state) =>
      state.storage.sql.exec<{ n: number }>("SELECT count(*) AS n FROM holder_windows").one(),
    );
    // The windows of the last minute or so are kept, not the 200 of the run.
    expect(rows.n).toBeLessThanOrEqual(62);
    expect(rows.n).toBeGreaterThan(1);
    await evictDurableObject(usage);
    expect((await usage.spend(spendOf({ now: last, limitsAt: [perSecond] }))).code).toBe(
      "RATE_LIMITED",
    );
  });

  it("a caller lagging past the kept windows is counted in the oldest kept one", async () => {
    const usage = lineage();
    const once = limit("once", 1, 1_000);
    const later = NOW + 10 * MINUTE;
    // A first grant in a new window prunes everything over for more than 60 s before it.
    expect((await usage.spend(spendOf({ now: NOW, limitsAt: [once] }))).code).toBe("VALID");
    expect((await usage.spend(spendOf({ now: later, limitsAt: [once] }))).code).toBe("VALID");
    // The NOW window is gone, so a caller still at NOW cannot have it fresh again.
    const lagging = await usage.spend(spendOf({ now: NOW, limitsAt: [once] }));
    expect(lagging.code).toBe("VALID");
    expect(lagging.ratelimits[0]?.resetAt).toBe(windowOf(later - MINUTE, 1_000).end);
    const again = await usage.spend(spendOf({ now: NOW, limitsAt: [once] }));
    expect(again.code).toBe("RATE_LIMITED");
  });
});

describe("refills at 00:00 UTC", () => {
  const daily: RefillSpec = { interval: "daily", amount: 5, day: null };

  it("daily: set to amount at the boundary instant, once", async () => {
    const usage = lineage();
    const spec = credits(1, daily, at("2026-12-01T09:00:00.000Z"));
    const midnight = at("2026-12-02T00:00:00.000Z");
    const before = await usage.spend(spendOf({ now: midnight - 1, credits: spec }));
    expect(before).toMatchObject({ code: "VALID", credits: { remaining: 0, refillAt: midnight } });
    expect((await usage.spend(spendOf({ now: midnight - 1, credits: spec }))).code).toBe(
      "USAGE_EXCEEDED",
    );
    const atMidnight = await usage.spend(spendOf({ now: midnight, credits: spec }));
    expect(atMidnight).toMatchObject({
      code: "VALID",
      credits: { remaining: 4, refillAt: midnight + 86_400_000 },
    });
    // The same instant, a later one the same day, or a caller lagging behind: no second refill.
    for (const now of [midnight, midnight + 3_600_000, midnight - 5]) {
      expect((await usage.readCredits({ now, credits: spec })).remaining).toBe(4);
    }
    // Days without a request still refill once, to amount (never amount times days).
    const later = at("2026-12-05T12:00:00.000Z");
    expect(await usage.readCredits({ now: later, credits: spec })).toEqual({
      remaining: 5,
      refillAt: at("2026-12-06T00:00:00.000Z"),
    });
  });

  it("refill sets remaining to amount, also when more is left", async () => {
    const usage = lineage();
    const spec = credits(50, daily, at("2026-12-01T09:00:00.000Z"));
    const read = await usage.readCredits({ now: at("2026-12-02T00:00:00.000Z"), credits: spec });
    expect(read.remaining).toBe(5);
  });

  it("refills that fell before the credits were set are not applied", async () => {
    const usage = lineage();
    const setAt = at("2026-12-01T00:00:00.000Z");
    const spec = credits(2, daily, setAt);
    expect((await usage.readCredits({ now: setAt, credits: spec })).remaining).toBe(2);
    expect((await usage.readCredits({ now: setAt + 1, credits: spec })).remaining).toBe(2);
  });

  it("monthly on the 31st refills on the 30th of a 30-day month", async () => {
    const usage = lineage();
    const refill: RefillSpec = { interval: "monthly", amount: 100, day: 31 };
    const spec = credits(0, refill, at("2026-04-10T08:00:00.000Z"));
    const april30 = at("2026-04-30T00:00:00.000Z");
    expect(await usage.readCredits({ now: april30 - 1, credits: spec })).toEqual({
      remaining: 0,
      refillAt: april30,
    });
    const spent = await usage.spend(spendOf({ now: april30, credits: spec }));
    expect(spent).toMatchObject({
      code: "VALID",
      credits: { remaining: 99, refillAt: at("2026-05-31T00:00:00.000Z") },
    });
    expect(
      (await usage.readCredits({ now: at("2026-05-30T23:59:59.999Z"), credits: spec })).remaining,
    ).toBe(99);
    expect(
      (await usage.readCredits({ now: at("2026-05-31T00:00:00.000Z"), credits: spec })).remaining,
    ).toBe(100);
  });

  it("monthly on the 31st refills on the last day of February, leap years too", () => {
    const refill: RefillSpec = { interval: "monthly", amount: 1, day: 31 };
    expect(nextRefillAt(at("2027-01-31T00:00:00.000Z"), refill)).toBe(
      at("2027-02-28T00:00:00.000Z"),
    );
    expect(nextRefillAt(at("2028-02-01T00:00:00.000Z"), refill)).toBe(
      at("2028-02-29T00:00:00.000Z"),
    );
    expect(nextRefillAt(at("2028-02-29T00:00:00.000Z"), refill)).toBe(
      at("2028-03-31T00:00:00.000Z"),
    );
    expect(nextRefillAt(at("2026-12-31T00:00:00.000Z"), refill)).toBe(
      at("2027-01-31T00:00:00.000Z"),
    );
    const thirtieth: RefillSpec = { interval: "monthly", amount: 1, day: 30 };
    expect(nextRefillAt(at("2027-02-10T00:00:00.000Z"), thirtieth)).toBe(
      at("2027-02-28T00:00:00.000Z"),
    );
    expect(nextRefillAt(at("2027-02-28T00:00:00.000Z"), thirtieth)).toBe(
      at("2027-03-30T00:00:00.000Z"),
    );
  });

  it("monthly in February through the object, at the boundary instant", async () => {
    const usage = lineage();
    const refill: RefillSpec = { interval: "monthly", amount: 7, day: 30 };
    const spec = credits(0, refill, at("2027-02-01T12:00:00.000Z"));
    const feb28 = at("2027-02-28T00:00:00.000Z");
    expect((await usage.spend(spendOf({ now: feb28 - 1, credits: spec }))).code).toBe(
      "USAGE_EXCEEDED",
    );
    const refilled = await usage.spend(spendOf({ now: feb28, credits: spec }));
    expect(refilled).toMatchObject({
      code: "VALID",
      credits: { remaining: 6, refillAt: at("2027-03-30T00:00:00.000Z") },
    });
  });

  it("monthly without a day refills on the 1st; daily counts from the UTC day", () => {
    const first: RefillSpec = { interval: "monthly", amount: 1, day: null };
    expect(nextRefillAt(at("2026-12-01T00:00:00.000Z"), first)).toBe(
      at("2027-01-01T00:00:00.000Z"),
    );
    expect(nextRefillAt(at("2026-11-30T23:59:59.999Z"), first)).toBe(
      at("2026-12-01T00:00:00.000Z"),
    );
    expect(nextRefillAt(at("2026-12-01T23:59:59.999Z"), daily)).toBe(
      at("2026-12-02T00:00:00.000Z"),
    );
    expect(nextRefillAt(at("2026-12-02T00:00:00.000Z"), daily)).toBe(
      at("2026-12-03T00:00:00.000Z"),
    );
  });
});

describe("credits versions", () => {
  it("a newer version is adopted, an equal or older one is ignored", async () => {
    const usage = lineage();
    const spent = await usage.spend(spendOf({ cost: 3, credits: credits(10, null, 100) }));
    expect(spent.credits?.remaining).toBe(7);
    // Same version: the object's own count holds.
    expect(
      (await usage.spend(spendOf({ credits: credits(10, null, 100) }))).credits?.remaining,
    ).toBe(6);
    // An older version (a stale cache) changes nothing.
    expect(
      (await usage.readCredits({ now: NOW, credits: credits(1_000, null, 50) })).remaining,
    ).toBe(6);
    // A newer one (PATCH credits) is adopted as the live remaining.
    expect(
      (await usage.spend(spendOf({ credits: credits(50, null, 200) }))).credits?.remaining,
    ).toBe(49);
    expect((await usage.readCredits({ now: NOW, credits: credits(10, null, 100) })).remaining).toBe(
      49,
    );
  });

  it("the refill comes from the newest version seen", async () => {
    const usage = lineage();
    const version = at("2026-12-01T09:00:00.000Z");
    const refill: RefillSpec = { interval: "daily", amount: 8, day: null };
    await usage.readCredits({ now: NOW, credits: credits(1, refill, version) });
    const stale = await usage.readCredits({
      now: at("2026-12-02T00:00:00.000Z"),
      credits: credits(1, null, version - 1),
    });
    expect(stale).toEqual({ remaining: 8, refillAt: at("2026-12-03T00:00:00.000Z") });
    // A newer version without a refill stops refilling.
    const cleared = await usage.readCredits({
      now: at("2026-12-02T01:00:00.000Z"),
      credits: credits(3, null, version + 1),
    });
    expect(cleared).toEqual({ remaining: 3, refillAt: null });
    expect(
      (
        await usage.readCredits({
          now: at("2026-12-04T00:00:00.000Z"),
          credits: credits(3, null, version + 1),
        })
      ).remaining,
    ).toBe(3);
  });

  it("unlimited requests leave the stored credits alone", async () => {
    const usage = lineage();
    const spec = credits(5, null, 10);
    await usage.spend(spendOf({ credits: spec }));
    expect(await usage.spend(spendOf({ credits: null }))).toMatchObject({
      code: "VALID",
      credits: null,
    });
    expect((await usage.readCredits({ now: NOW, credits: spec })).remaining).toBe(4);
  });
});

describe("adjustCredits", () => {
  const MAX = 1_000_000_000_000;

  it("set, increment and decrement stop at 0 and 1e12", async () => {
    const usage = lineage();
    const spec = credits(10);
    const adjust = (operation: "set" | "increment" | "decrement", value: number) =>
      usage.adjustCredits({ now: NOW, credits: spec, operation, value });
    expect(await adjust("decrement", 3)).toEqual({ remaining: 7, refillAt: null });
    expect((await adjust("decrement", 100)).remaining).toBe(0);
    expect((await adjust("increment", 5)).remaining).toBe(5);
    expect((await adjust("increment", MAX)).remaining).toBe(MAX);
    expect((await adjust("increment", 1)).remaining).toBe(MAX);
    expect((await adjust("set", 42)).remaining).toBe(42);
    expect((await adjust("set", MAX)).remaining).toBe(MAX);
    expect((await adjust("set", 0)).remaining).toBe(0);
    expect((await failure(() => adjust("set", MAX + 1))).message).toMatch(
      /value must be an integer/,
    );
    expect((await failure(() => adjust("increment", -1))).message).toMatch(
      /value must be an integer/,
    );
    expect((await failure(() => adjust("decrement", 1.5))).message).toMatch(
      /value must be an integer/,
    );
    expect((await usage.readCredits({ now: NOW, credits: spec })).remaining).toBe(0);
  });

  it("adopts a newer spec before adjusting and applies a due refill first", async () => {
    const usage = lineage();
    const version = at("2026-12-01T09:00:00.000Z");
    const refill: RefillSpec = { interval: "daily", amount: 20, day: null };
    await usage.spend(spendOf({ cost: 5, credits: credits(5, refill, version) }));
    const next = await usage.adjustCredits({
      now: at("2026-12-02T00:00:00.000Z"),
      credits: credits(5, refill, version),
      operation: "increment",
      value: 1,
    });
    expect(next).toEqual({ remaining: 21, refillAt: at("2026-12-03T00:00:00.000Z") });
  });
});

describe("agrees with a plain model over random sequences", () => {
  // An independent, obviously-correct model: counters by window identity, credits with the
  // refill instants walked one by one.
  const specs = [limit("a", 3, 1_000), limit("b", 5, 7_000), limit("c", 2, 60_000)];
  const refill: RefillSpec = { interval: "daily", amount: 6, day: null };
  const DAY = 86_400_000;
  type Step =
    | { kind: "spend"; advance: number; cost: number; which: boolean[] }
    | {
        kind: "adjust";
        advance: number;
        operation: "set" | "increment" | "decrement";
        value: number;
      };
  const step: fc.Arbitrary<Step> = fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        kind: fc.constant("spend" as const),
        // Mostly forward, sometimes a caller a little behind the last one (clock skew).
        advance: fc.oneof(
          fc.integer({ min: 0, max: 1_500 }),
          fc.integer({ min: 0, max: DAY }),
          fc.integer({ min: -2_000, max: 0 }),
        ),
        cost: fc.integer({ min: 0, max: 3 }),
        which: fc.tuple(fc.boolean(), fc.boolean(), fc.boolean()),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("adjust" as const),
        advance: fc.integer({ min: 0, max: 1_000 }),
        operation: fc.constantFrom("set" as const, "increment" as const, "decrement" as const),
        value: fc.integer({ min: 0, max: 8 }),
      }),
    },
  );

  it("every answer matches the model", async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 25 }), async (steps) => {
        const usage = lineage();
        const start = at("2026-12-01T23:59:55.000Z");
        const spec = credits(4, refill, start);
        const used = new Map<string, number>();
        let remaining = 4;
        let seen = start;
        let now = start;
        let newest = start;
        const refillTo = (instant: number) => {
          for (let day = Math.floor(seen / DAY) + 1; day * DAY <= instant; day++) remaining = 6;
          seen = Math.max(seen, instant);
        };
        for (const s of steps) {
          // Lagging at most 30 s behind the newest instant: within the windows the object keeps.
          now = Math.max(now + s.advance, newest - 30_000);
          newest = Math.max(newest, now);
          refillTo(now);
          if (s.kind === "adjust") {
            const got = await usage.adjustCredits({
              now,
              credits: spec,
              operation: s.operation,
              value: s.value,
            });
            const next =
              s.operation === "set"
                ? s.value
                : s.operation === "increment"
                  ? remaining + s.value
                  : remaining - s.value;
            remaining = Math.max(0, next);
            expect(got.remaining).toBe(remaining);
            continue;
          }
          const applied = specs.filter((_, i) => s.which[i]);
          const got = await usage.spend(
            spendOf({ now, cost: s.cost, limitsAt: applied, credits: spec }),
          );
          const key = (l: LimitSpec) => `${l.name}/${Math.floor(now / l.durationMs)}`;
          const need = Math.max(s.cost, 1);
          const code = applied.some((l) => (used.get(key(l)) ?? 0) + need > l.limit)
            ? "RATE_LIMITED"
            : remaining < need
              ? "USAGE_EXCEEDED"
              : "VALID";
          if (code === "VALID") {
            for (const l of applied) used.set(key(l), (used.get(key(l)) ?? 0) + s.cost);
            remaining -= s.cost;
          }
          expect(got.code).toBe(code);
          expect(got.credits?.remaining).toBe(remaining);
          expect(got.ratelimits.map((r) => r.remaining)).toEqual(
            applied.map((l) => l.limit - (used.get(key(l)) ?? 0)),
          );
        }
      }),
      { seed: 20261201, numRuns: 40 },
    );
  });
});

describe("holders: an identity's object deciding for its member keys", () => {
  const member = (lineageId: string, request: Parameters<typeof spendOf>[0]) => ({
    ...spendOf(request),
    holder: `key:${lineageId}`,
  });

  it("keeps each member's windows and credits apart, and the identity's shared", async () => {
    const usage = lineage();
    const shared = { limits: [{ spec: limit("api", 3), cost: 1 }], credits: credits(100) };
    const answers: SpendResult[] = [];
    for (const who of ["a", "b", "a", "b"]) {
      answers.push(
        await usage.spend({
          ...member(who, { limitsAt: [limit("api", 2)], credits: credits(10) }),
          identity: shared,
        }),
      );
    }
    expect(answers.map((a) => a.code)).toEqual(["VALID", "VALID", "VALID", "RATE_LIMITED"]);
    // b's own window had room: the identity's (3 a minute, shared) refused, and nothing moved.
    expect(answers[3]).toMatchObject({
      ratelimits: [{ name: "api", remaining: 1 }],
      credits: { remaining: 9 },
      identity: { ratelimits: [{ name: "api", remaining: 0 }], credits: { remaining: 97 } },
    });
  });

  it("release hands a holder's balance over and leaves 0; a newer version is adopted afresh", async () => {
    const usage = lineage();
    await usage.spend(member("a", { cost: 4, credits: credits(10) }));
    expect(
      await usage.release({ now: NOW, holders: [{ holder: "key:a", credits: credits(10) }] }),
    ).toEqual([6]);
    const late = await usage.spend(member("a", { credits: credits(10) }));
    expect(late).toMatchObject({ code: "USAGE_EXCEEDED", credits: { remaining: 0 } });
    const back = await usage.spend(member("a", { credits: credits(6, null, 2) }));
    expect(back).toMatchObject({ code: "VALID", credits: { remaining: 5 } });
  });
});

describe("objects from before identities", () => {
  it("keep their balance and windows: the one lineage's tables become the holder ''", async () => {
    const usage = lineage();
    const once = limit("once", 1);
    const spec = credits(5);
    const first = await usage.spend(spendOf({ limitsAt: [once], credits: spec }));
    expect(first.credits?.remaining).toBe(4);
    // Lay the storage out as the code before identities left it (one row per window, one
    // balance), then start the object again: its constructor must adopt both.
    await runInDurableObject(usage, (_instance, state) => {
      const sql = state.storage.sql;
      sql.exec(`CREATE TABLE windows (
        name TEXT NOT NULL, lim INTEGER NOT NULL, duration_ms INTEGER NOT NULL, k INTEGER NOT NULL,
        used INTEGER NOT NULL, end_ms INTEGER NOT NULL,
        PRIMARY KEY (name, lim, duration_ms, k)) WITHOUT ROWID`);
      sql.exec(`INSERT INTO windows SELECT name, lim, duration_ms, k, used, end_ms
        FROM holder_windows WHERE holder = ''`);
      sql.exec(`CREATE TABLE credits (
        id INTEGER PRIMARY KEY CHECK (id = 1), remaining INTEGER NOT NULL, version INTEGER NOT NULL,
        refill_interval TEXT, refill_amount INTEGER, refill_day INTEGER,
        refilled_through INTEGER NOT NULL)`);
      sql.exec(`INSERT INTO credits SELECT 1, remaining, version, refill_interval, refill_amount,
        refill_day, refilled_through FROM holder_credits WHERE holder = ''`);
      sql.exec("DROP TABLE holder_windows");
      sql.exec("DROP TABLE holder_credits");
    });
    await evictDurableObject(usage);
    // The window is still used up, and the balance is what was left, not the 5 given again.
    const limited = await usage.spend(spendOf({ now: NOW + 1, limitsAt: [once], credits: spec }));
    expect(limited.code).toBe("RATE_LIMITED");
    const spent = await usage.spend(spendOf({ now: NOW + 2, credits: spec }));
    expect(spent).toMatchObject({ code: "VALID", credits: { remaining: 3 } });
    const tables = await runInDurableObject(usage, (_instance, state) =>
      state.storage.sql
        .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .toArray()
        .map((row) => row.name),
    );
    expect(tables).not.toContain("windows");
    expect(tables).not.toContain("credits");
  });
});
