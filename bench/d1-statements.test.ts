// npm run bench:d1 — D1 statements per 10 000 verifications, counted at the D1 binding.
//
// Runs inside workerd (the vitest pool, not part of `npm test`): real router, real KV and D1,
// the real queue and the Worker's own queue() consumer. Verifications go through
// `POST /v1/keys/verify` with the production batch window (wrangler.toml's
// VERIFICATION_BATCH_MS); every statement the Worker prepares on the D1 binding is counted,
// whether it runs alone or inside a batch, from the verify path and from the consumer alike.
// Steady state: the keys were verified (and their counts consumed) once before counting.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, expect, it, vi } from "vitest";
import worker from "../src/index";
import { BASE, call, newOrg } from "../test/helpers";

const VERIFICATIONS = 10_000;
const WINDOW_MS = "5000"; // wrangler.toml's VERIFICATION_BATCH_MS
const benchEnv = { ...env, VERIFICATION_BATCH_MS: WINDOW_MS };
const POLL = "/* bench */";

afterEach(() => vi.restoreAllMocks());

interface Tally {
  statements: number;
  batches: number;
  sends: number;
  kinds: Record<string, number>;
}

/** Counts every statement prepared on the D1 binding (the bench's own polls aside). */
function instrument(): Tally {
  const tally: Tally = { statements: 0, batches: 0, sends: 0, kinds: {} };
  const prepare = env.DB.prepare;
  const batch = env.DB.batch;
  vi.spyOn(env.DB, "prepare").mockImplementation((query: string) => {
    if (!query.startsWith(POLL)) {
      tally.statements++;
      const kind = query
        .replace(/\s+/g, " ")
        .match(/^(insert into|update|delete from|select .*? from) ["`]?(\w+)/i);
      const verb = kind?.[1]?.split(" ")[0]?.toLowerCase();
      const name = kind ? `${verb} ${kind[2]}` : query.slice(0, 30);
      tally.kinds[name] = (tally.kinds[name] ?? 0) + 1;
    }
    return prepare.call(env.DB, query);
  });
  vi.spyOn(env.DB, "batch").mockImplementation((statements) => {
    tally.batches++;
    return batch.call(env.DB, statements);
  });
  const send = env.VERIFICATION_EVENTS.send;
  vi.spyOn(env.VERIFICATION_EVENTS, "send").mockImplementation((body, options) => {
    tally.sends++;
    return send.call(env.VERIFICATION_EVENTS, body, options);
  });
  return tally;
}

async function counted(keyIds: string[]): Promise<number> {
  const row = await env.DB.prepare(
    `${POLL} SELECT coalesce(sum(count), 0) AS n FROM verification_counts
      WHERE key_id IN (SELECT value FROM json_each(?1))`,
  )
    .bind(JSON.stringify(keyIds))
    .first<{ n: number }>();
  return row?.n ?? 0;
}

/** n verifications, round robin over the keys; then waits until the consumer has added them. */
async function verifyMany(keys: { id: string; key: string }[], n: number) {
  const ids = keys.map((k) => k.id);
  const before = await counted(ids);
  const started = Date.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < n; i++) {
    const ctx = createExecutionContext();
    const key = keys[i % keys.length]?.key;
    const response = await worker.fetch(
      new Request(`${BASE}/v1/keys/verify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ key }),
      }) as Request<unknown, IncomingRequestCfProperties>,
      benchEnv,
      ctx,
    );
    if ((await response.json<{ code: string }>()).code !== "VALID") throw new Error("not valid");
    pending.push(waitOnExecutionContext(ctx));
  }
  const verified = Date.now() - started;
  await Promise.all(pending);
  await vi.waitUntil(async () => (await counted(ids)) - before >= n, {
    timeout: 60_000,
    interval: 100,
  });
  expect((await counted(ids)) - before).toBe(n);
  return { verifiedMs: verified, consumedMs: Date.now() - started };
}

async function createKeys(admin: string, projectId: string, count: number) {
  const keys: { id: string; key: string }[] = [];
  for (let i = 0; i < count; i++) {
    const created = await call("POST", "/v1/api-keys", {
      token: admin,
      body: { project_id: projectId, name: `bench ${i}`, scopes: [] },
    });
    keys.push({ id: created.body.id, key: created.body.key });
  }
  return keys;
}

function report(
  name: string,
  keys: number,
  tally: Tally,
  times: { verifiedMs: number; consumedMs: number },
) {
  const per100 = (tally.statements / VERIFICATIONS) * 100;
  console.log(
    JSON.stringify(
      {
        scenario: name,
        keys,
        verifications: VERIFICATIONS,
        d1_statements: tally.statements,
        d1_statements_per_100_verifications: Number(per100.toFixed(3)),
        d1_batches: tally.batches,
        queue_messages: tally.sends,
        by_statement: tally.kinds,
        verify_loop_ms: times.verifiedMs,
        until_all_counted_ms: times.consumedMs,
      },
      null,
      2,
    ),
  );
  return per100;
}

it("one hot key: 10 000 verifications", { timeout: 300_000 }, async () => {
  const org = await newOrg("bench-hot");
  const keys = await createKeys(org.admin, org.project.id, 1);
  await verifyMany(keys, 1); // warm: caches filled, first count consumed
  const tally = instrument();
  const times = await verifyMany(keys, VERIFICATIONS);
  expect(report("hot key", 1, tally, times)).toBeLessThanOrEqual(1);
});

it("1 000 keys: 10 000 verifications, 10 each", { timeout: 600_000 }, async () => {
  const org = await newOrg("bench-wide");
  const keys = await createKeys(org.admin, org.project.id, 1_000);
  const warm = instrument();
  const warmTimes = await verifyMany(keys, keys.length); // cold: each key read from D1 once
  console.log(
    `warm-up (1 000 cold verifications): ${warm.statements} D1 statements, ${warm.sends} messages, ${warmTimes.consumedMs} ms`,
  );
  vi.restoreAllMocks();
  const tally = instrument();
  const times = await verifyMany(keys, VERIFICATIONS);
  expect(report("1 000 keys", 1_000, tally, times)).toBeLessThanOrEqual(1);
});
