import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { hashKey } from "../src/core/key-material";
import { ROTATION_BATCH, SWEEP_BATCH } from "../src/core/keys";
import { call, iso, newKey, newOrg, runCron, sessionToken, verify } from "./helpers";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected field by field
type Json = any;

async function projectKeys(token: string, projectId: string): Promise<Json[]> {
  const listed = await call("GET", `/v1/api-keys?project_id=${projectId}&limit=100`, { token });
  expect(listed.status).toBe(200);
  return listed.body;
}

async function getKey(token: string, id: string): Promise<Json> {
  const got = await call("GET", `/v1/api-keys/${id}`, { token });
  expect(got.status).toBe(200);
  return got.body;
}

const keyRow = (id: string) =>
  env.DB.prepare("select * from api_keys where id = ?").bind(id).first<Record<string, unknown>>();

/** The worker shares this isolate's Date: moving it moves the clock of verify and the routes. */
function setWallClock(ms: number) {
  vi.useFakeTimers({ toFake: ["Date"] });
  vi.setSystemTime(ms);
}

beforeEach(() => {
  // No real network: a stray delivery (none is expected here) gets a 200 from nowhere.
  vi.spyOn(globalThis, "fetch").mockImplementation(async () => new Response(null, { status: 204 }));
});

afterEach(() => {
  vi.useRealTimers();
  vi.restoreAllMocks();
});

describe("scheduling", () => {
  it("sets next_rotation_at rotation_interval_days after creation, and null without one", async () => {
    const { admin, project } = await newOrg("schedule");
    const weekly = await newKey(admin, project.id, { rotation_interval_days: 7 });
    expect(weekly.rotation_interval_days).toBe(7);
    expect(weekly.next_rotation_at).toBe(iso(Date.parse(weekly.created_at) + 7 * DAY));

    const manual = await newKey(admin, project.id);
    expect(manual.rotation_interval_days).toBeNull();
    expect(manual.next_rotation_at).toBeNull();
  });

  it("reschedules from the moment rotation_interval_days is changed, and unschedules on null", async () => {
    const { admin, project } = await newOrg("reschedule");
    const key = await newKey(admin, project.id);
    const before = Date.now();
    const patched = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: admin,
      body: { rotation_interval_days: 3 },
    });
    const after = Date.now();
    expect(patched.status).toBe(200);
    const next = Date.parse(patched.body.next_rotation_at);
    expect(next).toBeGreaterThanOrEqual(before + 3 * DAY);
    expect(next).toBeLessThanOrEqual(after + 3 * DAY);

    const cleared = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: admin,
      body: { rotation_interval_days: null },
    });
    expect(cleared.body).toMatchObject({ rotation_interval_days: null, next_rotation_at: null });
  });
});

