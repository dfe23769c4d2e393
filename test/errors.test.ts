import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { type CallOptions, call, newKey, newOrg } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

function expectProblem(response: Awaited<ReturnType<typeof call>>, status: number) {
  expect(response.status).toBe(status);
  expect(response.headers.get("content-type")).toContain("application/problem+json");
  const body = response.body;
  expect(body).toMatchObject({ status });
  for (const field of ["type", "title", "detail", "instance", "error"]) {
    expect(typeof body[field], field).toBe("string");
  }
  expect(body.error).toBe(body.detail);
  expect(Array.isArray(body.errors)).toBe(true);
  return body;
}

const rowCounts = async () => {
  const tables = ["projects", "environments", "api_keys", "audit_events", "webhook_deliveries"];
  const counts: Record<string, number> = {};
  for (const table of tables) {
    const row = await env.DB.prepare(`select count(*) as n from ${table}`).first<{ n: number }>();
    counts[table] = row?.n ?? -1;
  }
  return counts;
};

describe("problem+json for every error", () => {
  let org: Org;
  beforeAll(async () => {
    org = await newOrg("errors");
  });

  it("answers an unknown route with 404", async () => {
    const body = expectProblem(await call("GET", "/v1/nothing-here"), 404);
    expect(body.instance).toBe("/v1/nothing-here");
    expectProblem(await call("GET", "/"), 404);
  });

  it("answers a known path with the wrong method with 405 and Allow", async () => {
    const response = await call("PUT", "/v1/api-keys", { token: org.admin, body: {} });
    expectProblem(response, 405);
    expect(response.headers.get("allow")).toBe("GET, POST");
    const one = await call("POST", `/v1/api-keys/${crypto.randomUUID()}`, {
      token: org.admin,
      body: {},
    });
    expectProblem(one, 405);
    expect(one.headers.get("allow")).toBe("DELETE, GET, PATCH");
    expectProblem(await call("DELETE", "/v1/organizations/org_x/api-keys"), 405);
  });

  it("matches a route's literal segments exactly when looking for 405s", async () => {
    // A dot in /openapi.json is a dot, not any character: these paths are routed nowhere.
    expectProblem(await call("GET", "/openapiXjson"), 404);
    expectProblem(await call("POST", "/openapiXjson"), 404);
    expectProblem(await call("POST", "/openapi.json"), 405);
    // A parameter is one non-empty segment.
    expectProblem(await call("POST", "/v1/api-keys//rotate/x"), 404);
  });

  it("answers a body over 64 KiB with 413 and writes nothing", async () => {
    const before = await rowCounts();
    const response = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "big", padding: "x".repeat(70 * 1024) },
    });
    expectProblem(response, 413);
    expect(await rowCounts()).toEqual(before);
  });

  it("answers a non-JSON body with 415", async () => {
    const response = await call("POST", "/v1/projects", {
      token: org.admin,
      body: "name=x",
      headers: { "content-type": "application/x-www-form-urlencoded" },
    });
    expectProblem(response, 415);
    expectProblem(
      await call("POST", "/v1/keys/verify", {
        body: "key",
        headers: { "content-type": "text/plain" },
      }),
      415,
    );
  });

  it("answers malformed JSON with 400", async () => {
    const response = await call("POST", "/v1/projects", { token: org.admin, body: "{nope" });
    const body = expectProblem(response, 400);
    expect(body.errors[0].location).toBe("body");
  });

  it("names a missing required field", async () => {
    const body = expectProblem(
      await call("POST", "/v1/projects", { token: org.admin, body: {} }),
      400,
    );
    expect(body.errors.map((e: { location: string }) => e.location)).toContain("body.name");
    expect(body.detail).toContain("body.name");
    // A bare POST with no body at all is validated the same way.
    expectProblem(await call("POST", "/v1/projects", { token: org.admin }), 400);
  });

  it("reads a bare POST as {} whatever its empty body looks like on the wire", async () => {
    const key = await newKey(org.admin, org.project.id);
    const emptyStream = () => new ReadableStream({ start: (controller) => controller.close() });
    const bare: [string, () => CallOptions][] = [
      ["no body", () => ({})],
      ["an empty stream, no content type", () => ({ rawBody: emptyStream() })],
      ["an empty string (text/plain)", () => ({ rawBody: "" })],
      [
        "whitespace with a JSON type",
        () => ({ rawBody: " \n", headers: { "content-type": "application/json" } }),
      ],
    ];
    let current = key.id as string;
    for (const [shape, options] of bare) {
      const rotated = await call("POST", `/v1/api-keys/${current}/rotate`, {
        token: org.admin,
        ...options(),
      });
      expect(rotated.status, `rotate, ${shape}: ${rotated.text}`).toBe(201);
      expect(rotated.body.grace_expires_at).toBe(rotated.body.created_at); // default grace 0
      current = rotated.body.new_key_id;
      const created = await call("POST", `/api/v1/projects/${org.project.id}/keys`, {
        token: org.admin,
        ...options(),
      });
      expect(created.status, `seed 002 create, ${shape}`).toBe(201);
      expect(created.body.name).toBe("Untitled key");
    }
    // A body that is not empty still needs to be JSON.
    expectProblem(
      await call("POST", `/v1/api-keys/${current}/rotate`, { token: org.admin, rawBody: "x" }),
      415,
    );
  });

  it("answers a body nested thousands deep with a bounded 400, on every kind of route", async () => {
    const deep = `${"[".repeat(8000)}${"]".repeat(8000)}`;
    const before = await rowCounts();
    for (const [path, token] of [
      ["/v1/keys/verify", undefined],
      ["/v1/api-keys", org.admin],
    ] as const) {
      const response = await call("POST", path, {
        token,
        body: `{"key":${deep},"name":${deep},"project_id":"${org.project.id}"}`,
      });
      const body = expectProblem(response, 400);
      expect(response.text.length, path).toBeLessThan(4_000);
      expect(JSON.stringify(body.errors)).toContain("[…]");
    }
    expect(await rowCounts()).toEqual(before);
  });

  it("never echoes a key, and echoes long values cut short", async () => {
    const key = await newKey(org.admin, org.project.id);
    const asArray = await call("POST", "/v1/keys/verify", { body: { key: [key.key] } });
    expect(expectProblem(asArray, 400).errors[0]).toMatchObject({
      location: "body.key",
      value: ["[redacted key]"],
    });
    expect(asArray.text).not.toContain(key.key);
    const long = "n".repeat(5_000);
    const named = await call("POST", "/v1/projects", { token: org.admin, body: { name: long } });
    expect(expectProblem(named, 400).errors[0].value).toBe(`${"n".repeat(256)}…`);
  });

  it("a trailing slash is another path: 404 on every route, whatever the method", async () => {
    expect((await call("GET", "/v1/projects", { token: org.admin })).status).toBe(200);
    expectProblem(await call("GET", "/v1/projects/", { token: org.admin }), 404);
    expectProblem(await call("GET", "/v1/api-keys/", { token: org.admin }), 404);
    expectProblem(await call("GET", "/healthz/"), 404);
    expectProblem(await call("PUT", "/v1/projects/", { token: org.admin }), 404);
    expectProblem(await call("POST", "/v1/keys/verify/", { body: { key: "x" } }), 404);
  });

  it("refuses instants it could not write back as RFC 3339 (years past 9999)", async () => {
    const late = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "x", expires_at: "9999-12-31T23:59:59-23:59" },
    });
    expect(expectProblem(late, 400).errors[0].location).toBe("body.expires_at");
    const last = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "x", expires_at: "9999-12-31T23:59:59Z" },
    });
    expect(last.status).toBe(201);
    expect(last.body.expires_at).toBe("9999-12-31T23:59:59.000Z");
  });

  it("requires project_id on the seed 001 list", async () => {
    const body = expectProblem(await call("GET", "/v1/api-keys", { token: org.admin }), 400);
    expect(body.errors[0].location).toBe("query.project_id");
  });

  const invalidKeyBodies: [string, Record<string, unknown>, string][] = [
    ["empty name", { name: "" }, "body.name"],
    ["name over 128", { name: "n".repeat(129) }, "body.name"],
    ["name not a string", { name: 42 }, "body.name"],
    ["scopes not an array", { scopes: "keys:read" }, "body.scopes"],
    [
      "more than 50 scopes",
      { scopes: Array.from({ length: 51 }, (_, i) => `s${i}`) },
      "body.scopes",
    ],
    ["scope over 100 chars", { scopes: ["s".repeat(101)] }, "body.scopes.0"],
    ["empty scope", { scopes: ["ok", ""] }, "body.scopes.1"],
    ["scope with a space", { scopes: ["read all"] }, "body.scopes.0"],
    ["expires_at not RFC 3339", { expires_at: "tomorrow" }, "body.expires_at"],
    ["expires_at in the past", { expires_at: "2001-01-01T00:00:00Z" }, "body.expires_at"],
    ["device_name over 128", { device_name: "d".repeat(129) }, "body.device_name"],
    ["rotation_interval_days 0", { rotation_interval_days: 0 }, "body.rotation_interval_days"],
    ["rotation_interval_days 366", { rotation_interval_days: 366 }, "body.rotation_interval_days"],
    ["rotation_interval_days 1.5", { rotation_interval_days: 1.5 }, "body.rotation_interval_days"],
    [
      "webhook URL not https",
      { rotation_webhook_url: "http://example.com/h" },
      "body.rotation_webhook_url",
    ],
    ["webhook URL garbage", { rotation_webhook_url: "not a url" }, "body.rotation_webhook_url"],
    [
      "webhook URL over 2048",
      { rotation_webhook_url: `https://example.com/${"a".repeat(2048)}` },
      "body.rotation_webhook_url",
    ],
    ["environment_id of nothing", { environment_id: crypto.randomUUID() }, "body.environment_id"],
  ];

  for (const [label, fields, location] of invalidKeyBodies) {
    it(`rejects ${label} with 400 naming ${location}, writing nothing`, async () => {
      const before = await rowCounts();
      const response = await call("POST", "/v1/api-keys", {
        token: org.admin,
        body: { project_id: org.project.id, name: "k", ...fields },
      });
      const body = expectProblem(response, 400);
      expect(body.errors.map((e: { location: string }) => e.location)).toContain(location);
      expect(await rowCounts()).toEqual(before);
    });
  }

  it("reports every bad field at once", async () => {
    const response = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "", scopes: [""], rotation_interval_days: 999 },
    });
    const body = expectProblem(response, 400);
    const locations = body.errors.map((e: { location: string }) => e.location);
    expect(locations).toEqual(
      expect.arrayContaining(["body.name", "body.scopes.0", "body.rotation_interval_days"]),
    );
    expect(body.errors.find((e: { location: string }) => e.location === "body.name").value).toBe(
      "",
    );
  });

  it("bounds grace_period_seconds to 0 … 30 days", async () => {
    const key = await newKey(org.admin, org.project.id);
    for (const grace of [-1, 2_592_001, 1.5, "60"]) {
      const response = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
        token: org.admin,
        body: { grace_period_seconds: grace },
      });
      expect(expectProblem(response, 400).errors[0].location).toBe("body.grace_period_seconds");
    }
    const max = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period_seconds: 2_592_000 },
    });
    expect(max.status).toBe(201);
  });

  it("validates list paging", async () => {
    for (const query of ["limit=0", "limit=101", "limit=abc", "cursor=%%%"]) {
      const response = await call("GET", `/v1/projects?${query}`, { token: org.admin });
      expectProblem(response, 400);
    }
  });

  it("labels seed 002 errors with its $schema", async () => {
    const response = await call("POST", `/api/v1/projects/${org.project.id}/keys`, {
      token: org.admin,
      body: { name: "" },
    });
    const body = expectProblem(response, 400);
    expect(body.$schema).toBe("/api/v1/schemas/ErrorModel.json");
    expect(body.errors[0]).toMatchObject({ location: "body.name", value: "" });
  });
});

