// npm run bench — how much key verification adds to a request, measured in workerd.
//
// Two short-lived `wrangler dev` sessions on free loopback ports (never 8787), sharing one
// temporary --persist-to directory and a private dev registry, one after the other:
//   1. Keygate alone: the HTTP scenarios, straight at Keygate's own port.
//   2. examples/consumer (primary) + Keygate (auxiliary, same workerd): the RPC scenarios
//      through the consumer's service binding, then a counting pass.
// Keygate runs from bench/instrumented.ts (a copy of wrangler.toml with that entry point):
// the shipped Worker with its D1 and KV bindings counted from outside, read at /__bench/reads.
// A project and keys are created through the API with a dev session token, minted like
// scripts/token.mjs does. Every number comes from this machine; nothing is hard-coded.
//
// Knobs (environment): BENCH_DURATION (s per scenario, default 6), BENCH_ROUNDS (3),
// BENCH_WARMUP (s, 2), BENCH_CONNECTIONS (8), BENCH_COLD_KEYS (keys in the cold pool, 1500),
// BENCH_OUT (results file, bench/results.json).
import { spawn } from "node:child_process";
import { createPrivateKey, createSign } from "node:crypto";
import { once } from "node:events";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import autocannon from "autocannon";

const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
const WRANGLER = join(ROOT, "node_modules", ".bin", "wrangler");
const PRIVATE_KEY = join(ROOT, ".keygate", "clerk-dev-private.pem");
const RESULTS = process.env.BENCH_OUT ?? join(ROOT, "bench", "results.json");

const DURATION = Number(process.env.BENCH_DURATION ?? 6);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const WARMUP = Number(process.env.BENCH_WARMUP ?? 2);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 8);
const COLD_KEYS = Number(process.env.BENCH_COLD_KEYS ?? 1500);
/** Must match MEMORY_TTL_MS and KV_TTL_SECONDS in src/core/verify/cache.ts. */
const MEMORY_TTL_MS = 10_000;
const KV_TTL_MS = 600_000;
const COUNT_REQUESTS = 500;
const COUNT_COLD_KEYS = 100;
const FORBIDDEN_PORT = 8787; // the developer's own `npm start`

const work = mkdtempSync(join(tmpdir(), "keygate-bench-"));
const state = join(work, "state");
const childEnv = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  // A private dev registry: the bench's "keygate" never answers someone else's session.
  WRANGLER_REGISTRY_PATH: join(work, "registry"),
  NO_COLOR: "1",
};
const sessions = new Set();

const log = (message) => process.stderr.write(`${message}\n`);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// ---------- processes ----------

function run(args, label) {
  const out = openSync(join(work, `${label}.log`), "a");
  const child = spawn(WRANGLER, args, { cwd: ROOT, env: childEnv, stdio: ["ignore", out, out] });
  return once(child, "exit").then(([code]) => {
    if (code !== 0) throw new Error(`wrangler ${args[0]} failed: see ${work}/${label}.log`);
  });
}

async function freePort(from, taken = []) {
  for (let port = from; port < from + 200; port++) {
    if (port === FORBIDDEN_PORT || taken.includes(port)) continue;
    const server = createServer();
    const ok = await new Promise((resolve) => {
      server.once("error", () => resolve(false));
      server.listen(port, "127.0.0.1", () => resolve(true));
    });
    if (ok) {
      await new Promise((resolve) => server.close(resolve));
      return port;
    }
  }
  throw new Error(`no free port from ${from}`);
}

