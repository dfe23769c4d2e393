// Property-based fuzzing of every operation in /openapi.json: random and adversarial bodies,
// path and query parameters, content types and credentials. For every request:
//   - no 5xx;
//   - the status is one the operation documents;
//   - an error is problem+json (and a 401 says WWW-Authenticate: Bearer);
//   - a success matches the documented schema, field for field;
//   - a rejected request changes no row of D1.
// Runs are reproducible: a fixed seed, which fast-check prints with the failing path on any
// failure; put the path in REPLAY to run just that case again.
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { KEY_EVENT_TYPES } from "../src/core/event-types";
import { generateKey } from "../src/core/key-material";
import { d1Snapshot, expectProblem, type Json, schemaErrors, send } from "./hardening";
import { call, newKey, newOrg, sessionToken } from "./helpers";

/** Runs per operation: about a thousand requests in all, in well under a minute. */
const RUNS = 50;
const REPLAY: { seed: number; path?: string } = { seed: 20_261_201 };

type Org = Awaited<ReturnType<typeof newOrg>>;

let doc: Json;
let a: Org;
let b: Org;
/** Credentials that should work (in some role), and ones that never do. */
const goodTokens: string[] = [];
const badTokens: string[] = [];
/** Keys the requests act on, apart from the keys used as credentials. */
const targets: { id: string; key: string }[] = [];
let deliveryId = "";
/** Identities the requests act on: two of organization a (one with credits), one of b. */
const identityIds: string[] = [];
/** Webhook endpoints the requests act on: two of organization a's project, one of b's. */
const endpointIds: string[] = [];

beforeAll(async () => {
  doc = (await call("GET", "/openapi.json")).body;
  a = await newOrg("fuzz-a");
  b = await newOrg("fuzz-b");
  const star = await newKey(a.admin, a.project.id, { scopes: ["*"] });
  const read = await newKey(a.admin, a.project.id, { scopes: ["keys:read", "projects:read"] });
  const otherOrg = await newKey(b.admin, b.project.id, { scopes: ["*"] });
  const orgKey = await call("POST", `/v1/organizations/${a.org}/api-keys`, {
    token: a.admin,
    body: { name: "org key", scopes: ["*"] },
  });
  const revoked = await newKey(a.admin, a.project.id, { scopes: ["*"] });
  await call("DELETE", `/v1/api-keys/${revoked.id}`, { token: a.admin });

  for (let i = 0; i < 4; i++) targets.push(await newKey(a.admin, a.project.id, { scopes: ["x"] }));
  targets.push(
    await newKey(a.admin, a.project.id, {
      rotation_webhook_url: "https://example.com/hooks/keygate",
      rotation_interval_days: 30,
    }),
  );
  targets.push(await newKey(b.admin, b.project.id), revoked);
  const orgTarget = await call("POST", `/v1/organizations/${a.org}/api-keys`, {
    token: a.admin,
    body: { name: "org target", scopes: [] },
  });
  targets.push({ id: orgTarget.body.api_key.id, key: orgTarget.body.plaintext_api_key });
  const adminManaged = await call("POST", `/api/v1/projects/${a.project.id}/keys`, {
    token: a.admin,
    body: { is_admin_managed: true },
  });
  targets.push({ id: adminManaged.body.key_id, key: adminManaged.body.key });

  // A rotation of a key with a webhook URL queues a delivery: the retry route has a target.
  const spare = await newKey(a.admin, a.project.id, {
    rotation_webhook_url: "https://example.com/hooks/spare",
  });
  await call("POST", `/v1/api-keys/${spare.id}/rotate`, { token: a.admin, body: {} });
  const deliveries = await call("GET", `/v1/projects/${a.project.id}/webhook-deliveries`, {
    token: a.admin,
  });
  deliveryId = deliveries.body.webhook_deliveries[0].id;

  for (const [org, body] of [
    [a, { external_id: "fuzz-owner", credits: { remaining: 10 } }],
    [a, { external_id: "fuzz-other" }],
    [b, { external_id: "fuzz-owner" }],
  ] as const) {
    const identity = await call("POST", "/v1/identities", { token: org.admin, body });
    identityIds.push(identity.body.id);
  }
  for (const org of [a, a, b]) {
    const endpoint = await call("POST", `/v1/projects/${org.project.id}/webhook-endpoints`, {
      token: org.admin,
      body: { url: "https://example.com/hooks/events", events: ["*"] },
    });
    endpointIds.push(endpoint.body.id);
  }

  goodTokens.push(
    a.admin,
    a.admin,
    a.admin,
    a.member,
    b.admin,
    star.key,
    star.key,
    orgKey.body.plaintext_api_key,
    read.key,
    otherOrg.key,
    await sessionToken({ org: a.org, role: "member", version: 1 }),
  );
  const unknownKey = (await generateKey("capy", "live")).plaintext;
  badTokens.push(
    revoked.key,
    unknownKey,
    `${unknownKey.slice(0, -1)}x`,
    await sessionToken({ org: a.org, expiresIn: -60 }),
    await sessionToken({ org: a.org, privateKey: env.TEST_OTHER_PRIVATE_KEY }),
    await sessionToken({ org: null }),
    `${a.admin.slice(0, -4)}AAAA`,
    "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyXzEiLCJvIjp7ImlkIjoib3JnX3giLCJyb2wiOiJhZG1pbiJ9fQ.",
  );
});

