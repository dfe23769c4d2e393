import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { createCore } from "../src/context";
import { addVerificationMessages } from "../src/core/analytics/consume";
import worker from "../src/index";
import { BASE, call, newKey, newOrg, sessionToken, verify } from "./helpers";

interface PageOptions {
  session?: string | undefined;
  origin?: string | null;
  form?: Record<string, string>;
  /** A body of another content type (the Origin check holds whatever the type). */
  raw?: { type: string; body: string };
  env?: Partial<Env>;
  base?: string;
}

/** One dashboard request as a browser sends it: the session cookie, Origin on mutations. */
async function dash(method: string, path: string, options: PageOptions = {}) {
  const base = options.base ?? BASE;
  const headers = new Headers();
  if (options.session) headers.set("cookie", `__session=${options.session}`);
  if (method !== "GET" && options.origin !== null) headers.set("origin", options.origin ?? base);
  let body: string | undefined;
  if (options.form) {
    headers.set("content-type", "application/x-www-form-urlencoded");
    body = new URLSearchParams(options.form).toString();
  } else if (options.raw) {
    headers.set("content-type", options.raw.type);
    body = options.raw.body;
  }
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`${base}${path}`, { method, headers, body, redirect: "manual" }) as Request<
      unknown,
      IncomingRequestCfProperties
    >,
    { ...env, DEV_SIGN_IN: undefined, DEV_SIGNING_KEY: undefined, ...options.env },
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  return { status: response.status, headers: response.headers, text };
}

const plaintextOf = (html: string) => /<code id="new-key">([^<]+)<\/code>/.exec(html)?.[1];
const tokenOf = (html: string) => /name="submission" value="([^"]+)"/.exec(html)?.[1];

async function orgWithKey() {
  const org = await newOrg("dash");
  const key = await newKey(org.admin, org.project.id, {
    name: "Checkout",
    scopes: ["orders:read"],
  });
  return { ...org, key };
}

