import { describe, expect, it } from "vitest";
import {
  BODY_LENGTH,
  CHECK_LENGTH,
  crc32,
  generateKey,
  hashKey,
  parseKey,
} from "../src/core/key-material";

describe("key material", () => {
  it("issues <prefix>_<env>_<43-char base62 body><6-char base62 CRC32>", async () => {
    const key = await generateKey("capy", "live");
    expect(key.plaintext).toMatch(/^capy_live_[0-9A-Za-z]{49}$/);
    expect(key.plaintext.length).toBe("capy_live_".length + BODY_LENGTH + CHECK_LENGTH);
    expect(key.displayPrefix).toBe(key.plaintext.slice(0, "capy_live_".length + 4));
    expect(key.hash).toBe(await hashKey(key.plaintext));
    expect(key.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  it("never issues the same key twice", async () => {
    const keys = await Promise.all(Array.from({ length: 200 }, () => generateKey("capy", "test")));
    expect(new Set(keys.map((k) => k.plaintext)).size).toBe(200);
  });

  it("computes the IEEE CRC-32", () => {
    expect(crc32("123456789")).toBe(0xcbf43926);
    expect(crc32("")).toBe(0);
  });

  it("parses its own keys back", async () => {
    const key = await generateKey("acme", "staging");
    expect(parseKey(key.plaintext)).toMatchObject({ prefix: "acme", environment: "staging" });
  });

  it("rejects a key whose checksum does not match", async () => {
    const { plaintext } = await generateKey("capy", "live");
    const body = plaintext.slice(0, -6);
    const check = plaintext.slice(-6);
    const flipped = check[0] === "0" ? `1${check.slice(1)}` : `0${check.slice(1)}`;
    expect(parseKey(body + flipped)).toBeNull();
    // One changed body character breaks the checksum too.
    const i = 15;
    const swapped =
      plaintext.slice(0, i) + (plaintext[i] === "a" ? "b" : "a") + plaintext.slice(i + 1);
    expect(parseKey(swapped)).toBeNull();
  });

  it("rejects strings of the wrong shape", () => {
    for (const bad of [
      "",
      "capy_live_",
      "capy_live_short",
      "capy-live-0000000000000000000000000000000000000000000000000",
      `CAPY_live_${"0".repeat(49)}`,
      `capy_live_${"0".repeat(48)}!`,
      `capy_live_${"0".repeat(50)}`,
      "eyJhbGciOiJSUzI1NiJ9.e30.sig",
    ]) {
      expect(parseKey(bad), bad).toBeNull();
    }
  });
});
