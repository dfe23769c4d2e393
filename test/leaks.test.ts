// SPEC Part 3 "Leaked keys": the GitHub secret-scanning door (signatures over the raw body
// with locally generated P-256 keys in GitHub's document shape), the public report door
// (no credentials, 60 an hour per client, format-checked before any read), and what a
// genuine report does to a key: leaked_at once, the audit event, the project's policy.
import { env } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { fromBase64 } from "../src/core/crypto";
import { derToRaw, rawToDer } from "../src/core/leaks/der";
import { fetchedGitHubKeys, GITHUB_KEYS_URL } from "../src/core/leaks/github";
import { storageDuring } from "./bindings";
import { dash } from "./dashboard-harness";
import { addEndpoint, deliverNow, queued, verifySignature } from "./events-harness";
import { expectProblem } from "./hardening";
import { call, clearOfBoundary, newKey, newOrg, until, verify } from "./helpers";
import {
  type GitHubSigner,
  gitHubReport,
  gitHubSigner,
  keySet,
  match,
  publicReport,
  sha256Hex,
  unknownKey,
} from "./leaks-harness";
import type { Sent } from "./webhooks-harness";

type Org = Awaited<ReturnType<typeof newOrg>>;

afterEach(() => {
  vi.restoreAllMocks();
  fetchedGitHubKeys.clear();
});

const getKey = async (org: Org, id: string) =>
  (await call("GET", `/v1/api-keys/${id}`, { token: org.admin })).body;

const leakEvents = async (org: Org, keyId: string) => {
  const log = await call("GET", `/v1/organizations/${org.org}/audit-log?limit=100`, {
    token: org.admin,
  });
  expect(log.status, log.text).toBe(200);
  return log.body.audit_events.filter(
    (e: { action: string; target_id: string }) =>
      e.action === "api_key.leaked" && e.target_id === keyId,
  );
};

const setPolicy = async (org: Org, policy: string) => {
  const patched = await call("PATCH", `/v1/projects/${org.project.id}`, {
    token: org.admin,
    body: { leak_policy: policy },
  });
  expect(patched.status, patched.text).toBe(200);
  expect(patched.body.leak_policy).toBe(policy);
};

let github: GitHubSigner;
beforeAll(async () => {
  github = await gitHubSigner("github-key-1");
});

describe("DER signatures into WebCrypto's r ‖ s", () => {
  it("converts r and s of every length, padding short ones and dropping sign bytes", () => {
    for (const [rFirst, sFirst] of [
      [0x80, 0x01], // r needs a sign byte; s does not
      [0x00, 0x7f], // r one byte short (leading zero); s plain
      [0x00, 0x00], // both shorter
    ]) {
      const raw = new Uint8Array(64).map((_, i) => (i * 37 + 11) & 0xff);
      raw[0] = rFirst as number;
      raw[32] = sFirst as number;
      const der = rawToDer(raw);
      expect(derToRaw(der)).toEqual(raw);
    }
  });

  it("refuses anything that is not one strict DER signature", () => {
    const raw = new Uint8Array(64).fill(0x42);
    const der = rawToDer(raw);
    expect(derToRaw(der)).toEqual(raw);
    const bad: Uint8Array[] = [
      new Uint8Array(0),
      der.subarray(0, der.length - 1), // truncated
      new Uint8Array([...der, 0]), // trailing byte
      new Uint8Array([0x31, ...der.subarray(1)]), // a SET, not a SEQUENCE
      new Uint8Array([0x30, 6, 0x02, 1, 0x81, 0x02, 1, 0x01]), // negative r
      new Uint8Array([0x30, 7, 0x02, 2, 0x00, 0x01, 0x02, 1, 0x01]), // r not minimal
      new Uint8Array([0x30, 36, 0x02, 33, 1, ...new Uint8Array(32), 0x02, 1, 1]), // r over 32 bytes
      raw, // r ‖ s itself
    ];
    for (const bytes of bad) expect(derToRaw(bytes)).toBeNull();
  });
});

