// GitHub's side of the secret-scanning partner program, played locally: P-256 key pairs in the
// shape of GitHub's /meta/public_keys/secret_scanning document, bodies signed as GitHub signs
// them (base64 DER over the raw bytes), and the two leak doors called as a reporter would.
import { toBase64 } from "../src/core/crypto";
import { generateKey } from "../src/core/key-material";
import { rawToDer } from "../src/core/leaks/der";
import { call } from "./helpers";

export interface GitHubSigner {
  identifier: string;
  /** The entry of GitHub's document: `{ key_identifier, key (PEM SPKI), is_current }`. */
  entry: { key_identifier: string; key: string; is_current: boolean };
  sign(body: string): Promise<string>;
}

/** A fresh P-256 key pair, as GitHub publishes one. */
export async function gitHubSigner(identifier: string, isCurrent = true): Promise<GitHubSigner> {
  const pair = (await crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, true, [
    "sign",
    "verify",
  ])) as CryptoKeyPair;
  const spki = new Uint8Array(
    (await crypto.subtle.exportKey("spki", pair.publicKey)) as ArrayBuffer,
  );
  const lines = toBase64(spki).match(/.{1,64}/g) ?? [];
  const pem = `-----BEGIN PUBLIC KEY-----\n${lines.join("\n")}\n-----END PUBLIC KEY-----\n`;
  return {
    identifier,
    entry: { key_identifier: identifier, key: pem, is_current: isCurrent },
    async sign(body: string) {
      const raw = await crypto.subtle.sign(
        { name: "ECDSA", hash: "SHA-256" },
        pair.privateKey,
        new TextEncoder().encode(body),
      );
      return toBase64(rawToDer(new Uint8Array(raw)));
    },
  };
}

/** GitHub's key-set document for these signers, as the var holds it. */
export const keySet = (...signers: GitHubSigner[]) =>
  JSON.stringify({ public_keys: signers.map((s) => s.entry) });

export interface GitHubMatch {
  token: string;
  type?: string;
  url?: string;
  source?: string;
}

export const match = (token: string, extra: Partial<GitHubMatch> = {}): GitHubMatch => ({
  token,
  type: "keygate_api_key",
  url: "https://github.com/octo/app/blob/main/.env",
  source: "commit",
  ...extra,
});

/** POST /v1/leaks/github with `body` (sent as these exact bytes) signed by `signer`. */
export async function gitHubReport(
  signer: GitHubSigner,
  body: string,
  options: { keys?: string; signedBody?: string; headers?: Record<string, string> } = {},
) {
  return call("POST", "/v1/leaks/github", {
    rawBody: body,
    headers: {
      "content-type": "application/json",
      "github-public-key-identifier": signer.identifier,
      "github-public-key-signature": await signer.sign(options.signedBody ?? body),
      ...options.headers,
    },
    env: { GITHUB_SECRET_SCANNING_KEYS: options.keys ?? keySet(signer) },
  });
}

let address = 0;
/** A client address no other test uses (each has its own report budget). */
export const freshAddress = () => `198.51.100.${++address % 250}`;

/** POST /v1/leaks, from `ip` (a fresh address unless given). */
export const publicReport = (body: unknown, ip = freshAddress()) =>
  call("POST", "/v1/leaks", { body, headers: { "cf-connecting-ip": ip } });

/** A well-formed key (format and checksum) that Keygate never issued. */
export const unknownKey = async () => (await generateKey("capy", "live")).plaintext;

/** Lowercase hex SHA-256, as GitHub's feedback names a token. */
export async function sha256Hex(text: string) {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
