import { eq } from "drizzle-orm";
import { projects } from "../../db/schema";
import type { Core } from "../context";
import { noteCreditsExhausted } from "../credits-exhausted";
import { unavailable } from "../errors";
import type { KeyMeta } from "../governance";
import { ipAllowed } from "../ip";
import { hashKey, parseKey } from "../key-material";
import { hasScope } from "../principal";
import { MISS_WINDOW_SECONDS, withinMissBudget } from "../rate-limit";
import { iso } from "../time";
import type { CreditsState, RatelimitState, SpendResult } from "../usage";
import { limitsFor, needsUsage, spendUsage } from "../usage-store";
import {
  type KeyRecord,
  KV_WRITE_INTERVAL_MS,
  kvKey,
  readKeyRecord,
  readKvRecord,
  writeKvRecord,
} from "./cache";
import type { VerifyOptions, VerifyPin } from "./options";

/** Every verdict a verification can give: VALID, then the refusals in the order they are checked. */
export const VERIFY_CODES = [
  "VALID",
  "MALFORMED",
  "NOT_FOUND",
  "REVOKED",
  "EXPIRED",
  "DISABLED",
  "WRONG_PROJECT",
  "IP_NOT_ALLOWED",
  "INSUFFICIENT_SCOPE",
  "RATE_LIMITED",
  "USAGE_EXCEEDED",
] as const;
export type VerifyCode = (typeof VERIFY_CODES)[number];

/** The answer to "is this key good?": the same object over HTTP and RPC. */
export interface VerifyResult {
  valid: boolean;
  code: VerifyCode;
  key_id: string | null;
  organization_id: string | null;
  project_id: string | null;
  environment_id: string | null;
  scopes: string[] | null;
  expires_at: string | null;
  in_grace: boolean;
  // SPEC Part 2: on VALID, RATE_LIMITED and USAGE_EXCEEDED only; null on every other answer.
  name: string | null;
  enabled: boolean | null;
  meta: KeyMeta | null;
  external_id: string | null;
  /** `refill_at`: the next refill (RFC 3339), or null. null for keys without credits. */
  credits: { remaining: number; refill_at: string | null } | null;
  /** The limits this call applied, `remaining` after it. null for keys without limits. */
  ratelimits: VerifyRatelimit[] | null;
  /** The identity the key belongs to (SPEC Part 3), or null. */
  identity: VerifyIdentity | null;
}

export interface VerifyRatelimit {
  name: string;
  limit: number;
  remaining: number;
  reset_at: string;
}

/** A key's identity in a verify answer: its limits and credits as this call left them. */
export interface VerifyIdentity {
  id: string;
  external_id: string;
  meta: KeyMeta | null;
  /** The identity's balance after this call; null for an identity without credits. */
  credits: { remaining: number; refill_at: string | null } | null;
  /** The identity's limits this call applied, `remaining` after it; null without limits. */
  ratelimits: VerifyRatelimit[] | null;
}

/** Refusals that say nothing of the key: its reason, no metadata. */
type BareRefusal = Exclude<VerifyCode, "VALID" | "RATE_LIMITED" | "USAGE_EXCEEDED">;

const rejected = (code: BareRefusal): VerifyResult => ({
  valid: false,
  code,
  key_id: null,
  organization_id: null,
  project_id: null,
  environment_id: null,
  scopes: null,
  expires_at: null,
  in_grace: false,
  name: null,
  enabled: null,
  meta: null,
  external_id: null,
  credits: null,
  ratelimits: null,
  identity: null,
});

const creditsOf = (state: CreditsState | null | undefined) =>
  state ? { remaining: state.remaining, refill_at: iso(state.refillAt) } : null;

const ratelimitsOf = (states: RatelimitState[]): VerifyRatelimit[] =>
  states.map((r) => ({
    name: r.name,
    limit: r.limit,
    remaining: r.remaining,
    reset_at: new Date(r.resetAt).toISOString(),
  }));