describe("text fields hold well-formed characters", () => {
  let org: Awaited<ReturnType<typeof newOrg>>;
  beforeAll(async () => {
    org = await newOrg("unicode");
  });

  it("refuses lone surrogates with a 400 naming the field, in any field, nested too", async () => {
    const lone = "\ud800".repeat(128);
    const created = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: lone },
    });
    expect(created.status).toBe(400);
    expect(created.body.errors).toEqual([
      {
        location: "body.name",
        message: expect.stringMatching(/surrogate/),
        value: expect.any(String),
      },
    ]);
    for (const body of [
      { project_id: org.project.id, name: "ok", device_name: "a\udc00b" },
      { project_id: org.project.id, name: "ok", scopes: ["x", "\udbff"] },
    ]) {
      const answered = await call("POST", "/v1/api-keys", { token: org.admin, body });
      expect(answered.status, JSON.stringify(body)).toBe(400);
    }
    const project = await call("POST", "/v1/projects", {
      token: org.admin,
      body: { name: "\udfff" },
    });
    expect(project.status).toBe(400);
    expect(project.body.errors[0].location).toBe("body.name");
  });

  it("counts characters, not UTF-16 units: 128 emoji are a name, and round-trip through PATCH", async () => {
    const emoji = "🔑".repeat(128);
    const created = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: emoji, device_name: "💻".repeat(128) },
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.name).toBe(emoji);
    const got = await call("GET", `/v1/api-keys/${created.body.id}`, { token: org.admin });
    expect(got.body.name).toBe(emoji);
    const patched = await call("PATCH", `/v1/api-keys/${created.body.id}`, {
      token: org.admin,
      body: { name: got.body.name },
    });
    expect(patched.status).toBe(200);
    const tooLong = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: { project_id: org.project.id, name: "🔑".repeat(129) },
    });
    expect(tooLong.status).toBe(400);
    expect(tooLong.body.errors.map((e: { location: string }) => e.location)).toEqual(["body.name"]);
  });
});