describe("POST /v1/leaks/github: GitHub's signature over the raw body", () => {
  it("accepts GitHub's own signed sample (its published key; an s of 31 bytes)", async () => {
    // docs.github.com, "Secret scanning partner program": the sample request, and the key
    // GitHub publishes under that identifier.
    const identifier = "bcb53661c06b4728e59d897fb6165d5c9cda0fd9cdf9d09ead458168deb7518c";
    const body =
      '[{"source":"commit","token":"some_token","type":"some_type","url":"https://example.com/base-repo-url/"}]';
    const signature =
      "MEQCIQDaMKqrGnE27S0kgMrEK0eYBmyG0LeZismAEz/BgZyt7AIfXt9fErtRS4XaeSt/AO1RtBY66YcAdjxji410VQV4xg==";
    expect(fromBase64(signature)[3 + 33 + 2]).toBe(0x1f); // s: 31 bytes, padded to 32
    const keys = JSON.stringify({
      public_keys: [
        {
          key_identifier: identifier,
          key: "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEYAGMWO8XgCamYKMJS6jc/qgvSlAd\nAjPuDPRcXU22YxgBrz+zoN19MzuRyW87qEt9/AmtoNP5GrobzUvQSyJFVw==\n-----END PUBLIC KEY-----\n",
          is_current: true,
        },
      ],
    });
    const send = (sig: string) =>
      call("POST", "/v1/leaks/github", {
        rawBody: body,
        headers: {
          "content-type": "application/json",
          "github-public-key-identifier": identifier,
          "github-public-key-signature": sig,
        },
        env: { GITHUB_SECRET_SCANNING_KEYS: keys },
      });
    const answered = await send(signature);
    expect(answered.status, answered.text).toBe(200);
    expect(answered.body).toEqual([
      {
        token_hash: await sha256Hex("some_token"),
        token_type: "some_type",
        label: "false_positive",
      },
    ]);
    // One bit of s flipped: refused.
    const flipped = fromBase64(signature);
    flipped[flipped.length - 1] = (flipped[flipped.length - 1] as number) ^ 1;
    expectProblem(await send(btoa(String.fromCharCode(...flipped))), 401);
  });

  it("labels each token: Keygate keys (active or revoked, any tenant) true, others false", async () => {
    const a = await newOrg("gh-labels-a");
    const b = await newOrg("gh-labels-b");
    const active = await newKey(a.admin, a.project.id);
    const revoked = await newKey(b.admin, b.project.id);
    await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: b.admin });
    const stranger = await unknownKey();
    const tokens = [active.key, "ghp_not_a_keygate_token", revoked.key, stranger];
    const body = JSON.stringify(tokens.map((token) => match(token)));
    const answered = await gitHubReport(github, body);
    expect(answered.status, answered.text).toBe(200);
    expect(answered.body).toEqual(
      await Promise.all(
        tokens.map(async (token, i) => ({
          token_hash: await sha256Hex(token),
          token_type: "keygate_api_key",
          label: i === 0 || i === 2 ? "true_positive" : "false_positive",
        })),
      ),
    );
    expect((await getKey(a, active.id)).leaked_at).toMatch(/Z$/);
    expect((await getKey(b, revoked.id)).leaked_at).toMatch(/Z$/);
    const [event] = await leakEvents(a, active.id);
    expect(event).toMatchObject({
      actor_type: "github",
      actor_id: "github-secret-scanning",
      metadata: {
        source: "github",
        url: "https://github.com/octo/app/blob/main/.env",
        found_in: "commit",
        policy: "revoke",
        applied: "revoked",
      },
    });
  });

  it("refuses a bad signature, an unknown key id and missing headers (401), changing nothing", async () => {
    const org = await newOrg("gh-refused");
    const key = await newKey(org.admin, org.project.id);
    const body = JSON.stringify([match(key.key)]);
    const other = await gitHubSigner("github-key-1"); // same id, another key pair
    const refusals = [
      await gitHubReport(github, body, { signedBody: `${body} ` }),
      await gitHubReport(other, body, { keys: keySet(github) }),
      await gitHubReport(await gitHubSigner("unknown-id"), body, { keys: keySet(github) }),
      await gitHubReport(github, body, { headers: { "github-public-key-signature": "" } }),
      await gitHubReport(github, body, { headers: { "github-public-key-identifier": "" } }),
      await gitHubReport(github, body, { headers: { "github-public-key-signature": "%%%" } }),
      await call("POST", "/v1/leaks/github", {
        body,
        env: { GITHUB_SECRET_SCANNING_KEYS: keySet(github) },
      }),
    ];
    for (const refused of refusals) {
      const problem = expectProblem(refused, 401);
      expect(problem.detail).toMatch(/GitHub signature/);
    }
    expect(await verify(key.key)).toMatchObject({ body: { valid: true } });
    expect((await getKey(org, key.id)).leaked_at).toBeNull();
  });

  it("refuses the same JSON re-serialised (other bytes than those signed)", async () => {
    const org = await newOrg("gh-bytes");
    const key = await newKey(org.admin, org.project.id);
    const matches = [match(key.key)];
    const signedBody = JSON.stringify(matches, null, 2);
    expect(JSON.parse(signedBody)).toEqual(matches);
    expectProblem(await gitHubReport(github, JSON.stringify(matches), { signedBody }), 401);
    expect((await getKey(org, key.id)).leaked_at).toBeNull();
    // The bytes as signed: accepted.
    expect((await gitHubReport(github, signedBody)).status).toBe(200);
    expect((await getKey(org, key.id)).leaked_at).not.toBeNull();
  });

  it("takes any key of a rotated set: the old one (not current) while it is listed", async () => {
    const old = await gitHubSigner("github-old", false);
    const current = await gitHubSigner("github-new", true);
    const keys = keySet(old, current);
    const body = JSON.stringify([match("not_a_key")]);
    expect((await gitHubReport(old, body, { keys })).status).toBe(200);
    expect((await gitHubReport(current, body, { keys })).status).toBe(200);
    // Dropped from the set: refused.
    expectProblem(await gitHubReport(old, body, { keys: keySet(current) }), 401);
  });

  it("validates the body once signed: 400 for a match without a token, over 1 000 matches", async () => {
    for (const body of [
      JSON.stringify([{ type: "t", url: "u", source: "s" }]),
      JSON.stringify({ token: "x" }),
      JSON.stringify(Array.from({ length: 1001 }, () => match("x"))),
    ]) {
      expectProblem(await gitHubReport(github, body), 400);
    }
    const empty = await gitHubReport(github, "[]");
    expect(empty.status).toBe(200);
    expect(empty.body).toEqual([]);
  });

  it("takes 1 000 matches in one request (bodies over 64 KiB)", async () => {
    const org = await newOrg("gh-many");
    const key = await newKey(org.admin, org.project.id);
    const matches = Array.from({ length: 1000 }, (_, i) =>
      match(i === 999 ? key.key : `not_a_key_${i}`, {
        url: `https://github.com/octo/app/blob/${"a".repeat(40)}/file-${i}.txt`,
      }),
    );
    const body = JSON.stringify(matches);
    expect(body.length).toBeGreaterThan(64 * 1024);
    const answered = await gitHubReport(github, body);
    expect(answered.status, answered.text.slice(0, 300)).toBe(200);
    expect(answered.body).toHaveLength(1000);
    expect(answered.body[999].label).toBe("true_positive");
    expect(answered.body[0].label).toBe("false_positive");
  });

  it("without the var, fetches GitHub's keys once and keeps them (an unknown id fetches again)", async () => {
    const rotatedIn = await gitHubSigner("github-later");
    let published = keySet(github);
    const fetches = vi.spyOn(globalThis, "fetch").mockImplementation(async (input) => {
      expect(String(input instanceof Request ? input.url : input)).toBe(GITHUB_KEYS_URL);
      return new Response(published, { headers: { "content-type": "application/json" } });
    });
    const unset = { keys: "" };
    const body = JSON.stringify([match("not_a_key")]);
    expect((await gitHubReport(github, body, unset)).status).toBe(200);
    expect((await gitHubReport(github, body, unset)).status).toBe(200);
    expect(fetches).toHaveBeenCalledTimes(1);
    // GitHub rotates: an identifier the kept set lacks fetches again, once it is a minute old.
    published = keySet(github, rotatedIn);
    expectProblem(await gitHubReport(rotatedIn, body, unset), 401);
    expect(fetches).toHaveBeenCalledTimes(1);
    (fetchedGitHubKeys.current as { at: number }).at -= 60_000;
    expect((await gitHubReport(rotatedIn, body, unset)).status).toBe(200);
    expect(fetches).toHaveBeenCalledTimes(2);
    // Kept an hour: then fetched again.
    (fetchedGitHubKeys.current as { at: number }).at -= 3_600_000;
    expect((await gitHubReport(github, body, unset)).status).toBe(200);
    expect(fetches).toHaveBeenCalledTimes(3);
  });

  it("answers 503 when GitHub's keys cannot be fetched", async () => {
    vi.spyOn(globalThis, "fetch").mockImplementation(
      async () => new Response("no", { status: 502 }),
    );
    const body = JSON.stringify([match("not_a_key")]);
    expectProblem(await gitHubReport(github, body, { keys: "" }), 503);
  });

  it("a malformed GITHUB_SECRET_SCANNING_KEYS is the misconfiguration answer, on every request", async () => {
    for (const bad of ["{", '{"public_keys":[]}', '{"public_keys":[{"key_identifier":"x"}]}']) {
      const answered = await call("GET", "/healthz", {
        env: { GITHUB_SECRET_SCANNING_KEYS: bad },
      });
      const problem = expectProblem(answered, 500);
      expect(problem.detail).toContain("GITHUB_SECRET_SCANNING_KEYS");
    }
  });
});