/** A genuine key's answer: VALID, or a usage refusal, which the caller needs `reset_at` for. */
function answered(record: KeyRecord, usage: SpendResult | null): VerifyResult {
  const code = usage?.code ?? "VALID";
  return {
    valid: code === "VALID",
    code,
    key_id: record.id,
    organization_id: record.organizationId,
    project_id: record.projectId,
    environment_id: record.environmentId,
    scopes: record.scopes,
    expires_at: iso(record.expiresAt),
    in_grace: record.graceExpiresAt !== null,
    name: record.name,
    enabled: record.enabled,
    meta: record.meta,
    external_id: record.externalId,
    credits: record.credits ? creditsOf(usage?.credits) : null,
    ratelimits: usage && record.ratelimits ? ratelimitsOf(usage.ratelimits) : null,
    identity: record.identity && {
      id: record.identity.id,
      external_id: record.identity.externalId,
      meta: record.identity.meta,
      credits: record.identity.credits ? creditsOf(usage?.identity?.credits) : null,
      ratelimits:
        usage?.identity && record.identity.ratelimits
          ? ratelimitsOf(usage.identity.ratelimits)
          : null,
    },
  };
}

export interface VerifyContext {
  /** Set by the door (binding props, a verifier key): a call's options cannot widen it. */
  pin?: VerifyPin | undefined;
  /**
   * false: decide the key's standing only, touching no limit or credit (a key used as a
   * management or verifier credential is not a verification of that key).
   */
  spend?: boolean | undefined;
}

/**
 * The hot path: format + checksum, SHA-256, isolate LRU → KV → D1, then the decision in SPEC
 * order; a key with limits or credits, its own or its identity's, then costs one KeyUsage
 * call (its identity's object when it has one: both decided at once), the others none.
 * A warm key costs no storage read, a malformed one none at all. Throws `unavailable` when
 * storage (or a limited key's usage store) fails and nothing else answers: never valid by
 * accident.
 */
export async function verifyKey(
  core: Core,
  key: string,
  options: VerifyOptions = {},
  context: VerifyContext = {},
): Promise<{ result: VerifyResult; record: KeyRecord | null }> {
  if (typeof key !== "string" || !parseKey(key)) {
    return { result: rejected("MALFORMED"), record: null };
  }
  const hash = await hashKey(key);
  const now = core.now();
  const view = core.isolate;
  // Warm: true at once (no await, no binding call). Past the bound without news: a poll.
  const usable = view.cachesUsable(core);
  const cachesOk = typeof usable === "boolean" ? usable : await usable;
  const found =
    (cachesOk ? view.memory.get(hash, now, (cached) => view.current(hash, cached)) : undefined) ??
    (await lookup(core, hash, now, cachesOk));
  // Another tenant's key under a pin is no key at all: nothing about it is told or counted.
  const record = found && (await withinPin(core, found, options, context.pin)) ? found : null;
  if (!record) return { result: rejected("NOT_FOUND"), record: null };
  const refusal = await standing(core, record, options, context.pin, now);
  if (refusal) return { result: rejected(refusal), record };
  let usage: SpendResult | null = null;
  const limits = limitsFor(record.ratelimits, options, record.identity?.ratelimits ?? null);
  if (context.spend !== false && needsUsage(record)) {
    usage = await spendUsage(core, record, limits, options.cost ?? 1, now);
  }
  const result = answered(record, usage);
  // The key's own credits ran out (not only its identity's): `api_key.credits_exhausted`.
  if (
    usage?.code === "USAGE_EXCEEDED" &&
    (usage.credits?.remaining ?? Infinity) < (options.cost ?? 1)
  ) {
    core.waitUntil(noteCreditsExhausted(core, record, usage));
  }
  return { result, record };
}

