// The Worker's own configuration, checked before it is used: a bad value is a clear
// "misconfigured" answer on every request, never keys that can never verify.
import { misconfigured } from "./errors";

export const DEFAULT_KEY_PREFIX = "capy";
/** What a project's `key_prefix` may be (the projects route takes the same). */
export const KEY_PREFIX_PATTERN = /^[a-z][a-z0-9]{0,15}$/;

/** What is wrong with the configuration, one sentence per problem (empty when all is well). */
export function configurationProblems(env: { KEY_PREFIX?: string | undefined }): string[] {
  const problems: string[] = [];
  const prefix = env.KEY_PREFIX;
  if (prefix !== undefined && prefix !== "" && !KEY_PREFIX_PATTERN.test(prefix)) {
    problems.push(
      `KEY_PREFIX ${JSON.stringify(prefix)} must be 1–16 lowercase letters and digits, starting with a letter (wrangler.toml [vars] or .dev.vars).`,
    );
  }
  return problems;
}

/** Throws a `misconfigured` error naming every configuration problem. */
export function assertConfigured(env: { KEY_PREFIX?: string | undefined }): void {
  const problems = configurationProblems(env);
  if (problems.length > 0) throw misconfigured(problems.join(" "));
}

/** Default key prefix for new projects and org-scoped keys. */
export function defaultKeyPrefix(env: { KEY_PREFIX?: string | undefined }): string {
  assertConfigured(env);
  return env.KEY_PREFIX || DEFAULT_KEY_PREFIX;
}