describe("POST /v1/leaks: anyone may report, and learns nothing", () => {
  it("answers 202 with the count for garbage and genuine keys alike", async () => {
    const org = await newOrg("public");
    const key = await newKey(org.admin, org.project.id);
    const genuine = await publicReport({ keys: [key.key], url: "https://pastebin.com/x" });
    const garbage = await publicReport({ keys: ["nope"] });
    const unknown = await publicReport({ keys: [await unknownKey()] });
    for (const answered of [genuine, garbage, unknown]) {
      expect(answered.status, answered.text).toBe(202);
      expect(answered.body).toEqual({ received: 1 });
    }
    expect((await publicReport({ keys: ["a", "b", key.key] })).body).toEqual({ received: 3 });
    expect((await getKey(org, key.id)).leaked_at).not.toBeNull();
    const [event] = await leakEvents(org, key.id);
    expect(event).toMatchObject({
      actor_type: "report",
      actor_id: "anonymous",
      ip: null,
      metadata: { source: "report", url: "https://pastebin.com/x", policy: "revoke" },
    });
  });

  it("answers 400 for a malformed body", async () => {
    for (const body of [
      {},
      { keys: [] },
      { keys: "capy_live_x" },
      { keys: [1] },
      { keys: Array.from({ length: 1001 }, () => "x") },
      { keys: ["x"], url: "u".repeat(2049) },
      { keys: ["x"], extra: true },
    ]) {
      expectProblem(await publicReport(body), 400);
    }
  });

  it("the 61st report in an hour from one address is a 429 with Retry-After; others go on", async () => {
    const ip = "2001:db8:7:7::1";
    // The window is the UTC hour: not across its end.
    await clearOfBoundary(3_600_000, 20_000);
    for (let i = 0; i < 60; i++) {
      // Another address of the same /64: the same client.
      const answered = await publicReport({ keys: ["x"] }, i % 2 ? ip : "2001:db8:7:7::ffff");
      expect(answered.status, `report ${i + 1}`).toBe(202);
    }
    const refused = await publicReport({ keys: ["x"] }, ip);
    expectProblem(refused, 429);
    const retryAfter = Number(refused.headers.get("retry-after"));
    expect(retryAfter).toBeGreaterThan(0);
    expect(retryAfter).toBeLessThanOrEqual(3600);
    expect((await publicReport({ keys: ["x"] }, "2001:db8:7:8::1")).status).toBe(202);
  });

  it("drops strings that fail the format or checksum without a storage read", async () => {
    const key = await unknownKey();
    const broken = `${key.slice(0, -1)}${key.endsWith("0") ? "1" : "0"}`; // checksum fails
    const reads = await storageDuring(() =>
      publicReport({ keys: [broken, "capy_live_short", "", "x".repeat(500)] }),
    );
    expect(reads.d1).toBe(0);
    expect(reads.kv).toBe(0);
    // The control: a well-formed key is looked up (one query for the whole report).
    expect((await storageDuring(() => publicReport({ keys: [key, broken] }))).d1).toBe(1);
  });
});

