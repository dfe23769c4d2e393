import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { dash, orgWithKey } from "./dashboard-harness";
import { call, verify } from "./helpers";

/** The message rendered next to `field` (its `-error` element). */
const errorOf = (html: string, field: string) =>
  new RegExp(`id="${field}-error"[^>]*>([^<]*)<`).exec(html)?.[1];

describe("dashboard form schemas", () => {
  it("new project: a name is required and a prefix is a slug; nothing is created", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", "/dashboard/projects", {
      session: org.admin,
      form: { name: "  ", key_prefix: "Bad Prefix" },
    });
    expect(page.status).toBe(200);
    expect(errorOf(page.text, "name")).toBe("Give it a name.");
    expect(errorOf(page.text, "key_prefix")).toBe(
      "Use 1–32 lowercase letters and digits, starting with a letter.",
    );
    const list = await call("GET", "/v1/projects", { token: org.admin });
    expect(list.body.projects).toHaveLength(1);
  });

  it("new project key: scopes, expiry and rotation are checked as the API checks them", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", `/dashboard/projects/${org.project.id}/keys`, {
      session: org.admin,
      form: {
        name: "Fine",
        scopes: "ok bad/scope",
        expires_at: "soon",
        rotation_interval_days: "0",
      },
    });
    expect(page.status).toBe(200);
    expect(errorOf(page.text, "scopes")).toBe(
      "Must be 1–100 characters of letters, digits and : . _ * -.",
    );
    expect(errorOf(page.text, "expires_at")).toBe("Enter a date and time.");
    expect(errorOf(page.text, "rotation_interval_days")).toMatch(/^Too small/);
    expect(errorOf(page.text, "name")).toBeUndefined();
    const keys = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: org.admin,
    });
    expect(keys.body).toHaveLength(1);
  });

  it("new organization key: a name over 128 characters is refused", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", "/dashboard/org-keys", {
      session: org.admin,
      form: { name: "n".repeat(129), scopes: "" },
    });
    expect(page.status).toBe(200);
    expect(errorOf(page.text, "name")).toBe("Must be 1–128 characters.");
  });

  it("edit: an emptied name is refused and the key keeps its name", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", `/dashboard/keys/${org.key.id}`, {
      session: org.admin,
      form: { name: "", scopes: "orders:read" },
    });
    expect(page.status).toBe(200);
    expect(errorOf(page.text, "name")).toBe("Give it a name.");
    const key = await call("GET", `/v1/api-keys/${org.key.id}`, { token: org.admin });
    expect(key.body.name).toBe("Checkout");
  });

  it("edit: a field sent twice counts once, the last value", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", `/dashboard/keys/${org.key.id}`, {
      session: org.admin,
      raw: {
        type: "application/x-www-form-urlencoded",
        body: "name=First&name=Second&scopes=orders%3Aread",
      },
    });
    expect(page.status).toBe(303);
    const key = await call("GET", `/v1/api-keys/${org.key.id}`, { token: org.admin });
    expect(key.body.name).toBe("Second");
  });

  it("access: a bad limit row, balance or refill names its own field; nothing changes", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", `/dashboard/keys/${org.key.id}/access`, {
      session: org.admin,
      form: {
        enabled: "on",
        rl_name_0: "fine",
        rl_limit_0: "10",
        rl_window_0: "60",
        rl_name_1: "Not A Name",
        rl_limit_1: "0",
        rl_window_1: "60",
        credits_remaining: "-1",
        refill_interval: "weekly",
        refill_amount: "5",
      },
    });
    expect(page.status).toBe(200);
    expect(errorOf(page.text, "rl_name_1")).toBe("Must be 1–32 characters of a-z, 0-9, _ and -.");
    expect(errorOf(page.text, "rl_limit_1")).toMatch(/^Too small/);
    expect(errorOf(page.text, "rl_name_0")).toBeUndefined();
    expect(errorOf(page.text, "credits_remaining")).toMatch(/^Too small/);
    expect(errorOf(page.text, "refill_interval")).toBe(
      "Invalid option: expected one of &quot;daily&quot;|&quot;monthly&quot;.",
    );
    const key = await call("GET", `/v1/api-keys/${org.key.id}`, { token: org.admin });
    expect(key.body).toMatchObject({ ratelimits: null, credits: null });
  });

  it("rotate: a grace that is not one of the choices is refused and nothing rotates", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", `/dashboard/keys/${org.key.id}/rotate`, {
      session: org.admin,
      form: { grace: "999" },
    });
    expect(page.status).toBe(200);
    expect(page.text).toContain('<span class="error">Choose one of the options.</span>');
    expect((await verify(org.key.key)).body).toMatchObject({ code: "VALID", in_grace: false });
  });

  it("dev sign-in: an organization or user that is not a handle is refused, no cookie", async () => {
    const on = { DEV_SIGN_IN: "true", DEV_SIGNING_KEY: env.TEST_CLERK_PRIVATE_KEY };
    const page = await dash("POST", "/dashboard/dev-sign-in", {
      form: { org: "org with spaces", user: "", role: "admin" },
      env: on,
    });
    expect(page.status).toBe(200);
    expect(page.headers.get("set-cookie")).toBeNull();
    expect(errorOf(page.text, "org")).toBe("Use 1–64 letters, digits, _ or -.");
    expect(errorOf(page.text, "user")).toBe("Use 1–64 letters, digits, _ or -.");
  });

  it("a form that cannot be read is a 400 page that says so", async () => {
    const org = await orgWithKey();
    const page = await dash("POST", "/dashboard/org-keys", {
      session: org.admin,
      raw: { type: "multipart/form-data; boundary=xyz", body: "--abc\r\nnot a part" },
    });
    expect(page.status).toBe(400);
    expect(page.text).toContain("The form could not be read; submit it again.");
  });
});
