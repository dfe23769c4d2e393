// Identities (SPEC Part 3 "Identities: one owner, many keys"): an owner in the customer's own
// system, named by `external_id` (unique in its organization), with limits and credits of its
// own. The keys with the same `external_id` belong to it. Identities are organization-level:
// org-scoped API keys and Clerk users reach them (admins write, members read); project-scoped
// keys never do.
import { and, eq, isNull, lte, or, type SQL, sql } from "drizzle-orm";
import { type IdentityRow, identities } from "../db/schema";
import { type AuditEntry, auditInsert } from "./audit";
import type { Core } from "./context";
import { conflict, forbidden, invalid, loggable, notFound } from "./errors";
import {
  type CreditsSetting,
  governanceAudit,
  governanceColumns,
  type KeyMeta,
  type RateLimitRule,
  type RefillRule,
} from "./governance";
import {
  auditedChangeWith,
  identityNamed,
  keysNamed,
  type MovedCredits,
  movedCreditsUpdates,
  releaseKeyCredits,
  restoreKeyCredits,
} from "./membership";
import { listPage, type PageRequest } from "./pagination";
import { type Actor, type Principal, reachesOrganization, requireScope } from "./principal";
import type { CreditOperation } from "./usage";
import { adjustCredits, identityUsageName, readCredits } from "./usage-store";
import { announceEntries, identityFeedName, ownerFeedName } from "./verify";
import { creditsSpecOf } from "./verify/cache";

export { identityUsageName };

/** The identity's own limits and credits: the holder "" of its object. */
const identityPlace = (identity: IdentityRow) => ({
  object: identityUsageName(identity.id),
  holder: "",
});

/** The fields of a create or a PATCH; `undefined` leaves one as it is, `null` clears it. */
export interface IdentityInput {
  externalId?: string | undefined;
  meta?: KeyMeta | null | undefined;
  ratelimits?: RateLimitRule[] | null | undefined;
  credits?: CreditsSetting | null | undefined;
  /** The refill rule alone: the live balance stays as it is (the dashboard's refill-only save). */
  creditsRefill?: RefillRule | null | undefined;
}

const ORGANIZATION_ONLY =
  "Identities belong to the organization: a project-scoped API key cannot reach them.";

/** Readers: `keys:read`, org-wide. `collection`: a project key is refused (403) rather than hidden. */
function requireReader(principal: Principal, collection: boolean): void {
  requireScope(principal, "keys:read");
  if (collection && !reachesOrganization(principal)) throw forbidden(ORGANIZATION_ONLY);
}

/** Writers: `keys:write` of an org-scoped key, or a Clerk admin (members only read). */
function requireWriter(principal: Principal, collection: boolean): void {
  requireScope(principal, "keys:write");
  if (collection && !reachesOrganization(principal)) throw forbidden(ORGANIZATION_ONLY);
  if (principal.type === "user" && !principal.isAdmin) {
    throw forbidden("Only organization admins can change identities.");
  }
}

/** The identity, if the caller reaches it; 404 otherwise (another tenant's, or a project key). */
export async function findIdentity(
  core: Core,
  principal: Principal,
  identityId: string,
): Promise<IdentityRow> {
  const row = await core.db.query.identities.findFirst({
    where: and(
      eq(identities.organizationId, principal.organizationId),
      eq(identities.id, identityId),
    ),
  });
  if (!row || !reachesOrganization(principal)) throw notFound("Identity");
  return row;
}

export async function getIdentity(core: Core, principal: Principal, identityId: string) {
  requireReader(principal, false);
  return findIdentity(core, principal, identityId);
}

/** The organization's identities, oldest first; `externalId` finds the one of that owner. */
export async function listIdentities(
  core: Core,
  principal: Principal,
  filter: { externalId?: string | undefined },
  page: PageRequest,
) {
  requireReader(principal, true);
  const list = {
    kind: "identities",
    organizationId: principal.organizationId,
    // A cursor opens only on the list with the same filter.
    filter: filter.externalId ?? null,
  };
  const where =
    filter.externalId === undefined ? undefined : eq(identities.externalId, filter.externalId);
  return listPage(core, identities, list, where, page, "oldest");
}

const duplicate = (externalId: string) =>
  conflict(`An identity with external_id "${externalId}" already exists in this organization.`);

/** The audit record of a create or change: which fields, and the values that are safe. */
const auditOf = (action: string, identityId: string, input: IdentityInput): AuditEntry => ({
  action,
  targetType: "identity",
  targetId: identityId,
  metadata: governanceAudit(input),
});

