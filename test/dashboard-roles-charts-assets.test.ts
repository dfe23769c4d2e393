import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { createCore } from "../src/context";
import { addVerificationMessages } from "../src/core/analytics/consume";
import { dash, orgWithKey, plaintextOf } from "./dashboard-harness";
import { call, newOrg, verify } from "./helpers";

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
