// Verification pinned to a tenant (SPEC Part 2): RPC binding props, per-call organization and
// project, and verifier keys on HTTP verify. Another organization's key answers exactly as an
// unknown key; another project of the pinned organization WRONG_PROJECT.
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { generateKey } from "../src/core/key-material";
import { call, newKey, newOrg, rejectedResult, sessionToken, verify } from "./helpers";

afterEach(() => {
  vi.restoreAllMocks();
});

/** The organization vitest.config.mts pins the KEYGATE_PINNED binding to (its props). */
const PINNED_ORG = "org_pinned";

type Org = Awaited<ReturnType<typeof newOrg>>;

/** A KeyService binding carrying these props, as a consumer's `[services.props]` would. */
const pinnedService = (props: Record<string, unknown>) => exports.KeyService({ props });

describe("RPC pinned by binding props", () => {
  let pinned: { admin: string; project: { id: string } };
  let pinnedKey: string;
  let stranger: Org;
  let strangerKey: string;
  beforeAll(async () => {
    const admin = await sessionToken({ org: PINNED_ORG, user: "user_pin", role: "admin" });
    const project = await call("POST", "/v1/projects", { token: admin, body: { name: "P" } });
    pinned = { admin, project: project.body };
    pinnedKey = (await newKey(admin, project.body.id)).key;
    stranger = await newOrg("pin_stranger");
    strangerKey = (await newKey(stranger.admin, stranger.project.id)).key;
  });

  it("the configured binding answers its organization's keys", async () => {
    expect(await env.KEYGATE_PINNED.verify(pinnedKey)).toMatchObject({
      valid: true,
      organization_id: PINNED_ORG,
    });
  });

  it("another organization's key is NOT_FOUND, exactly as an unknown key", async () => {
    const unknown = (await generateKey("capy", "live")).plaintext;
    const foreign = await env.KEYGATE_PINNED.verify(strangerKey);
    expect(foreign).toEqual(rejectedResult("NOT_FOUND"));
    expect(foreign).toEqual(await env.KEYGATE_PINNED.verify(unknown));
    // The unpinned entrypoint still answers it: the pin is the binding's, not the key's.
    expect((await exports.KeyService.verify(strangerKey)).code).toBe("VALID");
  });

  it("a per-call organizationId or projectId cannot widen the props pin", async () => {
    expect(await env.KEYGATE_PINNED.verify(strangerKey, { organizationId: stranger.org })).toEqual(
      rejectedResult("NOT_FOUND"),
    );
    expect(
      await env.KEYGATE_PINNED.verify(strangerKey, { projectId: stranger.project.id }),
    ).toEqual(rejectedResult("NOT_FOUND"));
    // A narrower call pin still applies on top of the props.
    expect(await env.KEYGATE_PINNED.verify(pinnedKey, { organizationId: stranger.org })).toEqual(
      rejectedResult("NOT_FOUND"),
    );
  });

  it("a project pin: another project of the organization is WRONG_PROJECT", async () => {
    const other = await call("POST", "/v1/projects", { token: pinned.admin, body: { name: "Q" } });
    const otherKey = (await newKey(pinned.admin, other.body.id)).key;
    const service = pinnedService({
      organization_id: PINNED_ORG,
      project_id: pinned.project.id,
    });
    expect((await service.verify(pinnedKey)).code).toBe("VALID");
    expect(await service.verify(otherKey)).toEqual(rejectedResult("WRONG_PROJECT"));
    expect(await service.verify(otherKey, { projectId: other.body.id })).toEqual(
      rejectedResult("WRONG_PROJECT"),
    );
    expect(await service.verify(strangerKey)).toEqual(rejectedResult("NOT_FOUND"));
    // An org-scoped key of the organization reaches the pinned project.
    const orgWide = await call("POST", `/v1/organizations/${PINNED_ORG}/api-keys`, {
      token: pinned.admin,
      body: { name: "org-wide", scopes: [] },
    });
    expect((await service.verify(orgWide.body.plaintext_api_key)).code).toBe("VALID");
    // A project pin alone implies its organization.
    const projectOnly = pinnedService({ project_id: pinned.project.id });
    expect(await projectOnly.verify(strangerKey)).toEqual(rejectedResult("NOT_FOUND"));
    expect((await projectOnly.verify(pinnedKey)).code).toBe("VALID");
  });

  it("bad props fail closed with a thrown error, never an answer", async () => {
    expect(await thrownBy({ organization_id: 42 }, pinnedKey)).toBeInstanceOf(TypeError);
  });

  /** What a call through a binding with these props throws (never an answer). */
  const thrownBy = async (props: Record<string, unknown>, key: string) => {
    try {
      return { answered: await pinnedService(props).verify(key) };
    } catch (error) {
      return error;
    }
  };

  it("misspelled or extra props fail every call, naming the member, never verify unpinned", async () => {
    for (const props of [
      { organizationId: stranger.org },
      { org_id: stranger.org },
      { ORGANIZATION_ID: stranger.org },
      { organization_id: PINNED_ORG, projectId: pinned.project.id },
    ]) {
      const name = Object.keys(props).find((k) => k !== "organization_id") as string;
      const thrown = await thrownBy(props, strangerKey);
      expect(thrown, name).toBeInstanceOf(TypeError);
      expect((thrown as TypeError).message).toContain(name);
    }
    const wrongType = await thrownBy({ project_id: [pinned.project.id] }, pinnedKey);
    expect(wrongType).toBeInstanceOf(TypeError);
    expect((wrongType as TypeError).message).toContain("project_id");
  });

  it("a pinned NOT_FOUND touches neither the usage store nor last_used_at", async () => {
    const limited = await newKey(stranger.admin, stranger.project.id, {
      credits: { remaining: 5 },
    });
    const get = vi.spyOn(env.KEY_USAGE, "get");
    for (let i = 0; i < 3; i++) await env.KEYGATE_PINNED.verify(limited.key);
    expect(get).not.toHaveBeenCalled();
    const row = await env.DB.prepare("select last_used_at from api_keys where id = ?")
      .bind(limited.id)
      .first();
    expect(row?.last_used_at).toBeNull();
    expect((await exports.KeyService.verify(limited.key)).credits).toEqual({
      remaining: 4,
      refill_at: null,
    });
  });
});

