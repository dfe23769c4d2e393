// Shared by the hardening tests (fuzz, faults, concurrency, secret hygiene): what D1 holds,
// what a problem+json body must look like, and a small JSON Schema checker for OpenAPI.
import { env } from "cloudflare:workers";
import { expect } from "vitest";
import { call } from "./helpers";

// biome-ignore lint/suspicious/noExplicitAny: JSON documents are walked dynamically
export type Json = any;
export type Response = Awaited<ReturnType<typeof call>>;

/** The hardening tests' name for `call()`. */
export { call as send };

/** Every table the app owns (not SQLite's, D1's or the migrations' bookkeeping). */
export async function appTables(): Promise<string[]> {
  const { results } = await env.DB.prepare(
    "select name from sqlite_master where type = 'table' and name not like 'sqlite_%' and name not like '_cf_%' and name not like 'd1_%' order by name",
  ).all<{ name: string }>();
  return results.map((r) => r.name);
}

/** Written by the analytics queue consumer after any verification of a genuine key. */
const ANALYTICS_TABLES = new Set(["verification_counts", "verification_batches"]);

/**
 * Every row of every table, in rowid order. `last_used_at` and the analytics tables are left
 * out: the queue consumer writes them after any use of a key (also by a request that is then
 * rejected for another reason).
 */
export async function d1Snapshot(): Promise<Record<string, Record<string, unknown>[]>> {
  const tables = (await appTables()).filter((table) => !ANALYTICS_TABLES.has(table));
  const results = await env.DB.batch(
    tables.map((table) => env.DB.prepare(`select * from "${table}" order by rowid`)),
  );
  const snapshot: Record<string, Record<string, unknown>[]> = {};
  tables.forEach((table, i) => {
    snapshot[table] = (results[i]?.results ?? []).map((row) => {
      const { last_used_at: _ignored, ...rest } = row as Record<string, unknown>;
      return rest;
    });
  });
  return snapshot;
}

/** RFC 9457 problem+json, with Keygate's `error` twin of `detail`. */
export function expectProblem(response: Response, status?: number): Json {
  if (status !== undefined) expect(response.status, response.text).toBe(status);
  expect(response.headers.get("content-type")).toContain("application/problem+json");
  const body = response.body;
  expect(body, response.text).toMatchObject({ status: response.status });
  for (const field of ["type", "title", "detail", "instance", "error"]) {
    expect(typeof body[field], field).toBe("string");
  }
  expect(body.error).toBe(body.detail);
  expect(Array.isArray(body.errors)).toBe(true);
  if (response.status === 401) expect(response.headers.get("www-authenticate")).toBe("Bearer");
  return body;
}

// ---------- JSON Schema (the subset @hono/zod-openapi emits) ----------

const RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

function typeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

/**
 * Errors of `value` against `schema` (empty when it conforms). `strict`: an object schema
 * that lists properties and says nothing of others allows no others — a response field the
 * document does not declare is drift, and is reported.
 */
export function schemaErrors(doc: Json, schema: Json, value: unknown, strict = true): string[] {
  const errors: string[] = [];
  check(doc, schema, value, "$", strict, errors);
  return errors;
}

