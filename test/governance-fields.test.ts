// The wire schemas of the governance fields and of a verify request, on their own.
import { z } from "@hono/zod-openapi";
import { describe, expect, it } from "vitest";
import { governanceBodyFields } from "../src/schemas/governance";
import { VerifyOptionsSchema } from "../src/schemas/verify";

const Body = z.object(governanceBodyFields);
const parse = (body: unknown) => Body.safeParse(body);
const paths = (body: unknown) => {
  const result = parse(body);
  return result.success ? [] : result.error.issues.map((i) => i.path.join("."));
};

/** A meta object whose JSON is exactly `bytes` long (UTF-8). */
const metaOfBytes = (bytes: number) => {
  const overhead = JSON.stringify({ pad: "" }).length;
  return { pad: "x".repeat(bytes - overhead) };
};

describe("meta", () => {
  it("accepts 4 KiB of JSON and refuses one byte more", () => {
    expect(JSON.stringify(metaOfBytes(4096)).length).toBe(4096);
    expect(parse({ meta: metaOfBytes(4096) }).success).toBe(true);
    expect(paths({ meta: metaOfBytes(4097) })).toEqual(["meta"]);
  });

  it("counts UTF-8 bytes, not characters", () => {
    const overhead = JSON.stringify({ pad: "" }).length;
    const euro = { pad: "€".repeat(Math.floor((4096 - overhead) / 3)) }; // 3 bytes each
    expect(parse({ meta: euro }).success).toBe(true);
    expect(parse({ meta: { ...euro, b: 1 } }).success).toBe(false);
  });

  it("allows five levels with the top-level object as the first, not six", () => {
    expect(parse({ meta: { a: { b: { c: { d: { e: 1 } } } } } }).success).toBe(true);
    expect(parse({ meta: { a: [[[{ e: 1 }]]] } }).success).toBe(true);
    expect(paths({ meta: { a: { b: { c: { d: { e: {} } } } } } })).toEqual(["meta"]);
    expect(parse({ meta: { a: [[[[1]]]] } }).success).toBe(true);
    expect(paths({ meta: { a: [[[[[1]]]]] } })).toEqual(["meta"]);
  });

  it("must be an object", () => {
    for (const meta of [[], "x", 1, true]) expect(paths({ meta })).toEqual(["meta"]);
    expect(parse({ meta: null }).data).toEqual({ meta: null });
    // Unset fields are null, never {}.
    expect(parse({ meta: {} }).data).toEqual({ meta: null });
  });

  it("refuses a __proto__ member at any level, never storing it as a prototype", () => {
    for (const json of [
      '{"__proto__":{"admin":true},"a":1}',
      '{"a":{"b":[{"__proto__":{"admin":true}}]}}',
    ]) {
      expect(paths({ meta: JSON.parse(json) }), json).toEqual(["meta"]);
    }
    // Other members that name Object's own properties are plain data.
    expect(parse({ meta: { constructor: 1, toString: "x" } }).success).toBe(true);
  });
});

describe("external_id", () => {
  it("takes 1–255 characters of [A-Za-z0-9._:@-]", () => {
    expect(parse({ external_id: "user:42@acme.io_x-y" }).success).toBe(true);
    expect(parse({ external_id: "a".repeat(255) }).success).toBe(true);
    for (const bad of ["", "a".repeat(256), "with space", "é", "a/b"]) {
      expect(paths({ external_id: bad }), bad).toEqual(["external_id"]);
    }
  });
});

describe("ip_allowlist", () => {
  it("normalises entries; [] means null", () => {
    expect(parse({ ip_allowlist: ["10.1.2.3/8", "2001:DB8:0::1", "::ffff:1.2.3.4"] }).data).toEqual(
      { ip_allowlist: ["10.0.0.0/8", "2001:db8::1", "1.2.3.4"] },
    );
    expect(parse({ ip_allowlist: [] }).data).toEqual({ ip_allowlist: null });
  });

  it("takes at most 50 entries and names a bad one", () => {
    const fifty = Array.from({ length: 50 }, (_, i) => `10.0.0.${i}`);
    expect(parse({ ip_allowlist: fifty }).success).toBe(true);
    expect(paths({ ip_allowlist: [...fifty, "10.0.1.0"] })).toEqual(["ip_allowlist"]);
    expect(paths({ ip_allowlist: ["1.2.3.4", "1.2.3.999"] })).toEqual(["ip_allowlist.1"]);
  });
});