describe("dashboard sign-in", () => {
  it("opens on the projects page, with or without a trailing slash", async () => {
    const { admin } = await newOrg("root");
    for (const path of ["/dashboard", "/dashboard/"]) {
      const response = await dash("GET", path, { session: admin });
      expect(response.status, path).toBe(302);
      expect(response.headers.get("location"), path).toBe("/dashboard/projects");
    }
  });

  it("sends a visitor without a session to sign-in, keeping where they were going", async () => {
    const response = await dash("GET", "/dashboard/projects?cursor=x");
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe(
      `/dashboard/sign-in?next=${encodeURIComponent("/dashboard/projects?cursor=x")}`,
    );
  });

  it("takes the Clerk session from the __session cookie, verified as a bearer token is", async () => {
    const { admin, project } = await newOrg("cookie");
    const response = await dash("GET", "/dashboard/projects", { session: admin });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toContain("text/html");
    expect(response.text).toContain(`href="/dashboard/projects/${project.id}"`);
  });

  it("treats a forged, expired or other-key session as signed out", async () => {
    const expired = await sessionToken({ org: "org_x", expiresIn: -60 });
    const foreign = await sessionToken({ org: "org_x", privateKey: env.TEST_OTHER_PRIVATE_KEY });
    for (const session of [expired, foreign, "not-a-jwt"]) {
      const response = await dash("GET", "/dashboard/projects", { session });
      expect(response.status).toBe(303);
      expect(response.headers.get("location")).toMatch(/^\/dashboard\/sign-in/);
    }
  });

  it("never honours an API key placed in the session cookie", async () => {
    const { key } = await orgWithKey();
    const response = await dash("GET", "/dashboard/projects", { session: key.key });
    expect(response.status).toBe(303);
  });

  it("answers 404 for dev sign-in unless DEV_SIGN_IN is true", async () => {
    expect((await dash("GET", "/dashboard/dev-sign-in")).status).toBe(404);
    const post = await dash("POST", "/dashboard/dev-sign-in", {
      form: { org: "org_dev", user: "user_dev", role: "admin" },
      env: { DEV_SIGNING_KEY: env.TEST_CLERK_PRIVATE_KEY },
    });
    expect(post.status).toBe(404);
    expect(post.headers.get("set-cookie")).toBeNull();
    const page = await dash("GET", "/dashboard/sign-in");
    expect(page.text).not.toContain("dev-sign-in");
  });

  it("dev sign-in mints a session that the pages accept: HttpOnly, SameSite=Lax", async () => {
    const on = { DEV_SIGN_IN: "true", DEV_SIGNING_KEY: env.TEST_CLERK_PRIVATE_KEY };
    expect((await dash("GET", "/dashboard/dev-sign-in", { env: on })).status).toBe(200);
    const response = await dash("POST", "/dashboard/dev-sign-in", {
      form: { org: "org_devsignin", user: "user_dev", role: "member", next: "/dashboard/audit" },
      env: on,
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("location")).toBe("/dashboard/audit");
    const cookie = response.headers.get("set-cookie") ?? "";
    expect(cookie).toMatch(/^__session=[\w-]+\.[\w-]+\.[\w-]+;/);
    expect(cookie).toContain("HttpOnly");
    expect(cookie).toContain("SameSite=Lax");
    expect(cookie).not.toContain("Secure");
    const session = /^__session=([^;]+)/.exec(cookie)?.[1];
    const page = await dash("GET", "/dashboard/projects", { session });
    expect(page.status).toBe(200);
    expect(page.text).toContain("org_devsignin");
    expect(page.text).toContain("Member");
  });

  it("marks the cookie Secure over https", async () => {
    const response = await dash("POST", "/dashboard/dev-sign-in", {
      base: "https://keygate.example",
      form: { org: "org_tls", user: "user_dev", role: "admin" },
      env: { DEV_SIGN_IN: "true", DEV_SIGNING_KEY: env.TEST_CLERK_PRIVATE_KEY },
    });
    expect(response.status).toBe(303);
    expect(response.headers.get("set-cookie")).toContain("Secure");
  });

  it("dev sign-in never redirects off the dashboard", async () => {
    const response = await dash("POST", "/dashboard/dev-sign-in", {
      form: { org: "org_dev", user: "user_dev", role: "admin", next: "//evil.example/x" },
      env: { DEV_SIGN_IN: "true", DEV_SIGNING_KEY: env.TEST_CLERK_PRIVATE_KEY },
    });
    expect(response.headers.get("location")).toBe("/dashboard/projects");
  });

  it("signs out by clearing the cookie", async () => {
    const { admin } = await newOrg("signout");
    const response = await dash("POST", "/dashboard/sign-out", { session: admin });
    expect(response.status).toBe(303);
    expect(response.headers.get("set-cookie")).toMatch(/^__session=;.*Max-Age=0/);
  });

  it("loads Clerk's script only when CLERK_PUBLISHABLE_KEY is set", async () => {
    const without = await dash("GET", "/dashboard/sign-in");
    expect(without.text).not.toContain("clerk.browser.js");
    const publishableKey = `pk_test_${btoa("clerk.keygate.example$")}`;
    const withClerk = await dash("GET", "/dashboard/sign-in", {
      env: { CLERK_PUBLISHABLE_KEY: publishableKey },
    });
    expect(withClerk.text).toContain(
      'src="https://clerk.keygate.example/npm/@clerk/clerk-js@5/dist/clerk.browser.js"',
    );
    expect(withClerk.headers.get("content-security-policy")).toContain(
      "script-src 'self' https://clerk.keygate.example",
    );
  });
});

describe("dashboard CSRF", () => {
  /** Every mutation the dashboard has, with a body that would succeed from its own page. */
  async function mutations() {
    const org = await orgWithKey();
    const id = org.key.id;
    const p = org.project.id;
    return {
      org,
      list: [
        ["/dashboard/projects", { name: "Forged" }],
        [`/dashboard/projects/${p}/keys`, { name: "Forged" }],
        [`/dashboard/keys/${id}`, { name: "Forged", scopes: "*" }],
        [`/dashboard/keys/${id}/access`, { credits_remaining: "0" }],
        [`/dashboard/keys/${id}/rotate`, { grace: "0" }],
        [`/dashboard/keys/${id}/revoke`, {}],
        ["/dashboard/org-keys", { name: "Forged", scopes: "*" }],
        [`/dashboard/projects/${p}/webhooks/msg_x/retry`, {}],
        [`/dashboard/projects/${p}/webhooks/secret`, {}],
        ["/dashboard/sign-out", {}],
        ["/dashboard/dev-sign-in", { org: "org_evil", user: "u", role: "admin" }],
      ] as [string, Record<string, string>][],
    };
  }

  async function expectUnchanged(org: Awaited<ReturnType<typeof orgWithKey>>) {
    expect((await verify(org.key.key)).body.code).toBe("VALID");
    const keys = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: org.admin,
    });
    expect(keys.body.map((k: { name: string }) => k.name)).toEqual(["Checkout"]);
    const projects = await call("GET", "/v1/projects", { token: org.admin });
    expect(projects.body.projects).toHaveLength(1);
    const audit = await call("GET", `/v1/organizations/${org.org}/audit-log`, {
      token: org.admin,
    });
    expect(audit.body.audit_events.map((e: { action: string }) => e.action)).toEqual([
      "api_key.created",
      "project.created",
    ]);
  }

  const devOn = { DEV_SIGN_IN: "true", DEV_SIGNING_KEY: env.TEST_CLERK_PRIVATE_KEY };

  it("refuses every mutation from a foreign Origin, whatever its content type", async () => {
    const { org, list } = await mutations();
    for (const [path, form] of list) {
      for (const origin of ["https://evil.example", "null", "http://keygate.test:8080"]) {
        const bodies: PageOptions[] = [
          { form },
          { raw: { type: "text/plain", body: new URLSearchParams(form).toString() } },
          { raw: { type: "application/json", body: JSON.stringify(form) } },
        ];
        for (const body of bodies) {
          const response = await dash("POST", path, {
            ...body,
            session: org.admin,
            origin,
            env: devOn,
          });
          expect(response.status, `${path} from ${origin}`).toBe(403);
          expect(response.headers.get("set-cookie"), path).toBeNull();
        }
      }
    }
    await expectUnchanged(org);
  });

  it("refuses every mutation without an Origin when the session cookie is sent", async () => {
    const { org, list } = await mutations();
    for (const [path, form] of list) {
      const response = await dash("POST", path, {
        form,
        session: org.admin,
        origin: null,
        env: devOn,
      });
      expect(response.status, path).toBe(403);
    }
    await expectUnchanged(org);
  });

  it("refuses a form over 64 KiB", async () => {
    const { admin } = await newOrg("big");
    const response = await dash("POST", "/dashboard/projects", {
      session: admin,
      form: { name: "x".repeat(70_000) },
    });
    expect(response.status).toBe(413);
  });

  it("accepts the same mutation from the dashboard's own origin", async () => {
    const org = await orgWithKey();
    const response = await dash("POST", `/dashboard/keys/${org.key.id}/revoke`, {
      session: org.admin,
      form: {},
    });
    expect(response.status).toBe(303);
    expect((await verify(org.key.key)).body.code).toBe("REVOKED");
  });
});

