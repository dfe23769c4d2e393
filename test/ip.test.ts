// IP addresses and CIDR blocks of key allowlists: parsing, normal forms and matching.
import { describe, expect, it } from "vitest";
import { ipAllowed, normaliseBlock, normaliseIp, parseIp } from "../src/core/ip";

describe("parsing addresses", () => {
  it("accepts dotted IPv4 and refuses every other IPv4 spelling", () => {
    expect(normaliseIp("203.0.113.7")).toBe("203.0.113.7");
    expect(normaliseIp("0.0.0.0")).toBe("0.0.0.0");
    expect(normaliseIp("255.255.255.255")).toBe("255.255.255.255");
    for (const bad of [
      "256.0.0.1",
      "1.2.3",
      "1.2.3.4.5",
      "01.2.3.4",
      "0x7f.0.0.1",
      "2130706433",
      " 1.2.3.4",
      "1.2.3.4 ",
      "1.2.3.-4",
      "",
      "localhost",
    ]) {
      expect(parseIp(bad), bad).toBeNull();
    }
  });

  it("reads IPv6 compressed or expanded alike, in RFC 5952 form", () => {
    expect(normaliseIp("2001:0DB8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1");
    expect(normaliseIp("2001:db8::1")).toBe("2001:db8::1");
    expect(normaliseIp("::")).toBe("::");
    expect(normaliseIp("::1")).toBe("::1");
    expect(normaliseIp("1::")).toBe("1::");
    // The longest zero run is compressed, the first on a tie; a single zero group is not.
    expect(normaliseIp("2001:0:0:1:0:0:0:1")).toBe("2001:0:0:1::1");
    expect(normaliseIp("2001:db8:0:1:1:1:1:1")).toBe("2001:db8:0:1:1:1:1:1");
    expect(normaliseIp("1:0:0:2:0:0:3:4")).toBe("1::2:0:0:3:4");
    expect(normaliseIp("1:2:3:4:5:6:7::")).toBe("1:2:3:4:5:6:7:0");
    expect(normaliseIp("64:ff9b::192.0.2.33")).toBe("64:ff9b::c000:221");
  });

  it("refuses malformed IPv6", () => {
    for (const bad of [
      "1::2::3",
      ":1:2:3:4:5:6:7",
      "1:2:3:4:5:6:7:8:9",
      "1:2:3:4:5:6:7",
      "12345::1",
      "g::1",
      "fe80::1%eth0",
      "[::1]",
      "1.2.3.4::",
      "::1.2.3",
      "::ffff:256.1.1.1",
      "1:2:3:4:5:6:7:8::",
    ]) {
      expect(parseIp(bad), bad).toBeNull();
    }
  });

  it("reads an IPv4-mapped IPv6 address as its IPv4 form", () => {
    expect(normaliseIp("::ffff:203.0.113.7")).toBe("203.0.113.7");
    expect(normaliseIp("::FFFF:cb00:7107")).toBe("203.0.113.7");
    expect(normaliseIp("0:0:0:0:0:ffff:203.0.113.7")).toBe("203.0.113.7");
  });
});

describe("parsing blocks", () => {
  it("clears host bits and drops full-length prefixes", () => {
    expect(normaliseBlock("10.1.2.3/8")).toBe("10.0.0.0/8");
    expect(normaliseBlock("10.1.2.3/32")).toBe("10.1.2.3");
    expect(normaliseBlock("10.1.2.3/0")).toBe("0.0.0.0/0");
    expect(normaliseBlock("192.168.1.255/23")).toBe("192.168.0.0/23");
    expect(normaliseBlock("2001:DB8::FFFF/32")).toBe("2001:db8::/32");
    expect(normaliseBlock("2001:db8::1/128")).toBe("2001:db8::1");
    expect(normaliseBlock("::ffff:10.9.8.7/104")).toBe("10.0.0.0/8");
  });

  it("refuses bad prefixes", () => {
    for (const bad of [
      "10.0.0.0/33",
      "10.0.0.0/",
      "10.0.0.0/08",
      "10.0.0.0/-1",
      "10.0.0.0/8/8",
      "::/129",
      "::/1a",
      "/8",
    ]) {
      expect(normaliseBlock(bad), bad).toBeNull();
    }
  });
});

describe("matching", () => {
  const list = ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32", "::1"];

  it("matches inside a block and at its edges, not one past them", () => {
    expect(ipAllowed(list, "203.0.113.0")).toBe(true);
    expect(ipAllowed(list, "203.0.113.255")).toBe(true);
    expect(ipAllowed(list, "203.0.112.255")).toBe(false);
    expect(ipAllowed(list, "203.0.114.0")).toBe(false);
    expect(ipAllowed(list, "198.51.100.7")).toBe(true);
    expect(ipAllowed(list, "198.51.100.8")).toBe(false);
  });

  it("matches IPv6 in any spelling", () => {
    expect(ipAllowed(list, "2001:db8::")).toBe(true);
    expect(ipAllowed(list, "2001:0db8:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(true);
    expect(ipAllowed(list, "2001:db9::")).toBe(false);
    expect(ipAllowed(list, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff")).toBe(false);
    expect(ipAllowed(list, "0:0:0:0:0:0:0:1")).toBe(true);
    expect(ipAllowed(list, "::2")).toBe(false);
  });

  it("matches an IPv4-mapped address against IPv4 entries, and IPv4 against mapped entries", () => {
    expect(ipAllowed(list, "::ffff:203.0.113.9")).toBe(true);
    expect(ipAllowed(list, "::ffff:cb00:7109")).toBe(true);
    expect(ipAllowed(list, "::ffff:203.0.114.9")).toBe(false);
    expect(ipAllowed(["::ffff:10.0.0.0/104"], "10.200.1.1")).toBe(true);
    expect(ipAllowed(["::ffff:10.0.0.1"], "10.0.0.1")).toBe(true);
  });

  it("never matches across families or a malformed address", () => {
    expect(ipAllowed(["0.0.0.0/0"], "::1")).toBe(false);
    expect(ipAllowed(["::/0"], "1.2.3.4")).toBe(false);
    expect(ipAllowed(["::/0"], "2001:db8::5")).toBe(true);
    expect(ipAllowed(["0.0.0.0/0"], "1.2.3.4")).toBe(true);
    expect(ipAllowed(["0.0.0.0/0"], "not an ip")).toBe(false);
    expect(ipAllowed([], "1.2.3.4")).toBe(false);
  });

  it("odd prefixes split a byte", () => {
    expect(ipAllowed(["10.0.0.0/9"], "10.127.255.255")).toBe(true);
    expect(ipAllowed(["10.0.0.0/9"], "10.128.0.0")).toBe(false);
    expect(ipAllowed(["2001:db8:8000::/33"], "2001:db8:ffff::1")).toBe(true);
    expect(ipAllowed(["2001:db8:8000::/33"], "2001:db8:7fff::1")).toBe(false);
  });
});