describe("a genuine report: leaked_at once, the audit event, the project's policy", () => {
  it("a new project's policy is revoke; create and PATCH set it; bad values are a 400", async () => {
    const org = await newOrg("policy-field");
    expect(org.project.leak_policy).toBe("revoke");
    const created = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "n", leak_policy: "notify" },
    });
    expect(created.body.leak_policy).toBe("notify");
    expect(
      (await call("GET", `/v1/projects/${created.body.id}`, { token: org.admin })).body.leak_policy,
    ).toBe("notify");
    const bad = await call("PATCH", `/v1/projects/${org.project.id}`, {
      token: org.admin,
      body: { leak_policy: "ignore" },
    });
    expect(expectProblem(bad, 400).errors[0].location).toBe("body.leak_policy");
  });

  it("revoke (the default): verify answers REVOKED at once", async () => {
    const org = await newOrg("policy-revoke");
    // It expires in 30 days: revoked, it owes no expiry event any more (as any revoke).
    const expiresAt = new Date(Date.now() + 30 * 86_400_000).toISOString();
    const key = await newKey(org.admin, org.project.id, { expires_at: expiresAt });
    const notice = () =>
      env.DB.prepare("select expiry_notice_at as at from api_keys where id = ?")
        .bind(key.id)
        .first<{ at: number | null }>();
    expect((await notice())?.at).not.toBeNull();
    expect((await verify(key.key)).body.code).toBe("VALID");
    await publicReport({ keys: [key.key] });
    expect((await verify(key.key)).body.code).toBe("REVOKED");
    const after = await getKey(org, key.id);
    expect(after.revoked_at).not.toBeNull();
    expect(after.leaked_at).toBe(after.revoked_at);
    expect((await notice())?.at).toBeNull();
  });

  it("disable: verify answers DISABLED, the key is not revoked", async () => {
    const org = await newOrg("policy-disable");
    await setPolicy(org, "disable");
    const key = await newKey(org.admin, org.project.id);
    expect((await verify(key.key)).body.code).toBe("VALID");
    await publicReport({ keys: [key.key] });
    expect((await verify(key.key)).body.code).toBe("DISABLED");
    expect(await getKey(org, key.id)).toMatchObject({ enabled: false, revoked_at: null });
    expect((await leakEvents(org, key.id))[0].metadata).toMatchObject({
      policy: "disable",
      applied: "disabled",
    });
  });

  it("notify: the key still verifies, with leaked_at set", async () => {
    const org = await newOrg("policy-notify");
    await setPolicy(org, "notify");
    const key = await newKey(org.admin, org.project.id);
    await publicReport({ keys: [key.key] });
    expect((await verify(key.key)).body.code).toBe("VALID");
    const after = await getKey(org, key.id);
    expect(after).toMatchObject({ enabled: true, revoked_at: null, is_active: true });
    expect(after.leaked_at).not.toBeNull();
    expect((await leakEvents(org, key.id))[0].metadata).toMatchObject({
      policy: "notify",
      applied: "none",
    });
  });

  it("a repeat changes nothing and records nothing (either door)", async () => {
    const org = await newOrg("repeat");
    await setPolicy(org, "notify");
    const key = await newKey(org.admin, org.project.id);
    await publicReport({ keys: [key.key, key.key] });
    const first = await getKey(org, key.id);
    expect(await leakEvents(org, key.id)).toHaveLength(1);
    // A later policy change does not apply to a key already reported.
    await setPolicy(org, "revoke");
    await publicReport({ keys: [key.key] });
    expect((await gitHubReport(github, JSON.stringify([match(key.key)]))).body[0].label).toBe(
      "true_positive",
    );
    expect(await getKey(org, key.id)).toEqual(first);
    expect(await leakEvents(org, key.id)).toHaveLength(1);
    expect((await verify(key.key)).body.code).toBe("VALID");
  });

  it("an org-scoped key is always revoked", async () => {
    const org = await newOrg("org-scoped");
    await setPolicy(org, "notify");
    const created = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org key", scopes: [] },
    });
    expect(created.status, created.text).toBe(201);
    await publicReport({ keys: [created.body.plaintext_api_key] });
    expect((await verify(created.body.plaintext_api_key)).body.code).toBe("REVOKED");
    expect((await leakEvents(org, created.body.api_key.id))[0].metadata).toMatchObject({
      policy: "revoke",
      applied: "revoked",
    });
  });

  it("a key in its grace after rotation: the policy applies to it, the successor is untouched", async () => {
    const org = await newOrg("grace");
    const key = await newKey(org.admin, org.project.id);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 3600 },
    });
    expect((await verify(key.key)).body).toMatchObject({ code: "VALID", in_grace: true });
    await publicReport({ keys: [key.key] });
    expect((await verify(key.key)).body.code).toBe("REVOKED");
    expect((await verify(rotated.body.key)).body.code).toBe("VALID");
    expect((await getKey(org, rotated.body.new_key_id)).leaked_at).toBeNull();
  });

  it("a successor of a leaked (notify) key is not marked leaked", async () => {
    const org = await newOrg("successor");
    await setPolicy(org, "notify");
    const key = await newKey(org.admin, org.project.id);
    await publicReport({ keys: [key.key] });
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 0 },
    });
    expect(rotated.status, rotated.text).toBe(201);
    expect((await getKey(org, rotated.body.new_key_id)).leaked_at).toBeNull();
  });

  it("a leak report racing a rotation: the leaked key ends revoked, a successor stays valid", async () => {
    // Run side by side, the rotation commits first here (the leak then retries on the new
    // version); the opposite order is forced in the next test.
    const org = await newOrg("race");
    const keys = await Promise.all(
      Array.from({ length: 8 }, () => newKey(org.admin, org.project.id)),
    );
    const outcomes = await Promise.all(
      keys.map(async (key) => {
        const [rotation] = await Promise.all([
          call("POST", `/v1/api-keys/${key.id}/rotate`, {
            token: org.admin,
            body: { grace_period_seconds: 3600 },
          }),
          publicReport({ keys: [key.key] }, "192.0.2.77"),
        ]);
        return { key, rotation };
      }),
    );
    for (const { key, rotation } of outcomes) {
      // Whichever committed first, the reported key is revoked and marked once.
      expect((await verify(key.key)).body.code).toBe("REVOKED");
      const leaked = await getKey(org, key.id);
      expect(leaked.leaked_at).not.toBeNull();
      expect(await leakEvents(org, key.id)).toHaveLength(1);
      if (rotation.status === 201) {
        // The rotation won: its successor is a new secret, not leaked, and valid.
        expect((await verify(rotation.body.key)).body.code).toBe("VALID");
        expect((await getKey(org, rotation.body.new_key_id)).leaked_at).toBeNull();
        expect(leaked.replaced_by_key_id).toBe(rotation.body.new_key_id);
      } else {
        // The leak won: the rotation found the key changed (409) and minted nothing.
        expect(rotation.status, rotation.text).toBe(409);
        expect(leaked.replaced_by_key_id).toBeNull();
      }
    }
  });

  it("a leak committed while a rotation is between its read and its commit: the rotation gets 409", async () => {
    const org = await newOrg("race-held");
    const key = await newKey(org.admin, org.project.id);
    // Hold the rotation's announcements (made after it read the key, before it commits).
    const held: (() => void)[] = [];
    let holding = true;
    const namespace = env.REVOCATION_FEED;
    const get = namespace.get.bind(namespace);
    vi.spyOn(namespace, "get").mockImplementation((id, options) => {
      const stub = get(id, options);
      if (!holding) return stub;
      return {
        announce: async (entries: Parameters<typeof stub.announce>[0]) => {
          await new Promise<void>((release) => held.push(release));
          return stub.announce(entries);
        },
      } as unknown as typeof stub;
    });
    const rotation = call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 3600 },
    });
    await until(() => held.length === 16, "the rotation's announcements");
    holding = false;
    expect((await publicReport({ keys: [key.key] })).status).toBe(202);
    for (const release of held) release();
    expectProblem(await rotation, 409);
    expect((await verify(key.key)).body.code).toBe("REVOKED");
    const after = await getKey(org, key.id);
    expect(after).toMatchObject({ replaced_by_key_id: null });
    expect(after.leaked_at).not.toBeNull();
  });

  it("one report naming keys of two organizations: each handled in its own", async () => {
    const a = await newOrg("tenant-a");
    const b = await newOrg("tenant-b");
    await setPolicy(a, "notify");
    const keyA = await newKey(a.admin, a.project.id);
    const keyB = await newKey(b.admin, b.project.id);
    await publicReport({ keys: [keyA.key, keyB.key] });
    expect((await verify(keyA.key)).body.code).toBe("VALID");
    expect((await verify(keyB.key)).body.code).toBe("REVOKED");
    expect(await leakEvents(a, keyA.id)).toHaveLength(1);
    expect(await leakEvents(b, keyB.id)).toHaveLength(1);
    // Neither organization's log shows the other's key.
    expect(await leakEvents(a, keyB.id)).toHaveLength(0);
    expect(await leakEvents(b, keyA.id)).toHaveLength(0);
  });

  it("a policy change that cannot be announced is not made: 503, the key as it was", async () => {
    const org = await newOrg("feed-down");
    const key = await newKey(org.admin, org.project.id);
    vi.spyOn(env.REVOCATION_FEED, "get").mockImplementation(() => {
      throw new Error("Durable Object reset because its code was updated.");
    });
    expectProblem(await publicReport({ keys: [key.key] }), 503);
    vi.restoreAllMocks();
    expect((await getKey(org, key.id)).leaked_at).toBeNull();
    expect(await leakEvents(org, key.id)).toHaveLength(0);
    expect((await verify(key.key)).body.code).toBe("VALID");
  });
});