describe("parsing", () => {
  let org: Awaited<ReturnType<typeof newOrg>>;
  beforeAll(async () => {
    org = await newOrg("parsing");
  });

  it("takes limit only as decimal digits, with one error when it is not", async () => {
    for (const limit of ["0x10", "1e1", " 10", "10 ", "+10", "10.0", "-1", "0", "101", "", "ten"]) {
      const listed = await call(
        "GET",
        `/v1/api-keys?project_id=${org.project.id}&limit=${encodeURIComponent(limit)}`,
        { token: org.admin },
      );
      expect(listed.status, JSON.stringify(limit)).toBe(400);
      expect(listed.body.errors, JSON.stringify(limit)).toEqual([
        { location: "query.limit", message: expect.any(String), value: limit },
      ]);
    }
    for (const limit of ["1", "010", "100"]) {
      const listed = await call("GET", `/v1/api-keys?project_id=${org.project.id}&limit=${limit}`, {
        token: org.admin,
      });
      expect(listed.status, limit).toBe(200);
    }
  });

  it("gives an unparseable or impossible expires_at one error, not two", async () => {
    for (const expires_at of [
      "not a date",
      "2030-02-30T00:00:00Z",
      "2030-13-01T00:00:00Z",
      "2030-01-01T24:00:00Z",
      "2030-01-01 00:00:00Z",
      "99999-01-01T00:00:00Z",
      "2030-01-01T00:00:00",
    ]) {
      const created = await call("POST", "/v1/api-keys", {
        token: org.admin,
        body: { project_id: org.project.id, name: "x", expires_at },
      });
      expect(created.status, expires_at).toBe(400);
      expect(created.body.errors, expires_at).toEqual([
        { location: "body.expires_at", message: expect.any(String), value: expires_at },
      ]);
    }
  });

  it("accepts RFC 3339 with lowercase t and z, and offsets", async () => {
    const cases: [string, string][] = [
      ["2030-01-01t00:00:00z", "2030-01-01T00:00:00.000Z"],
      ["2030-01-01T02:00:00+02:00", "2030-01-01T00:00:00.000Z"],
      ["2030-01-01T00:00:00.5Z", "2030-01-01T00:00:00.500Z"],
    ];
    for (const [sent, stored] of cases) {
      const created = await call("POST", "/v1/api-keys", {
        token: org.admin,
        body: { project_id: org.project.id, name: "x", expires_at: sent },
      });
      expect(created.status, sent).toBe(201);
      expect(created.body.expires_at).toBe(stored);
    }
  });
});