describe("dashboard pages", () => {
  it("escapes a hostile key name everywhere it is shown", async () => {
    const org = await newOrg("xss");
    const hostile = `<script>alert(1)</script><img src=x onerror="alert(2)">`;
    const key = await newKey(org.admin, org.project.id, { name: hostile });
    for (const path of [
      `/dashboard/projects/${org.project.id}`,
      `/dashboard/keys/${key.id}`,
      `/dashboard/keys/${key.id}/revoke`,
      "/dashboard/audit",
    ]) {
      const page = await dash("GET", path, { session: org.admin });
      expect(page.status, path).toBe(200);
      expect(page.text, path).not.toContain("<script>alert");
      expect(page.text, path).not.toContain("<img src=x");
      expect(page.text, path).toContain("&lt;script&gt;alert(1)&lt;/script&gt;");
    }
  });

  it("shows a new key's plaintext once, in a no-store page, never in a URL", async () => {
    const org = await newOrg("plain");
    const response = await dash("POST", `/dashboard/projects/${org.project.id}/keys`, {
      session: org.admin,
      form: { name: "Shown once", scopes: "orders:read, orders:write", expires_at: "" },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("location")).toBeNull();
    expect(response.headers.get("cache-control")).toContain("no-store");
    const plaintext = plaintextOf(response.text);
    expect(plaintext).toMatch(/^capy_live_/);
    const verified = await verify(plaintext as string);
    expect(verified.body).toMatchObject({ valid: true, scopes: ["orders:read", "orders:write"] });
    // Nowhere else: not on the key page, the project page or the audit log.
    const keyId = verified.body.key_id;
    for (const path of [
      `/dashboard/keys/${keyId}`,
      `/dashboard/projects/${org.project.id}`,
      "/dashboard/audit",
    ]) {
      const page = await dash("GET", path, { session: org.admin });
      expect(page.text).not.toContain(plaintext);
      expect(page.headers.get("cache-control")).not.toContain("public");
    }
  });

  it("creates a key once per form: a reload of the page the POST rendered re-posts it", async () => {
    const org = await newOrg("once");
    const formPage = await dash("GET", `/dashboard/projects/${org.project.id}/keys/new`, {
      session: org.admin,
    });
    const token = tokenOf(formPage.text);
    expect(token).toMatch(/^[0-9a-f-]{36}$/);
    const again = await dash("GET", `/dashboard/projects/${org.project.id}/keys/new`, {
      session: org.admin,
    });
    expect(tokenOf(again.text)).not.toBe(token);

    const form = { submission: token as string, name: "Reloaded", scopes: "read" };
    const path = `/dashboard/projects/${org.project.id}/keys`;
    const first = await dash("POST", path, { session: org.admin, form });
    expect(first.status).toBe(200);
    const plaintext = plaintextOf(first.text) as string;
    const keyId = (await verify(plaintext)).body.key_id;
    // The reload: the same form again goes to the key it created, without its secret.
    const repeat = await dash("POST", path, { session: org.admin, form });
    expect(repeat.status).toBe(303);
    expect(repeat.headers.get("location")).toBe(
      `/dashboard/keys/${keyId}?notice=key-created-before`,
    );
    const shown = await dash("GET", repeat.headers.get("location") as string, {
      session: org.admin,
    });
    expect(shown.text).toContain("That form was submitted before");
    expect(shown.text).not.toContain(plaintext);
    // The same token with other fields (Back, edit, submit) creates nothing, and asks again
    // with a new token.
    const edited = await dash("POST", path, {
      session: org.admin,
      form: { ...form, name: "Edited" },
    });
    expect(edited.status).toBe(200);
    expect(edited.text).toContain("submitted before with other values");
    expect(plaintextOf(edited.text)).toBeUndefined();
    expect(tokenOf(edited.text)).not.toBe(token);
    const listed = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: org.admin,
    });
    expect(listed.body.map((k: { name: string }) => k.name)).toEqual(["Reloaded"]);
  });

  it("creates a project once per form: a double click goes to the project it created", async () => {
    const org = await newOrg("once-project");
    const formPage = await dash("GET", "/dashboard/projects", { session: org.admin });
    const form = { submission: tokenOf(formPage.text) as string, name: "Twice", key_prefix: "" };
    const first = await dash("POST", "/dashboard/projects", { session: org.admin, form });
    expect(first.status).toBe(303);
    const location = (first.headers.get("location") as string).split("?")[0];
    expect(first.headers.get("location")).toBe(`${location}?notice=project-created`);
    const repeat = await dash("POST", "/dashboard/projects", { session: org.admin, form });
    expect(repeat.status).toBe(303);
    expect(repeat.headers.get("location")).toBe(`${location}?notice=project-created-before`);
    const listed = await call("GET", "/v1/projects", { token: org.admin });
    const names = listed.body.projects.map((p: { name: string }) => p.name);
    expect(names.filter((name: string) => name === "Twice")).toHaveLength(1);
  });

  it("lets a form refused by the core be fixed and submitted with its token", async () => {
    const org = await newOrg("once-fix");
    const path = `/dashboard/projects/${org.project.id}/keys`;
    const form = {
      submission: crypto.randomUUID(),
      name: "Hooked",
      rotation_webhook_url: "http://example.com/x",
    };
    const refused = await dash("POST", path, { session: org.admin, form });
    expect(refused.text).toContain('id="rotation_webhook_url-error"');
    // The page keeps the token: nothing was created, so it is still unused.
    expect(tokenOf(refused.text)).toBe(form.submission);
    const fixed = await dash("POST", path, {
      session: org.admin,
      form: { ...form, rotation_webhook_url: "https://example.com/x" },
    });
    expect(fixed.status).toBe(200);
    expect(plaintextOf(fixed.text)).toMatch(/^capy_live_/);
  });

  it("creates an organization key once per form too", async () => {
    const org = await newOrg("once-org");
    const form = { submission: crypto.randomUUID(), name: "Org once", scopes: "read" };
    const first = await dash("POST", "/dashboard/org-keys", { session: org.admin, form });
    expect(plaintextOf(first.text)).toMatch(/^capy_live_/);
    const repeat = await dash("POST", "/dashboard/org-keys", { session: org.admin, form });
    expect(repeat.status).toBe(303);
    expect(repeat.headers.get("location")).toMatch(
      /^\/dashboard\/keys\/[^/?]+\?notice=key-created-before$/,
    );
  });

  it("offers no edit, access or rotate form for an expired key, which the core would refuse", async () => {
    const org = await orgWithKey();
    const live = await dash("GET", `/dashboard/keys/${org.key.id}`, { session: org.admin });
    expect(live.text).toContain(`/dashboard/keys/${org.key.id}/rotate`);
    expect(live.text).toContain("Save access");
    await env.DB.prepare("update api_keys set expires_at = ? where id = ?")
      .bind(Date.now() - 1_000, org.key.id)
      .run();
    const expired = await dash("GET", `/dashboard/keys/${org.key.id}`, { session: org.admin });
    expect(expired.status).toBe(200);
    expect(expired.text).not.toContain(`/dashboard/keys/${org.key.id}/rotate`);
    expect(expired.text).not.toContain("Save changes");
    expect(expired.text).not.toContain("Save access");
    expect(expired.text).toContain("A revoked, expired or rotated key can no longer be changed.");
  });

  it("rotates with the chosen grace and shows the new key once, no-store", async () => {
    const org = await orgWithKey();
    const response = await dash("POST", `/dashboard/keys/${org.key.id}/rotate`, {
      session: org.admin,
      form: { grace: "86400" },
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("cache-control")).toContain("no-store");
    const fresh = plaintextOf(response.text) as string;
    expect((await verify(fresh)).body.code).toBe("VALID");
    const old = await verify(org.key.key);
    expect(old.body).toMatchObject({ valid: true, in_grace: true });
    const got = await call("GET", `/v1/api-keys/${org.key.id}`, { token: org.admin });
    const grace = Date.parse(got.body.grace_expires_at) - Date.now();
    expect(grace).toBeGreaterThan(86_000_000);
    expect(grace).toBeLessThanOrEqual(86_400_000);
  });

  it("shows a core's field error next to the field it names", async () => {
    const org = await newOrg("fields");
    const response = await dash("POST", `/dashboard/projects/${org.project.id}/keys`, {
      session: org.admin,
      form: { name: "Past", expires_at: "2001-01-01T00:00" },
    });
    // The form again (200: a browser logs a 4xx document as a console error), with the error.
    expect(response.status).toBe(200);
    expect(response.text).toContain('id="expires_at-error"');
    expect(response.text).toContain("Must be in the future.");
    expect(response.text).toContain('aria-invalid="true"');
    const url = await dash("POST", `/dashboard/projects/${org.project.id}/keys`, {
      session: org.admin,
      form: { name: "Hook", rotation_webhook_url: "http://example.com/x" },
    });
    expect(url.status).toBe(200);
    expect(url.text).toContain('id="rotation_webhook_url-error"');
    expect(url.text).toContain('value="http://example.com/x"');
  });

  it("edits name, scopes, expiry, rotation schedule and webhook URL", async () => {
    const org = await orgWithKey();
    const response = await dash("POST", `/dashboard/keys/${org.key.id}`, {
      session: org.admin,
      form: {
        name: "Renamed",
        scopes: "a b",
        expires_at: "2099-01-01T00:00",
        rotation_interval_days: "30",
        rotation_webhook_url: "https://hooks.example/keygate",
      },
    });
    expect(response.status).toBe(303);
    const got = await call("GET", `/v1/api-keys/${org.key.id}`, { token: org.admin });
    expect(got.body).toMatchObject({
      name: "Renamed",
      scopes: ["a", "b"],
      expires_at: "2099-01-01T00:00:00.000Z",
      rotation_interval_days: 30,
      rotation_webhook_url: "https://hooks.example/keygate",
    });
  });

  it("edits enabled, rate limits and credits, sending only what changed", async () => {
    const org = await orgWithKey();
    const response = await dash("POST", `/dashboard/keys/${org.key.id}/access`, {
      session: org.admin,
      form: {
        rl_name_0: "requests",
        rl_limit_0: "100",
        rl_window_0: "60",
        credits_remaining: "500",
        refill_interval: "monthly",
        refill_amount: "1000",
        refill_day: "15",
      },
    });
    expect(response.status).toBe(303);
    const got = await call("GET", `/v1/api-keys/${org.key.id}`, { token: org.admin });
    expect(got.body).toMatchObject({
      enabled: false,
      ratelimits: [{ name: "requests", limit: 100, duration_ms: 60_000 }],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000, day: 15 } },
    });
    expect((await verify(org.key.key)).body.code).toBe("DISABLED");
    const page = await dash("GET", `/dashboard/keys/${org.key.id}`, { session: org.admin });
    expect(page.text).toContain(">Disabled<");
    expect(page.text).toContain("500 remaining");
    expect(page.text).toContain("100 per minute");
    // Enabling again changes only `enabled`: the limit and the credits stay as they are.
    const again = await dash("POST", `/dashboard/keys/${org.key.id}/access`, {
      session: org.admin,
      form: {
        enabled: "on",
        rl_name_0: "requests",
        rl_limit_0: "100",
        rl_window_0: "60",
        credits_remaining: "500",
        refill_interval: "monthly",
        refill_amount: "1000",
        refill_day: "15",
      },
    });
    expect(again.status).toBe(303);
    const audit = await call("GET", `/v1/organizations/${org.org}/audit-log`, {
      token: org.admin,
    });
    expect(audit.body.audit_events[0].metadata.fields).toEqual(["enabled"]);
    expect((await verify(org.key.key)).body.code).toBe("VALID");
  });

  it("prefills the live balance and never gives spent credits back on a refill-only save", async () => {
    const org = await newOrg("dash-credits");
    const key = await newKey(org.admin, org.project.id, { credits: { remaining: 10 } });
    const inputValue = (html: string, name: string) =>
      new RegExp(`name="${name}"[^>]*value="([^"]*)"`).exec(html)?.[1] ??
      new RegExp(`value="([^"]*)"[^>]*name="${name}"`).exec(html)?.[1];
    // A page rendered at 10 credits, then 4 spent elsewhere before its form is saved.
    const stale = await dash("GET", `/dashboard/keys/${key.id}`, { session: org.admin });
    expect(inputValue(stale.text, "credits_remaining")).toBe("10");
    for (let i = 0; i < 4; i++) expect((await verify(key.key)).body.code).toBe("VALID");
    const saveRefill = (html: string) =>
      dash("POST", `/dashboard/keys/${key.id}/access`, {
        session: org.admin,
        form: {
          enabled: "on",
          credits_remaining: inputValue(html, "credits_remaining") ?? "",
          credits_remaining_shown: inputValue(html, "credits_remaining_shown") ?? "",
          refill_interval: "monthly",
          refill_amount: "10",
          refill_day: "1",
        },
      });
    expect((await saveRefill(stale.text)).status).toBe(303);
    const after = await call("GET", `/v1/api-keys/${key.id}`, { token: org.admin });
    expect(after.body.credits).toEqual({
      remaining: 6,
      refill: { interval: "monthly", amount: 10, day: 1 },
    });
    // The audit's reproduction: 12 verifies on what is left, a refill-only save, no more VALID.
    const codes: string[] = [];
    for (let i = 0; i < 12; i++) codes.push((await verify(key.key)).body.code);
    expect(codes.filter((code) => code === "VALID")).toHaveLength(6);
    const fresh = await dash("GET", `/dashboard/keys/${key.id}`, { session: org.admin });
    expect(inputValue(fresh.text, "credits_remaining")).toBe("0");
    const daily = await dash("POST", `/dashboard/keys/${key.id}/access`, {
      session: org.admin,
      form: {
        enabled: "on",
        credits_remaining: "0",
        credits_remaining_shown: inputValue(fresh.text, "credits_remaining_shown") ?? "",
        refill_interval: "daily",
        refill_amount: "10",
      },
    });
    expect(daily.status).toBe(303);
    expect((await verify(key.key)).body.code).toBe("USAGE_EXCEEDED");
    // An edited balance is still set.
    const edited = await dash("POST", `/dashboard/keys/${key.id}/access`, {
      session: org.admin,
      form: {
        enabled: "on",
        credits_remaining: "3",
        credits_remaining_shown: "0",
        refill_interval: "daily",
        refill_amount: "10",
      },
    });
    expect(edited.status).toBe(303);
    expect((await verify(key.key)).body.credits.remaining).toBe(2);
  });

  it("names a bad rate limit or credit field next to it", async () => {
    const org = await orgWithKey();
    const response = await dash("POST", `/dashboard/keys/${org.key.id}/access`, {
      session: org.admin,
      form: {
        enabled: "on",
        rl_name_0: "Bad Name",
        rl_limit_0: "10",
        rl_window_0: "60",
        credits_remaining: "5",
        refill_interval: "daily",
        refill_amount: "0",
      },
    });
    expect(response.status).toBe(200);
    expect(response.text).toContain('id="rl_name_0-error"');
    expect(response.text).toContain('id="refill_amount-error"');
    expect(response.text).toContain('value="Bad Name"');
    const got = await call("GET", `/v1/api-keys/${org.key.id}`, { token: org.admin });
    expect(got.body).toMatchObject({ ratelimits: null, credits: null });
  });

  it("sends a Content-Security-Policy without inline script, and no CDN", async () => {
    const { admin } = await newOrg("csp");
    const page = await dash("GET", "/dashboard/projects", { session: admin });
    const csp = page.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).not.toContain("unsafe-inline");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(page.text).not.toMatch(/<script>|<style>|\sstyle="|https?:\/\//);
  });

  it("pages the keys of a project", async () => {
    const org = await newOrg("paged");
    for (let i = 0; i < 27; i++) await newKey(org.admin, org.project.id, { name: `key ${i}` });
    const first = await dash("GET", `/dashboard/projects/${org.project.id}`, {
      session: org.admin,
    });
    expect(first.text).toContain("key 24");
    expect(first.text).not.toContain("key 25");
    const next = /href="([^"]+cursor=[^"]+)" rel="next"/.exec(first.text)?.[1] as string;
    const second = await dash("GET", next.replaceAll("&amp;", "&"), { session: org.admin });
    expect(second.text).toContain("key 26");
    expect(second.text).not.toContain("key 24<");
  });
});

