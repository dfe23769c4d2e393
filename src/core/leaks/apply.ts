// A leaked key reported (SPEC Part 3 "Leaked keys"), from either door: found by its hash in
// any organization, marked `leaked_at` the first time only, audited, and its project's policy
// applied through the same path as a revoke or a disable: announced to the revocation feed
// before it commits, committed on the version announced, then published (docs/leaks.md).
import { and, eq, inArray, isNull } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { insertWhere, previousChangedOneRow } from "../../db/conditional";
import { type ApiKeyRow, apiKeys, auditEvents, type ProjectRow, projects } from "../../db/schema";
import { auditRecorded, auditValues } from "../audit";
import type { Core } from "../context";
import { conflict } from "../errors";
import { keyEventRows, occurrenceId } from "../events";
import { hashKey, parseKey } from "../key-material";
import { revokedColumns } from "../keys/rules";
import { identityNamed } from "../membership";
import type { LeakPolicy } from "../projects";
import { announceChanges, publishKey } from "../verify";

export type LeakSource = "github" | "report";

/** One reported token and where it was found. */
export interface LeakFind {
  token: string;
  /** Where the key was found, as the reporter says; null when not said. */
  url: string | null;
  /** GitHub's `source` (commit, npm, …) for a GitHub report. */
  foundIn?: string | null;
}

type Found = Omit<LeakFind, "token">;

/** Who reports, as the audit log names them: never a reporter's address. */
const REPORTERS: Record<LeakSource, string> = {
  github: "github-secret-scanning",
  report: "anonymous",
};

/** Lookups by hash per query: D1 takes at most 100 bound parameters. */
const LOOKUP_CHUNK = 90;
/** Keys per D1 batch (each two statements): well inside a batch's and an invocation's limits. */
const WRITE_CHUNK = 25;
/** Tries before a leak that keeps losing version races to other changes gives up (409). */
const LEAK_ATTEMPTS = 3;

/**
 * Applies a report to every genuine key among the reported tokens and answers which were
 * Keygate keys, by hash. A token that fails the format or checksum is dropped without a
 * storage read.
 */
export async function reportLeaks(
  core: Core,
  source: LeakSource,
  finds: readonly LeakFind[],
): Promise<Set<string>> {
  // The first find of a token says where it was found.
  const byHash = new Map<string, Found>();
  const seen = new Set<string>();
  for (const { token, ...where } of finds) {
    if (seen.has(token)) continue;
    seen.add(token);
    if (parseKey(token)) byHash.set(await hashKey(token), where);
  }
  const keys = await keysByHash(core, [...byHash.keys()]);
  await applyLeaks(
    core,
    source,
    keys.map((key) => ({ key, where: byHash.get(key.keyHash) as Found })),
  );
  return new Set(keys.map((key) => key.keyHash));
}

/** Stored keys with these hashes, in any organization (the hash is the key: as verify reads). */
async function keysByHash(core: Core, hashes: string[]): Promise<ApiKeyRow[]> {
  const rows: ApiKeyRow[] = [];
  for (let i = 0; i < hashes.length; i += LOOKUP_CHUNK) {
    const chunk = hashes.slice(i, i + LOOKUP_CHUNK);
    rows.push(...(await core.db.select().from(apiKeys).where(inArray(apiKeys.keyHash, chunk))));
  }
  return rows;
}

/** What one leak does to one key. */
interface LeakPlan {
  key: ApiKeyRow;
  where: Found;
  occurrence?: string;
  policy: LeakPolicy;
  /** What the policy changed: nothing when the key was already revoked or disabled. */
  applied: "revoked" | "disabled" | "none";
}

async function applyLeaks(
  core: Core,
  source: LeakSource,
  reported: { key: ApiKeyRow; where: Found }[],
) {
  const whereOf = new Map(reported.map(({ key, where }) => [key.id, where]));
  let pending = reported.map(({ key }) => key).filter((key) => key.leakedAt === null);
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > LEAK_ATTEMPTS) {
      throw conflict("A reported key kept changing while its leak was applied; report it again.");
    }
    const policies = await policiesOf(core, pending);
    const plans = await Promise.all(
      pending.map(async (key) => ({
        ...planOf(key, whereOf.get(key.id) as Found, policyOf(key, policies)),
        // A key leaks once: its event's webhook-ids are the same whoever queues it.
        occurrence: await occurrenceId("api_key.leaked", key.id),
        // Read before the commit, as every changer does; a revoked key's answer needs none.
        identity:
          policyOf(key, policies) === "disable"
            ? await identityNamed(core, key.organizationId, key.externalId)
            : null,
      })),
    );
    // A change of verdict is announced before it commits (503, nothing written, if it cannot be).
    await announceChanges(
      core,
      plans.filter((plan) => plan.applied !== "none").map((plan) => plan.key),
    );
    const lost: ApiKeyRow[] = [];
    for (let i = 0; i < plans.length; i += WRITE_CHUNK) {
      const chunk = plans.slice(i, i + WRITE_CHUNK);
      // Each key's mark, then its audit row and event rows (only if the mark was made).
      const statements = chunk.map((plan) => leakStatements(core, source, plan));
      const results = await core.db.batch(statements.flat() as unknown as [BatchItem<"sqlite">]);
      let at = 0;
      for (const [index, plan] of chunk.entries()) {
        const row = (results[at] as ApiKeyRow[])[0];
        at += (statements[index] as unknown[]).length;
        if (!row) lost.push(plan.key);
        else if (plan.applied !== "none") await publishKey(core, row, plan.identity);
      }
    }
    // Lost a version race (a rotation, a PATCH, a revoke) or another report marked it first:
    // read again; a key now marked leaked is done.
    pending = (await Promise.all(lost.map((key) => reread(core, key)))).filter(
      (key): key is ApiKeyRow => key !== undefined && key.leakedAt === null,
    );
  }
}

