// `keygate scan`: finds Keygate keys in files by format and checksum, with no network, and
// (with `--report`) sends them to `POST /v1/leaks`. It never prints a whole key: a find is
// shown as its display prefix (`<prefix>_<env>_` + 4 body chars) and `…`.
//
// Stands alone (no import of Keygate's src): the key format and checksum are those of
// src/core/key-material.ts, which packages/client/test/scan.test.ts checks on generated keys.
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { transportProblem } from "./cli-safety.js";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const BODY_LENGTH = 43;
const CHECK_LENGTH = 6;
const DISPLAY_BODY_CHARS = 4;

/**
 * A key's shape, as docs/scan.md gives it to other scanners: `<prefix>_<env>_` then 43 body
 * and 6 checksum chars in base62. A regex cannot compute a CRC32, so a match is a candidate.
 */
export const KEY_PATTERN_SOURCE = "[a-z][a-z0-9]{0,31}_[a-z][a-z0-9]{0,31}_[0-9A-Za-z]{49}";

/** Candidates in text: the pattern not glued to letters or digits on either side. */
const CANDIDATES = new RegExp(`(?<![0-9A-Za-z])${KEY_PATTERN_SOURCE}(?![0-9A-Za-z])`, "g");

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(text: string): number {
  let crc = 0xffffffff;
  for (let i = 0; i < text.length; i++) {
    crc = (CRC_TABLE[(crc ^ text.charCodeAt(i)) & 0xff] as number) ^ (crc >>> 8);
  }
  return (crc ^ 0xffffffff) >>> 0;
}

/** The 6 base62 checksum chars of everything before them. */
export function keyChecksum(head: string): string {
  let rest = crc32(head);
  let out = "";
  while (rest > 0) {
    out = BASE62[rest % 62] + out;
    rest = Math.floor(rest / 62);
  }
  return out.padStart(CHECK_LENGTH, "0");
}

/** True when a candidate's last 6 chars are the checksum of the rest. */
export const checksumValid = (key: string) =>
  keyChecksum(key.slice(0, -CHECK_LENGTH)) === key.slice(-CHECK_LENGTH);

/** What lists show: `<prefix>_<env>_` + the first 4 chars of the body. */
export function displayPrefix(key: string): string {
  const tail = key.length - BODY_LENGTH - CHECK_LENGTH;
  return key.slice(0, tail + DISPLAY_BODY_CHARS);
}

export interface TextFind {
  /** 1-based. */
  line: number;
  /** 1-based, in UTF-16 code units from the start of the line. */
  column: number;
  key: string;
}

/** Every checksum-valid key in one text, in order. */
export function findKeys(text: string): TextFind[] {
  const finds: TextFind[] = [];
  let line = 1;
  let lineStart = 0;
  CANDIDATES.lastIndex = 0;
  for (let match = CANDIDATES.exec(text); match; match = CANDIDATES.exec(text)) {
    const key = match[0];
    if (!checksumValid(key)) {
      // A later start inside this candidate may still be a key (`x_capy_live_…`).
      CANDIDATES.lastIndex = match.index + 1;
      continue;
    }
    for (let nl = text.indexOf("\n", lineStart); nl !== -1 && nl < match.index; ) {
      line++;
      lineStart = nl + 1;
      nl = text.indexOf("\n", lineStart);
    }
    finds.push({ line, column: match.index - lineStart + 1, key });
  }
  return finds;
}

export interface Find extends TextFind {
  path: string;
}

const SKIPPED_DIRECTORIES = new Set([".git", "node_modules"]);
const BINARY_SNIFF_BYTES = 8192;

function scanFile(path: string, finds: Find[]): void {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch {
    return; // vanished or unreadable: nothing to find
  }
  if (bytes.subarray(0, BINARY_SNIFF_BYTES).includes(0)) return;
  for (const find of findKeys(bytes.toString("utf8"))) finds.push({ path, ...find });
}

