// Issue 20 point 12: the document says what the API accepts. Each finding of the third-party
// fuzzer is pinned twice here: what /openapi.json states, and that the Worker answers the
// same. Where the document states a pattern, values generated from that pattern (fast-check,
// fixed seeds) must be accepted by the API's own parser, and values it refuses refused.
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { parseBlock, parseIp } from "../src/core/ip";
import { parseTimestamp } from "../src/schemas/fields";
import type { Json } from "./hardening";
import { call, newKey, newOrg, verify } from "./helpers";

let doc: Json;
let org: Awaited<ReturnType<typeof newOrg>>;

beforeAll(async () => {
  doc = (await call("GET", "/openapi.json")).body;
  org = await newOrg("document");
});

const bodySchema = (path: string, method = "post") =>
  doc.paths[path][method].requestBody.content["application/json"].schema;
/** A schema with a `$ref` at its top replaced by its target. */
const deref = (schema: Json): Json =>
  schema.$ref ? doc.components.schemas[schema.$ref.split("/").pop()] : schema;
const createKey = (body: Record<string, unknown>) =>
  call("POST", "/v1/api-keys", {
    token: org.admin,
    body: { project_id: org.project.id, name: "doc", ...body },
  });
const locations = (response: Awaited<ReturnType<typeof call>>) =>
  response.body.errors.map((e: { location: string }) => e.location);

/** Strings near the address forms: digits, hex, dots, colons, slashes, and junk between. */
const addressLike = fc.oneof(
  fc.ipV4(),
  fc.ipV6(),
  fc.ipV4Extended(),
  fc
    .tuple(fc.oneof(fc.ipV4(), fc.ipV6()), fc.integer({ min: 0, max: 200 }))
    .map(([ip, prefix]) => `${ip}/${prefix}`),
  fc.string({ unit: fc.constantFrom(..."0123456789abcdefABCDEF:./%"), maxLength: 45 }),
  fc.constantFrom("::", "::1", "1::", ":1::", "1:2:3:4:5:6:7::8", "::ffff:1.2.3.4", "1.2.3.04"),
);

describe("IP addresses and CIDR blocks: the document's patterns are the parser's rules", () => {
  it("states verify's `ip` as an address pattern, and the API refuses exactly what it refuses", async () => {
    const ip = bodySchema("/v1/keys/verify").properties.ip;
    expect(ip.description).toMatch(/IPv4.*IPv6/);
    const pattern = new RegExp(ip.pattern);
    fc.assert(
      fc.property(addressLike, (value) => pattern.test(value) === (parseIp(value) !== null)),
      { seed: 20_261_206, numRuns: 3000 },
    );
    // Generated from the document's own pattern: the parser takes every one.
    fc.assert(
      fc.property(fc.stringMatching(pattern), (value) => parseIp(value) !== null),
      { seed: 20_261_207, numRuns: 1000 },
    );
    // And the Worker answers alike.
    const key = await newKey(org.admin, org.project.id);
    const samples = fc.sample(fc.stringMatching(pattern), { seed: 7, numRuns: 8 });
    for (const value of [...samples, "2001:db8::1", "::ffff:203.0.113.7"]) {
      const response = await verify(key.key, { ip: value });
      expect(response.status, `${value}: ${response.text}`).toBe(200);
    }
    for (const value of ["203.0.113.07", "203.0.113.0/24", "fe80::1%eth0", "example.com"]) {
      expect(pattern.test(value), value).toBe(false);
      const response = await verify(key.key, { ip: value });
      expect(response.status, value).toBe(400);
      expect(locations(response)).toEqual(["body.ip"]);
    }
  });

  it("states `ip_allowlist` items as an address-or-CIDR pattern, and the API agrees", async () => {
    const list = bodySchema("/v1/api-keys").properties.ip_allowlist;
    const item = list.items;
    expect(item.description).toMatch(/CIDR/);
    const pattern = new RegExp(item.pattern);
    fc.assert(
      fc.property(addressLike, (value) => pattern.test(value) === (parseBlock(value) !== null)),
      { seed: 20_261_208, numRuns: 3000 },
    );
    fc.assert(
      fc.property(fc.stringMatching(pattern), (value) => parseBlock(value) !== null),
      { seed: 20_261_209, numRuns: 1000 },
    );
    const samples = fc.sample(fc.stringMatching(pattern), { seed: 8, numRuns: 20 });
    const created = await createKey({ ip_allowlist: samples });
    expect(created.status, created.text).toBe(201);
    const refused = await createKey({ ip_allowlist: ["10.0.0.0/33", "10.0.0.1"] });
    expect(pattern.test("10.0.0.0/33")).toBe(false);
    expect(refused.status).toBe(400);
    expect(locations(refused)).toEqual(["body.ip_allowlist.0"]);
  });
});

