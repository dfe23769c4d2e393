import { describe, expect, it } from "vitest";
import { projectVerifications } from "../src/core/analytics/queries";
import { applyRetention } from "../src/core/analytics/retention";
import type { Principal } from "../src/core/principal";
import {
  coreAt,
  DAY,
  HOUR,
  type Issued,
  keyStats,
  MINUTE,
  NOW,
  seed,
  setUp,
  userOf,
} from "./analytics-harness";
import { newKey } from "./helpers";

describe("analytics queries", () => {
  it("defaults to the last 24 h by hour, buckets in time order, empty ones omitted", async () => {
    const { a, principal } = await setUp();
    await seed([
      { key: a, at: NOW, code: "VALID", n: 2 },
      { key: a, at: NOW - 5 * MINUTE, code: "EXPIRED", n: 1 },
      { key: a, at: NOW - 3 * HOUR, code: "VALID", n: 4 },
      { key: a, at: NOW - 24 * HOUR - 31 * MINUTE, code: "VALID", n: 8 }, // before the range
    ]);
    const stats = await keyStats(principal, a);
    expect(stats).toEqual({
      key_id: a.id,
      granularity: "hour",
      buckets: [
        { start: "2026-12-01T07:00:00.000Z", total: 4, counts: { VALID: 4 } },
        { start: "2026-12-01T10:00:00.000Z", total: 3, counts: { EXPIRED: 1, VALID: 2 } },
      ],
    });
  });

  it("aligns start down and end up, start inclusive and end exclusive", async () => {
    const { a, principal } = await setUp();
    const nine = Date.UTC(2026, 11, 1, 9);
    await seed([
      { key: a, at: nine - MINUTE, code: "VALID", n: 1 },
      { key: a, at: nine, code: "VALID", n: 2 },
      { key: a, at: nine + 59 * MINUTE, code: "VALID", n: 3 },
      { key: a, at: nine + HOUR, code: "VALID", n: 4 },
    ]);
    // 09:30 aligns down to 09:00, 09:45 up to 10:00: the 09:00 hour only.
    const hour = await keyStats(principal, a, {
      start: nine + 30 * MINUTE,
      end: nine + 45 * MINUTE,
    });
    expect(hour.buckets).toEqual([
      { start: "2026-12-01T09:00:00.000Z", total: 5, counts: { VALID: 5 } },
    ]);
    const minutes = await keyStats(principal, a, {
      start: nine,
      end: nine + HOUR,
      granularity: "minute",
    });
    expect(minutes.buckets.map((b) => [b.start, b.total])).toEqual([
      ["2026-12-01T09:00:00.000Z", 2],
      ["2026-12-01T09:59:00.000Z", 3],
    ]);
    const day = await keyStats(principal, a, { granularity: "day" });
    expect(day).toEqual({
      key_id: a.id,
      granularity: "day",
      buckets: [{ start: "2026-12-01T00:00:00.000Z", total: 10, counts: { VALID: 10 } }],
    });
  });

  it("refuses more than 1 000 buckets and a start after end; start = end asks for its bucket", async () => {
    const { a, principal } = await setUp();
    const at = Math.floor(NOW / MINUTE) * MINUTE;
    await expect(
      keyStats(principal, a, { start: at - 1001 * MINUTE, end: at, granularity: "minute" }),
    ).rejects.toThrow(/holds 1001 minute buckets; at most 1000/);
    await expect(
      keyStats(principal, a, { start: at - 1000 * MINUTE, end: at, granularity: "minute" }),
    ).resolves.toMatchObject({ granularity: "minute" });
    await expect(keyStats(principal, a, { start: NOW + 1, end: NOW })).rejects.toThrow(
      /start: must not be after end/,
    );
    // Aligned before it is checked: an instant inside an hour is that hour's bucket.
    const nine = Date.UTC(2026, 11, 1, 9);
    await seed([{ key: a, at: nine + 5 * MINUTE, code: "VALID", n: 2 }]);
    const instant = nine + 20 * MINUTE;
    expect((await keyStats(principal, a, { start: instant, end: instant })).buckets).toEqual([
      { start: "2026-12-01T09:00:00.000Z", total: 2, counts: { VALID: 2 } },
    ]);
  });

  it("a project sums its keys, leaves org-scoped keys out, and ranks top keys", async () => {
    const { org, a, b, principal } = await setUp();
    const orgKey: Issued = {
      id: crypto.randomUUID(),
      organization_id: org.org,
      project_id: null,
      key: "",
    };
    const more: Issued[] = [];
    for (let i = 0; i < 11; i++)
      more.push(await newKey(org.admin, org.project.id, { name: `k${i}` }));
    await seed([
      { key: a, at: NOW, code: "VALID", n: 5 },
      { key: b, at: NOW, code: "VALID", n: 7 },
      { key: b, at: NOW - HOUR, code: "REVOKED", n: 1 },
      { key: orgKey, at: NOW, code: "VALID", n: 100 },
      ...more.map((key) => ({ key, at: NOW, code: "VALID", n: 1 })),
    ]);
    const stats = await projectVerifications(coreAt(NOW), principal, org.project.id, {});
    expect(stats.project_id).toBe(org.project.id);
    expect(stats.granularity).toBe("hour");
    expect(stats.buckets).toEqual([
      { start: "2026-12-01T09:00:00.000Z", total: 1, counts: { REVOKED: 1 } },
      { start: "2026-12-01T10:00:00.000Z", total: 23, counts: { VALID: 23 } },
    ]);
    const ones = more.map((k) => k.id).sort();
    expect(stats.top_keys).toEqual([
      { key_id: b.id, name: "beta", total: 8 },
      { key_id: a.id, name: "alpha", total: 5 },
      ...ones.slice(0, 8).map((id) => ({
        key_id: id,
        name: more.find((k) => k.id === id)?.name,
        total: 1,
      })),
    ]);
  });

  it("answers 404 outside the caller's reach, and never shows another org's counts", async () => {
    const { a, org } = await setUp();
    await seed([{ key: a, at: NOW, code: "VALID", n: 1 }]);
    const stranger = userOf("org_stranger");
    await expect(keyStats(stranger, a)).rejects.toThrow(/not found/);
    await expect(projectVerifications(coreAt(NOW), stranger, org.project.id, {})).rejects.toThrow(
      /not found/,
    );
    const keyOnly: Principal = {
      type: "api_key",
      organizationId: org.org,
      keyId: a.id,
      projectId: org.project.id,
      scopes: ["projects:read"],
      expiresAt: null,
    };
    await expect(keyStats(keyOnly, a)).rejects.toThrow(/keys:read/);
  });
});

