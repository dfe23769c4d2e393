// ECDSA signatures as GitHub sends them (ASN.1 DER: SEQUENCE { INTEGER r, INTEGER s }) into
// the form WebCrypto verifies (IEEE P1363: r ‖ s, each a fixed-width unsigned big-endian
// number). Strict DER only: one encoding per signature, so a signature cannot be re-spelled.

/** Each of r and s for P-256: 32 bytes. */
export const P256_COMPONENT_BYTES = 32;

/** r ‖ s, or null when `der` is not one DER-encoded ECDSA signature with components of `width` bytes. */
export function derToRaw(der: Uint8Array, width = P256_COMPONENT_BYTES): Uint8Array | null {
  // SEQUENCE with a short-form length (r and s of 32 bytes never need the long form).
  if (der.length < 8 || der[0] !== 0x30 || der[1] !== der.length - 2) return null;
  const raw = new Uint8Array(width * 2);
  let at = 2;
  for (const offset of [0, width]) {
    const integer = readInteger(der, at, width);
    if (!integer) return null;
    raw.set(integer.value, offset + width - integer.value.length);
    at = integer.next;
  }
  return at === der.length ? raw : null;
}

/** One positive DER INTEGER at `at`: its value without the sign byte, and where the next begins. */
function readInteger(der: Uint8Array, at: number, width: number) {
  if (der[at] !== 0x02) return null;
  const length = der[at + 1] as number;
  const start = at + 2;
  const end = start + length;
  if (length === 0 || length > 0x7f || end > der.length) return null;
  const first = der[start] as number;
  if (first & 0x80) return null; // negative: r and s are positive
  // Minimal: a leading zero byte only to keep the next byte's high bit from reading as a sign.
  if (first === 0 && (length === 1 || !((der[start + 1] as number) & 0x80))) return null;
  const value = der.subarray(first === 0 ? start + 1 : start, end);
  if (value.length > width) return null;
  return { value, next: end };
}

/** r ‖ s as DER: the converse, for tests and for anyone signing like GitHub. */
export function rawToDer(raw: Uint8Array): Uint8Array {
  const width = raw.length / 2;
  const integer = (bytes: Uint8Array) => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    const trimmed = bytes.subarray(start);
    const sign = (trimmed[0] as number) & 0x80 ? [0] : [];
    return [0x02, trimmed.length + sign.length, ...sign, ...trimmed];
  };
  const body = [...integer(raw.subarray(0, width)), ...integer(raw.subarray(width))];
  return new Uint8Array([0x30, body.length, ...body]);
}