describe("strict bodies", () => {
  let org: Awaited<ReturnType<typeof newOrg>>;
  beforeAll(async () => {
    org = await newOrg("strict");
  });

  it("names each unknown member in a 400 and creates nothing (a typo `scope` is not `no scopes`)", async () => {
    const cases: [string, string, Record<string, unknown>][] = [
      ["POST", "/v1/api-keys", { project_id: "P", name: "x", scope: ["deploy"] }],
      ["POST", "/v1/organizations/ORG/api-keys", { name: "x", scopes: [], scope: ["a"] }],
      ["POST", "/api/v1/projects/P/keys", { name: "x", scope: ["deploy"] }],
      ["POST", "/v1/projects", { name: "x", prefix: "abc" }],
      ["POST", "/v1/projects/P/environments", { name: "staging", nmae: "x" }],
      ["PATCH", "/v1/projects/P", { nmae: "x" }],
      ["POST", "/v1/keys/verify", { key: "capy_live_x", required_scope: ["a"] }],
    ];
    for (const [method, template, body] of cases) {
      const path = template.replace("/P", `/${org.project.id}`).replace("ORG", org.org);
      const before = (
        await env.DB.prepare("select count(*) as n from api_keys").first<{ n: number }>()
      )?.n;
      const answered = await call(method, path, { token: org.admin, body });
      expect(answered.status, `${method} ${path}`).toBe(400);
      const locations = answered.body.errors.map((e: { location: string }) => e.location);
      const unknown = Object.keys(body).filter((k) =>
        ["scope", "prefix", "nmae", "required_scope"].includes(k),
      );
      expect(locations, path).toEqual(unknown.map((k) => `body.${k}`));
      const after = (
        await env.DB.prepare("select count(*) as n from api_keys").first<{ n: number }>()
      )?.n;
      expect(after).toBe(before);
    }
  });

  it("names unknown members of the key PATCH and rotate bodies too", async () => {
    const key = await newKey(org.admin, org.project.id);
    const patched = await call("PATCH", `/v1/api-keys/${key.id}`, {
      token: org.admin,
      body: { name: "y", expires: "2030-01-01T00:00:00Z" },
    });
    expect(patched.status).toBe(400);
    expect(patched.body.errors).toEqual([
      { location: "body.expires", message: expect.any(String), value: "2030-01-01T00:00:00Z" },
    ]);
    const rotated = await call("POST", `/v1/api-keys/${key.id}/rotate`, {
      token: org.admin,
      body: { grace_period: 60 },
    });
    expect(rotated.status).toBe(400);
    expect(rotated.body.errors.map((e: { location: string }) => e.location)).toEqual([
      "body.grace_period",
    ]);
  });

  it("takes `$schema` on seed 002 bodies, as the seed sends it", async () => {
    const created = await call("POST", `/api/v1/projects/${org.project.id}/keys`, {
      token: org.admin,
      body: { $schema: "/api/v1/schemas/CreateAPIKeyInputBody.json", name: "x" },
    });
    expect(created.status).toBe(201);
  });

  it("says so in the OpenAPI document: additionalProperties false", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const schema = doc.paths["/v1/api-keys"].post.requestBody.content["application/json"].schema;
    expect(schema.additionalProperties).toBe(false);
  });
});
