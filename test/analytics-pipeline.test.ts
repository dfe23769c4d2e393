import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
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
  coreAt,
  DAY,
  type Issued,
  keyStats,
  lastUsedAt,
  MINUTE,
  message,
  NOW,
  SENT,
  setUp,
  userOf,
} from "./analytics-harness";
import { newOrg } from "./helpers";

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
