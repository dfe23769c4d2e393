import { describe, expect, it } from "vitest";
import { call } from "./helpers";

const EXPECTED_OPERATIONS = [
  "get /healthz",
  "post /v1/keys/verify",
  "post /v1/leaks",
  "post /v1/leaks/github",
  "post /v1/api-keys/{keyID}/credits",
  "get /v1/projects",
  "post /v1/projects",
  "get /v1/projects/{id}",
  "patch /v1/projects/{id}",
  "get /v1/projects/{id}/environments",
  "post /v1/projects/{id}/environments",
  "get /v1/projects/{id}/webhook-secret",
  "post /v1/projects/{id}/webhook-secret",
  "get /v1/projects/{id}/webhook-deliveries",
  "post /v1/projects/{id}/webhook-deliveries/{deliveryId}/retry",
  "get /v1/projects/{id}/webhook-endpoints",
  "post /v1/projects/{id}/webhook-endpoints",
  "get /v1/projects/{id}/webhook-endpoints/{endpointID}",
  "patch /v1/projects/{id}/webhook-endpoints/{endpointID}",
  "delete /v1/projects/{id}/webhook-endpoints/{endpointID}",
  "get /v1/api-keys",
  "post /v1/api-keys",
  "get /v1/api-keys/{keyID}",
  "patch /v1/api-keys/{keyID}",
  "delete /v1/api-keys/{keyID}",
  "post /v1/api-keys/{keyID}/rotate",
  "get /v1/api-keys/{keyID}/verifications",
  "get /v1/projects/{id}/verifications",
  "get /v1/organizations/{orgID}/api-keys",
  "post /v1/organizations/{orgID}/api-keys",
  "delete /v1/organizations/{orgID}/api-keys/{keyID}",
  "get /v1/organizations/{orgID}/audit-log",
  "get /api/v1/projects/{projectId}/keys",
  "post /api/v1/projects/{projectId}/keys",
  "delete /api/v1/projects/{projectId}/keys/{keyId}",
  "get /api/v1/schemas/{name}",
  "get /v1/identities",
  "post /v1/identities",
  "get /v1/identities/{identityID}",
  "patch /v1/identities/{identityID}",
  "delete /v1/identities/{identityID}",
  "post /v1/identities/{identityID}/credits",
  "get /v1/identities/{identityID}/verifications",
  "get /v1/usage",
];

describe("meta routes", () => {
  it("serves /healthz", async () => {
    const response = await call("GET", "/healthz");
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ status: "ok" });
  });

  it("serves an OpenAPI 3.1 document of every route with the bearer scheme", async () => {
    const response = await call("GET", "/openapi.json");
    expect(response.status).toBe(200);
    const doc = response.body;
    expect(doc.openapi).toBe("3.1.0");
    expect(doc.components.securitySchemes.bearerAuth).toMatchObject({
      type: "http",
      scheme: "bearer",
    });
    const operations = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, item]) => Object.keys(item).map((method) => `${method} ${path}`),
    );
    expect(operations.sort()).toEqual([...EXPECTED_OPERATIONS].sort());
    const revoke = doc.paths["/api/v1/projects/{projectId}/keys/{keyId}"].delete;
    expect(revoke.parameters.map((p: { name: string }) => p.name)).toEqual(["projectId", "keyId"]);
    // Seed 002 keeps its own scheme name; bearerAuth first, so one token entered on /docs works.
    expect(revoke.security).toEqual([{ bearerAuth: [] }, { bearerClerk: [] }]);
    expect(Object.keys(doc.components.securitySchemes).sort()).toEqual([
      "bearerAuth",
      "bearerClerk",
    ]);
    // Response timestamps are declared as date-time, as the seeds show them.
    const key = doc.components.schemas.ApiKey.properties;
    expect(key.created_at).toMatchObject({ type: "string", format: "date-time" });
    expect(key.revoked_at).toMatchObject({ format: "date-time" });
    // No credential needed; a verifier key (keys:verify) is optional.
    expect(doc.paths["/v1/keys/verify"].post.security).toEqual([{}, { bearerAuth: [] }]);
    const seed000 = doc.paths["/v1/organizations/{orgID}/api-keys"].post.responses["201"];
    const schema = seed000.content["application/json"].schema;
    expect(schema.properties.plaintext_api_key).toBeDefined();
  });

  it("serves an offline API reference page and its script", async () => {
    const page = await call("GET", "/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.text).toContain('src="/docs/scalar.js"');
    expect(page.text).toContain("/openapi.json");
    expect(page.text).not.toMatch(/https?:\/\/(cdn|unpkg|fonts)/);
    const script = await call("GET", "/docs/scalar.js");
    expect(script.status).toBe(200);
    expect(script.headers.get("content-type")).toContain("javascript");
    expect(script.text.length).toBeGreaterThan(100_000);
  });
});

describe("the OpenAPI document tells the whole truth", () => {
  // biome-ignore lint/suspicious/noExplicitAny: the document is walked dynamically
  type Json = any;
  const operations = (doc: Json): [string, Json][] =>
    Object.entries(doc.paths).flatMap(([path, item]) =>
      Object.entries(item as Json).map(
        ([method, op]) => [`${method} ${path}`, op] as [string, Json],
      ),
    );

  it("names the origin that serves it in `servers`, so every snippet has a host", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    expect(doc.servers).toEqual([{ url: "http://keygate.test", description: expect.any(String) }]);
  });

  it("lets one bearerAuth token work for every authenticated operation, seed 002's too", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    for (const [name, op] of operations(doc)) {
      const security = op.security ?? doc.security;
      if (security.length === 0) continue; // /healthz takes no credential
      // The first credential offered (after `{}`, "none needed", on verify) is bearerAuth.
      const offered = security.filter((s: Json) => Object.keys(s).length > 0);
      expect(offered[0], name).toEqual({ bearerAuth: [] });
      if (name.includes(" /api/v1/projects/")) {
        expect(security, name).toContainEqual({ bearerClerk: [] });
      }
    }
    const page = (await call("GET", "/docs")).text;
    expect(page).toContain('preferredSecurityScheme: "bearerAuth"');
  });

  it("documents the response headers it sends", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    for (const [name, op] of operations(doc)) {
      for (const [status, response] of Object.entries(op.responses as Record<string, Json>)) {
        if (status === "401") expect(response.headers, name).toHaveProperty("WWW-Authenticate");
        if (status === "429" || status === "503") {
          expect(response.headers, `${name} ${status}`).toHaveProperty("Retry-After");
        }
      }
      if ((op.parameters ?? []).some((p: Json) => p.name === "cursor")) {
        expect(op.responses["200"].headers, name).toHaveProperty("Link");
      }
    }
    expect(doc.components.responses.MethodNotAllowed.headers).toHaveProperty("Allow");
    const wrongMethod = await call("PUT", "/v1/projects");
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.headers.get("allow")).toBe("GET, POST");
  });
});