// ---------- generators ----------

const ADVERSARIAL_STRINGS = [
  "",
  " ",
  "\u0000",
  "' OR '1'='1' --",
  "'; drop table api_keys; --",
  "../../../etc/passwd",
  "%00",
  "%2e%2e%2f",
  "<script>alert(1)</script>",
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a log4shell probe, literally
  "${jndi:ldap://x}",
  "\uD800",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ✓ ﷽",
  "null",
  "true",
  "-1",
  "1e309",
  "__proto__",
  "constructor",
  "a".repeat(5000),
  "org_x",
  "capy_live_",
];

const adversarialString = fc.oneof(
  fc.constantFrom(...ADVERSARIAL_STRINGS),
  fc.string({ maxLength: 80 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.uuid(),
);

const adversarialJson: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 3, arbitrary: adversarialString },
  fc.constantFrom(null, true, false, 0, -1, 1.5, 1e308, -0, 2 ** 53 + 1, [], {}),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.constant({ ["__proto__"]: { isAdmin: true } }),
);

/** Values that mean something to Keygate, per field or parameter name. */
function meaningful(name: string): fc.Arbitrary<unknown> | undefined {
  const future = fc
    .integer({ min: 60, max: 10 * 365 * 86_400 })
    .map((s) => new Date(Date.now() + s * 1000).toISOString());
  const past = fc
    .integer({ min: 1, max: 50 * 365 * 86_400 })
    .map((s) => new Date(Date.now() - s * 1000).toISOString());
  const projectIds = () => fc.constantFrom(a.project.id, b.project.id, crypto.randomUUID());
  const keyIds = () => fc.constantFrom(...targets.map((t) => t.id), crypto.randomUUID());
  switch (name) {
    case "id":
    case "projectId":
    case "project_id":
      return projectIds();
    case "keyID":
    case "keyId":
      return keyIds();
    case "orgID":
      return fc.constantFrom(a.org, b.org, "org_unknown");
    case "identityID":
      return fc.constantFrom(...identityIds, crypto.randomUUID());
    case "external_id":
      return fc.constantFrom("fuzz-owner", "fuzz-other", "user_1234", "a:b@c.d-e", "bad id", "");
    case "operation":
      return fc.constantFrom("set", "increment", "decrement", "multiply");
    case "value":
      return fc.oneof(fc.integer({ min: -1, max: 1_000 }), fc.constantFrom(1e12, 1e12 + 1, 0.5));
    case "endpointID":
      return fc.constantFrom(...endpointIds, crypto.randomUUID());
    case "url":
      return fc.oneof(
        { weight: 4, arbitrary: fc.constantFrom("https://example.com/e", "http://localhost:9/e") },
        {
          weight: 1,
          arbitrary: fc.constantFrom("http://example.com/e", "https://10.0.0.1/e", "", null),
        },
      );
    case "events":
      return fc.oneof(
        { weight: 2, arbitrary: fc.constantFrom(["*"], ["api_key.revoked", "api_key.leaked"]) },
        { weight: 2, arbitrary: fc.subarray([...KEY_EVENT_TYPES], { minLength: 1 }) },
        { weight: 1, arbitrary: fc.constantFrom([], ["*", "api_key.created"], ["api_key.x"]) },
      );
    case "description":
      return fc.oneof(fc.string({ maxLength: 130 }), fc.constant(null));
    case "enabled":
      return fc.oneof(
        { weight: 4, arbitrary: fc.boolean() },
        { weight: 1, arbitrary: fc.constantFrom("true", 0, null) },
      );
    case "deliveryId":
      return fc.constantFrom(deliveryId, `msg_${"0".repeat(32)}`);
    case "environment_id":
      return fc.constantFrom(a.project.environments[0].id, b.project.environments[0].id);
    case "environment":
    case "name":
      return fc.oneof(
        fc.constantFrom("live", "test", "staging", "Live", "a".repeat(129)),
        fc.string({ minLength: 1, maxLength: 20 }),
      );
    case "key_prefix":
      return fc.constantFrom("acme", "capy", "Acme", "a_b", "a".repeat(17), "x1");
    case "key":
      return fc.oneof(
        fc.constantFrom(...targets.map((t) => t.key), ...goodTokens, ...badTokens),
        fc.constantFrom(...targets).map((t) => `${t.key}x`),
        fc.constantFrom(...targets).map((t) => t.key.toUpperCase()),
      );
    case "keys":
      // Leak reports: never a key the other operations use (a genuine one would be revoked).
      return fc.array(fc.oneof(fc.string({ maxLength: 60 }), fc.constantFrom(...badTokens)), {
        minLength: 1,
        maxLength: 5,
      });
    case "scopes":
    case "required_scopes":
      return fc.array(
        fc.oneof(
          fc.constantFrom("*", "keys:read", "keys:write", "projects:write", "audit:read", "deploy"),
          fc.stringMatching(/^[A-Za-z0-9:._*-]{1,12}$/),
        ),
        { maxLength: 6 },
      );
    case "expires_at":
      return fc.oneof(future, past, fc.constant(null), fc.constant("2030-02-30T00:00:00Z"));
    case "rotation_webhook_url":
      return fc.constantFrom(
        "https://example.com/hooks/keygate",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://example.com/hook",
        "https://user:pw@example.com/hook",
        "javascript:alert(1)",
        "ftp://example.com",
        null,
      );
    case "rotation_interval_days":
      return fc.oneof(fc.integer({ min: -2, max: 400 }), fc.constant(null));
    case "grace_period_seconds":
      return fc.oneof(
        fc.integer({ min: -1, max: 2_592_001 }),
        fc.constantFrom(0, 60, 2_592_000, 0.5, "60"),
      );
    case "is_admin_managed":
      return fc.boolean();
    case "device_name":
      return fc.oneof(fc.string({ maxLength: 130 }), fc.constant(null));
    case "limit":
      return fc.oneof(fc.integer({ min: -1, max: 102 }), fc.constantFrom("abc", "1.5", "", "1e2"));
    case "cursor":
      return fc.constantFrom(btoa("s:1"), btoa("s:99999"), btoa("s:-1"), "%%%", "AAAA", "");
    default:
      return undefined;
  }
}