describe("dashboard roles", () => {
  it("shows organization keys to admins only", async () => {
    const org = await newOrg("roles");
    const adminPage = await dash("GET", "/dashboard/projects", { session: org.admin });
    expect(adminPage.text).toContain('href="/dashboard/org-keys"');
    const memberPage = await dash("GET", "/dashboard/projects", { session: org.member });
    expect(memberPage.text).not.toContain("/dashboard/org-keys");
    expect((await dash("GET", "/dashboard/org-keys", { session: org.member })).status).toBe(403);
    expect((await dash("GET", "/dashboard/org-keys/new", { session: org.member })).status).toBe(
      403,
    );
    const create = await dash("POST", "/dashboard/org-keys", {
      session: org.member,
      form: { name: "sneaky", scopes: "*" },
    });
    expect(create.status).toBe(403);
    expect(create.text).not.toContain("new-key");
    expect((await dash("GET", "/dashboard/org-keys", { session: org.admin })).status).toBe(200);
  });

  it("lists only org-scoped keys on the organization page", async () => {
    const org = await orgWithKey();
    const created = await dash("POST", "/dashboard/org-keys", {
      session: org.admin,
      form: { name: "Automation", scopes: "keys:read" },
    });
    expect(created.status).toBe(200);
    expect(plaintextOf(created.text)).toMatch(/^capy_live_/);
    const list = await dash("GET", "/dashboard/org-keys", { session: org.admin });
    expect(list.text).toContain("Automation");
    expect(list.text).not.toContain("Checkout");
  });

  it("shows members no org-scoped key: not its page, nor its rotate or revoke pages; nor the signing secret", async () => {
    const org = await newOrg("member");
    const orgKey = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "Org automation", scopes: ["*"] },
    });
    const id = orgKey.body.api_key.id;
    for (const [method, path] of [
      ["GET", `/dashboard/keys/${id}`],
      ["GET", `/dashboard/keys/${id}/rotate`],
      ["GET", `/dashboard/keys/${id}/revoke`],
      ["POST", `/dashboard/keys/${id}/rotate`],
      ["POST", `/dashboard/keys/${id}/revoke`],
      ["POST", `/dashboard/keys/${id}/access`],
    ] as const) {
      const answered = await dash(method, path, {
        session: org.member,
        ...(method === "POST" ? { form: {} } : {}),
      });
      expect(answered.status, `${method} ${path}`).toBe(403);
      expect(answered.text, path).not.toContain("Org automation");
      expect(answered.text, path).not.toContain("new-key");
    }
    expect((await dash("GET", `/dashboard/keys/${id}`, { session: org.admin })).status).toBe(200);
    expect((await call("GET", `/v1/api-keys/${id}`, { token: org.admin })).body.is_active).toBe(
      true,
    );
    const hooks = await dash("GET", `/dashboard/projects/${org.project.id}/webhooks`, {
      session: org.member,
    });
    expect(hooks.text).not.toContain("Reveal signing secret");
    const secret = await dash("POST", `/dashboard/projects/${org.project.id}/webhooks/secret`, {
      session: org.member,
    });
    expect(secret.status).toBe(403);
    expect(secret.text).not.toContain("whsec_");
  });

  it("keeps each organization to itself", async () => {
    const a = await orgWithKey();
    const b = await newOrg("other");
    expect((await dash("GET", `/dashboard/keys/${a.key.id}`, { session: b.admin })).status).toBe(
      404,
    );
    expect(
      (await dash("GET", `/dashboard/projects/${a.project.id}`, { session: b.admin })).status,
    ).toBe(404);
    const revoke = await dash("POST", `/dashboard/keys/${a.key.id}/revoke`, {
      session: b.admin,
      form: {},
    });
    expect(revoke.status).toBe(404);
    expect((await verify(a.key.key)).body.code).toBe("VALID");
  });
});