describe("scheduled rotation", () => {
  it("rotates nothing before next_rotation_at", async () => {
    const { admin, project } = await newOrg("early");
    const key = await newKey(admin, project.id, { rotation_interval_days: 2 });
    const due = Date.parse(key.next_rotation_at);

    await runCron(due - 1);

    const keys = await projectKeys(admin, project.id);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({
      id: key.id,
      replaced_by_key_id: null,
      grace_expires_at: null,
      next_rotation_at: key.next_rotation_at,
    });
    expect((await verify(key.key)).body).toMatchObject({ valid: true, in_grace: false });
  });

  it("replaces a due key with a twin and schedules the twin's own rotation", async () => {
    const { admin, project } = await newOrg("due");
    const testEnv = project.environments.find((e: Json) => e.name === "test");
    const key = await newKey(admin, project.id, {
      name: "billing sync",
      scopes: ["billing:read", "billing:write"],
      environment_id: testEnv.id,
      rotation_interval_days: 3,
      rotation_webhook_url: "http://localhost:3000/hook",
    });
    const runAt = Date.parse(key.next_rotation_at);

    await runCron(runAt);

    const keys = await projectKeys(admin, project.id);
    expect(keys).toHaveLength(2);
    const old = keys.find((k) => k.id === key.id);
    const fresh = keys.find((k) => k.id !== key.id);
    expect(old).toMatchObject({
      replaced_by_key_id: fresh.id,
      grace_expires_at: iso(runAt + DAY),
      revoked_at: null,
      next_rotation_at: null,
      is_active: true,
    });
    expect(fresh).toMatchObject({
      name: "billing sync",
      scopes: ["billing:read", "billing:write"],
      project_id: project.id,
      environment_id: testEnv.id,
      rotation_interval_days: 3,
      rotation_webhook_url: "http://localhost:3000/hook",
      source: "rotation",
      created_at: iso(runAt),
      created_by_user_id: key.created_by_user_id,
      next_rotation_at: iso(runAt + 3 * DAY),
      replaced_by_key_id: null,
      grace_expires_at: null,
      revoked_at: null,
      is_active: true,
    });
    expect(fresh.key_prefix).toMatch(/^capy_test_/);

    const audit = await env.DB.prepare(
      "select actor_type, metadata from audit_events where action = 'api_key.rotated' and target_id = ?",
    )
      .bind(key.id)
      .all<{ actor_type: string; metadata: string }>();
    expect(audit.results).toHaveLength(1);
    expect(audit.results[0]?.actor_type).toBe("system");
    expect(JSON.parse(audit.results[0]?.metadata ?? "{}")).toMatchObject({ new_key_id: fresh.id });
  });

  it("rotates a late-found due key once, counting the next interval from the run", async () => {
    const { admin, project } = await newOrg("cadence");
    const key = await newKey(admin, project.id, { rotation_interval_days: 2 });
    // A run that comes 5 minutes after the key fell due: the next rotation is 2 days after it.
    const first = Date.parse(key.next_rotation_at) + 5 * MINUTE;

    await runCron(first);
    await runCron(first + MINUTE);
    await runCron(first + HOUR);
    await runCron(first + 2 * DAY - 1);
    let keys = await projectKeys(admin, project.id);
    expect(keys).toHaveLength(2);
    const second = keys.find((k) => k.id !== key.id);
    expect(second.next_rotation_at).toBe(iso(first + 2 * DAY));

    await runCron(first + 2 * DAY);
    keys = await projectKeys(admin, project.id);
    expect(keys).toHaveLength(3);
    const third = keys.find((k) => k.id !== key.id && k.id !== second.id);
    expect(keys.find((k) => k.id === second.id).replaced_by_key_id).toBe(third.id);
    expect(third.next_rotation_at).toBe(iso(first + 4 * DAY));
  });

  it("keeps the old key valid and in grace until grace_expires_at, the new one valid at once", async () => {
    const { project, admin } = await newOrg("grace");
    const key = await newKey(admin, project.id, { rotation_interval_days: 1, scopes: ["deploy"] });
    const runAt = Date.parse(key.next_rotation_at);
    await runCron(runAt);
    const [, fresh] = await projectKeys(admin, project.id);

    expect((await verify(key.key)).body).toMatchObject({
      valid: true,
      code: "VALID",
      key_id: key.id,
      in_grace: true,
      scopes: ["deploy"],
    });

    setWallClock(runAt + DAY - 1000);
    expect((await verify(key.key)).body).toMatchObject({ valid: true, in_grace: true });
    setWallClock(runAt + DAY);
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
    // The replacement is an ordinary key: valid, not in grace. Its plaintext is not returned
    // by any route, so it is checked through its stored row instead.
    expect(await keyRow(fresh.id)).toMatchObject({ revoked_at: null, grace_expires_at: null });
  });

  it("rotates a due key exactly once when two runs overlap", async () => {
    const { admin, project } = await newOrg("overlap");
    const keys = [
      await newKey(admin, project.id, { rotation_interval_days: 5 }),
      await newKey(admin, project.id, { rotation_interval_days: 5 }),
      await newKey(admin, project.id, { rotation_interval_days: 5 }),
    ];
    const runAt = Math.max(...keys.map((k) => Date.parse(k.next_rotation_at)));

    await Promise.all([runCron(runAt), runCron(runAt), runCron(runAt)]);

    const listed = await projectKeys(admin, project.id);
    expect(listed).toHaveLength(6);
    for (const key of keys) {
      const successors = await env.DB.prepare(
        "select count(*) as n from api_keys where rotated_from_key_id = ?",
      )
        .bind(key.id)
        .first<{ n: number }>();
      expect(successors?.n).toBe(1);
      const old = listed.find((k) => k.id === key.id);
      expect(listed.some((k) => k.id === old.replaced_by_key_id)).toBe(true);
    }
    const audits = await env.DB.prepare(
      "select count(*) as n from audit_events where action = 'api_key.rotated' and project_id = ?",
    )
      .bind(project.id)
      .first<{ n: number }>();
    expect(audits?.n).toBe(3);
  });

  it("never copies a stale row: a PATCH between the run's read and its claim wins", async () => {
    const { admin, project } = await newOrg("stalecopy");
    const key = await newKey(admin, project.id, {
      scopes: ["read", "deploy:prod"],
      rotation_interval_days: 1,
    });
    const runAt = Date.parse(key.next_rotation_at);
    const narrowed = { scopes: ["read"], expires_at: iso(runAt + 3 * DAY) };
    // The admin narrows the key while the run is between selecting it and rotating it.
    const batch = env.DB.batch.bind(env.DB);
    let patched = false;
    vi.spyOn(env.DB, "batch").mockImplementation(async (statements) => {
      if (!patched) {
        patched = true;
        const patch = await call("PATCH", `/v1/api-keys/${key.id}`, {
          token: admin,
          body: narrowed,
        });
        expect(patch.status).toBe(200);
      }
      return batch(statements);
    });
    await runCron(runAt);
    vi.restoreAllMocks();
    expect(patched).toBe(true);
    expect(await keyRow(key.id)).toMatchObject({ replaced_by_key_id: null });

    // The next run reads the key afresh: the successor has what the admin set.
    await runCron(runAt + MINUTE);
    const old = await getKey(admin, key.id);
    expect(old.replaced_by_key_id).not.toBeNull();
    expect(await getKey(admin, old.replaced_by_key_id)).toMatchObject(narrowed);
  });

  it("leaves revoked, already replaced and expired keys alone", async () => {
    const { admin, project } = await newOrg("inactive");
    const revoked = await newKey(admin, project.id, { rotation_interval_days: 1 });
    expect((await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: admin })).status).toBe(204);
    const replaced = await newKey(admin, project.id, { rotation_interval_days: 1 });
    const manual = await call("POST", `/v1/api-keys/${replaced.id}/rotate`, {
      token: admin,
      body: { grace_period_seconds: 3 * 86_400 },
    });
    expect(manual.status).toBe(201);
    const expiring = await newKey(admin, project.id, {
      rotation_interval_days: 1,
      expires_at: iso(Date.now() + HOUR),
    });

    await runCron(Date.parse(expiring.next_rotation_at) + MINUTE);

    expect(await keyRow(revoked.id)).toMatchObject({ replaced_by_key_id: null });
    expect(await keyRow(expiring.id)).toMatchObject({ replaced_by_key_id: null });
    expect(await keyRow(replaced.id)).toMatchObject({ replaced_by_key_id: manual.body.new_key_id });
    const successors = await env.DB.prepare(
      "select count(*) as n from api_keys where rotated_from_key_id in (?, ?, ?)",
    )
      .bind(revoked.id, replaced.id, expiring.id)
      .first<{ n: number }>();
    expect(successors?.n).toBe(1);
  });

  it("does not let a batch of expired due keys starve the due keys behind them", async () => {
    const { admin, project } = await newOrg("starve");
    const expiresAt = iso(Date.now() + HOUR);
    for (let i = 0; i < ROTATION_BATCH + 1; i++) {
      await newKey(admin, project.id, { rotation_interval_days: 1, expires_at: expiresAt });
    }
    const live = await newKey(admin, project.id, { rotation_interval_days: 1 });

    await runCron(Date.parse(live.next_rotation_at));

    const row = await keyRow(live.id);
    expect(row?.replaced_by_key_id).toEqual(expect.any(String));
  });

  it("rotates another tenant's due key in the first run, behind one tenant's 75 due keys", async () => {
    // Runs a day back: no key made by the other tests of this file is due then.
    const runAt = Date.now() - DAY;
    const busy = await newOrg("rotation-backlog");
    const template = await newKey(busy.admin, busy.project.id, { rotation_interval_days: 1 });
    await env.DB.prepare(
      `with recursive n(i) as (select 1 union all select i + 1 from n where i < 74)
       insert into api_keys (id, organization_id, project_id, environment_id, name, key_hash,
         key_prefix, scopes, source, created_by_user_id, is_admin_managed, created_at,
         updated_at, rotation_interval_days, next_rotation_at)
       select lower(hex(randomblob(16))), organization_id, project_id, environment_id, name,
         lower(hex(randomblob(32))), key_prefix, scopes, source, created_by_user_id,
         is_admin_managed, created_at, updated_at, rotation_interval_days, next_rotation_at
       from api_keys, n where id = ?`,
    )
      .bind(template.id)
      .run();
    await env.DB.prepare("update api_keys set next_rotation_at = ? where organization_id = ?")
      .bind(runAt - 2 * HOUR, busy.org)
      .run();
    const quiet = await newOrg("rotation-quiet");
    const one = await newKey(quiet.admin, quiet.project.id, { rotation_interval_days: 1 });
    await env.DB.prepare("update api_keys set next_rotation_at = ? where id = ?")
      .bind(runAt - HOUR, one.id)
      .run();

    await runCron(runAt);

    expect((await keyRow(one.id))?.replaced_by_key_id).toEqual(expect.any(String));
    const rotatedBusy = await env.DB.prepare(
      "select count(*) as n from api_keys where organization_id = ? and replaced_by_key_id is not null",
    )
      .bind(busy.org)
      .first<{ n: number }>();
    expect(rotatedBusy?.n).toBe(ROTATION_BATCH - 1);
  });

  it("logs one line per run: rotated, delivered, failed, swept, expiry notices", async () => {
    const { admin, project } = await newOrg("cron-log");
    const key = await newKey(admin, project.id, { rotation_interval_days: 1 });
    const runAt = Date.parse(key.next_rotation_at);
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...args: unknown[]) => {
      lines.push(args.join(" "));
    });

    await runCron(runAt);

    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(
      new RegExp(
        `^cron run ${iso(runAt).replaceAll(".", "\\.")}: rotated [1-9]\\d*, delivered \\d+, failed \\d+, swept \\d+, expiry notices \\d+$`,
      ),
    );
  });

  it("runs through the Worker's scheduled entry point", async () => {
    const { admin, project } = await newOrg("entry");
    const key = await newKey(admin, project.id, { rotation_interval_days: 1 });
    const runAt = Date.parse(key.next_rotation_at);

    // Fetcher.scheduled() takes a Date (typed only in the experimental workers-types); the
    // handler must still treat it as an instant.
    const entry = exports.default as unknown as {
      scheduled(options: { scheduledTime: Date; cron: string }): Promise<unknown>;
    };
    await entry.scheduled({ scheduledTime: new Date(runAt), cron: "* * * * *" });

    expect((await getKey(admin, key.id)).grace_expires_at).toBe(iso(runAt + DAY));
  });
});

