import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { dash, orgWithKey, plaintextOf, tokenOf } from "./dashboard-harness";
import { call, newKey, newOrg, verify } from "./helpers";

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