const reread = (core: Core, key: ApiKeyRow) =>
  core.db.query.apiKeys.findFirst({
    where: and(eq(apiKeys.organizationId, key.organizationId), eq(apiKeys.id, key.id)),
  });

/** The leak policy of each project the keys belong to, read in each key's organization. */
async function policiesOf(core: Core, keys: ApiKeyRow[]) {
  const byOrganization = new Map<string, Set<string>>();
  for (const key of keys) {
    if (key.projectId === null) continue;
    const ids = byOrganization.get(key.organizationId) ?? new Set<string>();
    ids.add(key.projectId);
    byOrganization.set(key.organizationId, ids);
  }
  const policies = new Map<string, ProjectRow["leakPolicy"]>();
  for (const [organizationId, ids] of byOrganization) {
    const list = [...ids];
    for (let i = 0; i < list.length; i += LOOKUP_CHUNK) {
      const rows = await core.db
        .select({ id: projects.id, leakPolicy: projects.leakPolicy })
        .from(projects)
        .where(
          and(
            eq(projects.organizationId, organizationId),
            inArray(projects.id, list.slice(i, i + LOOKUP_CHUNK)),
          ),
        );
      for (const row of rows) policies.set(`${organizationId}/${row.id}`, row.leakPolicy);
    }
  }
  return policies;
}

/** Org-scoped keys are always revoked; a project key gets its project's policy. */
const policyOf = (key: ApiKeyRow, policies: Map<string, LeakPolicy>): LeakPolicy =>
  key.projectId === null
    ? "revoke"
    : (policies.get(`${key.organizationId}/${key.projectId}`) ?? "revoke");

function planOf(key: ApiKeyRow, where: Found, policy: LeakPolicy): LeakPlan {
  const applied =
    policy === "revoke" && key.revokedAt === null
      ? "revoked"
      : policy === "disable" && key.enabled
        ? "disabled"
        : "none";
  return { key, where, policy, applied };
}

/**
 * The key marked leaked (only if it was not yet: a repeat changes nothing) with the policy's
 * change, on the version announced when the verdict changes, and its audit event only if
 * the mark was made.
 */
function leakStatements(core: Core, source: LeakSource, plan: LeakPlan) {
  const { key, applied, where, policy } = plan;
  const now = core.now();
  const changesVerdict = applied !== "none";
  const set: Partial<ApiKeyRow> = {
    leakedAt: now,
    updatedAt: now,
    ...(applied === "revoked" ? revokedColumns(now) : {}),
    ...(applied === "disabled" ? { enabled: false } : {}),
    ...(changesVerdict ? { version: key.version + 1 } : {}),
  };
  const mark = core.db
    .update(apiKeys)
    .set(set)
    .where(
      and(
        eq(apiKeys.organizationId, key.organizationId),
        eq(apiKeys.id, key.id),
        isNull(apiKeys.leakedAt),
        changesVerdict ? eq(apiKeys.version, key.version) : undefined,
      ),
    )
    .returning();
  // The reporter acts in the key's organization; the audit log names the door, not a person.
  const system = { type: "system", organizationId: key.organizationId, name: "leaks" } as const;
  const actor = { type: source, id: REPORTERS[source] };
  const values = {
    ...auditValues(
      core,
      { principal: system, ip: null, userAgent: null },
      {
        action: "api_key.leaked",
        targetType: "api_key",
        targetId: key.id,
        projectId: key.projectId,
        metadata: {
          source,
          url: where.url,
          ...(where.foundIn ? { found_in: where.foundIn } : {}),
          policy,
          applied,
        },
      },
    ),
    actorType: actor.type,
    actorId: actor.id,
  };
  const audit = insertWhere(core.db, auditEvents, values, previousChangedOneRow);
  const event = keyEventRows(
    core,
    {
      type: "api_key.leaked",
      key: { ...key, ...set },
      actor,
      ...(plan.occurrence ? { occurrence: plan.occurrence } : {}),
      data: { leak: { source, url: where.url, policy } },
    },
    auditRecorded(values.id),
  );
  return event ? [mark, audit, event] : [mark, audit];
}
