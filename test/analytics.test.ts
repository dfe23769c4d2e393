import {
  createExecutionContext,
  createMessageBatch,
  getQueueResult,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCore } from "../src/context";
import {
  type CountedVerification,
  countVerification,
  flushVerificationCounts,
  MAX_BATCH_ENTRIES,
  MAX_MESSAGE_BYTES,
  type VerificationMessage,
} from "../src/core/analytics/aggregator";
import { addVerificationMessages } from "../src/core/analytics/consume";
import {
  keyVerifications,
  projectVerifications,
  type VerificationsQuery,
} from "../src/core/analytics/queries";
import { applyRetention } from "../src/core/analytics/retention";
import type { Principal } from "../src/core/principal";
import worker from "../src/index";
import { expectProblem } from "./hardening";
import { call, clearOfBoundary, newKey, newOrg, runCron, verify } from "./helpers";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
// A fixed "now" for the queries: 2026-12-01T10:30:15Z.
const NOW = Date.UTC(2026, 11, 1, 10, 30, 15);

afterEach(() => vi.restoreAllMocks());

/** What a stubbed queue send answers. */
const SENT: QueueSendResponse = { metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } } };

interface Issued {
  id: string;
  name?: string;
  organization_id: string;
  project_id: string | null;
  key: string;
}

const coreAt = (now: number, bindings: Partial<typeof env> = {}) =>
  createCore({ ...env, ...bindings }, createExecutionContext(), { now: () => now });

const userOf = (org: string): Principal => ({
  type: "user",
  organizationId: org,
  userId: "user_analytics",
  isAdmin: true,
});

/** A queue message as an isolate would send it. */
function message(
  entries: { key: Issued; minute: number; code: string; n: number }[],
  lastValid: Record<string, number> = {},
): VerificationMessage {
  const keys: VerificationMessage["keys"] = {};
  for (const { key } of entries) {
    keys[key.id] = [key.organization_id, key.project_id, lastValid[key.id] ?? null];
  }
  return {
    v: 1,
    id: crypto.randomUUID(),
    keys,
    counts: entries.map((e) => [e.key.id, e.minute, e.code, e.n]),
  };
}

async function setUp() {
  const org = await newOrg("analytics");
  const a: Issued = await newKey(org.admin, org.project.id, { name: "alpha" });
  const b: Issued = await newKey(org.admin, org.project.id, { name: "beta" });
  return { org, a, b, principal: userOf(org.org) };
}

const keyStats = (principal: Principal, key: Issued, query: VerificationsQuery = {}, now = NOW) =>
  keyVerifications(coreAt(now), principal, key.id, query);

async function lastUsedAt(org: { admin: string }, key: Issued): Promise<number | null> {
  const row = await env.DB.prepare("SELECT last_used_at FROM api_keys WHERE id = ?")
    .bind(key.id)
    .first<{ last_used_at: number | null }>();
  void org;
  return row?.last_used_at ?? null;
}