const valueFor = (name: string): fc.Arbitrary<unknown> => {
  const known = meaningful(name);
  return known
    ? fc.oneof({ weight: 4, arbitrary: known }, { weight: 1, arbitrary: adversarialJson })
    : adversarialJson;
};

interface FuzzRequest {
  params: Record<string, string>;
  query: [string, string][];
  token: string | undefined;
  authorization: string | undefined;
  contentType: string | undefined;
  body: string | undefined;
}

const stringify = (value: unknown) =>
  typeof value === "string" ? value : value === null ? "null" : (JSON.stringify(value) ?? "");

const requestSchema = (operation: Json) =>
  operation.requestBody?.content?.["application/json"]?.schema ?? { properties: {} };

/** A body built from the operation's own fields: `wellFormed` keeps to meaningful values. */
function bodyArbitrary(operation: Json, wellFormed: boolean): fc.Arbitrary<string | undefined> {
  const schema = requestSchema(operation);
  const record: Record<string, fc.Arbitrary<unknown>> = {};
  for (const field of Object.keys(schema.properties ?? {})) {
    record[field] = wellFormed ? (meaningful(field) ?? adversarialJson) : valueFor(field);
  }
  if (wellFormed) {
    return fc
      .record(record, { requiredKeys: schema.required ?? [] })
      .map((body) => JSON.stringify(body));
  }
  const shaped = fc
    .tuple(
      fc.record(record, { requiredKeys: [] }),
      fc.dictionary(fc.string({ maxLength: 12 }), adversarialJson, { maxKeys: 2 }),
    )
    .map(([known, extra]) => JSON.stringify({ ...extra, ...known }));
  return fc.oneof(
    { weight: 6, arbitrary: shaped },
    { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v)) },
    {
      weight: 2,
      arbitrary: fc.constantFrom(
        undefined,
        "",
        "{",
        "[1,2",
        "nul",
        '{"name":"x"}garbage',
        "\uFEFF{}",
        JSON.stringify({ name: "big", pad: "x".repeat(70 * 1024) }),
        `{"a":${"[".repeat(5000)}${"]".repeat(5000)}}`,
      ),
    },
  );
}

