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
  GITHUB_SECRET_SCANNING_KEYS?: string | undefined;
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
  const keySet = env.GITHUB_SECRET_SCANNING_KEYS;
  if (keySet !== undefined && keySet !== "" && parsedKeySet(keySet) === null) {
    problems.push(
      'GITHUB_SECRET_SCANNING_KEYS must be the JSON of GitHub\'s /meta/public_keys/secret_scanning document: { "public_keys": [{ "key_identifier": "…", "key": "-----BEGIN PUBLIC KEY-----…", "is_current": true }] } (.dev.vars or `wrangler secret put`; unset: fetched from GitHub).',
    );
  }
  return problems;
}

/** One of GitHub's secret-scanning public keys: an identifier and a PEM (SPKI) P-256 key. */
export interface GitHubPublicKey {
  key_identifier: string;
  key: string;
  is_current: boolean;
}

/**
 * GitHub's key-set document, or null when `text` is not one. Checked per distinct value (every
 * request checks the configuration), and used for the fetched document too.
 */
export function parseGitHubKeySet(text: string): GitHubPublicKey[] | null {
  let document: unknown;
  try {
    document = JSON.parse(escapeControlsInStrings(text));
  } catch {
    // A .dev.vars value written with escaped quotes ("{\"public_keys\": …}"): dotenv expands
    // only \n and \r in double quotes, so the backslashes before the quotes are still there.
    try {
      document = JSON.parse(escapeControlsInStrings(text.replaceAll('\\"', '"')));
    } catch {
      return null;
    }
  }
  const list = (document as { public_keys?: unknown } | null)?.public_keys;
  if (!Array.isArray(list) || list.length === 0) return null;
  const keys: GitHubPublicKey[] = [];
  for (const item of list as Record<string, unknown>[]) {
    const { key_identifier: id, key, is_current: current } = item ?? {};
    if (typeof id !== "string" || id === "" || typeof key !== "string") return null;
    if (!/-----BEGIN PUBLIC KEY-----[\s\S]+-----END PUBLIC KEY-----/.test(key)) return null;
    if (current !== undefined && typeof current !== "boolean") return null;
    keys.push({ key_identifier: id, key, is_current: current ?? false });
  }
  return keys;
}

/**
 * Raw line breaks and tabs inside JSON strings as escapes: a .dev.vars value in double quotes
 * has its `\n` turned into real line breaks (dotenv), which JSON does not allow in a string —
 * the PEM keys of GitHub's document hold several.
 */
function escapeControlsInStrings(text: string): string {
  let out = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i] as string;
    if (inString && char === "\\") {
      out += char + (text[i + 1] ?? "");
      i++;
      continue;
    }
    if (char === '"') inString = !inString;
    out += inString ? (CONTROL_ESCAPES[char] ?? char) : char;
  }
  return out;
}
const CONTROL_ESCAPES: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

let keySetOf: { text: string; keys: GitHubPublicKey[] | null } | null = null;
function parsedKeySet(text: string) {
  if (keySetOf?.text !== text) keySetOf = { text, keys: parseGitHubKeySet(text) };
  return keySetOf.keys;
}

/** The configured GitHub key set; null when the var is unset (the keys are fetched then). */
export function configuredGitHubKeys(env: Configurable): GitHubPublicKey[] | null {
  assertConfigured(env);
  const text = env.GITHUB_SECRET_SCANNING_KEYS;
  return text ? parsedKeySet(text) : null;
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
