// Secret hygiene: a full scenario across every surface — projects, keys on all three key
// surfaces and org-scoped, API keys as credentials, verification over HTTP and RPC, manual
// and scheduled rotations with webhooks (delivered and failing), webhook-secret rotation,
// revocations, and storage faults on the way — then every D1 table, every KV value, every
// line written to the console and every response that is not the one issuing a secret is
// searched for each plaintext key and `whsec_` secret the run produced. None may appear.
// The one exception is webhook_deliveries.encrypted_key: AES-GCM ciphertext by design.
import {
  createExecutionContext,
  createScheduledController,
  waitOnExecutionContext,
} from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, expect, it, vi } from "vitest";
import worker from "../src/index";
import { appTables, type Json, send } from "./hardening";
import { call, newKey, newOrg } from "./helpers";

const DAY = 24 * 60 * 60 * 1000;

afterEach(() => {
  vi.restoreAllMocks();
});

/** Everything printed, as text: errors with their stack and causes. */
function captureConsole(): string[] {
  const lines: string[] = [];
  const render = (value: unknown, depth = 0): string => {
    if (value instanceof Error) {
      const own = JSON.stringify(Object.fromEntries(Object.entries(value)));
      const cause = depth < 3 && value.cause !== undefined ? render(value.cause, depth + 1) : "";
      return `${value.name}: ${value.message}\n${value.stack ?? ""}\n${own}\n${cause}`;
    }
    if (typeof value === "object" && value !== null) {
      try {
        return JSON.stringify(value);
      } catch {
        return String(value);
      }
    }
    return String(value);
  };
  for (const method of ["log", "info", "warn", "error", "debug", "trace"] as const) {
    vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
      lines.push(`${method}: ${args.map((arg) => render(arg)).join(" ")}`);
    });
  }
  return lines;
}

/** The secrets and the forms they could leak in: whole, and the random part alone. */
function needles(secrets: Set<string>): string[] {
  const out = new Set<string>();
  for (const secret of secrets) {
    out.add(secret);
    if (secret.startsWith("whsec_")) out.add(secret.slice("whsec_".length));
    else {
      const body = secret.split("_").at(-1) ?? "";
      out.add(body.slice(0, 43)); // the 32 random bytes in base62, without prefix or check
    }
  }
  return [...out].filter((n) => n.length >= 20);
}

function leaks(haystack: string, where: string, secrets: string[]): string[] {
  return secrets.filter((s) => haystack.includes(s)).map((s) => `${where}: ${s.slice(0, 16)}…`);
}

