import { and, asc, desc, eq, gte, inArray, lt, sql } from "drizzle-orm";
import { apiKeys, verificationCounts } from "../../db/schema";
import type { Core } from "../context";
import { invalid } from "../errors";
import { getIdentity } from "../identities";
import { findKey } from "../keys";
import { type Principal, requireScope } from "../principal";
import { findProject } from "../projects";

/** The analytics API: verification counts of one key or one project over a time range. */

export const GRANULARITIES = ["minute", "hour", "day"] as const;
export type Granularity = (typeof GRANULARITIES)[number];

export interface VerificationsQuery {
  /** Inclusive, ms; aligned down to the granularity. */
  start?: number | undefined;
  /** Exclusive, ms; aligned up to the granularity (so the current bucket is included). */
  end?: number | undefined;
  granularity?: Granularity | undefined;
}

export interface VerificationBucket {
  /** RFC 3339. */
  start: string;
  total: number;
  /** Per code; zeros omitted. */
  counts: Record<string, number>;
}

export interface KeyVerifications {
  key_id: string;
  granularity: Granularity;
  buckets: VerificationBucket[];
}

export interface ProjectVerifications {
  project_id: string;
  granularity: Granularity;
  buckets: VerificationBucket[];
  /** At most 10, by total over the range, ties by key_id. */
  top_keys: { key_id: string; name: string; total: number }[];
}

export const GRANULARITY_MS: Record<Granularity, number> = {
  minute: 60_000,
  hour: 3_600_000,
  day: 86_400_000,
};

/** `start` when the query has none: this long before `end`. */
const DEFAULT_SPAN_MS: Record<Granularity, number> = {
  minute: 60 * 60_000,
  hour: 24 * 3_600_000,
  day: 30 * 86_400_000,
};

export const MAX_SLOTS = 1_000;
export const TOP_KEYS = 10;

export interface Range {
  granularity: Granularity;
  start: number;
  end: number;
}

/** Defaults and alignment; a range of more than 1 000 slots is refused, saying why. */
export function resolveRange(query: VerificationsQuery, now: number): Range {
  const granularity = query.granularity ?? "hour";
  const size = GRANULARITY_MS[granularity];
  const end = query.end ?? now;
  const start = query.start ?? end - DEFAULT_SPAN_MS[granularity];
  // Aligned first, so `start = end` inside a bucket still asks for that bucket; only a start
  // after the end is a mistake.
  if (start > end) {
    throw invalid("start", "must not be after end.", iso(start));
  }
  const alignedStart = Math.floor(start / size) * size;
  const alignedEnd = Math.ceil(end / size) * size;
  const slots = (alignedEnd - alignedStart) / size;
  if (slots > MAX_SLOTS) {
    throw invalid(
      "start",
      `the range holds ${slots} ${granularity} buckets; at most ${MAX_SLOTS} fit in one answer. Narrow start/end or use a coarser granularity.`,
      iso(start),
    );
  }
  return { granularity, start: alignedStart, end: alignedEnd };
}

const iso = (ms: number) => (Number.isFinite(ms) ? new Date(ms).toISOString() : String(ms));

/** Minute rows answer minute queries; hour and day queries add the folded hour rows too. */
const storedGranularities = (granularity: Granularity) =>
  granularity === "minute" ? (["minute"] as const) : (["minute", "hour"] as const);

export function inRange(range: Range) {
  return and(
    inArray(verificationCounts.granularity, [...storedGranularities(range.granularity)]),
    gte(verificationCounts.bucketStart, range.start),
    lt(verificationCounts.bucketStart, range.end),
  );
}

// The size is a constant of GRANULARITY_MS, written into the SQL so that the grouping
// expression and the selected one are the same text.
export const bucketOf = (range: Range) => {
  const size = sql.raw(String(GRANULARITY_MS[range.granularity]));
  return sql<number>`(${verificationCounts.bucketStart} / ${size}) * ${size}`;
};

async function buckets(
  core: Core,
  range: Range,
  scope: ReturnType<typeof and>,
): Promise<VerificationBucket[]> {
  const bucket = bucketOf(range);
  const rows = await core.db
    .select({
      bucket,
      code: verificationCounts.code,
      n: sql<number>`sum(${verificationCounts.count})`,
    })
    .from(verificationCounts)
    .where(and(scope, inRange(range)))
    .groupBy(bucket, verificationCounts.code)
    .orderBy(asc(bucket), asc(verificationCounts.code));
  return foldCounts(rows).map(({ group: _, ...bucket }) => bucket);
}