describe("queue consumer", () => {
  it("adds counts per key, minute and code, summing messages of one delivery", async () => {
    const { a, b, principal } = await setUp();
    const minute = Math.floor(NOW / MINUTE) * MINUTE;
    const result = await addVerificationMessages(coreAt(NOW), [
      message([
        { key: a, minute, code: "VALID", n: 3 },
        { key: a, minute, code: "REVOKED", n: 1 },
        { key: b, minute: minute - MINUTE, code: "VALID", n: 2 },
      ]),
      message([{ key: a, minute, code: "VALID", n: 4 }]),
    ]);
    expect(result).toEqual({ added: 2, duplicates: 0, rejected: 0 });
    const stats = await keyStats(principal, a, { granularity: "minute" });
    expect(stats).toEqual({
      key_id: a.id,
      granularity: "minute",
      buckets: [
        { start: new Date(minute).toISOString(), total: 8, counts: { REVOKED: 1, VALID: 7 } },
      ],
    });
    const other = await keyStats(principal, b, { granularity: "minute" });
    expect(other.buckets).toEqual([
      { start: new Date(minute - MINUTE).toISOString(), total: 2, counts: { VALID: 2 } },
    ]);
  });

  it("counts a batch delivered twice once", async () => {
    const { a, principal } = await setUp();
    const minute = Math.floor(NOW / MINUTE) * MINUTE;
    const bodies = [
      message([{ key: a, minute, code: "VALID", n: 5 }]),
      message([{ key: a, minute, code: "EXPIRED", n: 2 }]),
    ];
    await addVerificationMessages(coreAt(NOW), bodies);
    const again = await addVerificationMessages(coreAt(NOW), bodies);
    expect(again).toEqual({ added: 0, duplicates: 2, rejected: 0 });
    // A delivery that mixes a redelivered message with a new one adds the new one only.
    const mixed = await addVerificationMessages(coreAt(NOW), [
      bodies[0],
      message([{ key: a, minute, code: "VALID", n: 1 }]),
    ]);
    expect(mixed).toEqual({ added: 1, duplicates: 1, rejected: 0 });
    const stats = await keyStats(principal, a, { granularity: "minute" });
    expect(stats.buckets).toEqual([
      { start: new Date(minute).toISOString(), total: 8, counts: { EXPIRED: 2, VALID: 6 } },
    ]);
  });

  it("splits a large delivery into statements of 500 rows, all in one D1 batch", async () => {
    const { a, principal } = await setUp();
    const first = Date.UTC(2026, 10, 20);
    const entries = Array.from({ length: 1_200 }, (_, i) => ({
      key: a,
      minute: first + i * MINUTE,
      code: "VALID",
      n: 1,
    }));
    const batch = vi.spyOn(env.DB, "batch");
    await addVerificationMessages(coreAt(NOW), [message(entries)]);
    expect(batch).toHaveBeenCalledTimes(1);
    // The id insert, three count upserts, and no stamp (no VALID instant in the message).
    expect(batch.mock.calls[0]?.[0]).toHaveLength(4);
    const day = await keyStats(principal, a, {
      start: first,
      end: first + DAY,
      granularity: "day",
    });
    expect(day.buckets).toEqual([
      { start: new Date(first).toISOString(), total: 1_200, counts: { VALID: 1_200 } },
    ]);
  });

  it("a failed write throws (the queue retries the delivery) and leaves nothing behind", async () => {
    const { a, principal } = await setUp();
    const minute = Math.floor(NOW / MINUTE) * MINUTE;
    const bodies = [message([{ key: a, minute, code: "VALID", n: 3 }])];
    vi.spyOn(env.DB, "batch").mockRejectedValueOnce(
      new Error("D1_ERROR: Network connection lost."),
    );
    await expect(addVerificationMessages(coreAt(NOW), bodies)).rejects.toThrow(/Network/);
    expect((await keyStats(principal, a, { granularity: "minute" })).buckets).toEqual([]);
    await addVerificationMessages(coreAt(NOW), bodies);
    expect((await keyStats(principal, a, { granularity: "minute" })).buckets).toEqual([
      { start: new Date(minute).toISOString(), total: 3, counts: { VALID: 3 } },
    ]);
  });

  it("drops bodies that are not verification messages", async () => {
    const { a } = await setUp();
    const result = await addVerificationMessages(coreAt(NOW), [
      "junk",
      { v: 2 },
      { ...message([{ key: a, minute: NOW, code: "VALID", n: 1 }]) }, // not minute-aligned
    ]);
    expect(result).toEqual({ added: 0, duplicates: 0, rejected: 3 });
  });

  it("advances last_used_at from VALID answers only, never backwards", async () => {
    const { org, a, b } = await setUp();
    const minute = Math.floor(NOW / MINUTE) * MINUTE;
    await addVerificationMessages(coreAt(NOW), [
      message([{ key: a, minute, code: "VALID", n: 1 }], { [a.id]: NOW - 5_000 }),
      message([{ key: b, minute, code: "REVOKED", n: 1 }]),
    ]);
    expect(await lastUsedAt(org, a)).toBe(NOW - 5_000);
    expect(await lastUsedAt(org, b)).toBeNull();
    // An older batch arriving late does not move it back.
    await addVerificationMessages(coreAt(NOW), [
      message([{ key: a, minute: minute - MINUTE, code: "VALID", n: 1 }], { [a.id]: NOW - 50_000 }),
    ]);
    expect(await lastUsedAt(org, a)).toBe(NOW - 5_000);
    // A newer one moves it; one within 20 s of the stamp is not worth a row write.
    await addVerificationMessages(coreAt(NOW), [
      message([{ key: a, minute, code: "VALID", n: 1 }], { [a.id]: NOW + 10_000 }),
    ]);
    expect(await lastUsedAt(org, a)).toBe(NOW - 5_000);
    await addVerificationMessages(coreAt(NOW), [
      message([{ key: a, minute, code: "VALID", n: 1 }], { [a.id]: NOW + 40_000 }),
    ]);
    expect(await lastUsedAt(org, a)).toBe(NOW + 40_000);
  });

  it("never writes a count or a stamp across organizations", async () => {
    const { a } = await setUp();
    const other = await newOrg("analytics-other");
    // A message that claims another organization for the key: the stamp is tenant-scoped.
    const forged = message([{ key: a, minute: 0, code: "VALID", n: 1 }], { [a.id]: NOW });
    forged.keys[a.id] = [other.org, null, NOW];
    await addVerificationMessages(coreAt(NOW), [forged]);
    expect(await lastUsedAt(other, a)).toBeNull();
    const stats = await keyStats(userOf(a.organization_id), a, {
      start: 0,
      end: 10 * MINUTE,
      granularity: "minute",
    });
    expect(stats.buckets).toEqual([]);
  });
});