describe("retention", () => {
  it("folds minute rows older than 7 days into hour rows, keeping every count", async () => {
    const { a, principal } = await setUp();
    const old = NOW - 8 * DAY;
    await seed([
      { key: a, at: old, code: "VALID", n: 1 },
      { key: a, at: old + MINUTE, code: "VALID", n: 2 },
      { key: a, at: old + 2 * MINUTE, code: "EXPIRED", n: 3 },
      { key: a, at: NOW - 6 * DAY, code: "VALID", n: 4 }, // younger than 7 days: stays
    ]);
    const before = await keyStats(principal, a, { granularity: "day" });
    const result = await applyRetention(coreAt(NOW));
    expect(result.folded).toBeGreaterThanOrEqual(3);
    expect(await keyStats(principal, a, { granularity: "day" })).toEqual(before);
    const hour = Math.floor(old / HOUR) * HOUR;
    expect(
      (await keyStats(principal, a, { start: hour, end: hour + HOUR, granularity: "minute" }))
        .buckets,
    ).toEqual([]);
    expect(
      (await keyStats(principal, a, { start: hour, end: hour + HOUR, granularity: "hour" }))
        .buckets,
    ).toEqual([
      { start: new Date(hour).toISOString(), total: 6, counts: { EXPIRED: 3, VALID: 3 } },
    ]);
  });

  it("overlapping runs fold each row exactly once", async () => {
    const { a, principal } = await setUp();
    const old = NOW - 10 * DAY;
    const rows = [];
    for (let i = 0; i < 120; i++) rows.push({ key: a, at: old + i * MINUTE, code: "VALID", n: 1 });
    await seed(rows);
    await Promise.all([
      applyRetention(coreAt(NOW)),
      applyRetention(coreAt(NOW)),
      applyRetention(coreAt(NOW + MINUTE)),
    ]);
    const day = await keyStats(principal, a, {
      start: old - DAY,
      end: old + DAY,
      granularity: "day",
    });
    expect(day.buckets.reduce((sum, b) => sum + b.total, 0)).toBe(120);
  });

  it("deletes hour rows older than 400 days", async () => {
    const { a, principal } = await setUp();
    const ancient = NOW - 401 * DAY;
    await seed([{ key: a, at: ancient, code: "VALID", n: 1 }]);
    await applyRetention(coreAt(ancient + 8 * DAY)); // folds it into its hour
    const range = { start: ancient - DAY, end: ancient + DAY, granularity: "day" as const };
    expect((await keyStats(principal, a, range)).buckets).toHaveLength(1);
    await applyRetention(coreAt(NOW));
    expect((await keyStats(principal, a, range)).buckets).toEqual([]);
  });
});
