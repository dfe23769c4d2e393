import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { dash, orgWithKey, type PageOptions } from "./dashboard-harness";
import { call, newOrg, sessionToken, verify } from "./helpers";

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
        [
          `/dashboard/projects/${p}/webhooks/endpoints`,
          { url: "https://hooks.example/forged", all_events: "on" },
        ],
        [
          `/dashboard/projects/${p}/webhooks/endpoints/x`,
          { url: "https://h.example/", all_events: "on" },
        ],
        [`/dashboard/projects/${p}/webhooks/endpoints/x/enabled`, { enabled: "false" }],
        [`/dashboard/projects/${p}/webhooks/endpoints/x/delete`, {}],
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
