/**
 * IP addresses and CIDR blocks for key allowlists (SPEC Part 2 "ip_allowlist") and the miss
 * limiter's client buckets, read by ipaddr.js. Everything is compared after normalisation:
 * IPv6 compressed or expanded alike, an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as its
 * IPv4 form, host bits of a block ignored.
 */
import ipaddr from "ipaddr.js";

export type Address = ipaddr.IPv4 | ipaddr.IPv6;

/** A block: its network address (host bits cleared) and prefix length. */
export interface IpBlock {
  address: Address;
  prefix: number;
}

/**
 * Strict text forms only: dotted decimal IPv4 without leading zeros (`010` could mean octal,
 * `0x7f.1` and `2130706433` are IPv4 in disguise), RFC 4291 IPv6 without a zone or brackets.
 */
function parseStrict(text: string): Address | null {
  if (typeof text !== "string") return null;
  if (ipaddr.IPv4.isValidFourPartDecimal(text)) return ipaddr.IPv4.parse(text);
  if (!/^[0-9A-Fa-f:.]+$/.test(text) || !ipaddr.IPv6.isValid(text)) return null;
  return ipaddr.IPv6.parse(text);
}

/** An address, IPv4-mapped IPv6 as IPv4; null when it is not an address. */
export function parseIp(text: string): Address | null {
  const address = parseStrict(text);
  if (address?.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress()) {
    return (address as ipaddr.IPv6).toIPv4Address();
  }
  return address;
}

const bits = (address: Address) => (address.kind() === "ipv4" ? 32 : 128);

/** The network address of `address/prefix`: its host bits cleared. */
function network(address: Address, prefix: number): Address {
  const bytes = address.toByteArray();
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    const index = bit >> 3;
    bytes[index] = (bytes[index] as number) & ~(0x80 >> (bit & 7));
  }
  return ipaddr.fromByteArray(bytes);
}

/** An address (a block of one) or `address/prefix`; null when it is neither. */
export function parseBlock(text: string): IpBlock | null {
  if (typeof text !== "string") return null;
  const slash = text.indexOf("/");
  const address = parseStrict(slash === -1 ? text : text.slice(0, slash));
  if (!address) return null;
  let prefix = bits(address);
  if (slash !== -1) {
    const digits = text.slice(slash + 1);
    if (!/^(0|[1-9][0-9]{0,2})$/.test(digits)) return null;
    prefix = Number(digits);
    if (prefix > bits(address)) return null;
  }
  // `::ffff:10.0.0.0/104` is `10.0.0.0/8`: the same addresses, the same normal form.
  if (address.kind() === "ipv6" && (address as ipaddr.IPv6).isIPv4MappedAddress() && prefix >= 96) {
    return {
      address: network((address as ipaddr.IPv6).toIPv4Address(), prefix - 96),
      prefix: prefix - 96,
    };
  }
  return { address: network(address, prefix), prefix };
}

/** RFC 5952 for IPv6, dotted decimal for IPv4. */
export const formatIp = (address: Address): string =>
  address.kind() === "ipv6" ? (address as ipaddr.IPv6).toRFC5952String() : address.toString();

/** The normal form: RFC 5952 IPv6, mapped IPv6 as IPv4, host bits cleared, `/32`/`/128` dropped. */
export function formatBlock(block: IpBlock): string {
  const text = formatIp(block.address);
  return block.prefix === bits(block.address) ? text : `${text}/${block.prefix}`;
}

/** The normal form of an allowlist entry, or null when it is not an address or CIDR block. */
export function normaliseBlock(text: string): string | null {
  const block = parseBlock(text);
  return block ? formatBlock(block) : null;
}

/** The normal form of an address, or null. */
export function normaliseIp(text: string): string | null {
  const address = parseIp(text);
  return address ? formatIp(address) : null;
}

const contains = (block: IpBlock, address: Address) =>
  block.address.kind() === address.kind() && address.match(block.address, block.prefix);

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

/**
 * Who a client address counts as for a per-client limiter: an IPv4 address as itself, an
 * IPv6 address by its /64 (one subscriber's usual allocation: its 2^64 addresses are one
 * client). Null when `text` is not an address.
 */
export function clientBucket(text: string): string | null {
  const address = parseIp(text);
  if (!address) return null;
  return address.kind() === "ipv4" ? formatIp(address) : `${formatIp(network(address, 64))}/64`;
}