/** `wrangler dev` with the given configs (the first is the primary) on a free port. */
async function startSession(label, configs, preferredPort) {
  const port = await freePort(preferredPort);
  const inspector = await freePort(9300, [port]);
  const out = openSync(join(work, `${label}.log`), "a");
  const args = ["dev", ...configs.flatMap((c) => ["-c", c])];
  args.push("--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(inspector));
  args.push("--persist-to", state, "--show-interactive-dev-session=false", "--log-level", "warn");
  // Its own process group, so stopping it takes workerd down too.
  const child = spawn(WRANGLER, args, {
    cwd: ROOT,
    env: childEnv,
    stdio: ["ignore", out, out],
    detached: true,
  });
  const session = { label, child, base: `http://127.0.0.1:${port}`, port };
  sessions.add(session);
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${label} exited: see ${work}/${label}.log`);
    try {
      const response = await fetch(`${session.base}/healthz`);
      if (response.ok) break;
    } catch {}
    if (Date.now() > deadline) throw new Error(`${label} did not start: see ${work}/${label}.log`);
    await sleep(250);
  }
  log(`${label}: ${configs.join(" + ")} on ${session.base}`);
  return session;
}

async function stopSession(session) {
  if (!sessions.delete(session) || session.child.exitCode !== null) return;
  const exited = once(session.child, "exit");
  try {
    process.kill(-session.child.pid, "SIGTERM");
  } catch {}
  const timer = setTimeout(() => {
    try {
      process.kill(-session.child.pid, "SIGKILL");
    } catch {}
  }, 5_000);
  await exited;
  clearTimeout(timer);
}

function stopAllNow() {
  for (const session of sessions) {
    try {
      process.kill(-session.child.pid, "SIGKILL");
    } catch {}
  }
  sessions.clear();
}
process.on("SIGINT", () => {
  stopAllNow();
  process.exit(130);
});

// ---------- the API ----------

/** A dev Clerk-shaped session token, signed like scripts/token.mjs. */
function sessionToken(org) {
  const b64url = (value) => Buffer.from(value).toString("base64url");
  const now = Math.floor(Date.now() / 1000);
  const claims = {
    sub: "user_bench",
    sid: `sess_bench_${now}`,
    iat: now,
    nbf: now - 5,
    exp: now + 3600,
    iss: "https://clerk.keygate.local",
    v: 2,
    o: { id: org, rol: "admin", slg: org },
  };
  const head = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "ins_dev" }))}.${b64url(JSON.stringify(claims))}`;
  const signature = createSign("RSA-SHA256")
    .update(head)
    .sign(createPrivateKey(readFileSync(PRIVATE_KEY)), "base64url");
  return `${head}.${signature}`;
}

async function api(base, token, method, path, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const json = await response.json().catch(() => null);
  if (!response.ok)
    throw new Error(`${method} ${path}: ${response.status} ${JSON.stringify(json)}`);
  return json;
}

async function createKeys(base, token, projectId, count, name) {
  const keys = [];
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const created = await api(base, token, "POST", "/v1/api-keys", {
        project_id: projectId,
        name: `${name} ${i}`,
        scopes: ["read"],
      });
      keys.push(created.key);
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
  return keys;
}

const stats = async (base) => (await fetch(`${base}/__bench/reads`)).json();

/** wrangler.toml with the instrumented entry point, next to it (its paths stay valid). */
function benchConfig() {
  const path = join(ROOT, ".bench-wrangler.toml");
  const config = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
  writeFileSync(path, config.replace(/^main = .*$/m, 'main = "bench/instrumented.ts"'));
  return path;
}

// ---------- load ----------

/**
 * Timed scenarios, interleaved: every round runs each scenario for DURATION / ROUNDS seconds,
 * so background noise on a shared machine falls on all of them alike. Latencies of all
 * rounds are pooled per scenario and recorded per response at sub-millisecond resolution
 * (autocannon's own histogram rounds to whole milliseconds); req/s = responses / time.
 */
async function interleaved(scenarios) {
  const runs = scenarios.map(() => ({ latencies: [], statuses: {}, errors: 0, seconds: 0 }));
  if (WARMUP > 0) {
    for (const scenario of scenarios) await autocannon({ ...cannon(scenario), duration: WARMUP });
  }
  for (let round = 0; round < ROUNDS; round++) {
    for (const [i, scenario] of scenarios.entries()) {
      await measure(runs[i], { ...cannon(scenario), duration: DURATION / ROUNDS });
    }
  }
  return scenarios.map((scenario, i) => summarize(scenario, runs[i]));
}

/** One pass over a pool of keys, each verified exactly once. */
async function poolPass(scenario) {
  const run = { latencies: [], statuses: {}, errors: 0, seconds: 0 };
  await measure(run, { ...cannon(scenario), amount: scenario.pool.size });
  return summarize(scenario, run);
}

function cannon({ url, method = "GET", headers = {}, body, pool }) {
  const request = pool
    ? { method, setupRequest: (r) => ({ ...r, body: JSON.stringify({ key: pool.next() }) }) }
    : { method, body };
  return { url, connections: CONNECTIONS, headers, requests: [request] };
}

async function measure(run, options) {
  const instance = autocannon(options);
  instance.on("response", (_client, status, _bytes, ms) => {
    run.latencies.push(ms);
    run.statuses[status] = (run.statuses[status] ?? 0) + 1;
  });
  const started = performance.now();
  const result = await instance;
  run.seconds += (performance.now() - started) / 1000;
  run.errors += result.errors;
}

function summarize({ name, expect = 200 }, run) {
  const latencies = run.latencies.sort((a, b) => a - b);
  const at = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  const unexpected = latencies.length - (run.statuses[expect] ?? 0);
  if (unexpected > 0 || run.errors > 0) {
    log(
      `  ${name}: ${unexpected} unexpected statuses ${JSON.stringify(run.statuses)}, ${run.errors} errors`,
    );
  }
  const row = {
    name,
    requests: latencies.length,
    p50_ms: round(at(0.5)),
    p99_ms: round(at(0.99)),
    rps: Math.round(latencies.length / run.seconds),
    statuses: run.statuses,
    errors: run.errors,
  };
  log(`  ${name}: p50 ${row.p50_ms} ms, p99 ${row.p99_ms} ms, ${row.rps} req/s`);
  return row;
}

const round = (value, digits = 3) => Number(value.toFixed(digits));

/** Hands out each key of a pool once, across all connections. */
function keyPool(keys) {
  let i = 0;
  return {
    size: keys.length,
    next: () => keys[i++ % keys.length],
  };
}

/** Storage reads per request while `requests` requests run (counted at the bindings). */
async function readsPer(base, requests, send) {
  const before = await stats(base);
  await send();
  const after = await stats(base);
  return {
    kv: round((after.kv - before.kv) / requests),
    d1: round((after.d1 - before.d1) / requests),
    usage: round((after.usage - before.usage) / requests),
    feed: round(((after.feed ?? 0) - (before.feed ?? 0)) / requests, 3),
  };
}

async function sendEach(count, makeRequest) {
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      const response = await fetch(...makeRequest(i));
      await response.arrayBuffer();
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));
}

