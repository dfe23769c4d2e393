// Where a rotation webhook may be sent: the rule for `rotation_webhook_url` (SPEC "Rotation and
// webhooks"), checked on the URL as the WHATWG parser reads it — the same parser fetch() uses —
// so every spelling of an address (decimal, hex or octal IPv4, compressed, expanded or mapped
// IPv6, percent-encoded, trailing dot) is judged by the address it really is.

/** The hosts that may take plain http:// (and any port), for local development. */
export const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"] as const;

/** The rule in one sentence, for error messages and the OpenAPI document. */
export const WEBHOOK_URL_RULE =
  "an https:// URL on the default port, without user info, whose host is a name or a public IP address (not private, loopback, link-local, unique-local, unspecified, multicast, reserved or IPv4-mapped); http:// and any port only for localhost, 127.0.0.1 and [::1]";

/**
 * The shape of an allowed URL as a JSON Schema pattern (also enforced): lowercase scheme, no
 * user info, no port except on a loopback host. What a pattern cannot say (which addresses)
 * is checked on the parsed host and stated in WEBHOOK_URL_RULE.
 */
export const WEBHOOK_URL_PATTERN =
  "^(https://[^/?#@:\\[\\]\\s]+|https://\\[[0-9a-fA-F:.]+\\]|https?://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]{1,5})?)([/?#]\\S*)?$";
const SHAPE = new RegExp(WEBHOOK_URL_PATTERN);

/** Why `value` may not be a webhook URL, or null when it may. */
export function webhookUrlProblem(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "is not a URL";
  }
  if (url.username !== "" || url.password !== "") return "must not carry user info";
  const loopback = (LOOPBACK_HOSTS as readonly string[]).includes(url.hostname);
  // Loopback only as one of its three names: 0x7f.1 or 2130706433 is 127.0.0.1 in disguise.
  if (loopback && !(LOOPBACK_HOSTS as readonly string[]).includes(writtenHost(value))) {
    return "must name a loopback host as localhost, 127.0.0.1 or [::1]";
  }
  if (url.protocol !== "https:" && !(loopback && url.protocol === "http:")) {
    return "must be an https:// URL (http:// only for localhost)";
  }
  if (!loopback && url.port !== "") {
    return "must not name a port (443 is used); other ports only on localhost";
  }
  if (!loopback && isRefusedAddress(url.hostname)) {
    return "must not be a private, loopback, link-local, unique-local, unspecified, reserved or mapped address";
  }
  if (!SHAPE.test(value)) {
    return "must be written as https://host/path (lowercase scheme, no port, no spaces)";
  }
  return null;
}

