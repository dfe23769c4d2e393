// A bounded soak on loopback against `wrangler dev`: many verifications with creates,
// rotations and revocations running alongside, every answer checked.
//   npm run soak [-- --verifies 50000 --concurrency 32 --seconds 240]
// A wrong answer is: a key whose revocation (or rotation, grace 0) had returned before the
// verification started, answering valid; or a live key answering anything but valid.
// Exit code 1 on any error or wrong answer.
import { execFileSync } from "node:child_process";
import { parseArgs } from "node:util";
import { startDevServer } from "./dev-server.mjs";

const { values } = parseArgs({
  options: {
    verifies: { type: "string", default: "50000" },
    concurrency: { type: "string", default: "32" },
    seconds: { type: "string", default: "240" },
    keys: { type: "string", default: "40" },
  },
});
const TOTAL = Number(values.verifies);
const CONCURRENCY = Number(values.concurrency);
const DEADLINE_MS = Number(values.seconds) * 1000;
const INITIAL_KEYS = Number(values.keys);

const log = (...args) => console.log("[soak]", ...args);
const server = await startDevServer();
const base = server.url;

const stats = {
  verifies: 0,
  valid: 0,
  invalid: 0,
  creates: 0,
  revokes: 0,
  rotations: 0,
  errors: 0,
  wrong: 0,
  latencies: [],
  samples: [],
};
const problem = (kind, detail) => {
  stats[kind]++;
  if (stats.samples.length < 20) stats.samples.push(`${kind}: ${detail}`);
};

async function api(method, path, token, body) {
  const response = await fetch(`${base}${path}`, {
    method,
    headers: {
      ...(token ? { authorization: `Bearer ${token}` } : {}),
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

// Key states: "live" (create returned), "revoking" (revoke sent), "revoked" (revoke returned).
const keys = new Map(); // plaintext → { id, state }
const pool = []; // the same entries, for O(1) random picks
const addKey = (plaintext, id) => {
  const key = { id, state: "live" };
  keys.set(plaintext, key);
  pool.push([plaintext, key]);
};
const randomEntry = () => pool[Math.floor(Math.random() * pool.length)];
const pick = (state) => {
  for (let attempt = 0; attempt < 50; attempt++) {
    const entry = randomEntry();
    if (entry?.[1].state === state) return entry;
  }
  return undefined;
};

let exitCode = 0;
try {
  const token = execFileSync(process.execPath, [
    "scripts/token.mjs",
    "--org",
    "org_soak",
    "--role",
    "admin",
  ])
    .toString()
    .trim();
  const project = await api("POST", "/v1/projects", token, { name: "soak" });
  if (project.status !== 201)
    throw new Error(`project: ${project.status} ${JSON.stringify(project.body)}`);
  const projectId = project.body.id;

  const create = async () => {
    const created = await api("POST", "/v1/api-keys", token, {
      project_id: projectId,
      name: "soak",
      scopes: ["read"],
    });
    if (created.status !== 201) return problem("errors", `create ${created.status}`);
    stats.creates++;
    addKey(created.body.key, created.body.id);
  };
  await Promise.all(Array.from({ length: INITIAL_KEYS }, create));
  log(`${keys.size} keys issued; ${TOTAL} verifications at concurrency ${CONCURRENCY}`);

  const revoke = async () => {
    const target = pick("live");
    if (!target) return;
    const [, key] = target;
    key.state = "revoking";
    const response = await api("DELETE", `/v1/api-keys/${key.id}`, token);
    if (response.status !== 204) return problem("errors", `revoke ${response.status}`);
    key.state = "revoked";
    stats.revokes++;
  };

  const rotate = async () => {
    const target = pick("live");
    if (!target) return;
    const [, key] = target;
    key.state = "revoking";
    const response = await api("POST", `/v1/api-keys/${key.id}/rotate`, token, {
      grace_period_seconds: 0,
    });
    if (response.status !== 201) return problem("errors", `rotate ${response.status}`);
    key.state = "revoked";
    addKey(response.body.key, response.body.new_key_id);
    stats.rotations++;
  };

  const verifyOne = async () => {
    const roll = Math.random();
    let candidate;
    let expectation;
    if (roll < 0.02) {
      candidate = "capy_live_not-a-key";
      expectation = "invalid";
    } else {
      // Half the time a live key (revoked ones pile up as the churn goes on).
      const [plaintext, key] = (roll < 0.5 && pick("live")) || randomEntry();
      candidate = plaintext;
      // The state when the verification starts decides what it must answer.
      expectation = key.state === "live" ? "valid" : key.state === "revoked" ? "invalid" : "either";
    }
    const started = performance.now();
    let response;
    try {
      response = await api("POST", "/v1/keys/verify", undefined, { key: candidate });
    } catch (error) {
      return problem("errors", `verify threw ${error}`);
    }
    stats.latencies.push(performance.now() - started);
    stats.verifies++;
    if (response.status !== 200) return problem("errors", `verify ${response.status}`);
    if (response.body.valid) stats.valid++;
    else stats.invalid++;
    if (expectation === "valid" && !response.body.valid) {
      problem("wrong", `live key answered ${response.body.code}`);
    }
    if (expectation === "invalid" && response.body.valid) {
      problem("wrong", "revoked or unknown key answered valid");
    }
  };

  const startedAt = performance.now();
  let issued = 0;
  const deadline = () => performance.now() - startedAt > DEADLINE_MS;
  const verifier = async () => {
    while (issued < TOTAL && !deadline()) {
      issued++;
      await verifyOne();
    }
  };
  // Churn alongside: creates, revocations and rotations, a few dozen a second.
  let churning = true;
  const churn = async () => {
    let i = 0;
    while (churning) {
      const op = i++ % 3;
      try {
        await (op === 0 ? create() : op === 1 ? revoke() : rotate());
      } catch (error) {
        problem("errors", `churn threw ${error}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };
  const churners = [churn(), churn()];
  await Promise.all(Array.from({ length: CONCURRENCY }, verifier));
  churning = false;
  await Promise.all(churners);
  const seconds = (performance.now() - startedAt) / 1000;

  const sorted = stats.latencies.sort((a, b) => a - b);
  const pct = (p) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]?.toFixed(1);
  const summary = {
    verifies: stats.verifies,
    seconds: Number(seconds.toFixed(1)),
    verifies_per_second: Math.round(stats.verifies / seconds),
    latency_ms: { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), max: pct(1) },
    answered_valid: stats.valid,
    answered_invalid: stats.invalid,
    creates: stats.creates,
    revocations: stats.revokes,
    rotations: stats.rotations,
    errors: stats.errors,
    wrong_answers: stats.wrong,
  };
  log(JSON.stringify(summary, null, 2));
  if (stats.samples.length) log(`samples:\n  ${stats.samples.join("\n  ")}`);
  if (stats.verifies < TOTAL) log(`stopped at the ${values.seconds} s bound`);
  if (stats.errors > 0 || stats.wrong > 0) exitCode = 1;
} catch (error) {
  log("failed:", error);
  exitCode = 1;
} finally {
  await server.stop();
}
process.exit(exitCode);
