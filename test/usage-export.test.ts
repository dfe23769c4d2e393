// The usage export for billing (SPEC Part 3 "Identities"): `GET /v1/usage`, JSON and CSV.
import { createExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { createCore } from "../src/context";
import type { VerificationMessage } from "../src/core/analytics/aggregator";
import { addVerificationMessages } from "../src/core/analytics/consume";
import { applyRetention } from "../src/core/analytics/retention";
import { csvField, toCsv } from "../src/http/csv";
import { expectProblem } from "./hardening";
import { call, newKey, newOrg, verify } from "./helpers";

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

interface Issued {
  id: string;
  organization_id: string;
  project_id: string | null;
  key: string;
}

const usage = (token: string, query: string, headers?: Record<string, string>) =>
  call("GET", `/v1/usage?${query}`, { token, ...(headers ? { headers } : {}) });

/** Counts at chosen instants, added through the queue consumer as isolates would send them. */
async function seed(rows: { key: Issued; at: number; code: string; n: number }[]) {
  const core = createCore(env, createExecutionContext());
  await addVerificationMessages(
    core,
    rows.map(
      (row): VerificationMessage => ({
        v: 1,
        id: crypto.randomUUID(),
        keys: { [row.key.id]: [row.key.organization_id, row.key.project_id, null] },
        counts: [[row.key.id, Math.floor(row.at / MINUTE) * MINUTE, row.code, row.n]],
      }),
    ),
  );
}

type Row = { start: string; group: string | null; total: number; counts: Record<string, number> };

/** Per group, every code summed over every row. */
function totalsByGroup(rows: Row[]) {
  const totals: Record<string, Record<string, number>> = {};
  for (const row of rows) {
    const group = String(row.group);
    totals[group] ??= {};
    for (const [code, n] of Object.entries(row.counts)) {
      totals[group][code] = (totals[group][code] ?? 0) + n;
    }
  }
  return totals;
}

describe("usage export", () => {
  it("sums real verifications exactly, by owner and by key", async () => {
    const org = await newOrg("usage-e2e");
    const acme1 = await newKey(org.admin, org.project.id, { external_id: "acme", scopes: ["r"] });
    const acme2 = await newKey(org.admin, org.project.id, { external_id: "acme" });
    const globex = await newKey(org.admin, org.project.id, { external_id: "globex" });
    const nobody = await newKey(org.admin, org.project.id);
    const orgScoped = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: [], external_id: "acme" },
    });
    const other = await newOrg("usage-e2e-other");
    const foreign = await newKey(other.admin, other.project.id, { external_id: "acme" });

    for (let i = 0; i < 4; i++) await verify(acme1.key);
    await verify(acme1.key, { required_scopes: ["w"] });
    for (let i = 0; i < 2; i++) await verify(acme2.key);
    await verify(orgScoped.body.plaintext_api_key);
    for (let i = 0; i < 3; i++) await verify(globex.key);
    await call("DELETE", `/v1/api-keys/${nobody.id}`, { token: org.admin });
    for (let i = 0; i < 2; i++) await verify(nobody.key);
    await verify(foreign.key);
    await verify(`${acme1.key.slice(0, -1)}x`); // malformed: never counted

    const expected = {
      acme: { VALID: 7, INSUFFICIENT_SCOPE: 1 },
      globex: { VALID: 3 },
      null: { REVOKED: 2 },
    };
    const query = "granularity=day&group_by=external_id";
    await vi.waitUntil(
      async () => sum(totalsByGroup((await usage(org.admin, query)).body.rows)) >= 13,
      { timeout: 10_000, interval: 50 },
    );
    const byOwner = await usage(org.member, query);
    expect(byOwner.status, byOwner.text).toBe(200);
    expect(byOwner.body.granularity).toBe("day");
    expect(byOwner.body.group_by).toBe("external_id");
    expect(totalsByGroup(byOwner.body.rows)).toEqual(expected);
    for (const row of byOwner.body.rows as Row[]) {
      expect(row.total).toBe(Object.values(row.counts).reduce((a, b) => a + b, 0));
      expect(Date.parse(row.start) % DAY).toBe(0);
    }

    const byKey = await usage(org.admin, "granularity=hour&group_by=key_id");
    expect(totalsByGroup(byKey.body.rows)).toEqual({
      [acme1.id]: { VALID: 4, INSUFFICIENT_SCOPE: 1 },
      [acme2.id]: { VALID: 2 },
      [orgScoped.body.api_key.id]: { VALID: 1 },
      [globex.id]: { VALID: 3 },
      [nobody.id]: { REVOKED: 2 },
    });
    for (const row of byKey.body.rows as Row[]) expect(Date.parse(row.start) % HOUR).toBe(0);

    // The other organization sees its own verification only.
    await vi.waitUntil(async () => (await usage(other.admin, query)).body.rows.length > 0, {
      timeout: 10_000,
      interval: 50,
    });
    expect(totalsByGroup((await usage(other.admin, query)).body.rows)).toEqual({
      acme: { VALID: 1 },
    });
  });

  it("hour rows come from minute and folded hour rows; a day sums its hours", async () => {
    const org = await newOrg("usage-fold");
    const a: Issued = await newKey(org.admin, org.project.id, { external_id: "acme" });
    const b: Issued = await newKey(org.admin, org.project.id, { external_id: "acme" });
    const c: Issued = await newKey(org.admin, org.project.id);
    const day = Date.UTC(2026, 10, 10);
    await seed([
      { key: a, at: day + 9 * HOUR + 5 * MINUTE, code: "VALID", n: 2 },
      { key: a, at: day + 9 * HOUR + 59 * MINUTE, code: "VALID", n: 3 },
      { key: b, at: day + 9 * HOUR + 30 * MINUTE, code: "RATE_LIMITED", n: 4 },
      { key: c, at: day + 10 * HOUR, code: "VALID", n: 1 },
      { key: a, at: day + DAY + HOUR, code: "VALID", n: 7 }, // the next day
      { key: a, at: day - MINUTE, code: "VALID", n: 100 }, // the day before: out of range
    ]);
    // Fold the first day's minutes into hour rows, as the cron does after 7 days.
    await applyRetention(createCore(env, createExecutionContext(), { now: () => day + 8 * DAY }));
    const range = `start=${new Date(day).toISOString()}&end=${new Date(day + 2 * DAY).toISOString()}`;
    const hours = await usage(org.admin, `${range}&granularity=hour`);
    expect(hours.status, hours.text).toBe(200);
    expect(hours.body).toEqual({
      granularity: "hour",
      group_by: "external_id",
      rows: [
        {
          start: "2026-11-10T09:00:00.000Z",
          group: "acme",
          total: 9,
          counts: { RATE_LIMITED: 4, VALID: 5 },
        },
        { start: "2026-11-10T10:00:00.000Z", group: null, total: 1, counts: { VALID: 1 } },
        { start: "2026-11-11T01:00:00.000Z", group: "acme", total: 7, counts: { VALID: 7 } },
      ],
    });
    const days = await usage(org.admin, `${range}&granularity=day`);
    expect(days.body.rows).toEqual([
      { start: "2026-11-10T00:00:00.000Z", group: null, total: 1, counts: { VALID: 1 } },
      {
        start: "2026-11-10T00:00:00.000Z",
        group: "acme",
        total: 9,
        counts: { RATE_LIMITED: 4, VALID: 5 },
      },
      { start: "2026-11-11T00:00:00.000Z", group: "acme", total: 7, counts: { VALID: 7 } },
    ]);
    // Start inclusive, end exclusive: the 10:00 hour alone.
    const oneHour = await usage(
      org.admin,
      `start=2026-11-10T10:00:00Z&end=2026-11-10T11:00:00Z&group_by=key_id`,
    );
    expect(oneHour.body.rows).toEqual([
      { start: "2026-11-10T10:00:00.000Z", group: c.id, total: 1, counts: { VALID: 1 } },
    ]);

    const csv = await usage(org.admin, `${range}&granularity=day`, { accept: "text/csv" });
    expect(csv.status).toBe(200);
    expect(csv.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(csv.text).toBe(
      [
        "start,group,code,count",
        "2026-11-10T00:00:00.000Z,,VALID,1",
        "2026-11-10T00:00:00.000Z,acme,RATE_LIMITED,4",
        "2026-11-10T00:00:00.000Z,acme,VALID,5",
        "2026-11-11T00:00:00.000Z,acme,VALID,7",
        "",
      ].join("\r\n"),
    );
  });

  it("shows only the caller's reach: a project key its project, project_id within reach", async () => {
    const org = await newOrg("usage-reach");
    const second = await call("POST", "/v1/projects", { token: org.admin, body: { name: "Two" } });
    const mine: Issued = await newKey(org.admin, org.project.id, { external_id: "acme" });
    const elsewhere: Issued = await newKey(org.admin, second.body.id, { external_id: "acme" });
    const orgScoped = await call("POST", `/v1/organizations/${org.org}/api-keys`, {
      token: org.admin,
      body: { name: "org", scopes: ["keys:read"], external_id: "acme" },
    });
    const orgIssued: Issued = { ...orgScoped.body.api_key, key: "" };
    const at = Date.UTC(2026, 10, 20, 12);
    await seed([
      { key: mine, at, code: "VALID", n: 1 },
      { key: elsewhere, at, code: "VALID", n: 10 },
      { key: orgIssued, at, code: "VALID", n: 100 },
    ]);
    const range = "start=2026-11-20T00:00:00Z&end=2026-11-21T00:00:00Z&granularity=day";
    const totalOf = async (token: string, extra = "") => {
      const response = await usage(token, `${range}${extra}`);
      expect(response.status, response.text).toBe(200);
      return response.body.rows.map((r: Row) => r.total);
    };
    expect(await totalOf(org.admin)).toEqual([111]);
    expect(await totalOf(orgScoped.body.plaintext_api_key)).toEqual([111]);
    expect(await totalOf(org.admin, `&project_id=${second.body.id}`)).toEqual([10]);
    const reader = await newKey(org.admin, org.project.id, { scopes: ["keys:read"] });
    expect(await totalOf(reader.key)).toEqual([1]);
    expect(await totalOf(reader.key, `&project_id=${org.project.id}`)).toEqual([1]);
    expectProblem(await usage(reader.key, `${range}&project_id=${second.body.id}`), 404);
    const noScope = await newKey(org.admin, org.project.id, { scopes: ["projects:read"] });
    expectProblem(await usage(noScope.key, range), 403);
    const stranger = await newOrg("usage-reach-other");
    expect((await usage(stranger.admin, range)).body.rows).toEqual([]);
    expectProblem(await usage(stranger.admin, `${range}&project_id=${org.project.id}`), 404);
    expectProblem(await call("GET", `/v1/usage?${range}`), 401);
  });

  it("CSV quotes and neutralises hostile external_ids", async () => {
    const org = await newOrg("usage-csv");
    const at = Date.UTC(2026, 10, 21, 8);
    const owners = ["-2-3", "@SUM", "plain"];
    const keys: Issued[] = [];
    for (const external_id of owners) {
      keys.push(await newKey(org.admin, org.project.id, { external_id }));
    }
    // Stored before external_id was checked (or by a bug): the export must still be safe.
    const legacy: Issued = await newKey(org.admin, org.project.id);
    const hostile = '=HYPERLINK("http://x","a,b")\nnext';
    await env.DB.prepare("UPDATE api_keys SET external_id = ? WHERE id = ?")
      .bind(hostile, legacy.id)
      .run();
    await seed([...keys, legacy].map((key, i) => ({ key, at, code: "VALID", n: i + 1 })));
    const range = "start=2026-11-21T00:00:00Z&end=2026-11-22T00:00:00Z&granularity=day";
    const csv = await usage(org.admin, range, { accept: "text/csv, application/json;q=0.5" });
    expect(csv.headers.get("content-disposition")).toContain("attachment");
    const day = "2026-11-21T00:00:00.000Z";
    expect(csv.text).toBe(
      [
        "start,group,code,count",
        `${day},'-2-3,VALID,1`,
        `${day},"'=HYPERLINK(""http://x"",""a,b"")\nnext",VALID,4`,
        `${day},'@SUM,VALID,2`,
        `${day},plain,VALID,3`,
        "",
      ].join("\r\n"),
    );
    // JSON keeps the values as they are.
    const json = await usage(org.admin, range);
    expect(json.body.rows.map((r: Row) => r.group)).toEqual(["-2-3", hostile, "@SUM", "plain"]);
  });

  it("the CSV writer follows RFC 4180 and OWASP's formula list", () => {
    expect(csvField("a,b")).toBe('"a,b"');
    expect(csvField('say "hi"')).toBe('"say ""hi"""');
    expect(csvField("line\nbreak")).toBe('"line\nbreak"');
    expect(csvField("cr\rlf")).toBe('"cr\rlf"');
    for (const lead of ["=", "+", "-", "@", "\t"]) expect(csvField(`${lead}1`)).toBe(`'${lead}1`);
    expect(csvField("\r1")).toBe('"\'\r1"');
    expect(csvField("=1,2")).toBe('"\'=1,2"');
    expect(csvField("a=1")).toBe("a=1");
    expect(csvField(null)).toBe("");
    expect(csvField(12)).toBe("12");
    expect(toCsv(["a", "b"], [["x", null]])).toBe("a,b\r\nx,\r\n");
  });

  it("takes the analytics range rules: 400 naming the field, at most 1 000 buckets", async () => {
    const org = await newOrg("usage-400");
    for (const [query, field] of [
      ["granularity=minute", "query.granularity"],
      ["group_by=project", "query.group_by"],
      ["start=yesterday", "query.start"],
      ["end=2026-13-01T00:00:00Z", "query.end"],
      ["start=2026-12-01T10:00:00Z&end=2026-12-01T09:00:00Z", "query.start"],
      ["project_id=", "query.project_id"],
    ] as const) {
      const body = expectProblem(await usage(org.admin, query), 400);
      expect(body.errors.map((e: { location: string }) => e.location)).toContain(field);
    }
    const tooMany = expectProblem(
      await usage(
        org.admin,
        "granularity=hour&start=2026-01-01T00:00:00Z&end=2026-03-01T00:00:00Z",
      ),
      400,
    );
    expect(tooMany.detail).toMatch(/1416 hour buckets; at most 1000/);
    const fits = await usage(
      org.admin,
      "granularity=hour&start=2026-01-01T00:00:00Z&end=2026-02-11T16:00:00Z",
    );
    expect(fits.body).toEqual({ granularity: "hour", group_by: "external_id", rows: [] });
    const days = await usage(
      org.admin,
      "granularity=day&start=2024-01-01T00:00:00Z&end=2026-09-27T00:00:00Z",
    );
    expect(days.status, days.text).toBe(200);
    const tooManyDays = await usage(
      org.admin,
      "granularity=day&start=2024-01-01T00:00:00Z&end=2026-09-28T00:00:00Z",
    );
    expectProblem(tooManyDays, 400);
  });

  it("is in the OpenAPI document, with its CSV form", async () => {
    const doc = (await call("GET", "/openapi.json")).body;
    const content = doc.paths["/v1/usage"].get.responses["200"].content;
    expect(Object.keys(content)).toEqual(["application/json", "text/csv"]);
  });
});

const sum = (totals: Record<string, Record<string, number>>) =>
  Object.values(totals).reduce(
    (n, counts) => n + Object.values(counts).reduce((a, b) => a + b, 0),
    0,
  );
