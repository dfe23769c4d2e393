// Usage export for billing (SPEC Part 3 "Identities"): verification counts per hour or day,
// grouped by the keys' owner (`external_id`) or by key, over the keys the caller reaches.
import { and, asc, eq, sql } from "drizzle-orm";
import { apiKeys, verificationCounts } from "../../db/schema";
import type { Core } from "../context";
import { type Principal, requireScope } from "../principal";
import { findProject } from "../projects";
import {
  bucketOf,
  countedKey,
  foldCounts,
  inRange,
  resolveRange,
  type VerificationBucket,
} from "./queries";

export const USAGE_GRANULARITIES = ["hour", "day"] as const;
export const USAGE_GROUPS = ["external_id", "key_id"] as const;
export type UsageGroup = (typeof USAGE_GROUPS)[number];

export interface UsageQuery {
  /** Inclusive, ms; aligned down. */
  start?: number | undefined;
  /** Exclusive, ms; aligned up. */
  end?: number | undefined;
  granularity?: (typeof USAGE_GRANULARITIES)[number] | undefined;
  groupBy?: UsageGroup | undefined;
  /** Only this project's keys (it must be within the caller's reach). */
  projectId?: string | undefined;
}

export interface UsageRow extends VerificationBucket {
  /** The key's current `external_id` (null for keys without one), or its id. */
  group: string | null;
}

export interface UsageExport {
  granularity: (typeof USAGE_GRANULARITIES)[number];
  group_by: UsageGroup;
  /** By start, then group (null first), one per bucket and group with any count. */
  rows: UsageRow[];
}

/**
 * `GET /v1/usage`: `keys:read`; an org-wide caller sees every key of the organization (org-scoped
 * keys too), a project-scoped key only its project's keys; `projectId` narrows to one project.
 * Hour rows come from the minute and the folded hour rows; a day sums its hours.
 */
export async function usageExport(
  core: Core,
  principal: Principal,
  query: UsageQuery,
): Promise<UsageExport> {
  requireScope(principal, "keys:read");
  const range = resolveRange(
    { start: query.start, end: query.end, granularity: query.granularity ?? "hour" },
    core.now(),
  );
  const groupBy = query.groupBy ?? "external_id";
  let reach = eq(verificationCounts.organizationId, principal.organizationId);
  if (query.projectId !== undefined) {
    const project = await findProject(core, principal, query.projectId);
    reach = and(reach, eq(verificationCounts.projectId, project.id)) ?? reach;
  } else if (principal.type === "api_key" && principal.projectId !== null) {
    reach = and(reach, eq(verificationCounts.projectId, principal.projectId)) ?? reach;
  }
  const bucket = bucketOf(range);
  const group = groupBy === "key_id" ? verificationCounts.keyId : apiKeys.externalId;
  const rows = await core.db
    .select({
      bucket,
      group,
      code: verificationCounts.code,
      n: sql<number>`sum(${verificationCounts.count})`,
    })
    .from(verificationCounts)
    .leftJoin(apiKeys, countedKey)
    .where(and(reach, inRange(range)))
    .groupBy(bucket, group, verificationCounts.code)
    .orderBy(asc(bucket), asc(group), asc(verificationCounts.code));
  return {
    granularity: range.granularity as UsageExport["granularity"],
    group_by: groupBy,
    rows: foldCounts(rows),
  };
}
