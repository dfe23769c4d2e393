// SPEC "The revocation bound", inside workerd: what a two-isolate run cannot force. Other
// isolates are IsolateViews of their own (their memory cache and feed cursor, a clock the test
// moves) over the same D1, KV and feed; the module's isolate (the router's) is "A".
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it, vi } from "vitest";
import { createCore } from "../src/context";
import { DEFAULT_REVOCATION_BOUND_MS } from "../src/core/config";
import { hashKey } from "../src/core/key-material";
import { rotateDueKeys, sweepExpiredGrace } from "../src/core/keys";
import { IsolateView, verifyKey } from "../src/core/verify";
import { kvKey } from "../src/core/verify/cache";
import { announceChanges } from "../src/core/verify/feed";
import { FEED_PAGE, type FeedEntry } from "../src/durable/revocation-feed";
import worker from "../src/index";
import { storageDuring } from "./bindings";
import { d1Snapshot, expectProblem } from "./hardening";
import { BASE, call, newKey, newOrg, verify } from "./helpers";
import { publicReport } from "./leaks-harness";

const BOUND = DEFAULT_REVOCATION_BOUND_MS;

afterEach(() => {
  vi.restoreAllMocks();
});

/**
 * Another isolate over the same storage: its own caches and feed cursor, a feed clock the test
 * moves (offset: its skew against the others), and its background work kept for `settle`.
 */
function isolate(options: { offset?: number; env?: Env; shard?: number } = {}) {
  const clock = { now: Date.now() + (options.offset ?? 0) };
  const view = new IsolateView({ clock: () => clock.now, shard: options.shard ?? 0 });
  const pending: Promise<unknown>[] = [];
  const core = createCore(
    options.env ?? env,
    { waitUntil: (p) => pending.push(p) },
    {
      isolate: view,
    },
  );
  const settle = () => Promise.all(pending.splice(0));
  return {
    view,
    core,
    /** Let `ms` pass on this isolate's clock. */
    wait: (ms: number) => {
      clock.now += ms;
    },
    settle,
    code: async (key: string, requiredScopes?: string[]) => {
      const { result } = await verifyKey(core, key, requiredScopes ? { requiredScopes } : {});
      return result.code;
    },
  };
}

/** An isolate that has verified `key` (memory and KV filled) and heard the feed. */
async function warm(key: string, options: Parameters<typeof isolate>[0] = {}) {
  const b = isolate(options);
  expect(await b.code(key)).toBe("VALID");
  await b.settle();
  expect(await b.code(key)).toBe("VALID");
  return b;
}

/** Calls to the feed's binding (each poll or announcement gets a shard's stub) while it runs. */
const feedCalls = () => {
  const calls = { feed: 0 };
  const namespace = env.REVOCATION_FEED;
  const get = namespace.get.bind(namespace);
  vi.spyOn(namespace, "get").mockImplementation((id, options) => {
    calls.feed++;
    return get(id, options);
  });
  return calls;
};

const breakFeed = () =>
  vi.spyOn(env.REVOCATION_FEED, "get").mockImplementation(() => {
    throw new Error("Durable Object reset because its code was updated.");
  });

const row = (id: string) =>
  env.DB.prepare("select revoked_at, version, enabled, grace_expires_at from api_keys where id = ?")
    .bind(id)
    .first<{ revoked_at: number | null; version: number; enabled: number }>();

