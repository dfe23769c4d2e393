// Where a rotation webhook may be sent: the rule for `rotation_webhook_url` (SPEC "Rotation and
// webhooks"), checked on the URL as the WHATWG parser reads it — the same parser fetch() uses —
// so every spelling of an address (decimal, hex or octal IPv4, compressed, expanded or mapped
// IPv6, percent-encoded, trailing dot) is judged by the address it really is.

import ipaddr from "ipaddr.js";

/** The hosts that may take plain http:// (and any port), for local development. */
export const LOOPBACK_HOSTS = ["localhost", "127.0.0.1", "[::1]"] as const;

/** The rule in one sentence, for error messages and the OpenAPI document. */
export const WEBHOOK_URL_RULE =
  "an https:// URL on the default port (443 written or not), without user info or control characters, whose host is a public name (not localhost. or *.localhost, nor *.internal) or a public IP address (not private, loopback, link-local, unique-local, unspecified, multicast, reserved, Teredo or IPv4-mapped); http:// and any port only for localhost, 127.0.0.1 and [::1]";

/**
 * The shape of an allowed URL as a JSON Schema pattern (also enforced): lowercase scheme, no
 * user info, no port except on a loopback host (or https's own 443). What a pattern cannot say (which addresses)
 * is checked on the parsed host and stated in WEBHOOK_URL_RULE.
 */
export const WEBHOOK_URL_PATTERN =
  "^(https://([^/?#@:\\[\\]\\s]+|\\[[0-9a-fA-F:.]+\\])(:443)?|https?://(localhost|127\\.0\\.0\\.1|\\[::1\\])(:[0-9]{1,5})?)([/?#]\\S*)?$";
const SHAPE = new RegExp(WEBHOOK_URL_PATTERN);

/** Why `value` may not be a webhook URL, or null when it may. */
export function webhookUrlProblem(value: string): string | null {
  // The parser drops tabs and newlines anywhere, and trims other controls: judged as written.
  if (/\p{Cc}/u.test(value)) return "must not contain control characters";
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
  if (!loopback && isRefusedHost(url.hostname)) {
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

/** An allowed URL as stored: an explicit default port (`https://host:443/`) is dropped. */
export const normaliseWebhookUrl = (value: string) =>
  value.replace(/^(https:\/\/[^/?#]*?):443(?=[/?#]|$)/, "$1");

export const isAllowedWebhookUrl = (value: string) => webhookUrlProblem(value) === null;

/** Blocks that are not the public internet (RFC 6890 and friends), parsed once. */
const REFUSED_BLOCKS = [
  "0.0.0.0/8", // "this network", unspecified
  "10.0.0.0/8", // private
  "100.64.0.0/10", // shared address space (carrier-grade NAT)
  "127.0.0.0/8", // loopback (only the literal 127.0.0.1 is allowed, as loopback)
  "169.254.0.0/16", // link-local (cloud metadata services live here)
  "172.16.0.0/12", // private
  "192.0.0.0/24", // IETF protocol assignments
  "192.0.2.0/24", // documentation
  "192.88.99.0/24", // 6to4 relay anycast
  "192.168.0.0/16", // private
  "198.18.0.0/15", // benchmarking
  "198.51.100.0/24", // documentation
  "203.0.113.0/24", // documentation
  "224.0.0.0/4", // multicast
  "240.0.0.0/4", // reserved, and the broadcast address
  // ::/96 (unspecified, loopback other than the literal [::1], IPv4-compatible) and
  // ::ffff:0:0/96 (IPv4-mapped): never a webhook target, whatever IPv4 address they carry.
  "::/96",
  "::ffff:0:0/96",
  "::ffff:0:0:0/96", // SIIT
  "64:ff9b::/32", // NAT64 (64:ff9b::/96 and 64:ff9b:1::/48)
  "100::/64", // discard-only
  "2001::/32", // Teredo: the address carries an IPv4 server and client
  "2001:db8::/32", // documentation
  "fc00::/7", // unique-local
  "fe80::/10", // link-local
  "fec0::/10", // site-local (deprecated)
  "ff00::/8", // multicast
].map((block) => ipaddr.parseCIDR(block));

const SIX_TO_FOUR = ipaddr.parseCIDR("2002::/16");

function isRefusedIp(address: ipaddr.IPv4 | ipaddr.IPv6): boolean {
  if (address.kind() === "ipv6") {
    const { parts } = address as ipaddr.IPv6;
    // 6to4 (2002::/16) carries an IPv4 address: judged by that address.
    if (address.match(SIX_TO_FOUR)) {
      const [, high = 0, low = 0] = parts;
      return isRefusedIp(new ipaddr.IPv4([high >> 8, high & 0xff, low >> 8, low & 0xff]));
    }
  }
  return REFUSED_BLOCKS.some(
    ([network, prefix]) => network.kind() === address.kind() && address.match(network, prefix),
  );
}

/**
 * The parser leaves an IPv4 host as four decimal numbers, an IPv6 host in brackets; anything
 * else is a name. Names that only ever resolve inside (`localhost.`, `*.localhost`,
 * `*.internal`) are refused like the addresses they stand for.
 */
function isRefusedHost(hostname: string): boolean {
  if (hostname.startsWith("[")) {
    const inner = hostname.slice(1, -1);
    return !ipaddr.IPv6.isValid(inner) || isRefusedIp(ipaddr.IPv6.parse(inner));
  }
  if (ipaddr.IPv4.isValidFourPartDecimal(hostname)) {
    return isRefusedIp(ipaddr.IPv4.parse(hostname));
  }
  const name = hostname.replace(/\.$/, "");
  return INTERNAL_NAMES.some((suffix) => name === suffix || name.endsWith(`.${suffix}`));
}

/** Special-use names (RFC 6761 localhost, ICANN's private-use .internal). */
const INTERNAL_NAMES = ["localhost", "internal"];