function walk(directory: string, finds: Find[], counts: { files: number }): void {
  let entries: import("node:fs").Dirent[];
  try {
    entries = readdirSync(directory, { withFileTypes: true });
  } catch {
    return;
  }
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = join(directory, entry.name);
    // Symbolic links are not followed (no loops, nothing outside the tree).
    if (entry.isDirectory()) {
      if (!SKIPPED_DIRECTORIES.has(entry.name)) walk(path, finds, counts);
    } else if (entry.isFile()) {
      counts.files++;
      scanFile(path, finds);
    }
  }
}

export interface ScanResult {
  finds: Find[];
  files: number;
}

/** Walks the paths (files or directories), skipping `.git`, `node_modules` and binary files. */
export function scanPaths(paths: string[]): ScanResult {
  const finds: Find[] = [];
  const counts = { files: 0 };
  for (const path of paths) {
    if (statSync(path).isDirectory()) walk(path, finds, counts);
    else {
      counts.files++;
      scanFile(path, finds);
    }
  }
  return { finds, files: counts.files };
}

/** The most keys one `POST /v1/leaks` takes. */
export const REPORT_BATCH = 1000;

/**
 * Sends the distinct keys to `<base>/v1/leaks` in batches of at most 1 000; the number sent.
 * Throws on a refused URL or an answer other than 2xx (never with a key in the message).
 */
export async function reportLeaks(
  base: string,
  keys: string[],
  options: { url?: string; fetch?: typeof fetch } = {},
): Promise<number> {
  const problem = transportProblem(base);
  if (problem) throw new Error(problem);
  const endpoint = `${base.replace(/\/+$/, "")}/v1/leaks`;
  const distinct = [...new Set(keys)];
  const send = options.fetch ?? fetch;
  for (let i = 0; i < distinct.length; i += REPORT_BATCH) {
    const batch = distinct.slice(i, i + REPORT_BATCH);
    const response = await send(endpoint, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ keys: batch, ...(options.url ? { url: options.url } : {}) }),
    });
    if (!response.ok) {
      throw new Error(
        `${endpoint} answered ${response.status} after ${i} of ${distinct.length} keys.`,
      );
    }
  }
  return distinct.length;
}

export interface ScanCommandOptions {
  json?: boolean;
  report?: string;
  leakUrl?: string;
  fetch?: typeof fetch;
  stdout?: (text: string) => void;
  stderr?: (text: string) => void;
}

/**
 * The `keygate scan` command: prints the finds and returns the exit code (1 when it found
 * any or could not report them, 0 when none, 2 for a path that does not exist).
 */
export async function scanCommand(paths: string[], options: ScanCommandOptions): Promise<number> {
  const out = options.stdout ?? ((text: string) => process.stdout.write(text));
  const err = options.stderr ?? ((text: string) => process.stderr.write(text));
  const roots = paths.length > 0 ? paths : ["."];
  for (const path of roots) {
    try {
      statSync(path);
    } catch {
      err(`keygate: ${JSON.stringify(path)}: no such file or directory.\n`);
      return 2;
    }
  }
  if (options.report !== undefined) {
    const problem = transportProblem(options.report);
    if (problem) {
      err(`keygate: ${problem}\n`);
      return 2;
    }
  }
  const { finds } = scanPaths(roots);
  const shown = finds.map(({ path, line, column, key }) => ({
    path,
    line,
    column,
    prefix: displayPrefix(key),
  }));
  if (options.json) out(`${JSON.stringify(shown, null, 2)}\n`);
  else for (const f of shown) out(`${f.path}:${f.line}:${f.column} ${f.prefix}…\n`);
  if (options.report !== undefined && finds.length > 0) {
    try {
      const sent = await reportLeaks(
        options.report,
        finds.map((find) => find.key),
        { url: options.leakUrl, fetch: options.fetch },
      );
      err(`Reported ${sent} key${sent === 1 ? "" : "s"} to ${options.report}.\n`);
    } catch (error) {
      err(`keygate: reporting failed: ${error instanceof Error ? error.message : error}\n`);
    }
  }
  return finds.length > 0 ? 1 : 0;
}