describe("two isolates over one D1: every change SPEC lists reaches the other within the bound", () => {
  const changes: {
    name: string;
    change: (admin: string, id: string, plaintext: string) => Promise<{ status: number }>;
    refused: string;
    scopes?: string[];
  }[] = [
    {
      name: "revoke",
      change: (admin, id) => call("DELETE", `/v1/api-keys/${id}`, { token: admin }),
      refused: "REVOKED",
    },
    {
      name: "disable",
      change: (admin, id) =>
        call("PATCH", `/v1/api-keys/${id}`, { token: admin, body: { enabled: false } }),
      refused: "DISABLED",
    },
    {
      name: "narrowed scopes",
      change: (admin, id) =>
        call("PATCH", `/v1/api-keys/${id}`, { token: admin, body: { scopes: [] } }),
      refused: "INSUFFICIENT_SCOPE",
      scopes: ["read"],
    },
    {
      name: "ip_allowlist",
      change: (admin, id) =>
        call("PATCH", `/v1/api-keys/${id}`, { token: admin, body: { ip_allowlist: ["10.0.0.1"] } }),
      refused: "IP_NOT_ALLOWED",
    },
    {
      name: "rotation with no grace",
      change: (admin, id) =>
        call("POST", `/v1/api-keys/${id}/rotate`, {
          token: admin,
          body: { grace_period_seconds: 0 },
        }),
      refused: "REVOKED",
    },
    {
      name: "leak report (policy revoke)",
      change: (_admin, _id, plaintext) => publicReport({ keys: [plaintext] }),
      refused: "REVOKED",
    },
    {
      name: "leak report (policy disable)",
      change: async (admin, id, plaintext) => {
        const key = await call("GET", `/v1/api-keys/${id}`, { token: admin });
        await call("PATCH", `/v1/projects/${key.body.project_id}`, {
          token: admin,
          body: { leak_policy: "disable" },
        });
        return publicReport({ keys: [plaintext] });
      },
      refused: "DISABLED",
    },
  ];

  for (const { name, change, refused, scopes } of changes) {
    it(`${name}: B refuses once it hears the feed, at the latest a bound after the change`, async () => {
      const { admin, project } = await newOrg("bound");
      const key = await newKey(admin, project.id, { scopes: ["read"] });
      const b = await warm(key.key);
      const response = await change(admin, key.id, key.key);
      expect(response.status).toBeLessThan(300);
      // Before B hears anything its memory may still answer: the feed is what changes it.
      expect(await b.code(key.key, scopes)).toBe("VALID");
      b.wait(BOUND);
      expect(await b.code(key.key, scopes)).toBe(refused);
    });
  }

  it("the background poll (every bound/2) is what tells a busy isolate", async () => {
    const { admin, project } = await newOrg("busy");
    const key = await newKey(admin, project.id);
    const b = await warm(key.key);
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    b.wait(BOUND / 2);
    // Still within the bound: memory answers, and a poll starts behind the response.
    expect(await b.code(key.key)).toBe("VALID");
    await b.settle();
    expect(await b.code(key.key)).toBe("REVOKED");
  });

  it("clock skew between isolates changes nothing: only local time differences are used", async () => {
    for (const offset of [-3_600_000, 3_600_000]) {
      const { admin, project } = await newOrg("skew");
      const key = await newKey(admin, project.id);
      const b = await warm(key.key, { offset });
      expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
      b.wait(BOUND);
      expect(await b.code(key.key)).toBe("REVOKED");
    }
  });
});