/**
 * SPEC Part 2 figures, printed as INFO (met: null), not as targets this one run can judge:
 * - the unlimited warm path as a multiple of this run's floor, next to the previous run's
 *   (the results file this run replaces). Single runs on this shared machine vary by ±15 %
 *   in that ratio, more than the 1.1× they would be judged by; the before/after target is
 *   judged by bench/compare.mjs over alternated runs of the two builds (bench/README.md);
 * - the limited key's extra cost as a p50 delta (no single number isolates one KeyUsage
 *   round trip; that there is exactly one is the DO/req target above).
 */
function limitedFigures(rows, previous) {
  const byName = (list, scenario) => list?.find((r) => r.scenario === scenario);
  const figures = [];
  for (const [transport, scenario] of [
    ["HTTP", "verify, warm (memory hit)"],
    ["RPC", "verify, warm via consumer"],
  ]) {
    const now = byName(rows, scenario);
    const before = byName(previous?.rows, scenario);
    const then = before ? `; the previous run's: ${before.p50_vs_floor}×` : "";
    figures.push([`${transport} unlimited warm p50 = ${now.p50_vs_floor}× its floor${then}`, null]);
  }
  const delta = (limited, unlimited) => round(limited.p50_ms - unlimited.p50_ms, 3);
  const http = delta(rows[8], rows[1]);
  const rpc = delta(rows[9], rows[6]);
  figures.push([`HTTP limited − unlimited warm p50 = ${http} ms (one KeyUsage call)`, null]);
  figures.push([`RPC limited − unlimited warm p50 = ${rpc} ms (one KeyUsage call)`, null]);
  return figures;
}

// ---------- the run ----------