describe("the dashboard marks leaked keys and sets the policy", () => {
  it("a banner on the key's page, a badge in the project's and the organization's key lists", async () => {
    const org = await newOrg("dash-leak");
    await setPolicy(org, "notify");
    const leaked = await newKey(org.admin, org.project.id, { name: "Leaky" });
    const clean = await newKey(org.admin, org.project.id, { name: "Clean" });
    const orgKey = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "Org leaky", scopes: [] },
    });
    await publicReport({ keys: [leaked.key, orgKey.body.plaintext_api_key] });
    const badges = (html: string) => html.match(/title="Reported leaked"/g)?.length ?? 0;

    const page = await dash("GET", `/dashboard/keys/${leaked.id}`, { session: org.admin });
    expect(page.text).toContain("This key was reported leaked.");
    expect(page.text).toContain("<code>notify</code>");
    expect(page.text).toContain("It still verifies");
    const cleanPage = await dash("GET", `/dashboard/keys/${clean.id}`, { session: org.admin });
    expect(cleanPage.text).not.toContain("reported leaked");
    const orgPage = await dash("GET", `/dashboard/keys/${orgKey.body.api_key.id}`, {
      session: org.admin,
    });
    expect(orgPage.text).toContain("<code>revoke</code>");
    expect(orgPage.text).toContain("It is revoked");

    const list = await dash("GET", `/dashboard/projects/${org.project.id}`, { session: org.admin });
    expect(badges(list.text)).toBe(1);
    const orgList = await dash("GET", "/dashboard/org-keys", { session: org.admin });
    expect(badges(orgList.text)).toBe(1);
  });

  it("the project page's select changes the leak policy", async () => {
    const org = await newOrg("dash-policy");
    const page = await dash("GET", `/dashboard/projects/${org.project.id}`, { session: org.admin });
    expect(page.text).toMatch(/<option value="revoke" selected="">/);
    const saved = await dash("POST", `/dashboard/projects/${org.project.id}/leak-policy`, {
      session: org.admin,
      form: { leak_policy: "disable" },
    });
    expect(saved.status).toBe(303);
    expect(saved.headers.get("location")).toContain("notice=leak-policy-saved");
    const project = await call("GET", `/v1/projects/${org.project.id}`, { token: org.admin });
    expect(project.body.leak_policy).toBe("disable");
    // Not a choice the form offers: nothing changes.
    await dash("POST", `/dashboard/projects/${org.project.id}/leak-policy`, {
      session: org.admin,
      form: { leak_policy: "ignore" },
    });
    expect(
      (await call("GET", `/v1/projects/${org.project.id}`, { token: org.admin })).body.leak_policy,
    ).toBe("disable");
  });
});

