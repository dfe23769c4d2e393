// The core's side of the KeyUsage Durable Object: which object a key uses, what a
// verification asks it, and the reads and adjustments of the management routes. Only keys
// with rate limits or credits, their own or their identity's, ever get here (SPEC: the
// others' warm path never touches it).
import type { Core } from "./context";
import { invalid, unavailable } from "./errors";
import type { RateLimitRule } from "./governance";
import {
  type CreditOperation,
  type CreditsSpec,
  type CreditsState,
  memberHolder,
  type SpendResult,
} from "./usage";
import type { VerifyOptions } from "./verify/options";

/**
 * The KeyUsage object that holds an identity's limits and credits, and those of its member
 * keys (SPEC Part 3). Key lineages are named by a key's UUID, so the prefix keeps the two apart.
 */
export const identityUsageName = (identityId: string) => `identity:${identityId}`;

/** Where a key's limits and credits are decided: an object, and the key's holder in it. */
export interface UsagePlace {
  object: string;
  holder: string;
}

/**
 * A key of an identity decides in its identity's object (one call for both), as the holder
 * of its lineage; a key without one in its own lineage's object, as its only holder.
 */
export const usagePlaceOf = (lineageId: string, identityId: string | null): UsagePlace =>
  identityId === null
    ? { object: lineageId, holder: "" }
    : { object: identityUsageName(identityId), holder: memberHolder(lineageId) };

/** What the usage object needs to know of a key. */
export interface UsageHolder {
  /** The first key's id, shared by every rotation successor: one object per lineage. */
  lineageId: string;
  ratelimits: RateLimitRule[] | null;
  credits: CreditsSpec | null;
  /** The key's identity (its limits and credits decided with the key's), or null. */
  identity: { id: string; ratelimits: RateLimitRule[] | null; credits: CreditsSpec | null } | null;
}

export const isLimited = (key: { ratelimits: unknown; credits: unknown }) =>
  key.ratelimits !== null || key.credits !== null;

/** Whether a verification must ask a usage object: limits or credits on the key or its identity. */
export const needsUsage = (key: UsageHolder) =>
  isLimited(key) || (key.identity !== null && isLimited(key.identity));

function usageObject(core: Core, name: string) {
  const namespace = core.env.KEY_USAGE;
  return namespace.get(namespace.idFromName(name));
}

/** Fail closed: a limited key is never VALID without the object's say. */
const usageUnavailable = () =>
  unavailable("The usage store is unavailable; the key could not be verified.");

type Limits = { spec: RateLimitRule; cost: number }[];

/**
 * The limits a request applies, each with its units: the ones it names, or all at the
 * request's `cost`. With an identity, a name applies the key's limit and the identity's of
 * that name, each where it exists (both when both have it); a name neither has is invalid.
 */
export function limitsFor(
  ratelimits: RateLimitRule[] | null,
  request: Pick<VerifyOptions, "cost" | "ratelimits">,
  identityRatelimits: RateLimitRule[] | null = null,
): { key: Limits; identity: Limits } {
  const cost = request.cost ?? 1;
  const own = ratelimits ?? [];
  const shared = identityRatelimits ?? [];
  if (request.ratelimits === undefined) {
    return {
      key: own.map((spec) => ({ spec, cost })),
      identity: shared.map((spec) => ({ spec, cost })),
    };
  }
  const limits: { key: Limits; identity: Limits } = { key: [], identity: [] };
  request.ratelimits.forEach((use, i) => {
    const mine = own.find((r) => r.name === use.name);
    const theirs = shared.find((r) => r.name === use.name);
    if (!mine && !theirs) {
      throw invalid(`ratelimits.${i}.name`, "the key has no such rate limit", use.name);
    }
    if (mine) limits.key.push({ spec: mine, cost: use.cost ?? cost });
    if (theirs) limits.identity.push({ spec: theirs, cost: use.cost ?? cost });
  });
  return limits;
}

/**
 * One call decides every limit and the credits together, the identity's with the key's;
 * nothing is spent on a refusal.
 */
export async function spendUsage(
  core: Core,
  key: UsageHolder,
  limits: ReturnType<typeof limitsFor>,
  cost: number,
  now: number,
): Promise<SpendResult> {
  const { identity } = key;
  const place = usagePlaceOf(key.lineageId, identity?.id ?? null);
  try {
    return await usageObject(core, place.object).spend({
      now,
      cost,
      limits: limits.key,
      credits: key.credits,
      ...(identity
        ? { holder: place.holder, identity: { limits: limits.identity, credits: identity.credits } }
        : {}),
    });
  } catch {
    throw usageUnavailable();
  }
}

/** The exact balance now (refills applied), for `GET /v1/api-keys/{keyID}`. */
export async function readCredits(
  core: Core,
  place: UsagePlace,
  credits: CreditsSpec,
): Promise<CreditsState> {
  try {
    return await usageObject(core, place.object).readCredits({
      now: core.now(),
      holder: place.holder,
      credits,
    });
  } catch {
    throw usageUnavailable();
  }
}

export async function adjustCredits(
  core: Core,
  place: UsagePlace,
  credits: CreditsSpec,
  operation: CreditOperation,
  value: number,
): Promise<CreditsState> {
  try {
    return await usageObject(core, place.object).adjustCredits({
      now: core.now(),
      holder: place.holder,
      credits,
      operation,
      value,
    });
  } catch {
    throw usageUnavailable();
  }
}

/**
 * Takes holders' live balances out of one object (each left at 0 there): a key leaving the
 * place it decided in hands its balance to the next (see docs/identities.md "Moving keys").
 */
export async function releaseCredits(
  core: Core,
  object: string,
  holders: { holder: string; credits: CreditsSpec }[],
): Promise<number[]> {
  if (holders.length === 0) return [];
  try {
    return await usageObject(core, object).release({ now: core.now(), holders });
  } catch {
    throw usageUnavailable();
  }
}
