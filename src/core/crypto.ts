import { misconfigured } from "./errors";

const encoder = new TextEncoder();

export function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary);
}

export const toBase64Url = (bytes: Uint8Array) =>
  toBase64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");

/** Throws on anything that is not base64url. */
export function fromBase64Url(text: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(text)) throw new Error("not base64url");
  return fromBase64(text.replace(/-/g, "+").replace(/_/g, "/"));
}

export function fromBase64(text: string): Uint8Array {
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const aesKeys = new Map<string, Promise<CryptoKey>>();

function aesKey(secret: string | undefined): Promise<CryptoKey> {
  if (!secret) {
    throw misconfigured("ENCRYPTION_KEY is not configured.");
  }
  let key = aesKeys.get(secret);
  if (!key) {
    const raw = fromBase64(secret.trim());
    if (raw.length !== 32) throw misconfigured("ENCRYPTION_KEY must be 32 bytes, base64.");
    key = crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    aesKeys.set(secret, key);
  }
  return key;
}

/**
 * AES-256-GCM under ENCRYPTION_KEY: `iv ‖ ciphertext+tag`. `context` is authenticated but not
 * encrypted (GCM additional data): a sealed value opens only in the context it was sealed for.
 */
export async function seal(
  secret: string | undefined,
  plaintext: string,
  context = "",
): Promise<Uint8Array> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: encoder.encode(context) },
    await aesKey(secret),
    encoder.encode(plaintext),
  );
  const out = new Uint8Array(iv.length + sealed.byteLength);
  out.set(iv);
  out.set(new Uint8Array(sealed), iv.length);
  return out;
}

/** The plaintext of `seal`'s output; throws if it was altered or sealed for another context. */
export async function unseal(
  secret: string | undefined,
  sealed: Uint8Array,
  context = "",
): Promise<string> {
  const opened = await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: sealed.slice(0, 12), additionalData: encoder.encode(context) },
    await aesKey(secret),
    sealed.slice(12),
  );
  return new TextDecoder().decode(opened);
}

/** `seal` as text: `v1.<base64 iv>.<base64 ciphertext>` (what D1 stores). */
export async function encrypt(secret: string | undefined, plaintext: string): Promise<string> {
  const sealed = await seal(secret, plaintext);
  return `v1.${toBase64(sealed.slice(0, 12))}.${toBase64(sealed.slice(12))}`;
}

export async function decrypt(secret: string | undefined, sealed: string): Promise<string> {
  const [version, iv, body] = sealed.split(".");
  if (version !== "v1" || !iv || !body) throw new Error("Unreadable ciphertext.");
  const ivBytes = fromBase64(iv);
  const bodyBytes = fromBase64(body);
  const joined = new Uint8Array(ivBytes.length + bodyBytes.length);
  joined.set(ivBytes);
  joined.set(bodyBytes, ivBytes.length);
  // GCM with empty additional data is GCM without it: values sealed before contexts existed open.
  return unseal(secret, joined);
}

/** A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes. */
export function newWebhookSecret(): string {
  return `whsec_${toBase64(crypto.getRandomValues(new Uint8Array(32)))}`;
}

/** `v1,<base64 HMAC-SHA256(id.timestamp.body)>` under a `whsec_` secret. */
export async function signWebhook(
  secret: string,
  id: string,
  timestamp: number,
  body: string,
): Promise<string> {
  const key = await crypto.subtle.importKey(
    "raw",
    fromBase64(secret.replace(/^whsec_/, "")),
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const mac = await crypto.subtle.sign("HMAC", key, encoder.encode(`${id}.${timestamp}.${body}`));
  return `v1,${toBase64(new Uint8Array(mac))}`;
}