describe("the api_key.leaked event", () => {
  it("is queued with the leak, signed, with data.leak and the reporter as actor; once", async () => {
    const org = await newOrg("leak-event");
    await setPolicy(org, "disable");
    const endpoint = await addEndpoint(org, ["api_key.leaked"]);
    const key = await newKey(org.admin, org.project.id);
    const body = JSON.stringify([match(key.key, { url: "https://github.com/o/r/blob/x/.env" })]);
    expect((await gitHubReport(github, body)).status).toBe(200);
    // A repeat, from either door: nothing more queued.
    await gitHubReport(github, body);
    await publicReport({ keys: [key.key] });
    const rows = await queued(endpoint.id);
    expect(rows.map((r) => r.event_type)).toEqual(["api_key.leaked"]);

    const received = await deliverNow();
    const [hook] = received(endpoint.url);
    const event = await verifySignature(org.project.webhook_signing_secret, hook as Sent);
    const after = await getKey(org, key.id);
    expect(event).toMatchObject({
      type: "api_key.leaked",
      data: {
        api_key: { id: key.id, leaked_at: after.leaked_at, enabled: false },
        actor: { type: "github", id: "github-secret-scanning" },
        leak: { source: "github", url: "https://github.com/o/r/blob/x/.env", policy: "disable" },
      },
    });
    expect(hook?.body).not.toContain(key.key);
  });

  it("a public report's event names the report door; an org-scoped key has none", async () => {
    const org = await newOrg("leak-event-report");
    const endpoint = await addEndpoint(org);
    const key = await newKey(org.admin, org.project.id);
    const orgKey = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: [] },
    });
    await publicReport({ keys: [key.key, orgKey.body.plaintext_api_key] });
    const leaked = (await queued(endpoint.id)).filter((r) => r.event_type === "api_key.leaked");
    expect(leaked).toHaveLength(1);
    expect(leaked[0].key_id).toBe(key.id);
    expect(JSON.parse(leaked[0].payload).data).toMatchObject({
      actor: { type: "report", id: "anonymous" },
      leak: { source: "report", url: null, policy: "revoke" },
      api_key: { id: key.id, revoked_at: expect.any(String) },
    });
  });
});

describe("GITHUB_SECRET_SCANNING_KEYS as .dev.vars may hold it", () => {
  it("takes PEM keys with raw line breaks (a double-quoted .dev.vars value expands \\n)", async () => {
    const expanded = keySet(github).replaceAll("\\n", "\n");
    expect(() => JSON.parse(expanded)).toThrow();
    const body = JSON.stringify([match("not_a_key")]);
    expect((await gitHubReport(github, body, { keys: expanded })).status).toBe(200);
  });

  it('takes the document written with escaped quotes ("{\\"public_keys\\": …}"), as dotenv leaves it', async () => {
    // dotenv keeps `\"` inside a double-quoted value and turns `\n` into a line break.
    const escaped = keySet(github).replaceAll('"', '\\"').replaceAll("\\n", "\n");
    expect(() => JSON.parse(escaped)).toThrow();
    const body = JSON.stringify([match("not_a_key")]);
    expect((await gitHubReport(github, body, { keys: escaped })).status).toBe(200);
    // Still a 401 for a bad signature: the keys were read, not skipped.
    const forged = await gitHubReport(github, body, { keys: escaped, signedBody: `${body} ` });
    expect(forged.status).toBe(401);
  });
});