describe("ratelimits", () => {
  const limit = (name: string, extra = {}) => ({ name, limit: 10, duration_ms: 60_000, ...extra });

  it("takes up to 5 uniquely named limits, as core rules; [] means null", () => {
    expect(parse({ ratelimits: [limit("a"), limit("b")] }).data).toEqual({
      ratelimits: [
        { name: "a", limit: 10, durationMs: 60_000 },
        { name: "b", limit: 10, durationMs: 60_000 },
      ],
    });
    expect(parse({ ratelimits: [] }).data).toEqual({ ratelimits: null });
    expect(paths({ ratelimits: ["a", "b", "c", "d", "e", "f"].map((n) => limit(n)) })).toEqual([
      "ratelimits",
    ]);
    expect(paths({ ratelimits: [limit("a"), limit("a")] })).toEqual(["ratelimits.1.name"]);
  });

  it("bounds name, limit and duration_ms", () => {
    expect(paths({ ratelimits: [limit("A")] })).toEqual(["ratelimits.0.name"]);
    expect(paths({ ratelimits: [limit("x".repeat(33))] })).toEqual(["ratelimits.0.name"]);
    expect(parse({ ratelimits: [limit("x".repeat(32), { limit: 1_000_000 })] }).success).toBe(true);
    expect(paths({ ratelimits: [limit("a", { limit: 0 })] })).toEqual(["ratelimits.0.limit"]);
    expect(paths({ ratelimits: [limit("a", { limit: 1_000_001 })] })).toEqual([
      "ratelimits.0.limit",
    ]);
    expect(paths({ ratelimits: [limit("a", { duration_ms: 999 })] })).toEqual([
      "ratelimits.0.duration_ms",
    ]);
    expect(paths({ ratelimits: [limit("a", { duration_ms: 86_400_001 })] })).toEqual([
      "ratelimits.0.duration_ms",
    ]);
    expect(parse({ ratelimits: [limit("a", { duration_ms: 86_400_000 })] }).success).toBe(true);
  });
});

describe("credits", () => {
  it("defaults refill to null, and a monthly day to 1; daily shows day null", () => {
    expect(parse({ credits: { remaining: 5 } }).data).toEqual({
      credits: { remaining: 5, refill: null },
    });
    expect(
      parse({ credits: { remaining: 5, refill: { interval: "monthly", amount: 9 } } }).data,
    ).toEqual({
      credits: { remaining: 5, refill: { interval: "monthly", amount: 9, day: 1 } },
    });
    expect(
      parse({ credits: { remaining: 0, refill: { interval: "daily", amount: 9 } } }).data,
    ).toEqual({
      credits: { remaining: 0, refill: { interval: "daily", amount: 9, day: null } },
    });
  });

  it("refuses day with daily, and out-of-range values", () => {
    expect(
      paths({ credits: { remaining: 5, refill: { interval: "daily", amount: 9, day: 3 } } }),
    ).toEqual(["credits.refill.day"]);
    expect(
      paths({ credits: { remaining: 5, refill: { interval: "monthly", amount: 9, day: 32 } } }),
    ).toEqual(["credits.refill.day"]);
    expect(paths({ credits: { remaining: -1 } })).toEqual(["credits.remaining"]);
    expect(paths({ credits: { remaining: 1.5 } })).toEqual(["credits.remaining"]);
    expect(parse({ credits: { remaining: 1_000_000_000_000 } }).success).toBe(true);
    expect(paths({ credits: { remaining: 1_000_000_000_001 } })).toEqual(["credits.remaining"]);
    expect(paths({ credits: { remaining: 1, refill: { interval: "weekly", amount: 1 } } })).toEqual(
      ["credits.refill.interval"],
    );
    expect(paths({ credits: { remaining: 1, refill: { interval: "daily", amount: 0 } } })).toEqual([
      "credits.refill.amount",
    ]);
  });
});

describe("verify options", () => {
  const parse = (options: unknown) => VerifyOptionsSchema.safeParse(options);
  const where = (options: unknown) => {
    const result = parse(options);
    return result.success ? [] : result.error.issues.map((i) => i.path.join("."));
  };

  it("default cost to 1 and bound it to 0–1000", () => {
    expect(parse({}).data).toEqual({ cost: 1 });
    expect(parse({ cost: 0 }).data?.cost).toBe(0);
    expect(where({ cost: 1001 })).toEqual(["cost"]);
    expect(where({ cost: 1.5 })).toEqual(["cost"]);
    expect(where({ cost: -1 })).toEqual(["cost"]);
  });

  it("take ip as an address, not a block", () => {
    expect(parse({ ip: "::1" }).success).toBe(true);
    expect(where({ ip: "10.0.0.0/8" })).toEqual(["ip"]);
    expect(where({ ip: "1.2.3" })).toEqual(["ip"]);
  });

  it("take ratelimits by name, each name once, with an optional cost", () => {
    expect(parse({ organizationId: "org_a", ratelimits: [{ name: "a", cost: 2 }] }).data).toEqual({
      organizationId: "org_a",
      cost: 1,
      ratelimits: [{ name: "a", cost: 2 }],
    });
    expect(where({ ratelimits: [{ name: "a" }, { name: "a" }] })).toEqual(["ratelimits.1.name"]);
    expect(where({ ratelimits: [{ name: "a", cost: 1001 }] })).toEqual(["ratelimits.0.cost"]);
  });
});