describe("stale KV, idle isolates, retention overrun", () => {
  /** A KV that keeps serving what it held before `freeze()` (up to KV's 60 s, in the model). */
  function staleKv() {
    const frozen = new Map<string, string | null>();
    let frozenAt: number | null = null;
    const kv = new Proxy(env.KEY_CACHE, {
      get(target, property) {
        if (property === "get") {
          return async (name: string, type?: unknown) => {
            if (frozenAt !== null && Date.now() - frozenAt < 60_000 && frozen.has(name)) {
              const value = frozen.get(name) ?? null;
              return type === "json" && value !== null ? JSON.parse(value) : value;
            }
            return target.get(name, type as "text");
          };
        }
        const value = Reflect.get(target, property, target);
        return typeof value === "function" ? value.bind(target) : value;
      },
    });
    return {
      env: { ...env, KEY_CACHE: kv } as Env,
      freeze: async (name: string) => {
        frozen.set(name, await env.KEY_CACHE.get(name));
        frozenAt = Date.now();
      },
    };
  }

  it("a KV record older than an announced change is never used", async () => {
    const { admin, project } = await newOrg("stalekv");
    const key = await newKey(admin, project.id);
    await warm(key.key);
    const stale = staleKv();
    await stale.freeze(kvKey(await hashKey(key.key)));
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    // A fresh isolate: nothing in memory, KV serves the VALID record from before the revoke.
    const c = isolate({ env: stale.env });
    let code: string | undefined;
    const reads = await storageDuring(async () => {
      code = await c.code(key.key);
    });
    expect(code).toBe("REVOKED");
    expect(reads.d1).toBeGreaterThanOrEqual(1);
  });

  it("an idle isolate's first request waits for the feed, then answers from the change", async () => {
    const { admin, project } = await newOrg("idle");
    const key = await newKey(admin, project.id);
    const b = await warm(key.key);
    b.wait(5 * 60_000);
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    const calls = feedCalls();
    expect(await b.code(key.key)).toBe("REVOKED");
    expect(calls.feed).toBe(1);
  });

  it("feed unreachable: D1 answers (never memory or KV); D1 down too: unavailable", async () => {
    const { admin, project } = await newOrg("nofeed");
    const key = await newKey(admin, project.id);
    const b = await warm(key.key);
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    b.wait(BOUND);
    breakFeed();
    let code: string | undefined;
    const reads = await storageDuring(async () => {
      code = await b.code(key.key);
    });
    expect(code).toBe("REVOKED");
    expect(reads).toMatchObject({ kv: 0, d1: 1 });
    vi.spyOn(env.DB, "prepare").mockImplementation(() => {
      throw new Error("D1_ERROR: Network connection lost.");
    });
    await expect(b.code(key.key)).rejects.toMatchObject({ kind: "unavailable" });
  });

  it("retention overrun: an isolate that missed dropped entries drops its whole cache", async () => {
    const { admin, project } = await newOrg("overrun");
    const key = await newKey(admin, project.id);
    const b = await warm(key.key, { shard: 3 });
    expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
    // The shard drops what B has not read yet (as if B had slept past the retention).
    await env.REVOCATION_FEED.get(env.REVOCATION_FEED.idFromName("shard-3")).dropBefore(
      Date.now() + 1,
    );
    b.wait(BOUND);
    expect(await b.code(key.key)).toBe("REVOKED");
  });

  it("a new isolate reads every retained entry, a page at a time", async () => {
    const shard = env.REVOCATION_FEED.get(env.REVOCATION_FEED.idFromName("shard-7"));
    const entries = Array.from({ length: FEED_PAGE + 5 }, (_, i): FeedEntry => [`h${i}`, 2]);
    await shard.announce(entries);
    const c = isolate({ shard: 7 });
    expect(await c.view.poll(c.core)).toBe(true);
    expect([c.view.minVersion("h0"), c.view.minVersion(`h${FEED_PAGE + 4}`)]).toEqual([2, 2]);
    expect(c.view.requests).toBe(2);
  });

  it("announced but not committed: D1 answers and nothing is cached until the commit", async () => {
    const { admin, project } = await newOrg("phantom");
    const key = await newKey(admin, project.id);
    const b = await warm(key.key);
    const current = await env.DB.prepare("select key_hash, version from api_keys where id = ?")
      .bind(key.id)
      .first<{ key_hash: string; version: number }>();
    await announceChanges(isolate().core, [
      { keyHash: current?.key_hash as string, version: current?.version as number },
    ]);
    b.wait(BOUND);
    for (let i = 0; i < 2; i++) {
      const reads = await storageDuring(async () => expect(await b.code(key.key)).toBe("VALID"));
      expect(reads.d1, "read from D1 every time").toBe(1);
      await b.settle();
    }
  });

  it("concurrent revoke and verify: once the revoke returns and a bound passes, REVOKED", async () => {
    const { admin, project } = await newOrg("race");
    const key = await newKey(admin, project.id);
    const b = await warm(key.key);
    const verifying = Array.from({ length: 10 }, () => b.code(key.key));
    const [revoked] = await Promise.all([
      call("DELETE", `/v1/api-keys/${key.id}`, { token: admin }),
      ...verifying,
    ]);
    expect(revoked.status).toBe(204);
    await b.settle();
    b.wait(BOUND);
    expect(await b.code(key.key)).toBe("REVOKED");
    await b.settle();
    expect(await b.code(key.key)).toBe("REVOKED");
  });
});

describe("the warm path stays storage-free", () => {
  it("a warm verification makes no D1, KV or Durable Object call (counted at the bindings)", async () => {
    const { admin, project } = await newOrg("warm");
    const key = await newKey(admin, project.id);
    const b = await warm(key.key);
    const calls = feedCalls();
    const reads = await storageDuring(async () => {
      for (let i = 0; i < 20; i++) expect(await b.code(key.key)).toBe("VALID");
    });
    expect({ ...reads, ...calls }).toEqual({ kv: 0, d1: 0, feed: 0 });
    expect(b.view.requests).toBeLessThanOrEqual(2);
  });
});

/** The dashboard's revoke form, as a browser posts it. */
async function dashboardRevoke(session: string, id: string) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`${BASE}/dashboard/keys/${id}/revoke`, {
      method: "POST",
      headers: {
        cookie: `__session=${session}`,
        origin: BASE,
        "content-type": "application/x-www-form-urlencoded",
      },
      body: "",
      redirect: "manual",
    }) as Request<unknown, IncomingRequestCfProperties>,
    env,
    ctx,
  );
  await response.text();
  await waitOnExecutionContext(ctx);
  return response;
}