describe("timestamps", () => {
  const daysIn = (year: number, month: number) =>
    [31, year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0) ? 29 : 28, 31, 30, 31, 30]
      .concat([31, 31, 30, 31, 30, 31])
      .at(month - 1) as number;

  it("accept a leap second, as the pattern allows, read as the next second", async () => {
    const expires = bodySchema("/v1/api-keys").properties.expires_at;
    const schema = expires.anyOf?.find((s: Json) => s.type === "string") ?? expires;
    expect(schema.format).toBe("date-time");
    expect(schema.description).toContain("leap second");
    const pattern = new RegExp(schema.pattern);
    expect(pattern.test("2030-06-30T23:59:60Z")).toBe(true);
    const created = await createKey({ expires_at: "2030-06-30T23:59:60Z" });
    expect(created.status, created.text).toBe(201);
    expect(created.body.expires_at).toBe("2030-07-01T00:00:00.000Z");
    // What the pattern refuses the API refuses, with the field named.
    for (const value of ["2030-06-30T24:00:00Z", "2030-06-30T23:60:00Z", "2030-13-01T00:00:00Z"]) {
      expect(pattern.test(value), value).toBe(false);
      const refused = await createKey({ expires_at: value });
      expect(refused.status, value).toBe(400);
      expect(locations(refused)).toEqual(["body.expires_at"]);
    }
  });

  it("document that a key's expiry must be in the future, as the API answers", async () => {
    for (const [path, method] of [
      ["/v1/api-keys", "post"],
      ["/v1/api-keys/{keyID}", "patch"],
      ["/v1/organizations/{orgID}/api-keys", "post"],
      ["/api/v1/projects/{projectId}/keys", "post"],
    ] as const) {
      const schema = deref(bodySchema(path, method)).properties.expires_at;
      expect(schema.description, path).toContain("must be in the future");
      expect(schema.format, path).toBe("date-time");
    }
    const past = await createKey({ expires_at: "2020-01-01T00:00:00Z" });
    expect(past.status).toBe(400);
    expect(locations(past)).toEqual(["body.expires_at"]);
  });

  it("take every value of the documented pattern on a real calendar day, years 0000–9999", () => {
    const schema = bodySchema("/v1/api-keys").properties.expires_at;
    const pattern = new RegExp(
      (schema.anyOf?.find((s: Json) => s.type === "string") ?? schema).pattern,
    );
    fc.assert(
      fc.property(fc.stringMatching(pattern), (value) => {
        const [year, month, day] = [value.slice(0, 4), value.slice(5, 7), value.slice(8, 10)].map(
          Number,
        ) as [number, number, number];
        // `format: date-time` says the day exists; the description bounds the instant.
        fc.pre(day <= daysIn(year, month));
        const ms = parseTimestamp(value);
        const edge = (year === 0 && month === 1 && day === 1) || (year === 9999 && month === 12);
        return ms !== null || edge;
      }),
      { seed: 20_261_210, numRuns: 2000 },
    );
    expect(parseTimestamp("0042-06-30T12:00:00Z")).toBe(Date.parse("0042-06-30T12:00:00Z"));
  });
});

