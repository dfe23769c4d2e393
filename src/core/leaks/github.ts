// GitHub's secret-scanning partner requests (SPEC Part 3 "Leaked keys"): signed with ECDSA
// P-256 / SHA-256 over the raw body, by one of the keys GitHub publishes. The keys come from
// GITHUB_SECRET_SCANNING_KEYS when it is set, else from GitHub, kept in isolate memory for an
// hour (docs/leaks.md).
import { configuredGitHubKeys, type GitHubPublicKey, parseGitHubKeySet } from "../config";
import type { Core } from "../context";
import { fromBase64 } from "../crypto";
import { loggable, unauthorized, unavailable } from "../errors";
import { HOUR_MS } from "../time";
import { derToRaw } from "./der";

export const GITHUB_KEYS_URL = "https://api.github.com/meta/public_keys/secret_scanning";
/** A fetched key set is kept this long. */
export const GITHUB_KEYS_TTL_MS = HOUR_MS;
/** An identifier the kept set lacks (GitHub rotated its keys) fetches again, at most this often. */
export const GITHUB_KEYS_REFETCH_MS = 60_000;

interface Fetched {
  keys: GitHubPublicKey[];
  at: number;
}

/** This isolate's copy of GitHub's published keys (`clear()` forgets it: tests start afresh). */
export const fetchedGitHubKeys = {
  current: null as Fetched | null,
  clear() {
    this.current = null;
  },
};

async function fetchKeys(core: Core): Promise<GitHubPublicKey[]> {
  let keys: GitHubPublicKey[] | null = null;
  try {
    const response = await fetch(GITHUB_KEYS_URL, {
      headers: { accept: "application/json", "user-agent": "keygate-secret-scanning" },
    });
    if (response.ok) keys = parseGitHubKeySet(await response.text());
  } catch (error) {
    console.error("fetching GitHub's secret-scanning keys failed:", loggable(error));
  }
  if (!keys) {
    throw unavailable("GitHub's secret-scanning public keys could not be fetched; try again.");
  }
  fetchedGitHubKeys.current = { keys, at: core.now() };
  return keys;
}

/** The key GitHub names, from the var, or from the kept or freshly fetched set. */
async function publicKeyFor(core: Core, identifier: string): Promise<GitHubPublicKey | null> {
  const configured = configuredGitHubKeys(core.env);
  if (configured) return configured.find((k) => k.key_identifier === identifier) ?? null;
  const now = core.now();
  const kept = fetchedGitHubKeys.current;
  let keys = kept && now - kept.at < GITHUB_KEYS_TTL_MS ? kept.keys : await fetchKeys(core);
  let found = keys.find((k) => k.key_identifier === identifier);
  const age = now - (fetchedGitHubKeys.current?.at ?? now);
  if (!found && age >= GITHUB_KEYS_REFETCH_MS) {
    keys = await fetchKeys(core);
    found = keys.find((k) => k.key_identifier === identifier);
  }
  return found ?? null;
}

// Imported once per PEM, not per request.
const imported = new Map<string, Promise<CryptoKey>>();
function importKey(pem: string): Promise<CryptoKey> {
  let key = imported.get(pem);
  if (!key) {
    const base64 = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----|\s/g, "");
    key = crypto.subtle.importKey(
      "spki",
      fromBase64(base64),
      { name: "ECDSA", namedCurve: "P-256" },
      false,
      ["verify"],
    );
    key.catch(() => imported.delete(pem));
    imported.set(pem, key);
  }
  return key;
}

const refused = (detail: string) => unauthorized(`GitHub signature: ${detail}`);

/**
 * Throws `unauthorized` unless `signature` (base64 DER) is a valid signature of `body` by the
 * key GitHub calls `identifier`. Returns the identifier (who reported, for the audit log).
 */
export async function verifyGitHubSignature(
  core: Core,
  body: Uint8Array,
  identifier: string | undefined,
  signature: string | undefined,
): Promise<string> {
  if (!identifier || !signature) {
    throw refused(
      "the Github-Public-Key-Identifier and Github-Public-Key-Signature headers are required.",
    );
  }
  const key = await publicKeyFor(core, identifier);
  if (!key) throw refused("the key identifier is not one of GitHub's secret-scanning keys.");
  let raw: Uint8Array | null = null;
  try {
    raw = derToRaw(fromBase64(signature.trim()));
  } catch {
    raw = null;
  }
  if (!raw) throw refused("the signature is not a base64 DER ECDSA signature.");
  let publicKey: CryptoKey;
  try {
    publicKey = await importKey(key.key);
  } catch (error) {
    console.error(`GitHub key ${identifier} could not be imported:`, loggable(error));
    throw refused("the key identifier names a key that is not a P-256 public key.");
  }
  const valid = await crypto.subtle.verify(
    { name: "ECDSA", hash: "SHA-256" },
    publicKey,
    raw,
    body,
  );
  if (!valid) throw refused("the signature does not match the body.");
  return identifier;
}
