// Verification analytics end to end under `wrangler dev` (what `npm start` runs): keys with
// known outcomes are verified over HTTP, then the analytics endpoints and last_used_at are
// polled until they show exactly what was sent (at most 70 s). The production batch window
// (wrangler.toml VERIFICATION_BATCH_MS) and the local queue are used as they are.
//   npm run test:e2e-analytics
// Exit code 1 on the first broken expectation.
import { execFileSync } from "node:child_process";
import { jsonClient, startDevServer } from "./dev-server.mjs";

const log = (...args) => console.log("[analytics]", ...args);

function check(condition, message, detail) {
  if (!condition) {
    const error = new Error(message);
    error.detail = detail;
    throw error;
  }
  log(`ok  ${message}`);
}

const server = await startDevServer();
const token = execFileSync(process.execPath, ["scripts/token.mjs", "--org", "org_analytics"])
  .toString()
  .trim();

const api = jsonClient(server.url, token);

const verify = async (key, extra = {}) =>
  (await api("POST", "/v1/keys/verify", { key, ...extra }, null)).body.code;

async function totals(keyId) {
  const { body } = await api("GET", `/v1/api-keys/${keyId}/verifications?granularity=day`);
  const sums = {};
  for (const bucket of body.buckets) {
    for (const [code, n] of Object.entries(bucket.counts)) sums[code] = (sums[code] ?? 0) + n;
  }
  return sums;
}

const same = (a, b) =>
  JSON.stringify(Object.entries(a).sort()) === JSON.stringify(Object.entries(b).sort());

try {
  const project = (await api("POST", "/v1/projects", { name: "Analytics" })).body;
  const newKey = async (fields = {}) =>
    (await api("POST", "/v1/api-keys", { project_id: project.id, name: "k", ...fields })).body;
  const good = await newKey({ scopes: ["read"] });
  const revoked = await newKey();
  await api("DELETE", `/v1/api-keys/${revoked.id}`);
  const manager = await newKey({ scopes: ["keys:read"] });

  const sentAt = Date.now();
  const expected = { good: { VALID: 5, INSUFFICIENT_SCOPE: 2 }, revoked: { REVOKED: 3 } };
  for (let i = 0; i < 5; i++) await verify(good.key);
  for (let i = 0; i < 2; i++) await verify(good.key, { required_scopes: ["admin"] });
  for (let i = 0; i < 3; i++) await verify(revoked.key);
  await verify(`${good.key.slice(0, -1)}0`); // MALFORMED: never counted
  // A management credential use: never counted.
  await api("GET", `/v1/api-keys/${good.id}`, undefined, manager.key);
  const lastValid = Date.now();

  let seen = {};
  const deadline = Date.now() + 70_000;
  while (Date.now() < deadline) {
    seen = { good: await totals(good.id), revoked: await totals(revoked.id) };
    if (same(seen.good, expected.good) && same(seen.revoked, expected.revoked)) break;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  const visibleAfter = Date.now() - lastValid;
  check(same(seen.good, expected.good), `good key counts ${JSON.stringify(seen.good)}`, seen);
  check(same(seen.revoked, expected.revoked), `revoked key counts ${JSON.stringify(seen.revoked)}`);
  log(`counts visible ${visibleAfter} ms after the last verification`);
  check(same(await totals(manager.id), {}), "a management credential use is not counted");

  const shown = (await api("GET", `/v1/api-keys/${good.id}`)).body.last_used_at;
  const stamp = Date.parse(shown);
  check(
    stamp >= sentAt && stamp <= lastValid && lastValid - stamp < 60_000,
    `last_used_at ${shown} within 60 s of the last VALID answer`,
  );
  check(
    (await api("GET", `/v1/api-keys/${revoked.id}`)).body.last_used_at === null,
    "no stamp on a refused key",
  );
  const projectStats = (await api("GET", `/v1/projects/${project.id}/verifications`)).body;
  check(
    projectStats.top_keys[0]?.key_id === good.id && projectStats.top_keys[0]?.total === 7,
    "the project's top key",
    projectStats,
  );
} catch (error) {
  console.error("[analytics] FAILED:", error.message, error.detail ?? "");
  console.error(server.output());
  process.exitCode = 1;
} finally {
  await server.stop();
}
