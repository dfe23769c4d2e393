// Concurrency: requests racing on one resource. D1 has no interactive transactions, so every
// exactly-once guarantee rests on conditional updates inside one batch; these tests race
// real requests through the Worker (all in flight together, interleaving at each await).
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { memoryCache } from "../src/core/verify";
import { expectProblem, type Json, send } from "./hardening";
import { newKey, newOrg, until, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

const N = 12;
let org: Org;

beforeAll(async () => {
  org = await newOrg("race");
});

afterEach(() => {
  vi.restoreAllMocks();
});

const issueKey = (fields: Record<string, unknown> = {}) =>
  newKey(org.admin, org.project.id, { name: "race key", scopes: ["*"], ...fields }) as Promise<{
    id: string;
    key: string;
  }>;

const count = async (sql: string, ...params: unknown[]) =>
  (
    await env.DB.prepare(sql)
      .bind(...params)
      .first<{ n: number }>()
  )?.n;

const statuses = (responses: { status: number }[]) =>
  responses.map((r) => r.status).sort((x, y) => x - y);

describe("rotation races", () => {
  for (const grace of [0, 3600]) {
    it(`${N} parallel rotations (grace ${grace}s): exactly one 201, the rest 409`, async () => {
      const key = await issueKey({ rotation_webhook_url: "https://example.com/hooks/race" });
      const responses = await Promise.all(
        Array.from({ length: N }, () =>
          send("POST", `/v1/api-keys/${key.id}/rotate`, {
            token: org.admin,
            body: { grace_period_seconds: grace },
          }),
        ),
      );
      expect(statuses(responses)).toEqual([201, ...Array(N - 1).fill(409)]);
      for (const loser of responses.filter((r) => r.status === 409)) expectProblem(loser, 409);
      const winner = responses.find((r) => r.status === 201)?.body as Json;

      // One successor, one audit event, one webhook delivery; the old key points at it.
      expect(
        await count("select count(*) as n from api_keys where rotated_from_key_id = ?", key.id),
      ).toBe(1);
      expect(
        await count(
          "select count(*) as n from audit_events where action = 'api_key.rotated' and target_id = ?",
          key.id,
        ),
      ).toBe(1);
      expect(
        await count(
          "select count(*) as n from webhook_deliveries where key_id = ?",
          winner.new_key_id,
        ),
      ).toBe(1);
      const old = await send("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
      expect(old.body.replaced_by_key_id).toBe(winner.new_key_id);

      expect((await verify(winner.key)).body).toMatchObject({ valid: true });
      expect((await verify(key.key)).body.valid).toBe(grace > 0);
    });
  }

  it("rotation racing revocation: the old key ends revoked, a successor only if rotate won", async () => {
    for (let round = 0; round < 5; round++) {
      const key = await issueKey();
      const [rotated, revoked] = await Promise.all([
        send("POST", `/v1/api-keys/${key.id}/rotate`, {
          token: org.admin,
          body: { grace_period_seconds: 3600 },
        }),
        send("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin }),
      ]);
      expect(revoked.status).toBe(204);
      expect([201, 409]).toContain(rotated.status);
      expect((await verify(key.key)).body.code).toBe("REVOKED");
      const successors = await count(
        "select count(*) as n from api_keys where rotated_from_key_id = ?",
        key.id,
      );
      expect(successors).toBe(rotated.status === 201 ? 1 : 0);
      if (rotated.status === 201) expect((await verify(rotated.body.key)).body.valid).toBe(true);
    }
  });
});

describe("revocation races", () => {
  it(`${N} parallel revocations: all succeed, one audit event`, async () => {
    const key = await issueKey();
    const responses = await Promise.all(
      Array.from({ length: N }, (_, i) =>
        i % 3 === 0
          ? send("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin })
          : i % 3 === 1
            ? send("DELETE", `/v1/organizations/${org.org}/api-keys/${key.id}`, {
                token: org.admin,
              })
            : send("DELETE", `/api/v1/projects/${org.project.id}/keys/${key.id}`, {
                token: org.admin,
              }),
      ),
    );
    for (const response of responses) expect(response.status).toBeLessThan(300);
    expect(
      await count(
        "select count(*) as n from audit_events where action = 'api_key.revoked' and target_id = ?",
        key.id,
      ),
    ).toBe(1);
  });

  it("revoke racing verifies: once revoke returns, no verify in this isolate says valid", async () => {
    const key = await issueKey();
    expect((await verify(key.key)).body.valid).toBe(true);
    let revokedAt = Number.POSITIVE_INFINITY;
    const late: Json[] = [];
    let earlyValid = 0;
    let stop = false;
    // Verifiers hammer the key; each notes whether it started after revoke had returned.
    const verifier = async () => {
      while (!stop) {
        const startedAfterRevoke = performance.now() > revokedAt;
        const response = await verify(key.key);
        expect(response.status).toBe(200);
        if (startedAfterRevoke) late.push(response.body);
        else if (response.body.valid) earlyValid++;
        // A warm verification never leaves the microtask queue: let timers (and revoke) run.
        await new Promise((resolve) => setTimeout(resolve, 0));
      }
    };
    const verifiers = Array.from({ length: 8 }, verifier);
    // Gates, not sleeps: revoke once verifiers have answered valid, stop once some started
    // after it returned.
    await until(() => earlyValid > 0);
    const revoke = await send("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });
    revokedAt = performance.now();
    expect(revoke.status).toBe(204);
    await until(() => late.length >= 8);
    stop = true;
    await Promise.all(verifiers);
    expect(earlyValid).toBeGreaterThan(0); // the race really overlapped
    expect(late.length).toBeGreaterThan(0);
    for (const body of late) expect(body).toMatchObject({ valid: false, code: "REVOKED" });
  });

  it("revoke racing verifies: the other isolates of this location (KV) agree once it returns", async () => {
    for (let round = 0; round < 10; round++) {
      const key = await issueKey();
      memoryCache.clear();
      const [, revoke] = await Promise.all([
        verify(key.key),
        send("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin }),
        verify(key.key),
      ]);
      expect(revoke.status).toBe(204);
      // A fresh isolate of this location: no memory, reads KV (then D1).
      memoryCache.clear();
      expect((await verify(key.key)).body, `round ${round}`).toMatchObject({ code: "REVOKED" });
    }
  });

  it("a verification whose D1 read predates a revoke cannot re-validate the key through KV", async () => {
    const key = await issueKey();
    memoryCache.clear();
    for (const { name } of (await env.KEY_CACHE.list()).keys) await env.KEY_CACHE.delete(name);

    // The verification's D1 read runs, then its answer is held back until the revoke has
    // returned: the read saw the key live, the revoke published after it.
    let releaseRead: () => void = () => {};
    const readHeld = new Promise<void>((resolve) => {
      releaseRead = resolve;
    });
    let readDone: () => void = () => {};
    const readRan = new Promise<void>((resolve) => {
      readDone = resolve;
    });
    let held = 0;
    const prepare = env.DB.prepare;
    vi.spyOn(env.DB, "prepare").mockImplementation((sql: string) => {
      const statement = prepare.call(env.DB, sql);
      if (!sql.includes("key_hash")) return statement;
      held++;
      return holdResults(statement, readHeld, readDone);
    });
    const slowVerify = verify(key.key);
    // A gate, not a sleep: go on once the verification's D1 read has really run.
    await readRan;
    vi.restoreAllMocks();
    expect(held).toBe(1);
    const revoke = await send("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(revoke.status).toBe(204);
    releaseRead();
    await slowVerify; // began before the revoke returned: either answer is allowed

    // After the revoke returned, every isolate of this location must say REVOKED.
    expect((await verify(key.key)).body.code).toBe("REVOKED");
    memoryCache.clear();
    expect((await verify(key.key)).body).toMatchObject({ valid: false, code: "REVOKED" });
  });
});

/**
 * A statement whose reads execute now but resolve only once `gate` opens; `ran` is told as
 * soon as the read has executed.
 */
function holdResults(
  statement: D1PreparedStatement,
  gate: Promise<void>,
  ran: () => void,
): D1PreparedStatement {
  return new Proxy(statement, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property === "bind") {
        return (...args: unknown[]) => holdResults(value.apply(target, args), gate, ran);
      }
      return async (...args: unknown[]) => {
        const result = await value.apply(target, args);
        ran();
        await gate;
        return result;
      };
    },
  });
}

describe("project races", () => {
  it(`${N} parallel webhook-secret rotations: one wins, the rest 409, and the winner's secret is live`, async () => {
    const project = await send("POST", "/v1/projects", { token: org.admin, body: { name: "s" } });
    const original = project.body.webhook_signing_secret as string;
    const responses = await Promise.all(
      Array.from({ length: N }, () =>
        send("POST", `/v1/projects/${project.body.id}/webhook-secret`, { token: org.admin }),
      ),
    );
    expect(statuses(responses)).toEqual([200, ...Array(N - 1).fill(409)]);
    const winner = responses.find((r) => r.status === 200)?.body as Json;
    const current = await send("GET", `/v1/projects/${project.body.id}/webhook-secret`, {
      token: org.admin,
    });
    expect(current.body.webhook_signing_secret).toBe(winner.webhook_signing_secret);
    expect(current.body.previous_webhook_signing_secret).toBe(original);
    expect(
      await count(
        "select count(*) as n from audit_events where action = 'project.webhook_secret_rotated' and target_id = ?",
        project.body.id,
      ),
    ).toBe(1);
  });

  it(`${N} parallel creations of one environment name: one 201, the rest 409, one audit event`, async () => {
    const responses = await Promise.all(
      Array.from({ length: N }, () =>
        send("POST", `/v1/projects/${org.project.id}/environments`, {
          token: org.admin,
          body: { name: "staging" },
        }),
      ),
    );
    expect(statuses(responses)).toEqual([201, ...Array(N - 1).fill(409)]);
    expect(
      await count(
        "select count(*) as n from audit_events where action = 'environment.created' and project_id = ? and json_extract(metadata, '$.name') = 'staging'",
        org.project.id,
      ),
    ).toBe(1);
  });

  it("an update racing a revocation never brings the key back", async () => {
    for (let round = 0; round < 5; round++) {
      const key = await issueKey();
      const [patched, revoked] = await Promise.all([
        send("PATCH", `/v1/api-keys/${key.id}`, {
          token: org.admin,
          body: { name: "renamed", scopes: ["more"] },
        }),
        send("DELETE", `/v1/api-keys/${key.id}`, { token: org.admin }),
      ]);
      expect(revoked.status).toBe(204);
      expect([200, 409]).toContain(patched.status);
      const after = await send("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
      expect(after.body.revoked_at).not.toBeNull();
      memoryCache.clear();
      expect((await verify(key.key)).body.code).toBe("REVOKED");
    }
  });
});
