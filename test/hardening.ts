// Shared by the hardening tests (fuzz, faults, concurrency, secret hygiene): what D1 holds,
// what a problem+json body must look like, and the OpenAPI schema check (@cfworker/json-schema).

import { env } from "cloudflare:workers";
import { Validator } from "@cfworker/json-schema";
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

// ---------- JSON Schema: the document's schemas, checked by @cfworker/json-schema ----------

/**
 * `node` with every `$ref` into the document replaced by what it names, so a schema can be
 * closed where it is used (a component may be one part of an allOf). The document's schemas
 * are not recursive; a ref seen again on its own path is an error.
 */
function inlined(doc: Json, node: Json, seen: string[] = []): Json {
  if (Array.isArray(node)) return node.map((item) => inlined(doc, item, seen));
  if (node === null || typeof node !== "object") return node;
  if (typeof node.$ref === "string") {
    if (seen.includes(node.$ref)) throw new Error(`Recursive $ref ${node.$ref}`);
    const target = node.$ref
      .replace(/^#\//, "")
      .split("/")
      .reduce((at: Json, part: string) => at?.[part], doc);
    if (target === undefined) throw new Error(`Unresolvable $ref ${node.$ref}`);
    const { $ref: _, ...rest } = node;
    return { ...inlined(doc, target, [...seen, node.$ref]), ...inlined(doc, rest, seen) };
  }
  return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, inlined(doc, v, seen)]));
}

/**
 * A copy of `node` whose object schemas admit no member they do not declare (JSON Schema
 * 2020-12 `unevaluatedProperties: false`, which sees through allOf): a response member the
 * document does not declare is drift. Parts of an allOf are closed by their parent.
 */
function closed(node: Json, inAllOf = false): Json {
  if (Array.isArray(node)) return node.map((item) => closed(item));
  if (node === null || typeof node !== "object") return node;
  const copy: Json = {};
  for (const [name, value] of Object.entries<Json>(node)) {
    copy[name] = name === "allOf" ? value.map((part: Json) => closed(part, true)) : closed(value);
  }
  const open = "additionalProperties" in node || "unevaluatedProperties" in node;
  if ((node.properties || node.allOf) && !open && !inAllOf) copy.unevaluatedProperties = false;
  return copy;
}

/**
 * Errors of `value` against `schema`, a schema of `doc` (empty when it conforms). `strict`:
 * an object schema that lists properties and says nothing of others allows no others.
 */
export function schemaErrors(doc: Json, schema: Json, value: unknown, strict = true): string[] {
  const whole = inlined(doc, schema);
  const validator = new Validator(strict ? closed(whole) : whole, "2020-12", false);
  return validator
    .validate(value)
    .errors.map((e) => `${e.instanceLocation}: ${e.keyword}: ${e.error}`);
}
