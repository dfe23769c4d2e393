// What the analytics tests share: set-up, fixtures and helpers (split out of one test file).
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, expect, vi } from "vitest";
import { createCore } from "../src/context";
import type { VerificationMessage } from "../src/core/analytics/aggregator";
import { addVerificationMessages } from "../src/core/analytics/consume";
import { keyVerifications, type VerificationsQuery } from "../src/core/analytics/queries";
import type { Principal } from "../src/core/principal";
import { call, newKey, newOrg } from "./helpers";
export const MINUTE = 60_000;
export const HOUR = 60 * MINUTE;
export const DAY = 24 * HOUR;
// A fixed "now" for the queries: 2026-12-01T10:30:15Z.
export const NOW = Date.UTC(2026, 11, 1, 10, 30, 15);

afterEach(() => vi.restoreAllMocks());

/** What a stubbed queue send answers. */
export const SENT: QueueSendResponse = {
  metadata: { metrics: { backlogCount: 0, backlogBytes: 0 } },
};

export interface Issued {
  id: string;
  name?: string;
  organization_id: string;
  project_id: string | null;
  key: string;
}

export const coreAt = (now: number, bindings: Partial<typeof env> = {}) =>
  createCore({ ...env, ...bindings }, createExecutionContext(), { now: () => now });

export const userOf = (org: string): Principal => ({
  type: "user",
  organizationId: org,
  userId: "user_analytics",
  isAdmin: true,
});

/** A queue message as an isolate would send it. */
export function message(
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

export async function setUp() {
  const org = await newOrg("analytics");
  const a: Issued = await newKey(org.admin, org.project.id, { name: "alpha" });
  const b: Issued = await newKey(org.admin, org.project.id, { name: "beta" });
  return { org, a, b, principal: userOf(org.org) };
}

export const keyStats = (
  principal: Principal,
  key: Issued,
  query: VerificationsQuery = {},
  now = NOW,
) => keyVerifications(coreAt(now), principal, key.id, query);

export async function lastUsedAt(org: { admin: string }, key: Issued): Promise<number | null> {
  const row = await env.DB.prepare("SELECT last_used_at FROM api_keys WHERE id = ?")
    .bind(key.id)
    .first<{ last_used_at: number | null }>();
  void org;
  return row?.last_used_at ?? null;
}

/** Counts at chosen minutes, added through the consumer. */
export async function seed(rows: { key: Issued; at: number; code: string; n: number }[]) {
  await addVerificationMessages(
    coreAt(NOW),
    rows.map((row) =>
      message([
        { key: row.key, minute: Math.floor(row.at / MINUTE) * MINUTE, code: row.code, n: row.n },
      ]),
    ),
  );
}

// ---------- Through the Worker: HTTP verify, RPC, the real queue and its queue() door ----------

export type Counts = Record<string, number>;

/** Per-code totals a key's endpoint shows (all buckets of the last 30 days summed). */
export async function shownCounts(token: string, keyId: string): Promise<Counts> {
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
export async function expectCounts(token: string, keyId: string, expected: Counts) {
  const same = (a: Counts) => JSON.stringify(sorted(a)) === JSON.stringify(sorted(expected));
  await vi
    .waitUntil(async () => same(await shownCounts(token, keyId)), { timeout: 10_000, interval: 50 })
    .catch(() => undefined);
  expect(sorted(await shownCounts(token, keyId))).toEqual(sorted(expected));
}

export const sorted = (counts: Counts) =>
  Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));

export const minuteOf = (ms: number) => new Date(Math.floor(ms / MINUTE) * MINUTE).toISOString();
