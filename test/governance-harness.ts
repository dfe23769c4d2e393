// What the governance tests share: set-up, fixtures and helpers (split out of one test file).
import { env } from "cloudflare:workers";
import { afterEach, expect, vi } from "vitest";
import { hashKey } from "../src/core/key-material";
import { memoryCache } from "../src/core/verify";
import { call, type newOrg, verify } from "./helpers";
export type Org = Awaited<ReturnType<typeof newOrg>>;

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

export const DAY = 86_400_000;
export const limit = (name: string, max: number, duration_ms = DAY) => ({
  name,
  limit: max,
  duration_ms,
});

/** How many of each code a batch of verify answers holds. */
export const tally = (bodies: { code: string }[]) =>
  bodies.reduce<Record<string, number>>((count, { code }) => {
    count[code] = (count[code] ?? 0) + 1;
    return count;
  }, {});

export const verifyMany = async (key: string, n: number, extra: Record<string, unknown> = {}) => {
  const answers = await Promise.all(Array.from({ length: n }, () => verify(key, extra)));
  for (const answer of answers) expect(answer.status).toBe(200);
  return answers.map((a) => a.body);
};

/** Make the caches forget a key, so the next verification reads D1 again. */
export async function forget(plaintext: string) {
  memoryCache.clear();
  await env.KEY_CACHE.delete(`key:${await hashKey(plaintext)}`);
}

export const getKey = async (org: Org, id: string) =>
  (await call("GET", `/v1/api-keys/${id}`, { token: org.admin })).body;

export const patch = (org: Org, id: string, body: Record<string, unknown>) =>
  call("PATCH", `/v1/api-keys/${id}`, { token: org.admin, body });