export async function createIdentity(
  core: Core,
  actor: Actor,
  input: IdentityInput & { externalId: string },
): Promise<IdentityRow> {
  requireWriter(actor.principal, true);
  const now = core.now();
  const id = crypto.randomUUID();
  const { organizationId } = actor.principal;
  if (await identityNamed(core, organizationId, input.externalId)) {
    throw duplicate(input.externalId);
  }
  // Keys with this external_id had no identity: their cached records are refused from now
  // on, and their own credits move into the identity's object with them.
  await announceEntries(core, [[ownerFeedName(organizationId, input.externalId), 1]]);
  const joining = await keysNamed(core, organizationId, input.externalId);
  const moved = await releaseKeyCredits(core, joining, null);
  const unnamed = sql`not exists (select 1 from ${identities} as other where other.organization_id = ${organizationId} and other.external_id = ${input.externalId})`;
  // The unique index decides a race between two creates of one owner: the loser inserts
  // nothing, so its audit event is not written either (nor are its keys' credits moved).
  const row = await committed(core, moved, () =>
    auditedChangeWith<IdentityRow>(
      core,
      actor,
      movedCreditsUpdates(core, organizationId, moved, unnamed),
      core.db
        .insert(identities)
        .values({
          ...governanceColumns(input, now),
          id,
          organizationId,
          externalId: input.externalId,
          createdAt: now,
          updatedAt: now,
        })
        .onConflictDoNothing()
        .returning(),
      auditOf("identity.created", id, input),
    ),
  );
  if (!row) throw duplicate(input.externalId);
  return row;
}

/** Runs a change's batch; when it commits nothing, the moved balances go back. */
async function committed<T>(
  core: Core,
  moved: MovedCredits[],
  change: () => Promise<T | undefined>,
): Promise<T | undefined> {
  let row: T | undefined;
  try {
    row = await change();
  } catch (error) {
    await restoreKeyCredits(core, moved);
    throw error;
  }
  if (!row) await restoreKeyCredits(core, moved);
  return row;
}

/** Tries before a change that keeps losing races to other changes gives up (409). */
const CHANGE_ATTEMPTS = 3;

export async function updateIdentity(
  core: Core,
  actor: Actor,
  identityId: string,
  input: IdentityInput,
): Promise<IdentityRow> {
  requireWriter(actor.principal, false);
  for (let attempt = 1; ; attempt++) {
    const row = await updateOnce(core, actor, identityId, input);
    if (row) return row;
    if (attempt === CHANGE_ATTEMPTS) {
      throw conflict("The identity kept changing while it was being changed; try again.");
    }
  }
}

/**
 * One try: announced (the identity's next version, and a new external_id's owner name), the
 * keys' own credits moved when a rename changes its members, then committed on the version
 * that was read. null when another change won the race (the caller reads again).
 */
async function updateOnce(
  core: Core,
  actor: Actor,
  identityId: string,
  input: IdentityInput,
): Promise<IdentityRow | null> {
  const identity = await findIdentity(core, actor.principal, identityId);
  if (
    input.credits === undefined &&
    input.creditsRefill !== undefined &&
    identity.creditsRemaining === null
  ) {
    throw invalid(
      "credits.remaining",
      "an identity without credits needs remaining (the refill alone changes existing credits)",
      undefined,
    );
  }
  // New credits get a version newer than any the usage object has seen, so it adopts them.
  const { externalId, ...fields } = input;
  const changes: Partial<IdentityRow> = externalId === undefined ? {} : { externalId };
  Object.assign(
    changes,
    governanceColumns(fields, Math.max(core.now(), (identity.creditsVersion ?? 0) + 1)),
  );
  if (Object.keys(changes).length === 0) return identity;
  const { organizationId } = identity;
  const renamed = externalId !== undefined && externalId !== identity.externalId;
  if (renamed) {
    const other = await identityNamed(core, organizationId, externalId);
    if (other && other.id !== identity.id) throw duplicate(externalId);
  }
  // `updated_at` is the identity's version (key records carry it): strictly newer.
  const version = Math.max(core.now(), identity.updatedAt + 1);
  await announceEntries(core, [
    [identityFeedName(identity.id), version],
    ...(renamed ? [[ownerFeedName(organizationId, externalId), 1] as [string, number]] : []),
  ]);
  const moved: MovedCredits[] = [];
  if (renamed) {
    // Keys named by the old external_id leave, those named by the new one join.
    const leaving = await keysNamed(core, organizationId, identity.externalId);
    moved.push(...(await releaseKeyCredits(core, leaving, identity.id)));
    const joining = await keysNamed(core, organizationId, externalId);
    moved.push(...(await releaseKeyCredits(core, joining, null)));
  }
  // Renaming onto another identity's external_id changes nothing (checked in the statement
  // itself, so two renames cannot both pass).
  const free =
    externalId === undefined
      ? undefined
      : sql`not exists (select 1 from ${identities} as other where other.organization_id = ${organizationId} and other.external_id = ${externalId} and other.id <> ${identity.id})`;
  const unchanged = and(
    eq(identities.organizationId, organizationId),
    eq(identities.id, identity.id),
    eq(identities.updatedAt, identity.updatedAt),
    free,
  );
  const row = await committed(core, moved, () =>
    auditedChangeWith<IdentityRow>(
      core,
      actor,
      movedCreditsUpdates(core, organizationId, moved, stillThere(unchanged)),
      core.db
        .update(identities)
        .set({ ...changes, updatedAt: version })
        .where(unchanged)
        .returning(),
      auditOf("identity.updated", identity.id, input),
    ),
  );
  if (row) return row;
  const now = await findIdentity(core, actor.principal, identityId); // deleted meanwhile: 404
  if (now.updatedAt !== identity.updatedAt) return null; // changed meanwhile: try again
  throw duplicate(externalId ?? identity.externalId);
}