describe("credits.refill: a union on `interval`", () => {
  it("documents a daily refill without `day` and a monthly one with it", () => {
    const refill = doc.components.schemas.CreditsRefill;
    expect(refill.discriminator.propertyName).toBe("interval");
    const refs = refill.oneOf.map((s: Json) => s.$ref).filter(Boolean);
    expect(refs).toEqual([
      "#/components/schemas/DailyRefill",
      "#/components/schemas/MonthlyRefill",
    ]);
    const daily = doc.components.schemas.DailyRefill;
    expect(daily.properties.interval.enum).toEqual(["daily"]);
    expect(daily.properties.day).toEqual({ type: "null" });
    expect(daily.additionalProperties).toBe(false);
    const monthly = doc.components.schemas.MonthlyRefill;
    expect(monthly.properties.interval.enum).toEqual(["monthly"]);
    expect(monthly.properties.day).toMatchObject({ minimum: 1, maximum: 31 });
  });

  it("answers as documented: daily with a `day` is a 400 naming it, the rest are taken", async () => {
    const daily = await createKey({
      credits: { remaining: 5, refill: { interval: "daily", amount: 5, day: 3 } },
    });
    expect(daily.status).toBe(400);
    expect(daily.body.errors).toEqual([
      {
        location: "body.credits.refill.day",
        message: "only a monthly refill has a day",
        value: 3,
      },
    ]);
    const weekly = await createKey({
      credits: { remaining: 5, refill: { interval: "weekly", amount: 5 } },
    });
    expect(weekly.status).toBe(400);
    expect(locations(weekly)).toEqual(["body.credits.refill.interval"]);
    for (const refill of [
      { interval: "daily", amount: 5 },
      { interval: "daily", amount: 5, day: null },
      { interval: "monthly", amount: 5, day: 31 },
      { interval: "monthly", amount: 5 },
      null,
    ]) {
      const created = await createKey({ credits: { remaining: 5, refill } });
      expect(created.status, JSON.stringify(refill)).toBe(201);
    }
  });
});

describe("rate-limit names given twice", () => {
  it("are documented as refused on verify and on the key, and refused", async () => {
    const verifyLimits = bodySchema("/v1/keys/verify").properties.ratelimits;
    expect(verifyLimits.uniqueItems).toBe(true);
    expect(verifyLimits.description).toContain("Each `name` at most once");
    const keyLimits = bodySchema("/v1/api-keys").properties.ratelimits;
    expect(keyLimits.uniqueItems).toBe(true);
    expect(keyLimits.description).toContain("Each `name` at most once");

    const key = await newKey(org.admin, org.project.id, {
      ratelimits: [{ name: "requests", limit: 10, duration_ms: 60_000 }],
    });
    const twice = await verify(key.key, {
      ratelimits: [{ name: "requests" }, { name: "requests", cost: 2 }],
    });
    expect(twice.status).toBe(400);
    expect(locations(twice)).toEqual(["body.ratelimits.1.name"]);
    const onKey = await createKey({
      ratelimits: [
        { name: "requests", limit: 10, duration_ms: 60_000 },
        { name: "requests", limit: 5, duration_ms: 1_000 },
      ],
    });
    expect(onKey.status).toBe(400);
    expect(locations(onKey)).toEqual(["body.ratelimits.1.name"]);
  });
});

describe("analytics range", () => {
  it("documents that a future `start` needs an `end`, and answers so", async () => {
    const parameters = doc.paths["/v1/projects/{id}/verifications"].get.parameters;
    const start = parameters.find((p: Json) => p.name === "start");
    expect(start.description ?? start.schema.description).toContain(
      "a `start` in the future needs an `end`",
    );
    const later = new Date(Date.now() + 2 * 3_600_000).toISOString();
    const path = `/v1/projects/${org.project.id}/verifications`;
    const alone = await call("GET", `${path}?start=${later}`, { token: org.admin });
    expect(alone.status).toBe(400);
    expect(locations(alone)).toEqual(["query.start"]);
    const end = new Date(Date.now() + 5 * 3_600_000).toISOString();
    const both = await call("GET", `${path}?start=${later}&end=${end}`, { token: org.admin });
    expect(both.status, both.text).toBe(200);
  });
});