describe("dashboard charts", () => {
  it("says what will appear before a key is verified", async () => {
    const org = await orgWithKey();
    const page = await dash("GET", `/dashboard/keys/${org.key.id}`, { session: org.admin });
    expect(page.text).toContain("No verifications in the last 24 hours");
    expect(page.text).not.toContain("data-chart=");
    const project = await dash("GET", `/dashboard/projects/${org.project.id}`, {
      session: org.admin,
    });
    expect(project.text).toContain("this project&#39;s keys are verified");
  });

  it("charts a key's and its project's verifications by outcome", async () => {
    const org = await orgWithKey();
    const minute = Math.floor(Date.now() / 60_000) * 60_000;
    const core = createCore(env, createExecutionContext());
    await addVerificationMessages(core, [
      {
        v: 1,
        id: crypto.randomUUID(),
        keys: { [org.key.id]: [org.org, org.project.id, Date.now()] },
        counts: [
          [org.key.id, minute, "VALID", 3],
          [org.key.id, minute, "INSUFFICIENT_SCOPE", 1],
        ],
      },
    ]);
    const page = await dash("GET", `/dashboard/keys/${org.key.id}?range=1h`, {
      session: org.admin,
    });
    expect(page.text).toContain('data-testid="verification-total">4<');
    expect(page.text).toContain("data-chart=");
    expect(page.text).toContain('aria-current="page">Last hour<');
    expect(page.text).toMatch(/src="\/dashboard\/assets\/uplot\.[0-9a-f]{12}\.js"/);
    const project = await dash("GET", `/dashboard/projects/${org.project.id}`, {
      session: org.admin,
    });
    expect(project.text).toContain('data-testid="verification-total">4<');
    expect(project.text).toContain("Most verified keys");
  });
});