/** The change's condition on the identity, for statements on other tables in its batch. */
const stillThere = (condition: SQL | undefined) =>
  sql`exists (select 1 from ${identities} where ${condition})`;

export async function deleteIdentity(core: Core, actor: Actor, identityId: string) {
  requireWriter(actor.principal, false);
  for (let attempt = 1; ; attempt++) {
    const identity = await findIdentity(core, actor.principal, identityId);
    const { organizationId } = identity;
    // Records carrying the identity are refused from now on: its keys decide alone, each
    // with its own credits handed back from the identity's object.
    await announceEntries(core, [[identityFeedName(identity.id), identity.updatedAt + 1]]);
    const leaving = await keysNamed(core, organizationId, identity.externalId);
    const moved = await releaseKeyCredits(core, leaving, identity.id);
    const unchanged = and(
      eq(identities.organizationId, organizationId),
      eq(identities.id, identity.id),
      eq(identities.updatedAt, identity.updatedAt),
    );
    const row = await committed(core, moved, () =>
      auditedChangeWith<IdentityRow>(
        core,
        actor,
        movedCreditsUpdates(core, organizationId, moved, stillThere(unchanged)),
        core.db.delete(identities).where(unchanged).returning(),
        {
          action: "identity.deleted",
          targetType: "identity",
          targetId: identity.id,
          metadata: { external_id: identity.externalId },
        },
      ),
    );
    if (row) return;
    if (attempt === CHANGE_ATTEMPTS) {
      throw conflict("The identity kept changing while it was being deleted; try again.");
    }
  }
}

/** The exact remaining credits (the identity's usage object's), or null without credits. */
export async function liveIdentityCredits(core: Core, identity: IdentityRow) {
  const spec = creditsSpecOf(identity);
  if (!spec) return null;
  return (await readCredits(core, identityPlace(identity), spec)).remaining;
}

/** Atomic in the usage object: concurrent operations never lose an update. */
export async function adjustIdentityCredits(
  core: Core,
  actor: Actor,
  identityId: string,
  operation: CreditOperation,
  value: number,
): Promise<{ remaining: number }> {
  requireWriter(actor.principal, false);
  const identity = await findIdentity(core, actor.principal, identityId);
  const spec = creditsSpecOf(identity);
  if (!spec) {
    throw conflict("This identity has no credits (unlimited): set them with PATCH first.");
  }
  const { remaining } = await adjustCredits(core, identityPlace(identity), spec, operation, value);
  await noteIdentityCreditsSeen(core, identity, remaining);
  // After the fact: the usage object is not D1, so the two cannot be one batch.
  await auditInsert(core, actor, {
    action: "identity.credits_adjusted",
    targetType: "identity",
    targetId: identity.id,
    metadata: { operation, value, remaining },
  });
  return { remaining };
}

/** What lists show after an operation (see listedCredits); a failure costs only freshness. */
async function noteIdentityCreditsSeen(core: Core, identity: IdentityRow, remaining: number) {
  const now = core.now();
  try {
    await core.db
      .update(identities)
      .set({ creditsSeen: remaining, creditsSeenAt: now })
      .where(
        and(
          eq(identities.organizationId, identity.organizationId),
          eq(identities.id, identity.id),
          or(isNull(identities.creditsSeenAt), lte(identities.creditsSeenAt, now)),
        ),
      );
  } catch (error) {
    console.error("identity credits: the listed balance was not noted:", loggable(error));
  }
}