/**
 * Whether the key belongs to the pinned organization: the one the door set, the one the call
 * asked, and the owner of a pinned project (a project pin implies its organization).
 */
async function withinPin(
  core: Core,
  record: KeyRecord,
  options: VerifyOptions,
  pin: VerifyPin | undefined,
): Promise<boolean> {
  for (const organizationId of [pin?.organizationId, options.organizationId]) {
    if (organizationId !== undefined && organizationId !== record.organizationId) return false;
  }
  if (pin?.projectId !== undefined && pin.organizationId === undefined) {
    return (await projectOwner(core, pin.projectId)) === record.organizationId;
  }
  return true;
}

/** Why a key of the caller's tenant is refused before any usage is decided, or null. */
async function standing(
  core: Core,
  record: KeyRecord,
  options: VerifyOptions,
  pin: VerifyPin | undefined,
  now: number,
): Promise<BareRefusal | null> {
  const dead = deadCode(record, now);
  if (dead) return dead;
  if (!record.enabled) return "DISABLED";
  // A dead or disabled key is refused before any project lookup, so it cannot make Keygate
  // look projects up.
  for (const projectId of [pin?.projectId, options.projectId]) {
    if (projectId !== undefined && !(await reaches(core, record, projectId))) {
      return "WRONG_PROJECT";
    }
  }
  if (record.ipAllowlist !== null) {
    if (options.ip === undefined || !ipAllowed(record.ipAllowlist, options.ip)) {
      return "IP_NOT_ALLOWED";
    }
  }
  for (const scope of options.requiredScopes ?? []) {
    if (!hasScope(record.scopes, scope)) return "INSUFFICIENT_SCOPE";
  }
  return null;
}

/** A project key reaches its own project; an org-scoped key every project of its org. */
async function reaches(core: Core, record: KeyRecord, projectId: string): Promise<boolean> {
  if (record.projectId !== null) return record.projectId === projectId;
  return (await projectOwner(core, projectId, record)) === record.organizationId;
}

/**
 * Memory missed: KV, then D1 (the truth). Fills the tiers above on the way back. `cachesOk`
 * false (the isolate has not heard the feed within the bound): D1 alone answers. A KV record
 * older than an announced change is passed over; a D1 row older than one (its change is
 * announced but not committed yet) answers but is not cached.
 */
async function lookup(
  core: Core,
  hash: string,
  now: number,
  cachesOk: boolean,
): Promise<KeyRecord | null> {
  const view = core.isolate;
  const memory = view.memory;
  const seen = memory.snapshot(hash);
  let kvFailed = false;
  if (cachesOk) {
    try {
      const fromKv = await readKvRecord(core, hash);
      if (fromKv && view.current(hash, fromKv)) {
        memory.fill(hash, fromKv, now, seen);
        return fromKv;
      }
    } catch {
      // KV is only a cache: D1 still answers.
      kvFailed = true;
    }
  }

  let record: KeyRecord | null;
  try {
    record = await readKeyRecord(core, hash);
  } catch {
    // Fail closed: an expired entry is no answer, and nobody keeps serving it.
    memory.abandon(hash, seen);
    throw unavailable("Key storage is unavailable; the key could not be verified.");
  }
  // Unknown keys are not written anywhere: junk traffic cannot fill the caches.
  if (!record) {
    memory.abandon(hash, seen);
    return null;
  }
  if (!view.current(hash, record)) {
    memory.abandon(hash, seen);
    return record;
  }
  memory.fill(hash, record, now, seen);
  if (!kvFailed) core.waitUntil(fillKv(core, hash, record));
  return record;
}

/** Two records say the same about a key (the last-used stamp aside). */
const sameVerdictInputs = (a: KeyRecord, b: KeyRecord) =>
  JSON.stringify({ ...a, lastUsedAt: null }) === JSON.stringify({ ...b, lastUsedAt: null });