describe("no change without propagation: each step of a revoke fails safe, at every door", () => {
  const DAY = 86_400_000;
  type Door = {
    name: string;
    /** Sets a key up for the change; returns the change and the key it changes. */
    setup: () => Promise<{ run: () => Promise<unknown>; id: string; plaintext: string }>;
    /** The change refused: 503 problem (HTTP), an error page (dashboard), a failed job (cron). */
    refused: (outcome: unknown) => Promise<void> | void;
  };
  const refusedHttp = (outcome: unknown) => {
    expectProblem(outcome as Awaited<ReturnType<typeof call>>, 503);
  };
  const doors: Door[] = [
    {
      name: "HTTP DELETE",
      setup: async () => {
        const { admin, project } = await newOrg("door-http");
        const key = await newKey(admin, project.id);
        return {
          id: key.id,
          plaintext: key.key,
          run: () => call("DELETE", `/v1/api-keys/${key.id}`, { token: admin }),
        };
      },
      refused: refusedHttp,
    },
    {
      name: "dashboard revoke form",
      setup: async () => {
        const { admin, project } = await newOrg("door-dash");
        const key = await newKey(admin, project.id);
        return { id: key.id, plaintext: key.key, run: () => dashboardRevoke(admin, key.id) };
      },
      refused: (outcome) => {
        expect((outcome as Response).status).toBe(503);
      },
    },
    {
      name: "cron grace sweep",
      setup: async () => {
        const { admin, project } = await newOrg("door-sweep");
        const key = await newKey(admin, project.id);
        const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
          token: admin,
          body: { grace_period_seconds: 60 },
        });
        expect(rotated.status).toBe(201);
        const core = createCore(env, { waitUntil: () => {} }, { now: () => Date.now() + 61_000 });
        return { id: key.id, plaintext: key.key, run: () => sweepExpiredGrace(core) };
      },
      refused: async (outcome) => {
        expect(outcome).toMatchObject({ rejected: true });
      },
    },
    {
      name: "scheduled rotation",
      setup: async () => {
        const { admin, project } = await newOrg("door-rotate");
        const key = await newKey(admin, project.id, { rotation_interval_days: 1 });
        const core = createCore(env, { waitUntil: () => {} }, { now: () => Date.now() + DAY + 1 });
        return { id: key.id, plaintext: key.key, run: () => rotateDueKeys(core) };
      },
      refused: async (outcome) => {
        expect(outcome).toMatchObject({ rejected: true });
      },
    },
  ];

  /** Runs the change, turning a thrown error into `{ rejected: true }`. */
  const attempt = (run: () => Promise<unknown>) =>
    run().then(
      (value) => value,
      (error: unknown) => ({ rejected: true, error }),
    );

  for (const door of doors) {
    it(`${door.name}: feed append fails → refused, storage unchanged`, async () => {
      const { run, id } = await door.setup();
      const before = await d1Snapshot();
      const versionBefore = (await row(id))?.version;
      breakFeed();
      const outcome = await attempt(run);
      vi.restoreAllMocks();
      await door.refused(outcome);
      expect(await d1Snapshot()).toEqual(before);
      expect((await row(id))?.version).toBe(versionBefore);
    });

    it(`${door.name}: D1 commit fails → refused, storage unchanged, verification still right`, async () => {
      const { run, id, plaintext } = await door.setup();
      const b = await warm(plaintext);
      const before = await d1Snapshot();
      vi.spyOn(env.DB, "batch").mockImplementation(() => {
        throw new Error("D1_ERROR: Network connection lost.");
      });
      const outcome = await attempt(run);
      vi.restoreAllMocks();
      await door.refused(outcome);
      expect(await d1Snapshot()).toEqual(before);
      // The announcement went out without its commit: B reads D1, which still has the key.
      b.wait(BOUND);
      expect(await b.code(plaintext)).toBe((await row(id))?.revoked_at ? "REVOKED" : "VALID");
    });

    it(`${door.name}: KV overwrite fails → committed, and refused everywhere within the bound`, async () => {
      const { run, id, plaintext } = await door.setup();
      const b = await warm(plaintext);
      vi.spyOn(env.KEY_CACHE, "put").mockImplementation(() => {
        throw new Error("KV PUT failed: 503 Service Unavailable");
      });
      vi.spyOn(env.KEY_CACHE, "delete").mockImplementation(() => {
        throw new Error("KV DELETE failed: 503 Service Unavailable");
      });
      const outcome = await attempt(run);
      vi.restoreAllMocks();
      expect(outcome).not.toMatchObject({ rejected: true });
      const status = (outcome as { status?: number }).status;
      if (status !== undefined) expect(status).toBeLessThan(400);
      expect((await row(id))?.version).toBeGreaterThan(0);
      b.wait(BOUND);
      // Revoked or (rotation) in its grace: either way not the record B held before.
      const { result, record } = await verifyKey(b.core, plaintext);
      expect(record?.version).toBe((await row(id))?.version);
      expect(result.code === "REVOKED" || result.in_grace).toBe(true);
    });
  }
});

it("verify over HTTP still answers (the router's isolate) after a revoke it made", async () => {
  const { admin, project } = await newOrg("self");
  const key = await newKey(admin, project.id);
  expect((await verify(key.key)).body.valid).toBe(true);
  expect((await call("DELETE", `/v1/api-keys/${key.id}`, { token: admin })).status).toBe(204);
  expect((await verify(key.key)).body.code).toBe("REVOKED");
});