function resolve(doc: Json, schema: Json): Json {
  let current = schema;
  while (current && typeof current.$ref === "string") {
    const path = current.$ref.replace(/^#\//, "").split("/");
    current = path.reduce((node: Json, part: string) => node?.[part], doc);
    if (!current) throw new Error(`Unresolvable $ref ${schema.$ref}`);
  }
  return current;
}

/** Property names an object schema declares, through allOf. */
function declaredProperties(doc: Json, schema: Json): Set<string> | null {
  const s = resolve(doc, schema);
  if (s.additionalProperties !== undefined && s.additionalProperties !== false) return null;
  const names = new Set<string>(Object.keys(s.properties ?? {}));
  for (const part of s.allOf ?? []) {
    const inner = declaredProperties(doc, part);
    if (inner === null) return null;
    for (const name of inner) names.add(name);
  }
  return names;
}

function check(doc: Json, raw: Json, value: unknown, at: string, strict: boolean, out: string[]) {
  const schema = resolve(doc, raw);
  if (schema === true || schema === undefined) return;
  if (schema === false) {
    out.push(`${at}: no value allowed`);
    return;
  }
  if (schema.allOf) {
    for (const part of schema.allOf) check(doc, part, value, at, false, out);
    if (strict && typeOf(value) === "object") extraProperties(doc, schema, value, at, out);
  }
  if (schema.anyOf || schema.oneOf) {
    const options: Json[] = schema.anyOf ?? schema.oneOf;
    const matches = options.filter((o) => {
      const e: string[] = [];
      check(doc, o, value, at, strict, e);
      return e.length === 0;
    });
    if (matches.length === 0) out.push(`${at}: matches none of ${options.length} alternatives`);
    if (schema.oneOf && matches.length > 1) out.push(`${at}: matches several oneOf alternatives`);
  }
  if ("const" in schema && value !== schema.const) {
    out.push(`${at}: expected ${JSON.stringify(schema.const)}`);
  }
  if (schema.enum && !schema.enum.includes(value)) {
    out.push(`${at}: ${JSON.stringify(value)} not in ${JSON.stringify(schema.enum)}`);
  }
  if (schema.type !== undefined) {
    const allowed: string[] = Array.isArray(schema.type) ? schema.type : [schema.type];
    const actual = typeOf(value);
    const ok = allowed.includes(actual) || (actual === "integer" && allowed.includes("number"));
    if (!ok) {
      out.push(`${at}: ${actual} is not ${allowed.join("|")}`);
      return;
    }
  }
  if (typeof value === "string") {
    if (schema.minLength !== undefined && value.length < schema.minLength) {
      out.push(`${at}: shorter than ${schema.minLength}`);
    }
    if (schema.maxLength !== undefined && value.length > schema.maxLength) {
      out.push(`${at}: longer than ${schema.maxLength}`);
    }
    if (schema.pattern && !new RegExp(schema.pattern).test(value)) {
      out.push(`${at}: does not match ${schema.pattern}`);
    }
    if (
      schema.format === "date-time" &&
      (!RFC3339.test(value) || Number.isNaN(Date.parse(value)))
    ) {
      out.push(`${at}: ${value} is not an RFC 3339 date-time`);
    }
  }
  if (typeof value === "number") {
    if (schema.minimum !== undefined && value < schema.minimum) out.push(`${at}: < minimum`);
    if (schema.maximum !== undefined && value > schema.maximum) out.push(`${at}: > maximum`);
  }
  if (Array.isArray(value)) {
    if (schema.maxItems !== undefined && value.length > schema.maxItems) {
      out.push(`${at}: more than ${schema.maxItems} items`);
    }
    if (schema.items) {
      value.forEach((item, i) => {
        check(doc, schema.items, item, `${at}[${i}]`, strict, out);
      });
    }
  }
  if (typeOf(value) === "object") {
    const object = value as Record<string, unknown>;
    for (const name of schema.required ?? []) {
      if (!(name in object)) out.push(`${at}.${name}: required but absent`);
    }
    for (const [name, sub] of Object.entries<Json>(schema.properties ?? {})) {
      if (name in object) check(doc, sub, object[name], `${at}.${name}`, strict, out);
    }
    if (typeof schema.additionalProperties === "object") {
      for (const [name, item] of Object.entries(object)) {
        if (!(name in (schema.properties ?? {}))) {
          check(doc, schema.additionalProperties, item, `${at}.${name}`, strict, out);
        }
      }
    }
    if (strict && !schema.allOf) extraProperties(doc, schema, object, at, out);
  }
}

function extraProperties(doc: Json, schema: Json, value: unknown, at: string, out: string[]) {
  if (!schema.properties && !schema.allOf) return;
  const declared = declaredProperties(doc, schema);
  if (declared === null) return;
  for (const name of Object.keys(value as object)) {
    if (!declared.has(name)) out.push(`${at}.${name}: not declared in the schema`);
  }
}
