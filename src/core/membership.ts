// Which identity a key belongs to, and moving a key's own credits when that changes (SPEC
// Part 3, docs/identities.md "Moving keys"). A key decides where its identity's limits and
// credits are (the identity's KeyUsage object) or, without one, in its own lineage's object;
// its own live balance must follow it there, never lost and never counted twice.
import { and, eq, isNotNull, type SQL, sql } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import { insertWhere, previousChangedOneRow } from "../db/conditional";
import { type ApiKeyRow, apiKeys, auditEvents, type IdentityRow, identities } from "../db/schema";
import { type AuditEntry, auditValues } from "./audit";
import type { Core } from "./context";
import { loggable } from "./errors";
import type { Actor } from "./principal";
import { adjustCredits, releaseCredits, usagePlaceOf } from "./usage-store";
import { creditsSpecOf, lineageOf } from "./verify/cache";

/** The identity of the organization named `externalId`, or null. */
export async function identityNamed(
  core: Core,
  organizationId: string,
  externalId: string | null,
): Promise<IdentityRow | null> {
  if (externalId === null) return null;
  const row = await core.db.query.identities.findFirst({
    where: and(
      eq(identities.organizationId, organizationId),
      eq(identities.externalId, externalId),
    ),
  });
  return row ?? null;
}

/** Where a key's own credits live now: its identity's object, or its lineage's. */
export async function keyUsagePlace(core: Core, key: ApiKeyRow) {
  const identity = await identityNamed(core, key.organizationId, key.externalId);
  return usagePlaceOf(lineageOf(key), identity?.id ?? null);
}

/** A lineage's own credits handed over from the place it leaves, to be set in D1. */
export interface MovedCredits {
  lineageId: string;
  remaining: number;
  /** Newer than any the lineage had: the place it moves to adopts `remaining`. */
  version: number;
  /** Where the balance came from, to give it back if the commit fails. */
  from: { object: string; holder: string; credits: NonNullable<ReturnType<typeof creditsSpecOf>> };
}

/**
 * Hands the own credits of these keys (those that have some) over from the place they decide
 * in now, `from` (an identity's id, or null: each key's lineage object): each balance is read
 * and left at 0 there, so a verification still deciding there (a record older than the
 * change, within the revocation bound) is refused rather than spending it twice. One object
 * call for an identity's members, one per lineage for keys leaving their own objects.
 */
export async function releaseKeyCredits(
  core: Core,
  keys: ApiKeyRow[],
  from: string | null,
): Promise<MovedCredits[]> {
  const byLineage = new Map<string, ApiKeyRow>();
  for (const key of keys) {
    if (key.creditsRemaining === null) continue;
    const seen = byLineage.get(lineageOf(key));
    // Rotation successors copy the credits; the newest version is the lineage's.
    if (!seen || (seen.creditsVersion ?? 0) < (key.creditsVersion ?? 0)) {
      byLineage.set(lineageOf(key), key);
    }
  }
  const now = core.now();
  const holders = [...byLineage].map(([lineageId, key]) => {
    const credits = creditsSpecOf(key);
    if (!credits) throw new Error("unreachable: keys without credits were skipped");
    return { lineageId, credits, place: usagePlaceOf(lineageId, from) };
  });
  const moved: MovedCredits[] = [];
  const versionAfter = (spec: { version: number }) => Math.max(now, spec.version + 1);
  if (from !== null) {
    const object = holders[0]?.place.object;
    if (object === undefined) return [];
    const remaining = await releaseCredits(
      core,
      object,
      holders.map((h) => ({ holder: h.place.holder, credits: h.credits })),
    );
    holders.forEach((h, i) => {
      moved.push({
        lineageId: h.lineageId,
        remaining: remaining[i] ?? 0,
        version: versionAfter(h.credits),
        from: { object, holder: h.place.holder, credits: h.credits },
      });
    });
    return moved;
  }
  for (const h of holders) {
    try {
      const [remaining] = await releaseCredits(core, h.place.object, [
        { holder: "", credits: h.credits },
      ]);
      moved.push({
        lineageId: h.lineageId,
        remaining: remaining ?? 0,
        version: versionAfter(h.credits),
        from: { object: h.place.object, holder: "", credits: h.credits },
      });
    } catch (error) {
      await restoreKeyCredits(core, moved);
      throw error;
    }
  }
  return moved;
}

/**
 * The D1 side of a move, for the change's batch (auditedChange's `before`): each lineage's
 * keys get the handed-over balance as new credits (a newer version, so the next place adopts
 * it), only when `when` holds: the change's own condition, so both apply or neither.
 */
export function movedCreditsUpdates(
  core: Core,
  organizationId: string,
  moved: MovedCredits[],
  when: SQL,
): BatchItem<"sqlite">[] {
  return moved.map((m) =>
    core.db
      .update(apiKeys)
      .set({ creditsRemaining: m.remaining, creditsVersion: m.version })
      .where(
        and(
          eq(apiKeys.organizationId, organizationId),
          sql`coalesce(${apiKeys.lineageId}, ${apiKeys.id}) = ${m.lineageId}`,
          isNotNull(apiKeys.creditsRemaining),
          when,
        ),
      ),
  );
}

/**
 * A conditional change, its audit event and the statements that must go with it, in one
 * batch (atomic): `before` runs first and must carry the change's own condition, so all apply
 * or none (as auditedChange, src/core/audit.ts, with the moved credits ahead of the change).
 */
export async function auditedChangeWith<Row>(
  core: Core,
  actor: Actor,
  before: BatchItem<"sqlite">[],
  change: BatchItem<"sqlite"> & PromiseLike<Row[]>,
  entry: AuditEntry,
): Promise<Row | undefined> {
  const results = await core.db.batch([
    ...before,
    change,
    insertWhere(core.db, auditEvents, auditValues(core, actor, entry), previousChangedOneRow),
  ] as unknown as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]]);
  return (results[before.length] as Row[])[0];
}

/** The change did not commit: the balances go back where they were (best effort, logged). */
export async function restoreKeyCredits(core: Core, moved: MovedCredits[]): Promise<void> {
  for (const m of moved) {
    if (m.remaining === 0) continue;
    try {
      await adjustCredits(
        core,
        { object: m.from.object, holder: m.from.holder },
        m.from.credits,
        "increment",
        m.remaining,
      );
    } catch (error) {
      console.error(`credits of lineage ${m.lineageId} not given back:`, loggable(error));
    }
  }
}

/** The keys of the organization named `externalId` (an identity's members, now or to be). */
export async function keysNamed(core: Core, organizationId: string, externalId: string) {
  return core.db.query.apiKeys.findMany({
    where: and(
      eq(apiKeys.organizationId, organizationId),
      eq(apiKeys.externalId, externalId),
      isNotNull(apiKeys.creditsRemaining),
    ),
  });
}