it("no plaintext key or webhook secret is stored, cached or logged anywhere", async () => {
  const printed = captureConsole();
  const secrets = new Set<string>();
  const responses: { what: string; text: string }[] = [];
  /** A request whose response may carry a secret the run just issued (create, rotate, read secret). */
  const issuing = async (method: string, path: string, token: string, body?: unknown) => {
    const response = await send(method, path, { token, body });
    expect(response.status, `${method} ${path}: ${response.text}`).toBeLessThan(300);
    return response.body as Json;
  };
  /** Any other request: its response is searched too. */
  const plain = async (method: string, path: string, token?: string, body?: unknown) => {
    const response = await send(method, path, { token, body });
    responses.push({ what: `${method} ${path} → ${response.status}`, text: response.text });
    return response;
  };

  // Receivers: one answers 204, one keeps failing (its delivery stays queued, encrypted).
  const delivered: string[] = [];
  vi.spyOn(globalThis, "fetch").mockImplementation(async (input, init) => {
    const request = new Request(input, init);
    const text = await request.text();
    delivered.push(text);
    const data = JSON.parse(text).data as { key?: string };
    if (data.key) secrets.add(data.key);
    return new Response(null, { status: request.url.includes("/fail") ? 500 : 204 });
  });

  // ---- projects ----
  const { org, admin, member, project } = await newOrg("hygiene");
  secrets.add(project.webhook_signing_secret);
  const second = await issuing("POST", "/v1/projects", admin, {
    name: "Second",
    key_prefix: "acme",
  });
  secrets.add(second.webhook_signing_secret);
  await plain("PATCH", `/v1/projects/${project.id}`, admin, { name: "Main (renamed)" });
  await plain("POST", `/v1/projects/${project.id}/environments`, admin, { name: "staging" });

  // ---- keys on every surface ----
  const seed001 = await issuing("POST", "/v1/api-keys", admin, {
    project_id: project.id,
    name: "webhooked",
    scopes: ["*"],
    rotation_webhook_url: "https://hooks.example/ok",
    rotation_interval_days: 1,
  });
  const failing = await issuing("POST", "/v1/api-keys", admin, {
    project_id: second.id,
    name: "failing webhook",
    rotation_webhook_url: "https://hooks.example/fail",
  });
  const seed000 = await issuing("POST", `/v1/organizations/${org}/api-keys`, admin, {
    name: "seed 000",
    scopes: ["keys:read", "keys:write"],
    project_id: project.id,
    environment: "test",
  });
  const orgWide = await issuing("POST", `/v1/organizations/${org}/api-keys`, admin, {
    name: "org-wide",
    scopes: ["*"],
  });
  const seed002 = await issuing("POST", `/api/v1/projects/${project.id}/keys`, admin, {
    name: "seed 002",
    is_admin_managed: true,
  });
  const memberKey = await issuing("POST", `/api/v1/projects/${project.id}/keys`, member, {});
  for (const key of [
    seed001.key,
    failing.key,
    seed000.plaintext_api_key,
    orgWide.plaintext_api_key,
  ]) {
    secrets.add(key);
  }
  secrets.add(seed002.key);
  secrets.add(memberKey.key);

  // ---- API keys as credentials, and verification over HTTP and RPC ----
  const byKey = await issuing("POST", "/v1/api-keys", seed001.key, {
    project_id: project.id,
    name: "made by a key",
  });
  secrets.add(byKey.key);
  await plain("GET", `/v1/api-keys?project_id=${project.id}`, seed000.plaintext_api_key);
  await plain("GET", `/v1/organizations/${org}/api-keys`, orgWide.plaintext_api_key);
  await plain("GET", `/api/v1/projects/${project.id}/keys`, admin);
  for (const key of secrets) {
    if (key.startsWith("whsec_")) continue;
    await plain("POST", "/v1/keys/verify", undefined, { key, required_scopes: ["*"] });
    await plain("POST", "/v1/keys/verify", undefined, { key, project_id: project.id });
    responses.push({
      what: "RPC verify",
      text: JSON.stringify(await exports.KeyService.verify(key, { projectId: project.id })),
    });
  }
  // Credentials that fail, in every way.
  await plain("GET", "/v1/projects", `${seed001.key.slice(0, -1)}x`);
  await plain("GET", "/v1/projects", "not-a-token");
  await plain("POST", "/v1/keys/verify", undefined, { key: 42, required_scopes: [seed001.key] });

  // ---- rotations: manual (webhook queued), then scheduled by the cron ----
  const manual = await issuing("POST", `/v1/api-keys/${seed001.id}/rotate`, admin, {
    grace_period_seconds: 60,
  });
  secrets.add(manual.key);
  const failingRotation = await issuing("POST", `/v1/api-keys/${failing.id}/rotate`, admin, {});
  secrets.add(failingRotation.key);
  const cronAt = Date.now() + DAY + 60_000;
  for (const at of [cronAt, cronAt + 60_000]) {
    const ctx = createExecutionContext();
    await worker.scheduled(
      createScheduledController({ scheduledTime: at, cron: "* * * * *" }),
      env,
      ctx,
    );
    await waitOnExecutionContext(ctx);
  }
  expect(delivered.length).toBeGreaterThanOrEqual(3);

  // ---- webhook secrets: read, rotate, read again ----
  const read = await issuing("GET", `/v1/projects/${project.id}/webhook-secret`, admin);
  expect(read.webhook_signing_secret).toBe(project.webhook_signing_secret);
  const rotatedSecret = await issuing("POST", `/v1/projects/${project.id}/webhook-secret`, admin);
  secrets.add(rotatedSecret.webhook_signing_secret);
  await issuing("GET", `/v1/projects/${project.id}/webhook-secret`, admin);

  // ---- a fault on the way: the errors that get logged must not carry secrets either ----
  vi.spyOn(env.KEY_CACHE, "put").mockRejectedValue(new Error("injected KV fault"));
  vi.spyOn(env.KEY_CACHE, "delete").mockRejectedValue(new Error("injected KV fault"));
  const faulted = await send("POST", `/v1/api-keys/${byKey.id}/rotate`, { token: admin, body: {} });
  expect(faulted.status).toBe(201);
  secrets.add(faulted.body.key);
  vi.mocked(env.KEY_CACHE.put).mockRestore();
  vi.mocked(env.KEY_CACHE.delete).mockRestore();
  const batch = vi.spyOn(env.DB, "batch").mockRejectedValue(new Error("injected D1 fault"));
  await plain("POST", "/v1/api-keys", admin, { project_id: project.id, name: "doomed" });
  batch.mockRestore();

  // ---- revocations on every surface ----
  await plain("DELETE", `/v1/api-keys/${manual.new_key_id}`, admin);
  await plain("DELETE", `/v1/organizations/${org}/api-keys/${seed000.api_key.id}`, admin);
  await plain("DELETE", `/api/v1/projects/${project.id}/keys/${seed002.key_id}`, admin);
  await plain("DELETE", `/v1/organizations/${org}/api-keys/${orgWide.api_key.id}`, admin);

  // ---- what anyone can read afterwards ----
  await plain("GET", `/v1/organizations/${org}/audit-log?limit=100`, admin);
  await plain("GET", `/v1/projects/${project.id}/webhook-deliveries`, admin);
  await plain("GET", `/v1/projects/${second.id}/webhook-deliveries`, admin);
  await plain("GET", `/v1/api-keys/${seed001.id}`, admin);
  await plain("GET", "/v1/projects", admin);

  // ---- the search ----
  const search = needles(secrets);
  expect(secrets.size).toBeGreaterThanOrEqual(14);
  const found: string[] = [];

  let rowsScanned = 0;
  for (const table of await appTables()) {
    const { results } = await env.DB.prepare(`select * from "${table}"`).all<
      Record<string, unknown>
    >();
    for (const row of results) {
      rowsScanned++;
      for (const [column, value] of Object.entries(row)) {
        if (table === "webhook_deliveries" && column === "encrypted_key") {
          if (value !== null)
            expect(String(value)).toMatch(/^v1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+$/);
          continue;
        }
        found.push(...leaks(String(value), `D1 ${table}.${column}`, search));
      }
    }
  }
  expect(rowsScanned).toBeGreaterThan(30);

  let kvValues = 0;
  let cursor: string | undefined;
  do {
    const page = await env.KEY_CACHE.list(cursor ? { cursor } : {});
    for (const { name } of page.keys) {
      kvValues++;
      found.push(...leaks(name, "KV key", search));
      found.push(...leaks((await env.KEY_CACHE.get(name)) ?? "", `KV ${name}`, search));
    }
    cursor = page.list_complete ? undefined : page.cursor;
  } while (cursor);
  expect(kvValues).toBeGreaterThan(5);

  found.push(...leaks(printed.join("\n"), "console", search));
  expect(printed.some((line) => line.includes("injected"))).toBe(true); // the faults were logged
  for (const response of responses) found.push(...leaks(response.text, response.what, search));

  expect(found).toEqual([]);
  // The search itself works: a planted copy of any secret, in any form, is found.
  for (const needle of search) expect(leaks(`…${needle}…`, "planted", search)).not.toEqual([]);
  const pending = await env.DB.prepare(
    "select count(*) as n from webhook_deliveries where encrypted_key is not null",
  ).first<{ n: number }>();
  expect(pending?.n).toBeGreaterThan(0); // the failing receiver's delivery still holds its key
});