/**
 * After the response: copy what D1 said into KV. KV has no conditional write, so a change
 * published between our D1 read and this put (a revoke, say) would be overwritten by the
 * older record. Read the row again after the put: if it moved, publish its current state,
 * which now lands after ours. KV takes one write a second per key, hence the retry.
 */
async function fillKv(core: Core, hash: string, record: KeyRecord): Promise<void> {
  await writeKvRecord(core, hash, record);
  const fresh = await readKeyRecord(core, hash);
  if (fresh && sameVerdictInputs(fresh, record)) return;
  const publish = () =>
    fresh ? writeKvRecord(core, hash, fresh) : core.env.KEY_CACHE.delete(kvKey(hash));
  try {
    await publish();
  } catch {
    await new Promise((resolve) => setTimeout(resolve, KV_WRITE_INTERVAL_MS));
    await publish();
  }
}

/** Why a key is no good at `now` whatever it is asked, or null while it lives. */
function deadCode(record: KeyRecord, now: number): "REVOKED" | "EXPIRED" | null {
  // Any revocation stamp counts, even one after `now` (see isActive).
  if (record.revokedAt !== null) return "REVOKED";
  // A replaced key past its grace is revoked, whether or not the sweep has stamped it yet.
  if (record.graceExpiresAt !== null && record.graceExpiresAt <= now) return "REVOKED";
  if (record.expiresAt !== null && record.expiresAt <= now) return "EXPIRED";
  return null;
}

// Projects never change organization, so an owner (or its absence: ids are random UUIDs) is
// remembered for the isolate's life, in a bounded map.
const projectOwners = new Map<string, string | null>();
const PROJECT_OWNERS_CAPACITY = 10_000;

/**
 * Keys that asked about too many projects that do not exist (random ids cost a D1 read each):
 * until the window ends, their look-ups are answered from one read of their organization's
 * project ids, so further random ids cost nothing and real projects still answer.
 */
const probing = new Map<string, { until: number; projectIds: Promise<Set<string>> }>();

async function projectOwner(
  core: Core,
  projectId: string,
  /** The genuine key asking (its probing is bounded); absent for a trusted pin. */
  key?: { id: string; organizationId: string },
): Promise<string | null> {
  const known = projectOwners.get(projectId);
  if (known !== undefined) return known;
  const probe = key && probing.get(key.id);
  if (key && probe !== undefined && probe.until > Date.now()) {
    const ids = await probe.projectIds;
    return ids.has(projectId) ? key.organizationId : null;
  }
  let owner: string | null;
  try {
    const project = await core.db
      .select({ organizationId: projects.organizationId })
      .from(projects)
      .where(eq(projects.id, projectId))
      .get();
    owner = project?.organizationId ?? null;
  } catch {
    throw unavailable("Project storage is unavailable; the key could not be verified.");
  }
  if (
    key &&
    owner === null &&
    !(await withinMissBudget(core.env.VERIFY_MISS_RATE_LIMITER, `project:${key.id}`))
  ) {
    const projectIds = organizationProjectIds(core, key.organizationId);
    projectIds.catch(() => probing.delete(key.id));
    probing.set(key.id, { until: Date.now() + MISS_WINDOW_SECONDS * 1000, projectIds });
    if (probing.size > PROJECT_OWNERS_CAPACITY) {
      probing.delete(probing.keys().next().value as string);
    }
  }
  projectOwners.set(projectId, owner);
  if (projectOwners.size > PROJECT_OWNERS_CAPACITY) {
    projectOwners.delete(projectOwners.keys().next().value as string);
  }
  return owner;
}

async function organizationProjectIds(core: Core, organizationId: string): Promise<Set<string>> {
  try {
    const rows = await core.db
      .select({ id: projects.id })
      .from(projects)
      .where(eq(projects.organizationId, organizationId));
    return new Set(rows.map((row) => row.id));
  } catch {
    throw unavailable("Project storage is unavailable; the key could not be verified.");
  }
}
