// The Worker's own configuration, checked before it is used: a bad value is a clear
// "misconfigured" answer on every request, never keys that can never verify.
import { misconfigured } from "./errors";

export const DEFAULT_KEY_PREFIX = "capy";
/** What a project's `key_prefix` may be (the projects route takes the same). */
export const KEY_PREFIX_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

/** SPEC "The revocation bound": the default and the range REVOCATION_BOUND_MS may take. */
export const DEFAULT_REVOCATION_BOUND_MS = 2_000;
const REVOCATION_BOUND_RANGE = [1_000, 60_000] as const;

interface Configurable {
  KEY_PREFIX?: string | undefined;
  REVOCATION_BOUND_MS?: string | undefined;
}

/** What is wrong with the configuration, one sentence per problem (empty when all is well). */
export function configurationProblems(env: Configurable): string[] {
  const problems: string[] = [];
  const prefix = env.KEY_PREFIX;
  if (prefix !== undefined && prefix !== "" && !KEY_PREFIX_PATTERN.test(prefix)) {
    problems.push(
      `KEY_PREFIX ${JSON.stringify(prefix)} must be 1–16 lowercase letters and digits, starting with a letter (wrangler.toml [vars] or .dev.vars).`,
    );
  }
  const bound = env.REVOCATION_BOUND_MS;
  if (bound !== undefined && bound !== "" && parseBound(bound) === null) {
    problems.push(
      `REVOCATION_BOUND_MS ${JSON.stringify(bound)} must be a whole number of milliseconds from ${REVOCATION_BOUND_RANGE[0]} to ${REVOCATION_BOUND_RANGE[1]} (wrangler.toml [vars] or .dev.vars).`,
    );
  }
  return problems;
}

function parseBound(value: string): number | null {
  if (!/^\d{1,6}$/.test(value)) return null;
  const ms = Number(value);
  return ms >= REVOCATION_BOUND_RANGE[0] && ms <= REVOCATION_BOUND_RANGE[1] ? ms : null;
}

/** The revocation bound in ms (SPEC "The revocation bound"); throws when misconfigured. */
export function revocationBoundMs(env: Configurable): number {
  assertConfigured(env);
  const value = env.REVOCATION_BOUND_MS;
  return (value && parseBound(value)) || DEFAULT_REVOCATION_BOUND_MS;
}

/** Throws a `misconfigured` error naming every configuration problem. */
export function assertConfigured(env: Configurable): void {
  const problems = configurationProblems(env);
  if (problems.length > 0) throw misconfigured(problems.join(" "));
}

/** Default key prefix for new projects and org-scoped keys. */
export function defaultKeyPrefix(env: { KEY_PREFIX?: string | undefined }): string {
  assertConfigured(env);
  return env.KEY_PREFIX || DEFAULT_KEY_PREFIX;
}