it("every response carrying a plaintext key or signing secret says Cache-Control: no-store, its replay too", async () => {
  const org = await newOrg("no-store");
  const key = await newKey(org.admin, org.project.id);
  const secretResponses = [
    ["POST", "/v1/projects", { name: "another" }],
    ["POST", "/v1/api-keys", { project_id: org.project.id, name: "k" }],
    ["POST", `/v1/organizations/${org.org}/api-keys`, { name: "o", scopes: [] }],
    ["POST", `/api/v1/projects/${org.project.id}/keys`, {}],
    ["POST", `/v1/api-keys/${key.id}/rotate`, {}],
    ["GET", `/v1/projects/${org.project.id}/webhook-secret`, undefined],
    ["POST", `/v1/projects/${org.project.id}/webhook-secret`, undefined],
  ] as const;
  for (const [method, path, body] of secretResponses) {
    const headers = method === "POST" ? { "idempotency-key": `no-store-${path}` } : undefined;
    const answered = await call(method, path, { token: org.admin, body, headers });
    expect(answered.status, `${method} ${path}`).toBeLessThan(300);
    expect(answered.headers.get("cache-control"), `${method} ${path}`).toBe("no-store");
    if (headers) {
      const replayed = await call(method, path, { token: org.admin, body, headers });
      expect(replayed.headers.get("idempotent-replayed"), path).toBe("true");
      expect(replayed.headers.get("cache-control"), `replayed ${path}`).toBe("no-store");
    }
  }
  // A response without a secret may be kept as before.
  const read = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
  expect(read.headers.get("cache-control")).not.toBe("no-store");
});