describe("per-call pins", () => {
  let a: Org;
  let b: Org;
  beforeAll(async () => {
    a = await newOrg("pin_a");
    b = await newOrg("pin_b");
  });

  it("organization_id / organizationId: another org's key is NOT_FOUND", async () => {
    const key = (await newKey(b.admin, b.project.id)).key;
    expect((await verify(key, { organization_id: a.org })).body).toEqual(
      rejectedResult("NOT_FOUND"),
    );
    expect(await exports.KeyService.verify(key, { organizationId: a.org })).toEqual(
      rejectedResult("NOT_FOUND"),
    );
    expect((await verify(key, { organization_id: b.org })).body.code).toBe("VALID");
    expect((await exports.KeyService.verify(key, { organizationId: b.org })).code).toBe("VALID");
  });

  it("without a pin, verify answers any tenant's key as before", async () => {
    const key = (await newKey(b.admin, b.project.id)).key;
    expect((await verify(key)).body).toMatchObject({ code: "VALID", organization_id: b.org });
  });
});

describe("verifier keys on HTTP verify", () => {
  let a: Org;
  let b: Org;
  beforeAll(async () => {
    a = await newOrg("verifier_a");
    b = await newOrg("verifier_b");
  });

  const verifyAs = (verifier: string, key: string, extra: Record<string, unknown> = {}) =>
    call("POST", "/v1/keys/verify", { token: verifier, body: { key, ...extra } });

  it("pin results to the verifier key's organization and project", async () => {
    const verifier = (await newKey(a.admin, a.project.id, { scopes: ["keys:verify"] })).key;
    const mine = (await newKey(a.admin, a.project.id)).key;
    const other = await call("POST", "/v1/projects", { token: a.admin, body: { name: "o" } });
    const otherProject = (await newKey(a.admin, other.body.id)).key;
    const foreign = (await newKey(b.admin, b.project.id)).key;
    expect((await verifyAs(verifier, mine)).body).toMatchObject({ code: "VALID" });
    expect((await verifyAs(verifier, otherProject)).body).toEqual(rejectedResult("WRONG_PROJECT"));
    expect((await verifyAs(verifier, foreign)).body).toEqual(rejectedResult("NOT_FOUND"));
    // The body cannot widen it.
    expect((await verifyAs(verifier, foreign, { organization_id: b.org })).body).toEqual(
      rejectedResult("NOT_FOUND"),
    );
    expect((await verifyAs(verifier, otherProject, { project_id: other.body.id })).body).toEqual(
      rejectedResult("WRONG_PROJECT"),
    );
  });

  it("an org-scoped verifier pins to the organization only", async () => {
    const orgVerifier = await call("POST", `/v1/organizations/${a.org}/api-keys`, {
      token: a.admin,
      body: { name: "verifier", scopes: ["keys:verify"] },
    });
    const verifier = orgVerifier.body.plaintext_api_key;
    const other = await call("POST", "/v1/projects", { token: a.admin, body: { name: "o2" } });
    expect((await verifyAs(verifier, (await newKey(a.admin, other.body.id)).key)).body.code).toBe(
      "VALID",
    );
    const foreign = (await newKey(b.admin, b.project.id)).key;
    expect((await verifyAs(verifier, foreign)).body).toEqual(rejectedResult("NOT_FOUND"));
  });

  it("a bad verifier credential is a 401", async () => {
    const key = (await newKey(a.admin, a.project.id)).key;
    const noScope = (await newKey(a.admin, a.project.id, { scopes: ["keys:read"] })).key;
    const revoked = await newKey(a.admin, a.project.id, { scopes: ["keys:verify"] });
    await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: a.admin });
    const disabled = await newKey(a.admin, a.project.id, {
      scopes: ["keys:verify"],
      enabled: false,
    });
    const unknown = (await generateKey("capy", "live")).plaintext;
    const noOrg = await sessionToken({ org: null });
    const forged = `${a.admin.slice(0, -4)}AAAA`;
    for (const verifier of [
      noScope,
      revoked.key,
      disabled.key,
      unknown,
      "not-a-key",
      noOrg,
      forged,
    ]) {
      const answer = await verifyAs(verifier, key);
      expect(answer.status, verifier.slice(0, 12)).toBe(401);
      expect(answer.headers.get("www-authenticate")).toBe("Bearer");
    }
    const garbled = await call("POST", "/v1/keys/verify", {
      headers: { authorization: "Basic abc" },
      body: { key },
    });
    expect(garbled.status).toBe(401);
  });

  it("a Clerk session pins to its active organization", async () => {
    const mine = (await newKey(a.admin, a.project.id)).key;
    const foreign = (await newKey(b.admin, b.project.id)).key;
    expect((await verifyAs(a.member, mine)).body.code).toBe("VALID");
    expect((await verifyAs(a.member, foreign)).body).toEqual(rejectedResult("NOT_FOUND"));
  });

  it("a verifier key with credits spends none by verifying others", async () => {
    const verifier = await newKey(a.admin, a.project.id, {
      scopes: ["keys:verify"],
      credits: { remaining: 1 },
    });
    const key = (await newKey(a.admin, a.project.id)).key;
    for (let i = 0; i < 3; i++) expect((await verifyAs(verifier.key, key)).status).toBe(200);
    expect((await verify(verifier.key)).body.credits).toEqual({ remaining: 0, refill_at: null });
  });
});