/** Half the runs are well-formed (so they reach the core), half adversarial. */
function requestArbitrary(operation: Json, method: string): fc.Arbitrary<FuzzRequest> {
  return fc.oneof(shapedRequest(operation, method, true), shapedRequest(operation, method, false));
}

function shapedRequest(
  operation: Json,
  method: string,
  wellFormed: boolean,
): fc.Arbitrary<FuzzRequest> {
  const parameters: Json[] = operation.parameters ?? [];
  const pathParams: Record<string, fc.Arbitrary<string>> = {};
  const queryParams: Record<string, fc.Arbitrary<unknown>> = {};
  for (const p of parameters) {
    const value = wellFormed ? (meaningful(p.name) ?? fc.uuid()) : valueFor(p.name);
    if (p.in === "path") pathParams[p.name] = value.map(stringify);
    if (p.in === "query") {
      queryParams[p.name] =
        wellFormed && p.name === "limit" ? fc.integer({ min: 1, max: 100 }) : value;
    }
  }
  const required = parameters.filter((p) => p.in === "query" && p.required).map((p) => p.name);
  const query = fc
    .tuple(
      fc.record(queryParams, { requiredKeys: wellFormed ? required : [] }),
      wellFormed
        ? fc.constant([])
        : fc.array(fc.tuple(fc.constantFrom("limit", "x", "project_id"), fc.string()), {
            maxLength: 2,
          }),
    )
    .map(([known, extra]) => [
      ...Object.entries(known).map(([k, v]) => [k, stringify(v)] as [string, string]),
      ...extra,
    ]);
  const token = wellFormed
    ? fc.constantFrom(...goodTokens)
    : fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom(...goodTokens) },
        { weight: 3, arbitrary: fc.constantFrom(...badTokens) },
        { weight: 1, arbitrary: fc.constant(undefined) },
        { weight: 1, arbitrary: fc.string({ maxLength: 60 }) },
        {
          weight: 1,
          arbitrary: fc
            .tuple(fc.base64String(), fc.base64String(), fc.base64String())
            .map((parts) => parts.join(".")),
        },
      );
  // Mostly "Bearer <token>"; sometimes a header that is not one.
  const authorization = wellFormed
    ? fc.constant(undefined)
    : fc.oneof(
        { weight: 6, arbitrary: fc.constant(undefined) },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            "Bearer",
            "Bearer ",
            "Basic dXNlcjpwdw==",
            "bearer  x y",
            "Token",
          ),
        },
      );
  const contentType = wellFormed
    ? fc.constant("application/json")
    : fc.oneof(
        { weight: 3, arbitrary: fc.constant("application/json") },
        {
          weight: 1,
          arbitrary: fc.constantFrom(
            undefined,
            "application/json; charset=utf-8",
            "APPLICATION/JSON",
            "application/merge-patch+json",
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/jsonx",
          ),
        },
      );
  const body =
    method === "get"
      ? fc.constant(undefined)
      : operation.requestBody || !wellFormed
        ? bodyArbitrary(operation, wellFormed)
        : fc.constant(undefined);
  return fc.record({
    params: fc.record(pathParams),
    query,
    token,
    authorization,
    contentType,
    body,
  });
}

// ---------- the properties ----------

