// @keygate/client against the real Worker, in process: the generated types describe what
// Keygate really answers, and openapi-fetch drives every call.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { createKeygateClient, type Identity, type UsageExport } from "@keygate/client";
import { describe, expect, it } from "vitest";
import worker from "../../../src/index";
import { BASE, newOrg } from "../../../test/helpers";

/** Requests go straight into the Worker's fetch handler (router, D1, KV: all real). */
const keygateFetch = async (request: Request) => {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    request as Request<unknown, IncomingRequestCfProperties>,
    env,
    ctx,
  );
  await waitOnExecutionContext(ctx);
  return response;
};

describe("createKeygateClient", () => {
  it("manages a project's keys end to end, typed by Keygate's OpenAPI document", async () => {
    const { admin } = await newOrg("client");
    const keygate = createKeygateClient({ url: BASE, token: admin, fetch: keygateFetch });

    const project = await keygate.POST("/v1/projects", { body: { name: "Client" } });
    expect(project.response.status).toBe(201);
    const projectId = project.data?.id as string;
    expect(project.data?.webhook_signing_secret).toMatch(/^whsec_/);

    const created = await keygate.POST("/v1/api-keys", {
      body: { project_id: projectId, name: "CI", scopes: ["deploy"] },
    });
    expect(created.response.status).toBe(201);
    const keyId = created.data?.id as string;
    expect(created.data?.key).toMatch(/^capy_live_/);

    const listed = await keygate.GET("/v1/api-keys", {
      params: { query: { project_id: projectId } },
    });
    expect(listed.data?.map((key) => key.id)).toEqual([keyId]);

    const one = await keygate.GET("/v1/api-keys/{keyID}", { params: { path: { keyID: keyId } } });
    expect(one.data).toMatchObject({ id: keyId, name: "CI", scopes: ["deploy"], is_active: true });

    // Unpinned: on verify, a bearer token is a verifier credential.
    const verifier = createKeygateClient({ url: BASE, fetch: keygateFetch });
    const verified = await verifier.POST("/v1/keys/verify", {
      body: { key: created.data?.key as string, required_scopes: ["deploy"] },
    });
    expect(verified.data).toMatchObject({ valid: true, code: "VALID", key_id: keyId });

    const rotated = await keygate.POST("/v1/api-keys/{keyID}/rotate", {
      params: { path: { keyID: keyId } },
      body: { grace_period_seconds: 60 },
    });
    expect(rotated.response.status).toBe(201);
    expect(rotated.data?.old_key_id).toBe(keyId);

    const revoked = await keygate.DELETE("/v1/api-keys/{keyID}", {
      params: { path: { keyID: rotated.data?.new_key_id as string } },
    });
    expect(revoked.response.status).toBe(204);
  });

  it('keys created with client: "cli" carry source: "cli" (the Keygate-Client header)', async () => {
    const { admin, project } = await newOrg("client_cli");
    const body = { project_id: project.id, name: "k", scopes: [] };
    const cli = createKeygateClient({
      url: BASE,
      token: admin,
      client: "cli",
      fetch: keygateFetch,
    });
    expect((await cli.POST("/v1/api-keys", { body })).data?.source).toBe("cli");
    const plain = createKeygateClient({ url: BASE, token: admin, fetch: keygateFetch });
    expect((await plain.POST("/v1/api-keys", { body })).data?.source).toBe("dashboard");
  });

  it("manages identities and reads the usage export, typed", async () => {
    const { admin, project } = await newOrg("client_identities");
    const keygate = createKeygateClient({ url: BASE, token: admin, fetch: keygateFetch });
    const created = await keygate.POST("/v1/identities", {
      body: { external_id: "cust_typed", credits: { remaining: 10 } },
    });
    expect(created.response.status).toBe(201);
    const identity: Identity = created.data as Identity;
    const path = { params: { path: { identityID: identity.id } } };
    const listed = await keygate.GET("/v1/identities", {
      params: { query: { external_id: "cust_typed" } },
    });
    expect(listed.data?.identities.map((i) => i.id)).toEqual([identity.id]);
    const spent = await keygate.POST("/v1/identities/{identityID}/credits", {
      ...path,
      body: { operation: "decrement", value: 4 },
    });
    expect(spent.data?.remaining).toBe(6);
    const patched = await keygate.PATCH("/v1/identities/{identityID}", {
      ...path,
      body: { meta: { plan: "pro" } },
    });
    expect(patched.data).toMatchObject({ meta: { plan: "pro" }, credits: { remaining: 6 } });
    const key = await keygate.POST("/v1/api-keys", {
      body: { project_id: project.id, name: "owned", scopes: [], external_id: "cust_typed" },
    });
    expect(key.response.status).toBe(201);
    const usage = await keygate.GET("/v1/usage", {
      params: { query: { group_by: "external_id", granularity: "day" } },
    });
    // JSON unless `Accept: text/csv` (the answer's type is the union of the two).
    const exported = usage.data as UsageExport;
    expect(exported).toMatchObject({ granularity: "day", group_by: "external_id", rows: [] });
    const verifications = await keygate.GET("/v1/identities/{identityID}/verifications", path);
    expect(verifications.data?.identity_id).toBe(identity.id);
    const deleted = await keygate.DELETE("/v1/identities/{identityID}", path);
    expect(deleted.response.status).toBe(204);
    expect((await keygate.GET("/v1/identities/{identityID}", path)).response.status).toBe(404);
  });

  it("hands back Keygate's problem+json as `error`", async () => {
    const keygate = createKeygateClient({ url: BASE, token: "nope", fetch: keygateFetch });
    const answer = await keygate.GET("/v1/projects");
    expect(answer.response.status).toBe(401);
    expect(answer.data).toBeUndefined();
    expect(answer.error).toMatchObject({ status: 401, type: expect.any(String) });
  });
});
