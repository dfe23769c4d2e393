/**
 * IP addresses and CIDR blocks for key allowlists (SPEC Part 2 "ip_allowlist").
 * Everything is compared as bytes after normalisation: IPv6 compressed or expanded alike, an
 * IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its IPv4 form, host bits of a block ignored.
 */

export interface IpBlock {
  version: 4 | 6;
  /** The network address: 4 or 16 bytes, host bits cleared. */
  bytes: Uint8Array;
  prefix: number;
}

/** Strict dotted decimal: four parts 0–255, no leading zeros (`010` could mean octal). */
function parseIPv4(text: string): Uint8Array | null {
  const parts = text.split(".");
  if (parts.length !== 4) return null;
  const bytes = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const part = parts[i] as string;
    if (!/^(0|[1-9][0-9]{0,2})$/.test(part)) return null;
    const value = Number(part);
    if (value > 255) return null;
    bytes[i] = value;
  }
  return bytes;
}

/** RFC 4291 text forms: 8 groups, one `::`, a trailing dotted IPv4; no zone, no brackets. */
function parseIPv6(text: string): Uint8Array | null {
  if (text.length > 45 || !/^[0-9A-Fa-f:.]+$/.test(text)) return null;
  const halves = text.split("::");
  if (halves.length > 2) return null;
  const groups = (half: string, last: boolean): number[] | null => {
    if (half === "") return [];
    const out: number[] = [];
    const parts = half.split(":");
    for (let i = 0; i < parts.length; i++) {
      const part = parts[i] as string;
      // A dotted IPv4 tail may only end the whole address.
      if (last && i === parts.length - 1 && part.includes(".")) {
        const v4 = parseIPv4(part);
        if (!v4) return null;
        out.push(((v4[0] as number) << 8) | (v4[1] as number));
        out.push(((v4[2] as number) << 8) | (v4[3] as number));
      } else {
        if (!/^[0-9A-Fa-f]{1,4}$/.test(part)) return null;
        out.push(Number.parseInt(part, 16));
      }
    }
    return out;
  };
  const head = groups(halves[0] as string, halves.length === 1);
  const tail = halves.length === 2 ? groups(halves[1] as string, true) : [];
  if (!head || !tail) return null;
  const compressed = halves.length === 2;
  const missing = 8 - head.length - tail.length;
  if (compressed ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...new Array<number>(missing).fill(0), ...tail];
  const bytes = new Uint8Array(16);
  all.forEach((group, i) => {
    bytes[2 * i] = group >> 8;
    bytes[2 * i + 1] = group & 0xff;
  });
  return bytes;
}

const isMapped = (bytes: Uint8Array) =>
  bytes.length === 16 &&
  bytes.subarray(0, 10).every((b) => b === 0) &&
  bytes[10] === 0xff &&
  bytes[11] === 0xff;

/** An address as bytes, IPv4-mapped IPv6 as IPv4; null when it is not an address. */
export function parseIp(text: string): { version: 4 | 6; bytes: Uint8Array } | null {
  if (typeof text !== "string") return null;
  const v4 = parseIPv4(text);
  if (v4) return { version: 4, bytes: v4 };
  const v6 = parseIPv6(text);
  if (!v6) return null;
  return isMapped(v6) ? { version: 4, bytes: v6.slice(12) } : { version: 6, bytes: v6 };
}

function clearHostBits(bytes: Uint8Array, prefix: number): Uint8Array {
  const out = bytes.slice();
  for (let bit = prefix; bit < out.length * 8; bit++) {
    const index = bit >> 3;
    out[index] = (out[index] as number) & ~(0x80 >> (bit & 7));
  }
  return out;
}

/** An address (a block of one) or `address/prefix`; null when it is neither. */
export function parseBlock(text: string): IpBlock | null {
  if (typeof text !== "string") return null;
  const slash = text.indexOf("/");
  const address = slash === -1 ? text : text.slice(0, slash);
  const v4 = parseIPv4(address);
  const v6 = v4 ? null : parseIPv6(address);
  if (!v4 && !v6) return null;
  const max = v4 ? 32 : 128;
  let prefix = max;
  if (slash !== -1) {
    const digits = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(digits)) return null;
    prefix = Number(digits);
    if (prefix > max) return null;
  }
  if (v4) return { version: 4, bytes: clearHostBits(v4, prefix), prefix };
  const bytes = v6 as Uint8Array;
  // `::ffff:10.0.0.0/104` is `10.0.0.0/8`: the same addresses, the same normal form.
  if (isMapped(bytes) && prefix >= 96) {
    return { version: 4, bytes: clearHostBits(bytes.slice(12), prefix - 96), prefix: prefix - 96 };
  }
  return { version: 6, bytes: clearHostBits(bytes, prefix), prefix };
}

function formatIPv6(bytes: Uint8Array): string {
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2)
    groups.push(((bytes[i] as number) << 8) | (bytes[i + 1] as number));
  // RFC 5952: compress the longest run of two or more zero groups, the first one on a tie.
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (list: number[]) => list.map((g) => g.toString(16)).join(":");
  if (bestStart === -1) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

export function formatIp(version: 4 | 6, bytes: Uint8Array): string {
  return version === 4 ? Array.from(bytes).join(".") : formatIPv6(bytes);
}

/** The normal form: RFC 5952 IPv6, mapped IPv6 as IPv4, host bits cleared, `/32`/`/128` dropped. */
export function formatBlock(block: IpBlock): string {
  const address = formatIp(block.version, block.bytes);
  return block.prefix === (block.version === 4 ? 32 : 128) ? address : `${address}/${block.prefix}`;
}

/** The normal form of an allowlist entry, or null when it is not an address or CIDR block. */
export function normaliseBlock(text: string): string | null {
  const block = parseBlock(text);
  return block ? formatBlock(block) : null;
}

/** The normal form of an address, or null. */
export function normaliseIp(text: string): string | null {
  const ip = parseIp(text);
  return ip ? formatIp(ip.version, ip.bytes) : null;
}

function contains(block: IpBlock, ip: { version: 4 | 6; bytes: Uint8Array }): boolean {
  if (block.version !== ip.version) return false;
  const whole = block.prefix >> 3;
  for (let i = 0; i < whole; i++) if (block.bytes[i] !== ip.bytes[i]) return false;
  const rest = block.prefix & 7;
  if (rest === 0) return true;
  const mask = (0xff << (8 - rest)) & 0xff;
  return (((ip.bytes[whole] as number) & mask) as number) === (block.bytes[whole] as number);
}

// Allowlists come from KV or memory records; parse each list once per isolate.
const compiled = new WeakMap<readonly string[], IpBlock[]>();

/** Whether `ip` (any spelling) lies in one of the allowlist's blocks. A bad `ip` never does. */
export function ipAllowed(allowlist: readonly string[], ip: string): boolean {
  const address = parseIp(ip);
  if (!address) return false;
  let blocks = compiled.get(allowlist);
  if (!blocks) {
    blocks = allowlist.map(parseBlock).filter((b): b is IpBlock => b !== null);
    compiled.set(allowlist, blocks);
  }
  return blocks.some((block) => contains(block, address));
}