describe("aggregator", () => {
  const verification = (key: Issued, code: string, at: number): CountedVerification => ({
    organizationId: key.organization_id,
    projectId: key.project_id,
    keyId: key.id,
    code,
    at,
  });

  function captureSends() {
    const sent: VerificationMessage[] = [];
    vi.spyOn(env.VERIFICATION_EVENTS, "send").mockImplementation(async (body) => {
      sent.push(body as VerificationMessage);
      return SENT;
    });
    return sent;
  }

  it("sums one window's verifications into one message, sent once the window has passed", async () => {
    const { a, b } = await setUp();
    await flushVerificationCounts(coreAt(NOW));
    const sent = captureSends();
    const ctx = createExecutionContext();
    const t = Date.now();
    const core = createCore({ ...env, VERIFICATION_BATCH_MS: "200" }, ctx, { now: () => t });
    for (const code of ["VALID", "VALID", "REVOKED", "MALFORMED", "NOT_FOUND"]) {
      countVerification(core, verification(a, code, t));
    }
    countVerification(core, verification(b, "INSUFFICIENT_SCOPE", t));
    expect(sent).toHaveLength(0);
    await waitOnExecutionContext(ctx);
    expect(sent).toHaveLength(1);
    const minute = Math.floor(t / MINUTE) * MINUTE;
    expect(sent[0]?.counts).toEqual([
      [a.id, minute, "VALID", 2],
      [a.id, minute, "REVOKED", 1],
      [b.id, minute, "INSUFFICIENT_SCOPE", 1],
    ]);
    expect(sent[0]?.keys).toEqual({
      [a.id]: [a.organization_id, a.project_id, t],
      [b.id]: [b.organization_id, b.project_id, null],
    });
  });

  it("a window's verifications share a few timers, never one each", async () => {
    const { a } = await setUp();
    await flushVerificationCounts(coreAt(NOW));
    const sent = captureSends();
    const timers = vi.spyOn(globalThis, "setTimeout");
    const ctx = createExecutionContext();
    let t = Date.now();
    const core = createCore({ ...env, VERIFICATION_BATCH_MS: "3000" }, ctx, { now: () => t });
    for (let i = 0; i < 2_000; i++) {
      t += 1; // 2 s of verifications, one a millisecond
      countVerification(core, verification(a, "VALID", t));
    }
    expect(timers.mock.calls.length).toBeLessThanOrEqual(3);
    await waitOnExecutionContext(ctx);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.counts.reduce((sum, [, , , n]) => sum + n, 0)).toBe(2_000);
  });

  it("sends a full batch at once", async () => {
    const { a } = await setUp();
    await flushVerificationCounts(coreAt(NOW));
    const sent = captureSends();
    const ctx = createExecutionContext();
    const core = createCore({ ...env, VERIFICATION_BATCH_MS: "60000" }, ctx, { now: () => NOW });
    // Distinct minutes make distinct entries.
    for (let i = 0; i < MAX_BATCH_ENTRIES; i++) {
      countVerification(core, verification(a, "VALID", NOW - i * MINUTE));
    }
    // Sent from countVerification itself (the send starts synchronously): nothing to wait for.
    expect(sent).toHaveLength(1);
    expect(sent[0]?.counts).toHaveLength(MAX_BATCH_ENTRIES);
    await flushVerificationCounts(core);
  });

  it("splits a batch that long ids would take past the message size limit", async () => {
    await flushVerificationCounts(coreAt(NOW));
    const sent = captureSends();
    const ctx = createExecutionContext();
    const core = createCore({ ...env, VERIFICATION_BATCH_MS: "60000" }, ctx, { now: () => NOW });
    const organizationId = `org_${"x".repeat(300)}`;
    for (let i = 0; i < MAX_BATCH_ENTRIES; i++) {
      countVerification(core, {
        organizationId,
        projectId: crypto.randomUUID(),
        keyId: crypto.randomUUID(),
        code: "VALID",
        at: NOW,
      });
    }
    // Sent from countVerification itself (the send starts synchronously): nothing to wait for.
    expect(sent.length).toBeGreaterThan(1);
    for (const body of sent) {
      expect(new TextEncoder().encode(JSON.stringify(body)).length).toBeLessThanOrEqual(
        MAX_MESSAGE_BYTES,
      );
      for (const [keyId] of body.counts) expect(body.keys[keyId]?.[0]).toBe(organizationId);
    }
    expect(sent.reduce((n, body) => n + body.counts.length, 0)).toBe(MAX_BATCH_ENTRIES);
  });

  it("a failing queue never fails the caller and loses only that batch", async () => {
    const { a } = await setUp();
    await flushVerificationCounts(coreAt(NOW));
    const send = vi.spyOn(env.VERIFICATION_EVENTS, "send");
    send.mockImplementationOnce(() => {
      throw new Error("queue down");
    });
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const ctx = createExecutionContext();
    const core = createCore({ ...env, VERIFICATION_BATCH_MS: "0" }, ctx, { now: () => NOW });
    expect(() => countVerification(core, verification(a, "VALID", NOW))).not.toThrow();
    await waitOnExecutionContext(ctx);
    expect(warn).toHaveBeenCalled();
    const sent: unknown[] = [];
    send.mockImplementation(async (body) => {
      sent.push(body);
      return SENT;
    });
    const next = createExecutionContext();
    countVerification(
      createCore({ ...env, VERIFICATION_BATCH_MS: "0" }, next, { now: () => NOW }),
      verification(a, "EXPIRED", NOW),
    );
    await waitOnExecutionContext(next);
    expect(sent).toEqual([
      expect.objectContaining({ counts: [[a.id, expect.any(Number), "EXPIRED", 1]] }),
    ]);
  });
});