async function main() {
  // The figures this run replaces: the unlimited path is compared with them.
  const previous = existsSync(RESULTS) ? JSON.parse(readFileSync(RESULTS, "utf8")) : null;
  // Dev secrets: scripts/setup-dev.mjs writes .dev.vars and the signing key on first run.
  if (!existsSync(PRIVATE_KEY)) {
    await new Promise((resolve, reject) => {
      const setup = spawn(process.execPath, ["scripts/setup-dev.mjs"], {
        cwd: ROOT,
        stdio: "inherit",
      });
      setup.on("exit", (code) => (code === 0 ? resolve() : reject(new Error("setup-dev failed"))));
    });
    if (!existsSync(PRIVATE_KEY)) {
      throw new Error(
        `${PRIVATE_KEY} is missing but .dev.vars exists: move .dev.vars away and run again.`,
      );
    }
  }
  log(
    `bench: ${cpus().length} CPUs, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(" ")}, work dir ${work}`,
  );
  await run(["d1", "migrations", "apply", "DB", "--local", "--persist-to", state], "migrations");

  // Phase 1 — HTTP, straight at Keygate.
  const config = benchConfig();
  const keygate = await startSession("keygate", [config], 8790);
  // The organization examples/consumer's binding is pinned to: the RPC scenarios use its keys.
  const token = sessionToken("org_dev");
  const project = await api(keygate.base, token, "POST", "/v1/projects", { name: "Bench" });
  const warmKey = (await createKeys(keygate.base, token, project.id, 1, "bench warm"))[0];
  const malformedKey = `${warmKey.slice(0, -1)}${warmKey.endsWith("A") ? "B" : "A"}`;
  // A key with one rate limit and credits: every verification is one KeyUsage call (SPEC
  // Part 2). Limits far above what a run spends, so every answer is VALID.
  const limitedKey = (
    await api(keygate.base, token, "POST", "/v1/api-keys", {
      project_id: project.id,
      name: "bench limited",
      scopes: ["read"],
      ratelimits: [{ name: "bench", limit: 1_000_000, duration_ms: 86_400_000 }],
      credits: { remaining: 1_000_000_000_000 },
    })
  ).key;
  // A key of an identity (SPEC Part 3), both with a limit and credits: the key's and the
  // identity's are decided together in one KeyUsage call (the identity's object).
  const identity = await api(keygate.base, token, "POST", "/v1/identities", {
    external_id: "bench_customer",
    ratelimits: [{ name: "bench", limit: 1_000_000, duration_ms: 86_400_000 }],
    credits: { remaining: 1_000_000_000_000 },
  });
  const identityKey = (
    await api(keygate.base, token, "POST", "/v1/api-keys", {
      project_id: project.id,
      name: "bench identity",
      scopes: ["read"],
      external_id: identity.external_id,
      ratelimits: [{ name: "bench", limit: 1_000_000, duration_ms: 86_400_000 }],
      credits: { remaining: 1_000_000_000_000 },
    })
  ).key;
  log(`creating ${COLD_KEYS} keys for the cold pool…`);
  const coldKeys = await createKeys(keygate.base, token, project.id, COLD_KEYS, "bench cold");

  const verifyUrl = `${keygate.base}/v1/keys/verify`;
  const json = { "content-type": "application/json" };
  const verifyWith = (key) => ({
    url: verifyUrl,
    method: "POST",
    headers: json,
    body: JSON.stringify({ key, required_scopes: ["read"] }),
  });
  const http = {};
  log("HTTP scenarios:");
  // Cold first: each pooled key is verified exactly once, by an isolate that has never seen
  // it and with no KV record yet: memory miss, KV miss, D1 read (then KV gets filled).
  const coldStarted = Date.now();
  const pooled = { url: verifyUrl, method: "POST", headers: json };
  http.cold = await poolPass({ ...pooled, name: "HTTP verify, cold", pool: keyPool(coldKeys) });
  const coldEnded = Date.now();
  // The same pool again once the memory entries have expired but the KV records have not:
  // memory miss, KV hit. Right after the cold pass (a short idle wait), before the timed
  // rounds: run after them, the oldest records could outlive KV's 60 s and the row would
  // mix in D1 reads (it did, once Part 2 added a fourth timed scenario).
  const wait = coldEnded + MEMORY_TTL_MS + 500 - Date.now();
  if (wait > 0) await sleep(wait);
  const kvFresh = Date.now() - coldStarted < KV_TTL_MS - 10_000;
  http.kv = await poolPass({ ...pooled, name: "HTTP verify, KV tier", pool: keyPool(coldKeys) });
  if (!kvFresh) log("  (KV records may have expired before this pass: it may include D1 reads)");
  [http.noop, http.warm, http.malformed, http.limited, http.identity] = await interleaved([
    { name: "HTTP no-op (GET /healthz)", url: `${keygate.base}/healthz` },
    { name: "HTTP verify, warm", ...verifyWith(warmKey) },
    { name: "HTTP verify, malformed", ...verifyWith(malformedKey) },
    { name: "HTTP verify, warm, limit + credits", ...verifyWith(limitedKey) },
    { name: "HTTP verify, warm, identity + limits", ...verifyWith(identityKey) },
  ]);
  await stopSession(keygate);

  // Phase 2 — RPC through the consumer's service binding (same workerd process).
  const both = await startSession(
    "consumer",
    ["examples/consumer/wrangler.toml", config],
    keygate.port + 1,
  );
  const bearer = (key) => ({ authorization: `Bearer ${key}` });
  const rpc = {};
  log("RPC scenarios (consumer → env.KEYGATE):");
  const beforeTimed = await stats(both.base);
  const timedStart = Date.now();
  [rpc.noop, rpc.warm, rpc.malformed, rpc.limited, rpc.identity] = await interleaved([
    { name: "RPC no-op (ping())", url: `${both.base}/noop` },
    { name: "RPC verify, warm", url: `${both.base}/protected`, headers: bearer(warmKey) },
    {
      name: "RPC verify, malformed",
      url: `${both.base}/protected`,
      headers: bearer(malformedKey),
      expect: 401,
    },
    {
      name: "RPC verify, warm, limit + credits",
      url: `${both.base}/protected`,
      headers: bearer(limitedKey),
    },
    {
      name: "RPC verify, warm, identity + limits",
      url: `${both.base}/protected`,
      headers: bearer(identityKey),
    },
  ]);
  // Steady state over the whole timed RPC run (warm-up included): the only reads are the
  // warm key's refreshes (KV when its memory entry expires, D1 when its KV record has).
  const afterTimed = await stats(both.base);
  const steady = {
    kv: round((afterTimed.kv - beforeTimed.kv) / rpc.warm.requests, 5),
    d1: round((afterTimed.d1 - beforeTimed.d1) / rpc.warm.requests, 5),
    feed: round((afterTimed.feed - beforeTimed.feed) / rpc.warm.requests, 5),
    // One Keygate isolate in this session: the revocation feed's background polls per second.
    feedPerSecond: round(
      ((afterTimed.feed ?? 0) - (beforeTimed.feed ?? 0)) / ((Date.now() - timedStart) / 1000),
      3,
    ),
  };

  log("counting storage reads per request (at the bindings)…");
  const protectedWith = (key) => () => [`${both.base}/protected`, { headers: bearer(key) }];
  const verifyBody = (key) => [
    `${both.base}/v1/keys/verify`, // forwarded by the consumer to Keygate's HTTP API
    { method: "POST", headers: json, body: JSON.stringify({ key, required_scopes: ["read"] }) },
  ];
  const reads = { steadyRpcWarm: steady };
  // Warm, exactly: a new key verified once (memory and KV filled at that instant), then
  // COUNT_REQUESTS verifies over RPC and over HTTP, well inside the 10 s memory TTL.
  const [primed] = await createKeys(both.base, token, project.id, 1, "count warm");
  await sendEach(1, () => verifyBody(primed));
  const primedAt = Date.now();
  reads.rpcWarm = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, protectedWith(primed)),
  );
  reads.httpWarm = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, () => verifyBody(primed)),
  );
  if (Date.now() - primedAt > MEMORY_TTL_MS) log("  (warm counting outlived the memory TTL)");
  // The limited key: the same warm path plus its KeyUsage call (counted at the binding).
  reads.rpcLimited = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, protectedWith(limitedKey)),
  );
  reads.httpLimited = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, () => verifyBody(limitedKey)),
  );
  // The identity's key: still one KeyUsage call, its identity's object deciding both.
  reads.rpcIdentity = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, protectedWith(identityKey)),
  );
  reads.httpIdentity = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, () => verifyBody(identityKey)),
  );
  reads.rpcMalformed = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, protectedWith(malformedKey)),
  );
  reads.httpMalformed = await readsPer(both.base, COUNT_REQUESTS, () =>
    sendEach(COUNT_REQUESTS, () => verifyBody(malformedKey)),
  );
  const freshKeys = await createKeys(both.base, token, project.id, COUNT_COLD_KEYS, "count");
  reads.cold = await readsPer(both.base, COUNT_COLD_KEYS, () =>
    sendEach(COUNT_COLD_KEYS, (i) => verifyBody(freshKeys[i])),
  );
  await sleep(MEMORY_TTL_MS + 500);
  reads.kv = await readsPer(both.base, COUNT_COLD_KEYS, () =>
    sendEach(COUNT_COLD_KEYS, (i) => verifyBody(freshKeys[i])),
  );
  await stopSession(both);

  // ---------- report ----------
  const rows = [
    ["HTTP", "no-op: GET /healthz", http.noop, http.noop, null],
    ["HTTP", "verify, warm (memory hit)", http.warm, http.noop, reads.httpWarm],
    ["HTTP", "verify, KV tier (memory expired)", http.kv, http.noop, reads.kv],
    ["HTTP", "verify, cold (D1; each key once)", http.cold, http.noop, reads.cold],
    ["HTTP", "verify, malformed key", http.malformed, http.noop, reads.httpMalformed],
    ["RPC", "no-op: ping() via consumer", rpc.noop, rpc.noop, null],
    ["RPC", "verify, warm via consumer", rpc.warm, rpc.noop, reads.rpcWarm],
    ["RPC", "verify, malformed via consumer", rpc.malformed, rpc.noop, reads.rpcMalformed],
    [
      "HTTP",
      "verify, warm, 1 limit + credits (KeyUsage)",
      http.limited,
      http.noop,
      reads.httpLimited,
    ],
    [
      "RPC",
      "verify, warm, 1 limit + credits via consumer",
      rpc.limited,
      rpc.noop,
      reads.rpcLimited,
    ],
    [
      "HTTP",
      "verify, warm, identity + limits (one KeyUsage)",
      http.identity,
      http.noop,
      reads.httpIdentity,
    ],
    [
      "RPC",
      "verify, warm, identity + limits via consumer",
      rpc.identity,
      rpc.noop,
      reads.rpcIdentity,
    ],
  ].map(([transport, scenario, row, floor, storage]) => ({
    transport,
    scenario,
    requests: row.requests,
    p50_ms: row.p50_ms,
    p99_ms: row.p99_ms,
    rps: row.rps,
    p50_vs_floor: round(row.p50_ms / floor.p50_ms, 2),
    rps_vs_floor: round(row.rps / floor.rps, 2),
    kv_reads_per_request: storage?.kv ?? null,
    d1_reads_per_request: storage?.d1 ?? null,
    usage_calls_per_request: storage?.usage ?? null,
    feed_calls_per_request: storage?.feed ?? null,
  }));
  const targets = [
    ["HTTP warm verify p50 ≤ 1.3× no-op p50", rows[1].p50_vs_floor <= 1.3],
    ["RPC warm verify p50 ≤ 1.3× no-op p50", rows[6].p50_vs_floor <= 1.3],
    ["HTTP warm verify throughput ≥ 70% of no-op", rows[1].rps_vs_floor >= 0.7],
    ["RPC warm verify throughput ≥ 70% of no-op", rows[6].rps_vs_floor >= 0.7],
    [
      "zero D1 reads per warm verify (HTTP and RPC)",
      reads.httpWarm.d1 === 0 && reads.rpcWarm.d1 === 0,
    ],
    [
      "zero storage reads per malformed key (HTTP and RPC)",
      [reads.httpMalformed, reads.rpcMalformed].every((r) => r.kv === 0 && r.d1 === 0),
    ],
    // A limited key adds one Durable Object call; the unlimited warm path must not move.
    [
      "KeyUsage calls per warm verify: 0 for an unlimited key, 1 for a limited one (HTTP and RPC)",
      reads.httpWarm.usage === 0 &&
        reads.rpcWarm.usage === 0 &&
        reads.httpLimited.usage === 1 &&
        reads.rpcLimited.usage === 1,
    ],
    [
      "KeyUsage calls per warm verify of an identity's key with limits on both: 1 (HTTP and RPC)",
      reads.httpIdentity.usage === 1 && reads.rpcIdentity.usage === 1,
    ],
    [
      "revocation feed: at most one background request per isolate per REVOCATION_BOUND_MS / 2 (≤ 1/s)",
      reads.steadyRpcWarm.feedPerSecond <= 1.05,
    ],
    ...limitedFigures(rows, previous),
  ].map(([target, met]) => ({ target, met }));

  printTable(rows);
  console.log("");
  const verdict = (met) => (met === null ? "INFO" : met ? "MET " : "MISS");
  for (const { target, met } of targets) console.log(`${verdict(met)}  ${target}`);
  console.log(
    `\n${CONNECTIONS} connection(s); ${DURATION} s per scenario in ${ROUNDS} interleaved rounds, ` +
      `after a ${WARMUP} s warm-up; ` +
      `cold and KV rows: ${COLD_KEYS} distinct keys, each verified once per pass. ` +
      "Reads per request counted at the D1 and KV bindings (DO/req: KeyUsage objects asked) " +
      "over separate counting passes " +
      `(${COUNT_REQUESTS} requests; ${COUNT_COLD_KEYS} fresh keys for cold/KV).\n` +
      `Steady state over the timed RPC run: ${reads.steadyRpcWarm.kv} KV and ` +
      `${reads.steadyRpcWarm.d1} D1 reads per warm verify (memory refresh every 10 s, ` +
      "KV record every 10 min); revocation feed: " +
      `${reads.steadyRpcWarm.feedPerSecond} background requests per second from the one ` +
      `Keygate isolate (${reads.steadyRpcWarm.feed} per warm verify).`,
  );
  writeFileSync(
    RESULTS,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        machine: { cpus: cpus().length, model: cpus()[0]?.model, loadavg: loadavg() },
        node: process.version,
        settings: {
          connections: CONNECTIONS,
          duration_s: DURATION,
          rounds: ROUNDS,
          warmup_s: WARMUP,
          cold_keys: COLD_KEYS,
          count_requests: COUNT_REQUESTS,
          count_cold_keys: COUNT_COLD_KEYS,
        },
        rows,
        targets,
        raw: { http, rpc, reads },
      },
      null,
      2,
    )}\n`,
  );
  console.log(`\nwrote ${RESULTS}`);
}

function printTable(rows) {
  const header = [
    "",
    "scenario",
    "p50 ms",
    "p99 ms",
    "req/s",
    "p50 ×floor",
    "req/s ×floor",
    "KV/req",
    "D1/req",
    "DO/req",
  ];
  const body = rows.map((r) => [
    r.transport,
    r.scenario,
    r.p50_ms.toFixed(2),
    r.p99_ms.toFixed(2),
    String(r.rps),
    r.p50_vs_floor.toFixed(2),
    r.rps_vs_floor.toFixed(2),
    r.kv_reads_per_request === null ? "–" : String(r.kv_reads_per_request),
    r.d1_reads_per_request === null ? "–" : String(r.d1_reads_per_request),
    r.usage_calls_per_request === null ? "–" : String(r.usage_calls_per_request),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((row) => row[i].length)));
  const line = (cells) =>
    cells.map((cell, i) => (i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join("  ");
  console.log(line(header));
  console.log(widths.map((w) => "-".repeat(w)).join("  "));
  for (const row of body) console.log(line(row));
}

try {
  await main();
  rmSync(work, { recursive: true, force: true });
} catch (error) {
  log(`bench failed: ${error instanceof Error ? error.message : error}`);
  log(`logs kept in ${work}`);
  process.exitCode = 1;
} finally {
  for (const session of [...sessions]) await stopSession(session);
}