describe("dashboard assets", () => {
  /** The fingerprinted files a signed-out page links to, by logical name. */
  async function linkedAssets(): Promise<Map<string, string>> {
    const page = await dash("GET", "/dashboard/sign-in");
    const links = [
      ...page.text.matchAll(
        /(?:href|src)="(\/dashboard\/assets\/([a-z]+)\.[0-9a-f]{12}\.(css|js))"/g,
      ),
    ];
    return new Map(links.map(([, url, name, ext]) => [`${name}.${ext}`, url as string]));
  }

  it("links fingerprinted files and serves them from the assets binding, cached for a year", async () => {
    const assets = await linkedAssets();
    expect([...assets.keys()].sort()).toEqual(["app.css", "app.js"]);
    const css = await dash("GET", assets.get("app.css") as string);
    expect(css.status).toBe(200);
    expect(css.headers.get("content-type")).toContain("text/css");
    expect(css.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(css.text).toContain("--accent");
    const script = await dash("GET", assets.get("app.js") as string);
    expect(script.headers.get("content-type")).toContain("javascript");
    expect(script.text).toContain("data-copy");
  });

  it("serves uPlot from the Worker", async () => {
    const { default: manifest } = await import("../src/dashboard/asset-manifest.json");
    const script = await dash("GET", `/dashboard/assets/${manifest["uplot.js"]}`);
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toContain("javascript");
    expect(script.text).toContain("uPlot");
    const css = await dash("GET", `/dashboard/assets/${manifest["uplot.css"]}`);
    expect(css.text).toContain(".uplot");
  });

  it("answers a name that is not this build's file with 404", async () => {
    for (const path of [
      "/dashboard/assets/app.css",
      "/dashboard/assets/app.000000000000.css",
      "/dashboard/assets/..%2Fstandalone.js",
    ]) {
      expect((await dash("GET", path)).status).toBe(404);
    }
  });
});

describe("dashboard hostile input", () => {
  const HOSTILE = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"];

  it("reads ?range= and ?notice= as own names only: Object's members are no range nor notice", async () => {
    const org = await orgWithKey();
    for (const name of HOSTILE) {
      for (const path of [
        `/dashboard/projects/${org.project.id}?range=${name}`,
        `/dashboard/keys/${org.key.id}?range=${name}`,
        `/dashboard/keys/${org.key.id}?notice=${name}`,
        `/dashboard/projects?notice=${name}`,
      ]) {
        const page = await dash("GET", path, { session: org.admin });
        expect(page.status, path).toBe(200);
      }
    }
  });

  it("answers a form it cannot read (a broken multipart body) with 400, changing nothing", async () => {
    const org = await orgWithKey();
    for (const path of [`/dashboard/keys/${org.key.id}`, "/dashboard/projects"]) {
      const broken = await dash("POST", path, {
        session: org.admin,
        raw: { type: "multipart/form-data; boundary=xyz", body: "--abc\r\nnot a part" },
      });
      expect(broken.status, path).toBe(400);
    }
    expect((await verify(org.key.key)).body.code).toBe("VALID");
  });

  it("never answers 5xx to random query strings and forms (fixed seed)", {
    timeout: 120_000,
  }, async () => {
    const org = await orgWithKey();
    const orgKey = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "fuzzed", scopes: [] },
    });
    const pages = [
      "/dashboard/projects",
      `/dashboard/projects/${org.project.id}`,
      `/dashboard/projects/${org.project.id}/keys/new`,
      `/dashboard/projects/${org.project.id}/webhooks`,
      `/dashboard/keys/${org.key.id}`,
      `/dashboard/keys/${org.key.id}/rotate`,
      `/dashboard/keys/${org.key.id}/revoke`,
      `/dashboard/keys/${orgKey.body.api_key.id}`,
      "/dashboard/org-keys",
      "/dashboard/org-keys/new",
      "/dashboard/audit",
      "/dashboard/sign-in",
    ];
    const forms = [
      "/dashboard/projects",
      `/dashboard/projects/${org.project.id}/keys`,
      `/dashboard/keys/${org.key.id}`,
      `/dashboard/keys/${org.key.id}/access`,
      `/dashboard/keys/${org.key.id}/rotate`,
      "/dashboard/org-keys",
    ];
    const text = fc.oneof(
      fc.constantFrom(
        ...HOSTILE,
        "",
        "-1",
        "1e309",
        "24h",
        "30d",
        "key-updated",
        "%",
        "a".repeat(3000),
      ),
      fc.string({ maxLength: 40 }),
    );
    const fieldName = fc.oneof(
      fc.constantFrom(
        ...HOSTILE,
        "name",
        "scopes",
        "environment",
        "expires_at",
        "enabled",
        "credits_remaining",
        "refill_interval",
        "refill_amount",
        "refill_day",
        "rl_name_0",
        "rl_limit_0",
        "rl_window_0",
        "rotation_webhook_url",
        "rotation_interval_days",
        "grace_period_seconds",
        "submission",
      ),
      fc.string({ maxLength: 12 }),
    );
    const fields = fc.dictionary(fieldName, text, { maxKeys: 6 });
    const seen: number[] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...pages),
        fc.dictionary(fc.constantFrom("range", "notice", "cursor", "next", ...HOSTILE), text, {
          maxKeys: 3,
        }),
        async (path, query) => {
          const search = new URLSearchParams(query).toString();
          const page = await dash("GET", `${path}?${search}`, { session: org.admin });
          seen.push(page.status);
          expect(page.status, `GET ${path}?${search}`).toBeLessThan(500);
        },
      ),
      { numRuns: 150, seed: 20_261_206 },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...forms),
        fields,
        fc.constantFrom("urlencoded", "multipart", "broken"),
        async (path, form, encoding) => {
          const options =
            encoding === "urlencoded"
              ? { form }
              : encoding === "multipart"
                ? {
                    raw: {
                      type: "multipart/form-data; boundary=b0",
                      body: `${Object.entries(form)
                        .map(
                          ([k, v]) =>
                            `--b0\r\nContent-Disposition: form-data; name="${k.replace(/["\r\n]/g, "")}"\r\n\r\n${v}\r\n`,
                        )
                        .join("")}--b0--\r\n`,
                    },
                  }
                : { raw: { type: "multipart/form-data", body: JSON.stringify(form) } };
          const answered = await dash("POST", path, { session: org.admin, ...options });
          seen.push(answered.status);
          expect(answered.status, `POST ${path} ${encoding} ${JSON.stringify(form)}`).toBeLessThan(
            500,
          );
        },
      ),
      { numRuns: 150, seed: 20_261_206 },
    );
    expect(seen.filter((status) => status === 200).length).toBeGreaterThan(50);
  });
});
