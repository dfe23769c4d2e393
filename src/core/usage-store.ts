// The core's side of the KeyUsage Durable Object: which object a key uses, what a
// verification asks it, and the reads and adjustments of the management routes. Only keys
// with rate limits or credits ever get here (SPEC: the others' warm path never touches it).
import type { Core } from "./context";
import { invalid, unavailable } from "./errors";
import type { RateLimitRule } from "./governance";
import type { CreditOperation, CreditsSpec, CreditsState, SpendResult } from "./usage";
import type { VerifyOptions } from "./verify/options";

/** What the usage object needs to know of a key. */
export interface UsageHolder {
  /** The first key's id, shared by every rotation successor: one object per lineage. */
  lineageId: string;
  ratelimits: RateLimitRule[] | null;
  credits: CreditsSpec | null;
}

export const isLimited = (key: { ratelimits: unknown; credits: unknown }) =>
  key.ratelimits !== null || key.credits !== null;

function usageObject(core: Core, lineageId: string) {
  const namespace = core.env.KEY_USAGE;
  return namespace.get(namespace.idFromName(lineageId));
}

/** Fail closed: a limited key is never VALID without the object's say. */
const usageUnavailable = () =>
  unavailable("The usage store is unavailable; the key could not be verified.");

/**
 * The limits a request applies, each with its units: the ones it names (a name the key does
 * not have is invalid), or all of the key's at the request's `cost`.
 */
export function limitsFor(
  ratelimits: RateLimitRule[] | null,
  request: Pick<VerifyOptions, "cost" | "ratelimits">,
) {
  const cost = request.cost ?? 1;
  const own = ratelimits ?? [];
  if (request.ratelimits === undefined) return own.map((spec) => ({ spec, cost }));
  return request.ratelimits.map((use, i) => {
    const spec = own.find((r) => r.name === use.name);
    if (!spec) {
      throw invalid(`ratelimits.${i}.name`, "the key has no such rate limit", use.name);
    }
    return { spec, cost: use.cost ?? cost };
  });
}

/** One call decides every limit and the credits together; nothing is spent on a refusal. */
export async function spendUsage(
  core: Core,
  key: UsageHolder,
  limits: ReturnType<typeof limitsFor>,
  cost: number,
  now: number,
): Promise<SpendResult> {
  try {
    return await usageObject(core, key.lineageId).spend({
      now,
      cost,
      limits,
      credits: key.credits,
    });
  } catch {
    throw usageUnavailable();
  }
}

/** The exact balance now (refills applied), for `GET /v1/api-keys/{keyID}`. */
export async function readCredits(
  core: Core,
  lineageId: string,
  credits: CreditsSpec,
): Promise<CreditsState> {
  try {
    return await usageObject(core, lineageId).readCredits({ now: core.now(), credits });
  } catch {
    throw usageUnavailable();
  }
}

export async function adjustCredits(
  core: Core,
  lineageId: string,
  credits: CreditsSpec,
  operation: CreditOperation,
  value: number,
): Promise<CreditsState> {
  try {
    return await usageObject(core, lineageId).adjustCredits({
      now: core.now(),
      credits,
      operation,
      value,
    });
  } catch {
    throw usageUnavailable();
  }
}
