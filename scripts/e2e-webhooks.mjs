// Rotation webhooks and key lifecycle events end to end, the way a user sees them: `wrangler dev --test-scheduled`,
// a real webhook receiver on loopback, cron runs triggered at chosen instants, and every
// signature checked by the Standard Webhooks reference library on the receiver's own clock.
//   npm run test:e2e
// Exit code 1 on the first broken expectation.
import { execFileSync } from "node:child_process";
import { createServer } from "node:http";
import { Webhook } from "standardwebhooks";
import { freePort, startDevServer } from "./dev-server.mjs";

const HOUR = 3_600_000;
const log = (...args) => console.log("[e2e]", ...args);

function check(condition, message, detail) {
  if (!condition) {
    const error = new Error(message);
    error.detail = detail;
    throw error;
  }
  log(`ok  ${message}`);
}

/** A receiver on loopback; each path answers from its own script of status codes. */
async function startReceiver(scripts) {
  const received = [];
  const server = createServer((request, response) => {
    const chunks = [];
    request.on("data", (chunk) => chunks.push(chunk));
    request.on("end", () => {
      const seen = received.filter((r) => r.path === request.url).length;
      const script = scripts[request.url] ?? [404];
      const status = script[Math.min(seen, script.length - 1)];
      received.push({
        path: request.url,
        headers: request.headers,
        body: Buffer.concat(chunks).toString("utf8"),
        answered: status,
      });
      response.writeHead(status).end();
    });
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, "127.0.0.1", resolve));
  return {
    url: (path) => `http://127.0.0.1:${port}${path}`,
    to: (path) => received.filter((r) => r.path === path),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

const receiver = await startReceiver({
  "/steady": [200],
  "/flaky": [500, 503, 204],
  "/gone": [410],
  "/events": [200],
});
const DAY = 24 * HOUR;
const server = await startDevServer();
const token = execFileSync(process.execPath, ["scripts/token.mjs", "--org", "org_e2e"])
  .toString()
  .trim();

async function api(method, path, body) {
  const response = await fetch(`${server.url}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      ...(body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/** One cron run for `time` (ms), through the endpoint `--test-scheduled` exposes. */
async function runCron(time) {
  const response = await fetch(
    `${server.url}/cdn-cgi/local/scheduled?cron=*+*+*+*+*&time=${time}&format=json`,
  );
  const result = await response.json();
  check(
    result.outcome === "ok",
    `cron run at now +${Math.round((time - t0) / HOUR)} h succeeds`,
    result,
  );
}

const verify = async (key) =>
  (
    await fetch(`${server.url}/v1/keys/verify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key }),
    })
  ).json();