/** A row of summed counts: one bucket (and group), one code. */
export interface CountRow {
  bucket: number | string;
  group?: string | null;
  code: string;
  n: number | string;
}

/**
 * Rows in bucket (and group) order, one per code, folded into one entry per bucket and group
 * with its total; zero counts are omitted.
 */
export function foldCounts(rows: CountRow[]): (VerificationBucket & { group: string | null })[] {
  const out: (VerificationBucket & { group: string | null })[] = [];
  for (const row of rows) {
    const start = new Date(Number(row.bucket)).toISOString();
    const group = row.group ?? null;
    let current = out[out.length - 1];
    if (current?.start !== start || current.group !== group) {
      current = { start, group, total: 0, counts: {} };
      out.push(current);
    }
    const n = Number(row.n);
    if (n === 0) continue;
    current.counts[row.code] = n;
    current.total += n;
  }
  return out;
}

/** `GET /v1/api-keys/{keyID}/verifications`: keys:read, and the key within the caller's reach. */
export async function keyVerifications(
  core: Core,
  principal: Principal,
  keyId: string,
  query: VerificationsQuery,
): Promise<KeyVerifications> {
  requireScope(principal, "keys:read");
  const range = resolveRange(query, core.now());
  const key = await findKey(core, principal, keyId);
  return {
    key_id: key.id,
    granularity: range.granularity,
    buckets: await buckets(
      core,
      range,
      and(
        eq(verificationCounts.organizationId, key.organizationId),
        eq(verificationCounts.keyId, key.id),
      ),
    ),
  };
}

/**
 * `GET /v1/projects/{id}/verifications`: the keys of that project (org-scoped keys appear only
 * in their own key's analytics) and its ten busiest keys over the range.
 */
export async function projectVerifications(
  core: Core,
  principal: Principal,
  projectId: string,
  query: VerificationsQuery,
): Promise<ProjectVerifications> {
  requireScope(principal, "keys:read");
  const range = resolveRange(query, core.now());
  const project = await findProject(core, principal, projectId);
  const scope = and(
    eq(verificationCounts.organizationId, project.organizationId),
    eq(verificationCounts.projectId, project.id),
  );
  return { project_id: project.id, ...(await keysVerifications(core, range, scope)) };
}

export interface IdentityVerifications extends Omit<ProjectVerifications, "project_id"> {
  identity_id: string;
}

/**
 * `GET /v1/identities/{identityID}/verifications`: the keys of the identity's organization
 * whose `external_id` is the identity's (org-scoped keys included), as a project's answer.
 */
export async function identityVerifications(
  core: Core,
  principal: Principal,
  identityId: string,
  query: VerificationsQuery,
): Promise<IdentityVerifications> {
  requireScope(principal, "keys:read");
  const range = resolveRange(query, core.now());
  const identity = await getIdentity(core, principal, identityId);
  const owned = core.db
    .select({ id: apiKeys.id })
    .from(apiKeys)
    .where(
      and(
        eq(apiKeys.organizationId, identity.organizationId),
        eq(apiKeys.externalId, identity.externalId),
      ),
    );
  const scope = and(
    eq(verificationCounts.organizationId, identity.organizationId),
    inArray(verificationCounts.keyId, owned),
  );
  return { identity_id: identity.id, ...(await keysVerifications(core, range, scope)) };
}

/** Joins a count row to its key (within the row's organization). */
export const countedKey = and(
  eq(apiKeys.id, verificationCounts.keyId),
  eq(apiKeys.organizationId, verificationCounts.organizationId),
);

/** The buckets of the counts in `scope` (one organization's keys) and its ten busiest keys. */
async function keysVerifications(core: Core, range: Range, scope: ReturnType<typeof and>) {
  const total = sql<number>`sum(${verificationCounts.count})`;
  const [series, top] = await Promise.all([
    buckets(core, range, scope),
    core.db
      .select({ key_id: verificationCounts.keyId, name: apiKeys.name, total })
      .from(verificationCounts)
      .innerJoin(apiKeys, countedKey)
      .where(and(scope, inRange(range)))
      .groupBy(verificationCounts.keyId)
      .orderBy(desc(total), asc(verificationCounts.keyId))
      .limit(TOP_KEYS),
  ]);
  return {
    granularity: range.granularity,
    buckets: series,
    top_keys: top.map((row) => ({ key_id: row.key_id, name: row.name, total: Number(row.total) })),
  };
}