/** Percent-encoded; a lone surrogate becomes its (invalid) CESU-8 bytes, adversarial too. */
function encodeSegment(value: string): string {
  try {
    return encodeURIComponent(value);
  } catch {
    return [...value]
      .map((ch) => {
        const code = ch.charCodeAt(0);
        if (ch.length > 1 || code < 0xd800 || code > 0xdfff) return encodeURIComponent(ch);
        const bytes = [0xe0 | (code >> 12), 0x80 | ((code >> 6) & 0x3f), 0x80 | (code & 0x3f)];
        return bytes.map((byte) => `%${byte.toString(16).toUpperCase()}`).join("");
      })
      .join("");
  }
}

function concretePath(template: string, params: Record<string, string>) {
  return template.replace(/\{(\w+)\}/g, (_, name: string) => encodeSegment(params[name] ?? ""));
}

async function sendFuzz(method: string, path: string, request: FuzzRequest) {
  const query = new URLSearchParams(request.query).toString();
  const headers: Record<string, string> = {};
  if (request.authorization !== undefined) headers.authorization = request.authorization;
  if (request.contentType !== undefined) headers["content-type"] = request.contentType;
  return send(method.toUpperCase(), query ? `${path}?${query}` : path, {
    token: request.authorization === undefined ? request.token : undefined,
    headers,
    body: request.body,
  });
}

const GLOBAL_STATUSES = new Set(["413", "415"]);

function assertResponse(
  operation: Json,
  method: string,
  path: string,
  response: Awaited<ReturnType<typeof call>>,
  context: string,
) {
  const status = String(response.status);
  expect(response.status, `${context}\n${response.text}`).toBeLessThan(500);
  const declared = operation.responses?.[status];
  const emptyParam = /\/\/|\/$/.test(path);
  if (!declared) {
    // An empty path parameter reaches another route (or none): 404/405 from the router.
    const routerAnswer = emptyParam && (status === "404" || status === "405");
    expect(
      routerAnswer || (GLOBAL_STATUSES.has(status) && method !== "get"),
      `${context}: status ${status} is not documented for ${method.toUpperCase()} ${operation.__path}`,
    ).toBe(true);
  }
  if (response.status >= 400) {
    const body = expectProblem(response);
    const problemSchema = doc.components.schemas.Problem;
    expect(schemaErrors(doc, problemSchema, body), context).toEqual([]);
    return;
  }
  if (response.status === 204) {
    expect(response.text).toBe("");
    return;
  }
  const content = declared?.content?.["application/json"];
  expect(content, `${context}: ${status} has no JSON schema`).toBeDefined();
  expect(response.headers.get("content-type")).toContain("application/json");
  expect(schemaErrors(doc, content.schema, response.body), `${context}\n${response.text}`).toEqual(
    [],
  );
}