describe("grace sweep", () => {
  it("revokes the old key once its grace has passed and refreshes its cached record", async () => {
    const { org, project, admin } = await newOrg("sweep");
    const key = await newKey(admin, project.id, { rotation_interval_days: 1 });
    const runAt = Date.parse(key.next_rotation_at);
    const graceEnd = runAt + DAY;
    await runCron(runAt);

    await runCron(graceEnd - 1);
    expect(await keyRow(key.id)).toMatchObject({ revoked_at: null, grace_expires_at: graceEnd });

    await runCron(graceEnd);
    expect(await keyRow(key.id)).toMatchObject({ revoked_at: graceEnd });
    const cached = await env.KEY_CACHE.get<Json>(`key:${await hashKey(key.key)}`, "json");
    expect(cached).toMatchObject({ id: key.id, revokedAt: graceEnd });

    // Seen from a moment after the grace: every surface agrees the old key is gone.
    setWallClock(graceEnd + MINUTE);
    const token = await sessionToken({ org, user: "user_sweep", role: "admin" });
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });

    const got = await getKey(token, key.id);
    expect(got).toMatchObject({ revoked_at: iso(graceEnd), is_active: false });

    const seed001 = await projectKeys(token, project.id);
    expect(seed001.find((k) => k.id === key.id).is_active).toBe(false);
    expect(seed001.find((k) => k.id !== key.id).is_active).toBe(true);

    const seed000 = await call("GET", `/v1/organizations/${org}/api-keys`, { token });
    expect(seed000.status).toBe(200);
    expect(seed000.body.api_keys.find((k: Json) => k.id === key.id).is_active).toBe(false);

    const seed002 = await call("GET", `/api/v1/projects/${project.id}/keys`, { token });
    expect(seed002.status).toBe(200);
    expect(seed002.body.find((k: Json) => k.key_id === key.id).is_active).toBe(false);
  });

  it("sweeps the grace of a manual rotation too", async () => {
    const { admin, project } = await newOrg("manualsweep");
    const key = await newKey(admin, project.id);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: admin,
      body: { grace_period_seconds: 60 },
    });
    expect(rotated.status).toBe(201);
    const graceEnd = Date.parse(rotated.body.grace_expires_at);

    await runCron(graceEnd + 1);

    expect(await keyRow(key.id)).toMatchObject({ revoked_at: graceEnd });
    expect(await keyRow(rotated.body.new_key_id)).toMatchObject({ revoked_at: null });
  });

  it("a sweep run scheduled ahead of the wall clock leaves the key revoked now, not later", async () => {
    const { admin, project } = await newOrg("aheadsweep");
    const key = await newKey(admin, project.id, { rotation_interval_days: 1 });
    const rotateAt = Date.parse(key.next_rotation_at);
    await runCron(rotateAt); // a day ahead: the old key's grace ends two days from now
    expect((await verify(key.key)).body).toMatchObject({ valid: true, in_grace: true });

    await runCron(rotateAt + DAY + MINUTE);

    // revoked_at is the grace end, still in the future by the wall clock: it counts anyway.
    const revokedAt = (await keyRow(key.id))?.revoked_at as number;
    expect(revokedAt).toBe(rotateAt + DAY);
    expect(revokedAt).toBeGreaterThan(Date.now());
    expect(await getKey(admin, key.id)).toMatchObject({
      revoked_at: iso(rotateAt + DAY),
      is_active: false,
    });
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    expect((await keyRow(key.id))?.revoked_at).toBe(revokedAt);
  });

  it("sweeps more keys than one batch holds, over consecutive runs", async () => {
    const { admin, project } = await newOrg("bigsweep");
    const rotateOne = async () => {
      const key = await newKey(admin, project.id);
      const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
        token: admin,
        body: { grace_period_seconds: 60 },
      });
      return Date.parse(rotated.body.grace_expires_at);
    };
    const graceEnds = await Promise.all(Array.from({ length: SWEEP_BATCH + 1 }, rotateOne));
    const graceEnd = Math.max(...graceEnds);
    const stillInGrace = async () =>
      (
        await env.DB.prepare(
          "select count(*) as n from api_keys where project_id = ? and grace_expires_at is not null and revoked_at is null",
        )
          .bind(project.id)
          .first<{ n: number }>()
      )?.n;
    expect(await stillInGrace()).toBe(SWEEP_BATCH + 1);

    await runCron(graceEnd + MINUTE);
    expect(await stillInGrace()).toBeLessThanOrEqual(1);
    await runCron(graceEnd + 2 * MINUTE);
    expect(await stillInGrace()).toBe(0);
  });

  it("keeps the earlier revocation of a key revoked during its grace", async () => {
    const { admin, project } = await newOrg("earlyrevoke");
    const key = await newKey(admin, project.id, { rotation_interval_days: 1 });
    const runAt = Date.parse(key.next_rotation_at);
    await runCron(runAt);
    const before = Date.now();
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    const revokedAt = (await keyRow(key.id))?.revoked_at as number;
    expect(revokedAt).toBeGreaterThanOrEqual(before);
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });

    await runCron(runAt + DAY + MINUTE);

    expect((await keyRow(key.id))?.revoked_at).toBe(revokedAt);
  });
});