describe("a missing required member", () => {
  it("is named with a plain message, in the query as in the body", async () => {
    const list = doc.paths["/v1/api-keys"].get.parameters;
    expect(list.find((p: Json) => p.name === "project_id")).toMatchObject({
      in: "query",
      required: true,
    });
    const query = await call("GET", "/v1/api-keys", { token: org.admin });
    expect(query.status).toBe(400);
    expect(query.body.errors).toEqual([
      { location: "query.project_id", message: "is required", value: null },
    ]);
    expect(query.body.detail).toBe("Validation failed for query.project_id: is required");
    const body = await call("POST", "/v1/api-keys", { token: org.admin, body: { name: "x" } });
    expect(body.body.errors).toEqual([
      { location: "body.project_id", message: "is required", value: null },
    ]);
    // A present value of the wrong type keeps its own message.
    const wrong = await createKey({ name: 5 });
    expect(wrong.body.errors[0].message).not.toBe("is required");
  });
});

// ---------- values generated from the document ----------

/** An arbitrary of the values a JSON Schema (the subset the document uses) allows. */
function fromSchema(raw: Json): fc.Arbitrary<unknown> {
  const schema = deref(raw);
  const members: Json[] | undefined = schema.oneOf ?? schema.anyOf;
  if (members) return fc.oneof(...members.map(fromSchema));
  if (schema.enum) return fc.constantFrom(...schema.enum);
  if (Array.isArray(schema.type)) {
    return fc.oneof(...schema.type.map((type: string) => fromSchema({ ...schema, type })));
  }
  switch (schema.type) {
    case "null":
      return fc.constant(null);
    case "boolean":
      return fc.boolean();
    case "integer":
      return fc.integer({ min: schema.minimum, max: Math.min(schema.maximum, 2 ** 31) });
    case "string": {
      const length = (s: string) => [...s].length;
      const base = schema.pattern
        ? fc.stringMatching(new RegExp(schema.pattern))
        : fc.string({ unit: "grapheme", minLength: schema.minLength, maxLength: schema.maxLength });
      return base.filter(
        (s) => length(s) >= (schema.minLength ?? 0) && length(s) <= (schema.maxLength ?? Infinity),
      );
    }
    case "array": {
      const items = fromSchema(schema.items);
      const maxLength = Math.min(schema.maxItems ?? 3, 3);
      // Rate limits: each `name` at most once, as their description says.
      const named = deref(schema.items).properties?.name !== undefined;
      return named
        ? fc.uniqueArray(items, { maxLength, selector: (item) => (item as { name: string }).name })
        : fc.array(items, { maxLength });
    }
    case "object": {
      if (!schema.properties) {
        // `meta`: a small JSON object, well inside its documented 4 KiB and 5 levels.
        return fc.dictionary(fc.stringMatching(/^[a-z]{1,8}$/), fc.jsonValue({ maxDepth: 2 }), {
          maxKeys: 3,
        });
      }
      const record: Record<string, fc.Arbitrary<unknown>> = {};
      for (const [name, sub] of Object.entries<Json>(schema.properties)) {
        record[name] = fromSchema(sub);
      }
      return fc.record(record, { requiredKeys: schema.required ?? [] });
    }
    default:
      throw new Error(`no generator for ${JSON.stringify(schema).slice(0, 120)}`);
  }
}

describe("bodies generated from the document", () => {
  it("are taken by the API: a key's name, scopes and governance fields", async () => {
    const schema = bodySchema("/v1/api-keys");
    // The members whose every rule the schema states (expiry's "in the future" and the
    // webhook URL's host rules are in descriptions only).
    const fields = [
      "name",
      "scopes",
      "device_name",
      "enabled",
      "meta",
      "external_id",
      "ip_allowlist",
      "ratelimits",
      "credits",
    ];
    const body = fromSchema({
      type: "object",
      properties: Object.fromEntries(fields.map((f) => [f, schema.properties[f]])),
      required: ["name"],
    });
    await fc.assert(
      fc.asyncProperty(body, async (generated) => {
        const created = await createKey(generated as Record<string, unknown>);
        expect(created.status, `${JSON.stringify(generated)}\n${created.text}`).toBe(201);
      }),
      { seed: 20_261_211, numRuns: 60 },
    );
  });
});