/** The host as written (lowercased, without user info or port). */
function writtenHost(value: string): string {
  const authority = /^[a-z][a-z0-9+.-]*:\/\/([^/?#]*)/i.exec(value)?.[1] ?? "";
  const host = authority.slice(authority.lastIndexOf("@") + 1).toLowerCase();
  return host.startsWith("[") ? host.slice(0, host.indexOf("]") + 1) : (host.split(":")[0] ?? "");
}

export const isAllowedWebhookUrl = (value: string) => webhookUrlProblem(value) === null;

/** The parser leaves an IPv4 host as four decimal numbers, an IPv6 host in brackets. */
function isRefusedAddress(hostname: string): boolean {
  if (hostname.startsWith("[")) {
    const groups = ipv6Groups(hostname.slice(1, -1));
    return groups === null || isRefusedIpv6(groups);
  }
  const octets = ipv4Octets(hostname);
  return octets !== null && isRefusedIpv4(octets);
}

function ipv4Octets(text: string): number[] | null {
  const parts = text.split(".");
  if (parts.length !== 4 || !parts.every((part) => /^\d{1,3}$/.test(part))) return null;
  const octets = parts.map(Number);
  return octets.every((octet) => octet <= 255) ? octets : null;
}

/** IPv4 blocks that are not the public internet (RFC 6890 and friends): network, prefix. */
const IPV4_BLOCKS: [string, number][] = [
  ["0.0.0.0", 8], // "this network", unspecified
  ["10.0.0.0", 8], // private
  ["100.64.0.0", 10], // shared address space (carrier-grade NAT)
  ["127.0.0.0", 8], // loopback (only the literal 127.0.0.1 is allowed, as loopback)
  ["169.254.0.0", 16], // link-local (cloud metadata services live here)
  ["172.16.0.0", 12], // private
  ["192.0.0.0", 24], // IETF protocol assignments
  ["192.0.2.0", 24], // documentation
  ["192.88.99.0", 24], // 6to4 relay anycast
  ["192.168.0.0", 16], // private
  ["198.18.0.0", 15], // benchmarking
  ["198.51.100.0", 24], // documentation
  ["203.0.113.0", 24], // documentation
  ["224.0.0.0", 4], // multicast
  ["240.0.0.0", 4], // reserved, and the broadcast address
];

const toUint32 = (octets: number[]) =>
  (((octets[0] ?? 0) << 24) |
    ((octets[1] ?? 0) << 16) |
    ((octets[2] ?? 0) << 8) |
    (octets[3] ?? 0)) >>>
  0;

function isRefusedIpv4(octets: number[]): boolean {
  const address = toUint32(octets);
  return IPV4_BLOCKS.some(([network, prefix]) => {
    const mask = prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
    return (address & mask) >>> 0 === toUint32(ipv4Octets(network) as number[]);
  });
}

/** Eight 16-bit groups, or null if `text` is not IPv6 (the parser has already vetted it). */
function ipv6Groups(text: string): number[] | null {
  let body = text.toLowerCase();
  // An embedded dotted IPv4 tail becomes two groups (the parser writes hex, but be liberal).
  const tail = /(\d+\.\d+\.\d+\.\d+)$/.exec(body);
  if (tail) {
    const octets = ipv4Octets(tail[1] as string);
    if (!octets) return null;
    const [a = 0, b = 0, c = 0, d = 0] = octets;
    body = `${body.slice(0, -(tail[1] as string).length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const halves = body.split("::");
  if (halves.length > 2) return null;
  const parse = (part: string) => (part === "" ? [] : part.split(":"));
  const head = parse(halves[0] as string);
  const rest = halves.length === 2 ? parse(halves[1] as string) : [];
  const missing = 8 - head.length - rest.length;
  if (halves.length === 2 ? missing < 1 : missing !== 0) return null;
  const all = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill("0"), ...rest];
  if (!all.every((group) => /^[0-9a-f]{1,4}$/.test(group))) return null;
  return all.map((group) => Number.parseInt(group, 16));
}

function isRefusedIpv6(groups: number[]): boolean {
  const [g0 = 0, g1 = 0, g2 = 0, g3 = 0, g4 = 0, g5 = 0] = groups;
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0) {
    // ::/96 (unspecified, loopback other than the literal [::1], IPv4-compatible) and
    // ::ffff:0:0/96 (IPv4-mapped): never a webhook target, whatever IPv4 address they carry.
    if (g5 === 0 || g5 === 0xffff) return true;
  }
  if (g0 === 0 && g1 === 0 && g2 === 0 && g3 === 0 && g4 === 0xffff && g5 === 0) return true; // ::ffff:0:a.b.c.d (SIIT)
  if (g0 === 0x64 && g1 === 0xff9b) return true; // NAT64 (64:ff9b::/96 and 64:ff9b:1::/48)
  if (g0 === 0x100 && g1 === 0 && g2 === 0 && g3 === 0) return true; // discard-only 100::/64
  if (g0 === 0x2001 && g1 === 0xdb8) return true; // documentation
  if (g0 === 0x2002) return isRefusedIpv4([g1 >> 8, g1 & 0xff, g2 >> 8, g2 & 0xff]); // 6to4
  if ((g0 & 0xfe00) === 0xfc00) return true; // unique-local fc00::/7
  if ((g0 & 0xffc0) === 0xfe80) return true; // link-local fe80::/10
  if ((g0 & 0xffc0) === 0xfec0) return true; // site-local (deprecated) fec0::/10
  if ((g0 & 0xff00) === 0xff00) return true; // multicast
  return false;
}