describe("job isolation", () => {
  it("still delivers and sweeps when the rotation job fails", async () => {
    const { admin, project } = await newOrg("isolation");
    const runAt = Date.now() + 5 * MINUTE;
    // A due key whose stored scopes are unreadable makes the rotation job throw.
    const poisoned = await newKey(admin, project.id, { rotation_interval_days: 1 });
    await env.DB.prepare("update api_keys set scopes = '{oops', next_rotation_at = ? where id = ?")
      .bind(runAt - MINUTE, poisoned.id)
      .run();
    const inGrace = await newKey(admin, project.id);
    const swept = await call("POST", `/v1/api-keys/${inGrace.id}/rotate`, {
      token: admin,
      body: { grace_period_seconds: 60 },
    });
    const hooked = await newKey(admin, project.id, {
      rotation_webhook_url: "https://hooks.example/isolation",
    });
    const delivered = await call("POST", `/v1/api-keys/${hooked.id}/rotate`, {
      token: admin,
      body: {},
    });
    expect([swept.status, delivered.status]).toEqual([201, 201]);
    const sent: string[] = [];
    vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      sent.push(String(input));
      return new Response(null, { status: 204 });
    });

    const logged = vi.spyOn(console, "error").mockImplementation(() => undefined);
    try {
      await expect(runCron(runAt)).rejects.toThrow();
      expect(logged).toHaveBeenCalledWith(
        "scheduled job failed:",
        expect.stringContaining("SyntaxError"),
      );
    } finally {
      await env.DB.prepare("update api_keys set scopes = '[]' where id = ?")
        .bind(poisoned.id)
        .run();
    }

    expect(sent).toContain("https://hooks.example/isolation");
    expect((await keyRow(inGrace.id))?.revoked_at).toBe(Date.parse(swept.body.grace_expires_at));
  });
});
