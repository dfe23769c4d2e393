// Tenant isolation: every management route answers 404 for another organization's resources
// and changes nothing there.
import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { call, newKey, newOrg, verify } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

describe("cross-organization access", () => {
  let victim: Org;
  let attacker: Org;
  let victimKey: { id: string; key: string };
  let attackerKey: string;
  let deliveryId: string;

  beforeAll(async () => {
    victim = await newOrg("victim");
    attacker = await newOrg("attacker");
    victimKey = await newKey(victim.admin, victim.project.id, {
      rotation_webhook_url: "https://hooks.example.com/victim",
    });
    const rotated = await call("POST", `/v1/api-keys/${victimKey.id}/rotate`, {
      token: victim.admin,
      body: { grace_period_seconds: 3600 },
    });
    victimKey = { id: rotated.body.new_key_id, key: rotated.body.key };
    const delivery = await env.DB.prepare("select id from webhook_deliveries where project_id = ?")
      .bind(victim.project.id)
      .first<{ id: string }>();
    deliveryId = delivery?.id ?? "";
    attackerKey = (await newKey(attacker.admin, attacker.project.id, { scopes: ["*"] })).key;
  });

  const routes = (): [string, string, unknown?][] => {
    const p = victim.project.id;
    const k = victimKey.id;
    return [
      ["GET", `/v1/projects/${p}`],
      ["PATCH", `/v1/projects/${p}`, { name: "pwned" }],
      ["GET", `/v1/projects/${p}/environments`],
      ["POST", `/v1/projects/${p}/environments`, { name: "pwned" }],
      ["GET", `/v1/projects/${p}/webhook-secret`],
      ["POST", `/v1/projects/${p}/webhook-secret`],
      ["GET", `/v1/projects/${p}/webhook-deliveries`],
      ["POST", `/v1/projects/${p}/webhook-deliveries/${deliveryId}/retry`],
      ["GET", `/v1/api-keys?project_id=${p}`],
      ["POST", "/v1/api-keys", { project_id: p, name: "pwned" }],
      ["GET", `/v1/api-keys/${k}`],
      ["PATCH", `/v1/api-keys/${k}`, { name: "pwned" }],
      ["DELETE", `/v1/api-keys/${k}`],
      ["POST", `/v1/api-keys/${k}/rotate`, {}],
      ["GET", `/v1/organizations/${victim.org}/api-keys`],
      ["POST", `/v1/organizations/${victim.org}/api-keys`, { name: "pwned", scopes: [] }],
      ["DELETE", `/v1/organizations/${victim.org}/api-keys/${k}`],
      ["DELETE", `/v1/organizations/${attacker.org}/api-keys/${k}`],
      ["GET", `/v1/organizations/${victim.org}/audit-log`],
      ["GET", `/api/v1/projects/${p}/keys`],
      ["POST", `/api/v1/projects/${p}/keys`, {}],
      ["DELETE", `/api/v1/projects/${p}/keys/${k}`],
    ];
  };

  it("answers 404 on every route, for a user and for a key of another org, and changes nothing", async () => {
    const snapshot = async () => {
      const tables = ["projects", "environments", "api_keys", "webhook_deliveries"];
      const out: unknown[] = [];
      for (const table of tables) {
        const { results } = await env.DB.prepare(
          `select * from ${table} where organization_id = ? order by seq`,
        )
          .bind(victim.org)
          .all();
        out.push(results);
      }
      return JSON.stringify(out);
    };
    const before = await snapshot();
    expect(deliveryId).not.toBe("");
    for (const token of [attacker.admin, attacker.member, attackerKey]) {
      for (const [method, path, body] of routes()) {
        const response = await call(method, path, { token, body });
        expect(response.status, `${method} ${path}`).toBe(404);
        expect(response.headers.get("content-type")).toContain("application/problem+json");
        expect(response.text).not.toContain(victimKey.key);
      }
    }
    expect(await snapshot()).toBe(before);
    expect((await verify(victimKey.key)).body.valid).toBe(true);
  });

  it("does not tell a foreign resource apart from a missing one", async () => {
    const foreign = await call("GET", `/v1/api-keys/${victimKey.id}`, { token: attacker.admin });
    const missing = await call("GET", `/v1/api-keys/${crypto.randomUUID()}`, {
      token: attacker.admin,
    });
    expect(foreign.status).toBe(missing.status);
    expect(foreign.body.detail).toBe(missing.body.detail);
  });
});