const t0 = Date.now();
let exitCode = 0;
try {
  const project = await api("POST", "/v1/projects", { name: "e2e" });
  check(project.status === 201, "project created", project);
  const hook = new Webhook(project.body.webhook_signing_secret);
  /** The reference library, on this process's real clock: it refuses a forged body too. */
  const verified = (delivery) =>
    hook.verify(delivery.body, {
      "webhook-id": delivery.headers["webhook-id"],
      "webhook-timestamp": delivery.headers["webhook-timestamp"],
      "webhook-signature": delivery.headers["webhook-signature"],
    });

  const create = async (name, path, extra = {}) => {
    const created = await api("POST", "/v1/api-keys", {
      project_id: project.body.id,
      name,
      scopes: ["read"],
      rotation_webhook_url: receiver.url(path),
      ...extra,
    });
    check(created.status === 201, `key "${name}" created with a loopback webhook URL`, created);
    return created.body;
  };
  const scheduled = await create("scheduled", "/steady", { rotation_interval_days: 1 });
  const flaky = await create("flaky", "/flaky");
  const gone = await create("gone", "/gone");

  // Manual rotations queue deliveries; the first run tries both.
  const rotatedFlaky = await api("POST", `/v1/api-keys/${flaky.id}/rotate`, {
    grace_period_seconds: 3600,
  });
  check(rotatedFlaky.status === 201, "manual rotation answers 201 with the new key", rotatedFlaky);
  const rotatedGone = await api("POST", `/v1/api-keys/${gone.id}/rotate`, {});
  check(rotatedGone.status === 201, "a second manual rotation", rotatedGone);

  await runCron(Date.now());
  check(receiver.to("/flaky").length === 1, "the flaky receiver got attempt 1 (answered 500)");
  check(receiver.to("/gone").length === 1, "the gone receiver got attempt 1 (answered 410)");
  check(receiver.to("/steady").length === 0, "the scheduled key is not due yet");

  // A day on: the scheduled key is due and rotated and delivered in the same run; the flaky
  // delivery's backoff has passed, so it is retried.
  await runCron(t0 + 25 * HOUR);
  const [rotation] = receiver.to("/steady");
  check(receiver.to("/steady").length === 1, "the due key was rotated once and delivered");
  const event = verified(rotation);
  check(event.type === "api_key.rotated", "the scheduled delivery verifies (standardwebhooks)");
  check(event.data.old_key_id === scheduled.id, "it names the old key", event.data);
  check(
    Date.parse(event.data.grace_expires_at) === Date.parse(event.timestamp) + 24 * HOUR,
    "the old key has 24 h of grace from the run's instant",
    event,
  );
  const fresh = await verify(event.data.key);
  check(fresh.valid && fresh.key_id === event.data.new_key_id, "the delivered key verifies", fresh);
  const old = await verify(scheduled.key);
  check(old.valid && old.in_grace, "the old key still verifies, in grace", old);

  await runCron(t0 + 25 * HOUR); // the same instant again: nothing is rotated twice
  check(receiver.to("/steady").length === 1, "a repeated run rotates and delivers nothing more");

  await runCron(t0 + 26 * HOUR);
  const attempts = receiver.to("/flaky");
  check(attempts.length === 3, "the flaky receiver got attempts 2 (503) and 3 (204)", attempts);
  check(
    new Set(attempts.map((a) => a.headers["webhook-id"])).size === 1,
    "every attempt carries the same webhook-id",
  );
  for (const attempt of attempts) verified(attempt);
  check(true, "every attempt's signature verifies");
  check(
    JSON.parse(attempts[2].body).data.key === rotatedFlaky.body.key,
    "the retried body carries the new key from the rotation response",
  );
  check(receiver.to("/gone").length === 1, "a 410 is not retried");

  const forged = { ...rotation, body: rotation.body.replace("api_key", "api_kez") };
  let refused = false;
  try {
    verified(forged);
  } catch {
    refused = true;
  }
  check(refused, "a tampered body fails verification");

  const listed = await api("GET", `/v1/projects/${project.body.id}/webhook-deliveries`);
  const byUrl = Object.fromEntries(listed.body.webhook_deliveries.map((d) => [d.url, d]));
  check(byUrl[receiver.url("/flaky")]?.status === "delivered", "flaky: delivered", listed.body);
  check(byUrl[receiver.url("/gone")]?.status === "failed", "gone: failed", listed.body);
  check(byUrl[receiver.url("/steady")]?.status === "delivered", "steady: delivered");
  check(!JSON.stringify(listed.body).includes(event.data.key), "listings never carry the key");

  // Past the grace: the sweep revokes the old key.
  await runCron(t0 + 50 * HOUR);
  const swept = await api("GET", `/v1/api-keys/${scheduled.id}`);
  check(
    swept.body.revoked_at !== null && swept.body.is_active === false,
    "the sweep revoked it",
    swept,
  );
  const after = await verify(scheduled.key);
  check(!after.valid && after.code === "REVOKED", "the old key is REVOKED", after);

  const legacy = await fetch(`${server.url}/__scheduled?cron=*+*+*+*+*`);
  check(legacy.ok, "/__scheduled also runs the cron");

  // Key lifecycle events: an endpoint of another project on the loopback receiver.
  const events = await api("POST", "/v1/projects", { name: "e2e-events" });
  check(events.status === 201, "a second project", events);
  const eventHook = new Webhook(events.body.webhook_signing_secret);
  const endpoint = await api("POST", `/v1/projects/${events.body.id}/webhook-endpoints`, {
    url: receiver.url("/events"),
    events: ["*"],
  });
  check(endpoint.status === 201, "a webhook endpoint subscribed to every event", endpoint);
  const received = () =>
    receiver.to("/events").map((delivery) => ({
      delivery,
      event: eventHook.verify(delivery.body, {
        "webhook-id": delivery.headers["webhook-id"],
        "webhook-timestamp": delivery.headers["webhook-timestamp"],
        "webhook-signature": delivery.headers["webhook-signature"],
      }),
    }));
  const ofType = (type) => received().filter((r) => r.event.type === type);
  const lifecycle = await api("POST", "/v1/api-keys", {
    project_id: events.body.id,
    name: "lifecycle",
    scopes: [],
  });
  check(lifecycle.status === 201, "a key created in it", lifecycle);
  const patched = await api("PATCH", `/v1/api-keys/${lifecycle.body.id}`, { name: "renamed" });
  check(patched.status === 200, "the key renamed", patched);
  const rotatedKey = await api("POST", `/v1/api-keys/${lifecycle.body.id}/rotate`, {});
  check(rotatedKey.status === 201, "the key rotated", rotatedKey);
  const revokedKey = await fetch(`${server.url}/v1/api-keys/${rotatedKey.body.new_key_id}`, {
    method: "DELETE",
    headers: { authorization: `Bearer ${token}` },
  });
  check(revokedKey.status === 204, "its successor revoked");
  const expiresAt = t0 + 10 * DAY;
  const expiring = await api("POST", "/v1/api-keys", {
    project_id: events.body.id,
    name: "expiring",
    scopes: [],
    expires_at: new Date(expiresAt).toISOString(),
  });
  check(expiring.status === 201, "a key that expires in 10 days", expiring);

  await runCron(Date.now());
  check(
    JSON.stringify(
      received()
        .map((r) => r.event.type)
        .sort(),
    ) ===
      JSON.stringify([
        "api_key.created",
        "api_key.created",
        "api_key.revoked",
        "api_key.rotated",
        "api_key.updated",
      ]),
    "created ×2, updated, rotated, revoked arrive, each signature verifying",
    received().map((r) => r.event),
  );
  const [renamed] = ofType("api_key.updated");
  check(
    renamed.event.data.api_key.id === lifecycle.body.id &&
      renamed.event.data.api_key.name === "renamed" &&
      renamed.event.data.actor.type === "user",
    "api_key.updated carries the key object as changed and the actor",
    renamed.event,
  );
  const [rotatedEvent] = ofType("api_key.rotated");
  check(
    rotatedEvent.event.data.api_key.replaced_by_key_id === rotatedKey.body.new_key_id &&
      !rotatedEvent.delivery.body.includes(rotatedKey.body.key),
    "api_key.rotated names the successor and never carries its plaintext",
    rotatedEvent.event,
  );
  const [revokedEvent] = ofType("api_key.revoked");
  check(
    revokedEvent.event.data.api_key.id === rotatedKey.body.new_key_id &&
      revokedEvent.event.data.api_key.revoked_at !== null,
    "api_key.revoked carries the revoked key",
    revokedEvent.event,
  );
  check(
    !receiver.to("/events").some((r) => r.body.includes(lifecycle.body.key)),
    "no event carries a plaintext key",
  );

  // Expiry: the cron at chosen instants, each notice once even when a run is repeated.
  const expiryTypes = () =>
    received()
      .filter(
        (r) => r.event.data.api_key.id === expiring.body.id && r.event.type !== "api_key.created",
      )
      .map((r) => `${r.event.type}:${r.event.data.expires_in_days ?? "-"}`);
  await runCron(expiresAt - 7 * DAY + 60_000);
  await runCron(expiresAt - 7 * DAY + 60_000);
  check(
    JSON.stringify(expiryTypes()) === JSON.stringify(["api_key.expiring:7"]),
    "api_key.expiring (7 days) once, signed",
    expiryTypes(),
  );
  await runCron(expiresAt - DAY + 60_000);
  await runCron(expiresAt + 60_000);
  await runCron(expiresAt + 60_000);
  check(
    JSON.stringify(expiryTypes()) ===
      JSON.stringify(["api_key.expiring:7", "api_key.expiring:1", "api_key.expired:-"]),
    "then api_key.expiring (1 day) and api_key.expired, once each",
    expiryTypes(),
  );
  const ids = receiver.to("/events").map((r) => r.headers["webhook-id"]);
  check(new Set(ids).size === ids.length, "every event has its own webhook-id");
  log("all checks passed");
} catch (error) {
  exitCode = 1;
  console.error("[e2e] FAILED:", error.message);
  if (error.detail !== undefined) console.error(JSON.stringify(error.detail, null, 2));
  console.error(server.output().slice(-4000));
} finally {
  await server.stop();
  await receiver.close();
}
process.exit(exitCode);