describe("fuzzing every operation of /openapi.json", () => {
  it("documents 413/415 on every route with a body and no auth on public routes", () => {
    for (const [path, item] of Object.entries<Json>(doc.paths)) {
      for (const [method, operation] of Object.entries<Json>(item)) {
        if (method !== "get") {
          expect(Object.keys(operation.responses), `${method} ${path}`).toEqual(
            expect.arrayContaining(["400", "413", "415"]),
          );
        }
      }
    }
    expect(doc.paths["/healthz"].get.security).toEqual([]);
    // Verify needs no credential; a verifier key is optional (SPEC Part 2).
    expect(doc.paths["/v1/keys/verify"].post.security).toEqual([{}, { bearerAuth: [] }]);
  });

  it("has a schema checker that reports drift", () => {
    const apiKey = { $ref: "#/components/schemas/ApiKey" };
    expect(schemaErrors(doc, apiKey, { id: "x" }).join()).toMatch(/: required: .*organization_id/);
    const problem = { $ref: "#/components/schemas/Problem" };
    const body = {
      type: "t",
      title: "t",
      status: 400,
      detail: "d",
      instance: "/",
      error: "d",
      errors: [],
    };
    expect(schemaErrors(doc, problem, body)).toEqual([]);
    expect(schemaErrors(doc, problem, { ...body, extra: 1 }).join()).toMatch(
      /#\/extra: (false|unevaluatedProperties)/,
    );
    expect(schemaErrors(doc, problem, { ...body, status: "400" }).join()).toMatch(
      /#\/status: type: .*integer/,
    );
    // Through an allOf of a component and more members, and inside an array's items.
    const created = doc.paths["/v1/projects"].post.responses["201"].content["application/json"];
    const project = {
      id: crypto.randomUUID(),
      organization_id: "org_x",
      name: "p",
      key_prefix: "capy",
      leak_policy: "revoke",
      created_at: "2026-01-01T00:00:00.000Z",
      updated_at: "2026-01-01T00:00:00.000Z",
      webhook_signing_secret: "whsec_x",
    };
    const environment = {
      id: crypto.randomUUID(),
      project_id: project.id,
      name: "live",
      created_at: "2026-01-01T00:00:00.000Z",
    };
    expect(schemaErrors(doc, created.schema, { ...project, environments: [environment] })).toEqual(
      [],
    );
    const drifted = { ...project, environments: [{ ...environment, region: "eu" }] };
    expect(schemaErrors(doc, created.schema, drifted).join()).toMatch(/#\/environments\/0\/region/);
  });

  it("a duplicate environment name leaves no audit row behind (regression)", async () => {
    const org = await newOrg("fuzz-env");
    const before = await d1Snapshot();
    const duplicate = await send("POST", `/v1/projects/${org.project.id}/environments`, {
      token: org.admin,
      body: { name: "live" },
    });
    expectProblem(duplicate, 409);
    expect(await d1Snapshot()).toEqual(before);
  });

  it("stores a bounded client IP in the audit log, whatever the header says (regression)", async () => {
    const org = await newOrg("fuzz-ip");
    const created = await send("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "ip" },
      headers: { "cf-connecting-ip": "9".repeat(10_000) },
    });
    expect(created.status).toBe(201);
    const audit = await send("GET", `/v1/organizations/${org.org}/audit-log?limit=1`, {
      token: org.admin,
    });
    expect(audit.body.audit_events[0].ip).toHaveLength(64);
  });

  // One property per operation, so a failure names the route.
  const operations = () =>
    Object.entries<Json>(doc.paths).flatMap(([path, item]) =>
      Object.entries<Json>(item).map(([method, operation]) => ({ path, method, operation })),
    );

  it("holds the invariants for random and adversarial requests", { timeout: 240_000 }, async () => {
    let requests = 0;
    const statuses = new Map<string, number>();
    for (const { path: template, method, operation } of operations()) {
      operation.__path = template;
      await fc.assert(
        fc.asyncProperty(requestArbitrary(operation, method), async (request) => {
          const path = concretePath(template, request.params);
          const before = await d1Snapshot();
          const response = await sendFuzz(method, path, request);
          requests++;
          const label = `${method.toUpperCase()} ${template} ${response.status}`;
          statuses.set(label, (statuses.get(label) ?? 0) + 1);
          const context = `${method.toUpperCase()} ${path} ${JSON.stringify(request).slice(0, 600)}`;
          assertResponse(operation, method, path, response, context);
          if (response.status >= 400) {
            expect(await d1Snapshot(), `${context}: a rejected request wrote to D1`).toEqual(
              before,
            );
          }
        }),
        { numRuns: RUNS, ...REPLAY },
      );
    }
    // The runs reached past validation: some requests of most operations succeeded.
    const succeeded = [...statuses.keys()].filter((label) => / 2\d\d$/.test(label));
    expect(succeeded.length).toBeGreaterThan(operations().length / 2);
    expect(requests).toBe(RUNS * operations().length);
  });

  it("answers unknown paths and wrong methods with a 404/405 problem", async () => {
    const paths = Object.keys(doc.paths).map((p) => p.replace(/\{\w+\}/g, crypto.randomUUID()));
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"),
        fc.oneof(
          fc.constantFrom(...paths),
          fc.constantFrom(...paths).map((p) => `${p}/extra`),
          fc.webPath(),
        ),
        fc.constantFrom(...goodTokens, ...badTokens),
        async (method, path, token) => {
          const response = await send(method, path, {
            token,
            ...(method === "GET" ? {} : { body: {} }),
          });
          expect(response.status, `${method} ${path}: ${response.text}`).toBeLessThan(500);
          if (response.status >= 400) expectProblem(response);
          if (response.status === 405) expect(response.headers.get("allow")).toBeTruthy();
        },
      ),
      { numRuns: RUNS * 2, ...REPLAY },
    );
  });
});
