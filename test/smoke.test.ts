import { describe, expect, it } from "vitest";
import { call, newKey, newOrg, verify } from "./helpers";

describe("smoke", () => {
  it("creates a project and a key, verifies, rotates", async () => {
    const { admin, project } = await newOrg();
    expect(project.webhook_signing_secret).toMatch(/^whsec_/);
    const key = await newKey(admin, project.id, { scopes: ["read"] });
    expect(key.key).toMatch(/^capy_live_/);
    const v = await verify(key.key);
    expect(v.body).toMatchObject({ valid: true, code: "VALID", key_id: key.id });
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: admin,
      body: { grace_period_seconds: 60 },
    });
    expect(rotated.status).toBe(201);
    const old = await verify(key.key);
    expect(old.body).toMatchObject({ valid: true, in_grace: true });
    const again = await call("POST", `/v1/api-keys/${key.id}/rotate`, { token: admin, body: {} });
    expect(again.status).toBe(409);
  });
});
