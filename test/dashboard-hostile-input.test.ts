import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dash, orgWithKey } from "./dashboard-harness";
import { call, verify } from "./helpers";

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