/** Counts at chosen minutes, added through the consumer. */
async function seed(rows: { key: Issued; at: number; code: string; n: number }[]) {
  await addVerificationMessages(
    coreAt(NOW),
    rows.map((row) =>
      message([
        { key: row.key, minute: Math.floor(row.at / MINUTE) * MINUTE, code: row.code, n: row.n },
      ]),
    ),
  );
}

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

// ---------- Through the Worker: HTTP verify, RPC, the real queue and its queue() door ----------

type Counts = Record<string, number>;

/** Per-code totals a key's endpoint shows (all buckets of the last 30 days summed). */
async function shownCounts(token: string, keyId: string): Promise<Counts> {
  const response = await call("GET", `/v1/api-keys/${keyId}/verifications?granularity=day`, {
    token,
  });
  expect(response.status, response.text).toBe(200);
  const totals: Counts = {};
  for (const bucket of response.body.buckets) {
    for (const [code, n] of Object.entries(bucket.counts as Counts)) {
      totals[code] = (totals[code] ?? 0) + n;
    }
  }
  return totals;
}

/** Waits (up to 10 s) until the endpoint shows `expected`, then checks it is exactly that. */
async function expectCounts(token: string, keyId: string, expected: Counts) {
  const same = (a: Counts) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(expected));
  await vi
    .waitUntil(async () => same(await shownCounts(token, keyId)), { timeout: 10_000, interval: 50 })
    .catch(() => undefined);
  expect(sorted(await shownCounts(token, keyId))).toEqual(sorted(expected));
}

const sorted = (counts: Counts) =>
  Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));

const minuteOf = (ms: number) => new Date(Math.floor(ms / MINUTE) * MINUTE).toISOString();

