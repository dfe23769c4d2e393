// Key material: `<prefix>_<env>_<body><check>`, the GitHub token scheme.
// body = 32 random bytes in base62 (fixed 43 chars); check = CRC32 of everything before it,
// 6 base62 chars. A string that fails the format or checksum is rejected with no storage read.

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_BYTES = 32;
/** ceil(256 / log2(62)): every 32-byte value fits in 43 base62 digits. */
export const BODY_LENGTH = 43;
export const CHECK_LENGTH = 6;
const DISPLAY_BODY_CHARS = 4;

const KEY_PATTERN = /^([a-z][a-z0-9]{0,31})_([a-z][a-z0-9]{0,31})_([0-9A-Za-z]{49})$/;

function toBase62(value: bigint, width: number): string {
  let out = "";
  let rest = value;
  while (rest > 0n) {
    out = BASE62[Number(rest % 62n)] + out;
    rest /= 62n;
  }
  return out.padStart(width, "0");
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (IEEE 802.3) of an ASCII string. */
export function crc32(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = (CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

const checksum = (head: string) => toBase62(BigInt(crc32(head)), CHECK_LENGTH);

export interface ParsedKey {
  prefix: string;
  environment: string;
  body: string;
}

/** Format and checksum check; null for anything that is not a well-formed key. Pure. */
export function parseKey(key: string): ParsedKey | null {
  if (key.length > 120) return null;
  const match = KEY_PATTERN.exec(key);
  if (!match) return null;
  const [, prefix, environment, tail] = match as unknown as [string, string, string, string];
  const body = tail.slice(0, BODY_LENGTH);
  const head = key.slice(0, key.length - CHECK_LENGTH);
  if (checksum(head) !== tail.slice(BODY_LENGTH)) return null;
  return { prefix, environment, body };
}

export interface NewKey {
  plaintext: string;
  /** What lists show: `<prefix>_<env>_` + the first 4 chars of the body. */
  displayPrefix: string;
  hash: string;
}

export async function generateKey(prefix: string, environment: string): Promise<NewKey> {
  const bytes = crypto.getRandomValues(new Uint8Array(BODY_BYTES));
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  const body = toBase62(value, BODY_LENGTH);
  const head = `${prefix}_${environment}_${body}`;
  const plaintext = head + checksum(head);
  return {
    plaintext,
    displayPrefix: `${prefix}_${environment}_${body.slice(0, DISPLAY_BODY_CHARS)}`,
    hash: await hashKey(plaintext),
  };
}

/** SHA-256 of the whole key, lowercase hex: the only form in which a key is stored. */
export async function hashKey(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(key));
  return toHex(new Uint8Array(digest));
}

export function toHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) out += byte.toString(16).padStart(2, "0");
  return out;
}

/** Cheap test used to route a bearer token: Keygate keys never look like a JWT. */
export const looksLikeKey = (token: string) => KEY_PATTERN.test(token);