describe("through the Worker and the real queue", () => {
  it("counts mixed outcomes exactly, per code and minute, over HTTP verify and RPC", async () => {
    // The good key's verifications all fall in one minute: start well clear of its end.
    await clearOfBoundary(MINUTE, 25_000);
    const org = await newOrg("analytics-e2e");
    const good = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    const revoked = await newKey(org.admin, org.project.id);
    await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: org.admin });
    const soon = await newKey(org.admin, org.project.id, {
      expires_at: new Date(Date.now() + 1_500).toISOString(),
    });
    const other = await newOrg("analytics-e2e-other");
    const started = Date.now();
    for (let i = 0; i < 3; i++) expect((await verify(good.key)).body.code).toBe("VALID");
    for (let i = 0; i < 2; i++) {
      expect((await verify(good.key, { required_scopes: ["admin"] })).body.code).toBe(
        "INSUFFICIENT_SCOPE",
      );
    }
    expect((await verify(good.key, { project_id: other.project.id })).body.code).toBe(
      "WRONG_PROJECT",
    );
    expect((await exports.KeyService.verify(good.key)).code).toBe("VALID");
    expect(minuteOf(Date.now()), "the good key's verifications span one minute").toBe(
      minuteOf(started),
    );
    for (let i = 0; i < 2; i++) expect((await verify(revoked.key)).body.code).toBe("REVOKED");
    // Not genuine: never counted anywhere.
    expect((await verify(`${good.key.slice(0, -1)}x`)).body.code).toBe("MALFORMED");
    await new Promise((resolve) => setTimeout(resolve, 1_600));
    expect((await verify(soon.key)).body.code).toBe("EXPIRED");

    await expectCounts(org.admin, good.id, { VALID: 4, INSUFFICIENT_SCOPE: 2, WRONG_PROJECT: 1 });
    await expectCounts(org.admin, revoked.id, { REVOKED: 2 });
    await expectCounts(org.admin, soon.id, { EXPIRED: 1 });
    const minutes = await call("GET", `/v1/api-keys/${good.id}/verifications?granularity=minute`, {
      token: org.admin,
    });
    expect(minutes.body).toEqual({
      key_id: good.id,
      granularity: "minute",
      buckets: [
        {
          start: minuteOf(started),
          total: 7,
          counts: { INSUFFICIENT_SCOPE: 2, VALID: 4, WRONG_PROJECT: 1 },
        },
      ],
    });
  }, 60_000);

  it("governance refusals count; a key hidden by a tenant pin (NOT_FOUND) does not", async () => {
    await clearOfBoundary(86_400_000, 60_000); // the daily limit must not reset mid-test
    const org = await newOrg("analytics-governance");
    const disabled = await newKey(org.admin, org.project.id, { enabled: false });
    const limited = await newKey(org.admin, org.project.id, {
      ratelimits: [{ name: "tight", limit: 1, duration_ms: 86_400_000 }],
    });
    expect((await verify(disabled.key)).body.code).toBe("DISABLED");
    expect((await verify(limited.key)).body.code).toBe("VALID");
    expect((await verify(limited.key)).body.code).toBe("RATE_LIMITED");
    // KEYGATE_PINNED is pinned to another organization by its props.
    expect((await env.KEYGATE_PINNED.verify(limited.key)).code).toBe("NOT_FOUND");
    await expectCounts(org.admin, disabled.id, { DISABLED: 1 });
    await expectCounts(org.admin, limited.id, { RATE_LIMITED: 1, VALID: 1 });
  });

  it("a key used as a management credential is not counted", async () => {
    const org = await newOrg("analytics-credential");
    const manager = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const target = await newKey(org.admin, org.project.id);
    expect((await verify(target.key)).body.code).toBe("VALID");
    for (let i = 0; i < 3; i++) {
      const listed = await call("GET", `/v1/api-keys/${target.id}/verifications`, {
        token: manager.key,
      });
      expect(listed.status).toBe(200);
    }
    // A verifier key pinning HTTP verify is a credential too.
    const verifier = await newKey(org.admin, org.project.id, { scopes: ["keys:verify"] });
    const pinned = await call("POST", "/v1/keys/verify", {
      token: verifier.key,
      body: { key: target.key },
    });
    expect(pinned.body.code).toBe("VALID");
    await expectCounts(org.admin, target.id, { VALID: 2 });
    expect(await shownCounts(org.admin, manager.id)).toEqual({});
    expect(await shownCounts(org.admin, verifier.id)).toEqual({});
    const key = await call("GET", `/v1/api-keys/${manager.id}`, { token: org.admin });
    expect(key.body.last_used_at).toBeNull();
  });

  it("last_used_at follows VALID answers within 60 s, on every surface", async () => {
    const org = await newOrg("analytics-last-used");
    const key = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    const refused = await newKey(org.admin, org.project.id, { scopes: ["read"] });
    const before = Date.now();
    expect((await verify(key.key)).body.valid).toBe(true);
    expect((await verify(refused.key, { required_scopes: ["write"] })).body.valid).toBe(false);
    const shown = async () =>
      (await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin })).body.last_used_at;
    await vi.waitUntil(async () => (await shown()) !== null, { timeout: 10_000, interval: 50 });
    const stamp = Date.parse(await shown());
    expect(stamp).toBeGreaterThanOrEqual(before);
    expect(stamp).toBeLessThanOrEqual(Date.now());
    // Seed 001 lists show the same stamp; the refused key has none.
    const listed = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: org.admin,
    });
    const byId = new Map(listed.body.map((k: { id: string }) => [k.id, k]));
    expect((byId.get(key.id) as { last_used_at: string }).last_used_at).toBe(
      new Date(stamp).toISOString(),
    );
    expect((byId.get(refused.id) as { last_used_at: string | null }).last_used_at).toBeNull();
  });

  it("the queue() door counts a batch delivered twice once", async () => {
    const { org, a } = await setUp();
    const minute = Math.floor(Date.now() / MINUTE) * MINUTE;
    const bodies = [
      message([{ key: a, minute, code: "VALID", n: 5 }], { [a.id]: Date.now() }),
      message([{ key: a, minute, code: "REVOKED", n: 2 }]),
    ];
    for (let delivery = 1; delivery <= 2; delivery++) {
      const batch = createMessageBatch("keygate-verification-events", [
        ...bodies.map((body, i) => ({
          id: `message-${i}`,
          timestamp: new Date(),
          attempts: delivery,
          body,
        })),
      ]);
      const ctx = createExecutionContext();
      await worker.queue(batch, env, ctx);
      const result = await getQueueResult(batch, ctx);
      expect(result.explicitAcks.length + (result.ackAll ? bodies.length : 0)).toBe(2);
    }
    expect(await shownCounts(org.admin, a.id)).toEqual({ REVOKED: 2, VALID: 5 });
  });

  it("counts never leak across organizations", async () => {
    const one = await newOrg("analytics-leak-a");
    const two = await newOrg("analytics-leak-b");
    const key = await newKey(one.admin, one.project.id);
    const theirs = await newKey(two.admin, two.project.id);
    expect((await verify(key.key)).body.code).toBe("VALID");
    await expectCounts(one.admin, key.id, { VALID: 1 });
    const foreign = await call("GET", `/v1/api-keys/${key.id}/verifications`, { token: two.admin });
    expectProblem(foreign, 404);
    const foreignProject = await call("GET", `/v1/projects/${one.project.id}/verifications`, {
      token: two.admin,
    });
    expectProblem(foreignProject, 404);
    const own = await call("GET", `/v1/projects/${two.project.id}/verifications`, {
      token: two.admin,
    });
    expect(own.body).toMatchObject({ project_id: two.project.id, buckets: [], top_keys: [] });
    expect(await shownCounts(two.admin, theirs.id)).toEqual({});
  });

  it("a project key sees its own project's analytics only", async () => {
    const org = await newOrg("analytics-reach");
    const second = await call("POST", "/v1/projects", { token: org.admin, body: { name: "Two" } });
    const reader = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    const elsewhere = await newKey(org.admin, second.body.id);
    const mine = await newKey(org.admin, org.project.id);
    const get = (path: string) => call("GET", path, { token: reader.key });
    expect((await get(`/v1/projects/${org.project.id}/verifications`)).status).toBe(200);
    expect((await get(`/v1/api-keys/${mine.id}/verifications`)).status).toBe(200);
    expectProblem(await get(`/v1/projects/${second.body.id}/verifications`), 404);
    expectProblem(await get(`/v1/api-keys/${elsewhere.id}/verifications`), 404);
    const noScope = await newKey(org.admin, org.project.id, { scopes: ["projects:read"] });
    expectProblem(
      await call("GET", `/v1/projects/${org.project.id}/verifications`, { token: noScope.key }),
      403,
    );
  });

  it("the project endpoint: buckets of the project's keys and top_keys", async () => {
    const org = await newOrg("analytics-project");
    const busy = await newKey(org.admin, org.project.id, { name: "busy" });
    const quiet = await newKey(org.admin, org.project.id, { name: "quiet" });
    for (let i = 0; i < 3; i++) await verify(busy.key);
    await verify(quiet.key);
    await expectCounts(org.admin, quiet.id, { VALID: 1 });
    await expectCounts(org.admin, busy.id, { VALID: 3 });
    const response = await call("GET", `/v1/projects/${org.project.id}/verifications`, {
      token: org.member,
    });
    expect(response.status, response.text).toBe(200);
    expect(response.body.granularity).toBe("hour");
    expect(response.body.buckets.reduce((n: number, b: { total: number }) => n + b.total, 0)).toBe(
      4,
    );
    expect(response.body.top_keys).toEqual([
      { key_id: busy.id, name: "busy", total: 3 },
      { key_id: quiet.id, name: "quiet", total: 1 },
    ]);
  });

  it("bad start, end or granularity is a 400 naming the field; over 1 000 buckets says why", async () => {
    const org = await newOrg("analytics-400");
    const key = await newKey(org.admin, org.project.id);
    const path = `/v1/api-keys/${key.id}/verifications`;
    const get = (query: string) => call("GET", `${path}?${query}`, { token: org.admin });
    for (const [query, field] of [
      ["start=yesterday", "query.start"],
      ["end=2026-13-01T00:00:00Z", "query.end"],
      ["granularity=week", "query.granularity"],
      ["start=2026-12-01T10:00:00Z&end=2026-12-01T09:00:00Z", "query.start"],
    ] as const) {
      const body = expectProblem(await get(query), 400);
      expect(body.errors.map((e: { location: string }) => e.location)).toContain(field);
    }
    const tooMany = expectProblem(
      await get("granularity=minute&start=2026-11-01T00:00:00Z&end=2026-11-02T00:00:00Z"),
      400,
    );
    expect(tooMany.detail).toMatch(/1440 minute buckets; at most 1000/);
    const projectTooMany = expectProblem(
      await call(
        "GET",
        `/v1/projects/${org.project.id}/verifications?granularity=hour&start=2026-01-01T00:00:00Z&end=2026-03-01T00:00:00Z`,
        { token: org.admin },
      ),
      400,
    );
    expect(projectTooMany.detail).toMatch(/at most 1000/);
    const fine = await get(
      "granularity=minute&start=2026-11-01T00:00:00Z&end=2026-11-01T16:40:00Z",
    );
    expect(fine.body).toEqual({ key_id: key.id, granularity: "minute", buckets: [] });
  });

  it("is in the OpenAPI document", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    expect(doc.paths["/v1/api-keys/{keyID}/verifications"]?.get).toBeDefined();
    expect(doc.paths["/v1/projects/{id}/verifications"]?.get).toBeDefined();
  });

  it("the cron folds old minute rows at its scheduledTime, once across overlapping runs", async () => {
    const { a, principal } = await setUp();
    const old = Date.UTC(2026, 0, 10, 12);
    const rows = [];
    for (let i = 0; i < 90; i++) rows.push({ key: a, at: old + i * MINUTE, code: "VALID", n: 2 });
    await seed(rows);
    const at = old + 8 * DAY;
    await Promise.all([runCron(at), runCron(at), runCron(at + MINUTE)]);
    const range = { start: old, end: old + 2 * HOUR };
    const hours = await keyStats(principal, a, { ...range, granularity: "hour" }, at);
    expect(hours.buckets).toEqual([
      { start: new Date(old).toISOString(), total: 120, counts: { VALID: 120 } },
      { start: new Date(old + HOUR).toISOString(), total: 60, counts: { VALID: 60 } },
    ]);
    const minutes = await keyStats(principal, a, { ...range, granularity: "minute" }, at);
    expect(minutes.buckets).toEqual([]);
  });
});
