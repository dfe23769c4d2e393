// `keygate scan`: keys found by format and checksum in a planted tree (workerd's node:fs, a
// temp directory), never printed whole; `--report` batches; the documented pattern and gitleaks
// rule against generated keys. The package's checksum is checked against Keygate's own.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import doc from "../../../docs/scan.md?raw";
import readme from "../../../README.md?raw";
import { generateKey, parseKey } from "../../../src/core/key-material";
import {
  checksumValid,
  displayPrefix,
  findKeys,
  KEY_PATTERN_SOURCE,
  REPORT_BATCH,
  scanCommand,
  scanPaths,
} from "../src/scan";

const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/** The same key with its last (checksum) char changed: the right shape, a failed checksum. */
function wrongChecksum(key: string): string {
  const last = key.at(-1) as string;
  return key.slice(0, -1) + BASE62[(BASE62.indexOf(last) + 1) % 62];
}

const keys = (n: number, prefix = "capy", environment = "live") =>
  Promise.all(Array.from({ length: n }, () => generateKey(prefix, environment)));

/** Runs the command and collects what it prints. */
async function run(paths: string[], options: Parameters<typeof scanCommand>[1] = {}) {
  let stdout = "";
  let stderr = "";
  const code = await scanCommand(paths, {
    ...options,
    stdout: (text) => {
      stdout += text;
    },
    stderr: (text) => {
      stderr += text;
    },
  });
  return { code, stdout, stderr };
}

function tree(files: Record<string, string | Uint8Array>): string {
  const root = mkdtempSync(join(tmpdir(), "scan-"));
  for (const [path, content] of Object.entries(files)) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), content);
  }
  return root;
}

describe("the package's key checksum", () => {
  it("agrees with src/core/key-material.ts on generated keys, valid and with one char changed", async () => {
    const generated = [
      ...(await keys(300)),
      ...(await keys(100, "acme", "test")),
      ...(await keys(100, "x", "staging2")),
    ];
    for (const { plaintext, displayPrefix: shown } of generated) {
      expect(checksumValid(plaintext)).toBe(true);
      expect(parseKey(plaintext)).not.toBeNull();
      expect(displayPrefix(plaintext)).toBe(shown);
      const bad = wrongChecksum(plaintext);
      expect(checksumValid(bad)).toBe(false);
      expect(parseKey(bad)).toBeNull();
      // A body char changed also fails both.
      const body = plaintext.replace(/_(.)([^_]{48})$/, (_, c: string, rest: string) => {
        return `_${BASE62[(BASE62.indexOf(c) + 7) % 62]}${rest}`;
      });
      expect(checksumValid(body)).toBe(parseKey(body) !== null);
    }
  });
});

describe("keygate scan", () => {
  it("finds planted keys in nested files, skipping .git, node_modules, binaries and failed checksums", async () => {
    const [a, b, c, d, e, f, g] = (await keys(7)).map((key) => key.plaintext) as string[];
    const root = tree({
      "config/.env": `# settings\nKEYGATE_KEY=${a}\nOTHER=1\n`,
      "src/deep/er/app.ts": `const typo = "${wrongChecksum(b as string)}";\nconst k = "${c}";\n`,
      ".git/config": `token = ${d}\n`,
      "node_modules/pkg/index.js": `export const key = "${e}";\n`,
      "pkg/node_modules/x.js": `"${e}"`,
      "assets/blob.bin": new Uint8Array([...new TextEncoder().encode(f as string), 0, 1, 2]),
      "README.txt": "nothing here",
      "crlf.txt": `line one\r\n\r\n  ${g}\r\n`,
    });
    const { finds, files } = scanPaths([root]);
    expect(files).toBe(5); // .git and node_modules not walked
    expect(
      finds.map(({ path, line, column, key }) => [path.slice(root.length), line, column, key]),
    ).toEqual([
      ["/config/.env", 2, 13, a],
      ["/crlf.txt", 3, 3, g],
      ["/src/deep/er/app.ts", 2, 12, c],
    ]);
  });

  it("finds two keys on one line, keys glued to _ or quotes, and not a longer base62 run", async () => {
    const [a, b, c] = (await keys(3, "acme", "test")).map((key) => key.plaintext) as string[];
    expect(findKeys(`x ${a} ${b}`)).toEqual([
      { line: 1, column: 3, key: a },
      { line: 1, column: 4 + (a as string).length, key: b },
    ]);
    expect(findKeys(`A_${a},"${b}"`).map((find) => find.column)).toEqual([
      3,
      5 + (a as string).length,
    ]);
    expect(findKeys(`${c}Z`)).toEqual([]);
    expect(findKeys(`Z${c}`)).toEqual([]);
    // A leading word glued by `_` still finds the key inside (a failed candidate moves on).
    expect(findKeys(`sk_${c}`)).toEqual([{ line: 1, column: 4, key: c }]);
  });

  it("prints path:line:column and the display prefix, --json, exit 1 / 0 / 2, never a key", async () => {
    const generated = await keys(3);
    const [a, b, c] = generated.map((key) => key.plaintext) as string[];
    const root = tree({ "one.txt": `${a}\n`, "two/two.txt": `  ${b} ${c}\n`, "none.txt": "hi" });

    const found = await run([root]);
    expect(found.code).toBe(1);
    expect(found.stdout).toBe(
      `${join(root, "one.txt")}:1:1 ${generated[0]?.displayPrefix}…\n` +
        `${join(root, "two/two.txt")}:1:3 ${generated[1]?.displayPrefix}…\n` +
        `${join(root, "two/two.txt")}:1:${4 + (b as string).length} ${generated[2]?.displayPrefix}…\n`,
    );

    const asJson = await run([join(root, "two")], { json: true });
    expect(asJson.code).toBe(1);
    expect(JSON.parse(asJson.stdout)).toEqual([
      { path: join(root, "two/two.txt"), line: 1, column: 3, prefix: generated[1]?.displayPrefix },
      {
        path: join(root, "two/two.txt"),
        line: 1,
        column: 4 + (b as string).length,
        prefix: generated[2]?.displayPrefix,
      },
    ]);

    const clean = await run([join(root, "none.txt")]);
    expect(clean).toEqual({ code: 0, stdout: "", stderr: "" });
    expect((await run([join(root, "none.txt")], { json: true })).stdout).toBe("[]\n");

    const missing = await run([join(root, "nope")]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/no such file/);

    for (const output of [found, asJson]) {
      for (const key of [a, b, c] as string[]) {
        expect(output.stdout + output.stderr).not.toContain(key);
        expect(output.stdout + output.stderr).not.toContain(key.slice(-20));
      }
    }
  });

  it("--report posts the distinct keys in batches of at most 1 000, printing only the count", async () => {
    const generated = (await keys(REPORT_BATCH * 2 + 5)).map((key) => key.plaintext);
    // Each key twice (reported once), one per line.
    const root = tree({ "a.txt": generated.join("\n"), "b.txt": generated.join("\n") });
    const requests: { url: string; body: { keys: string[]; url?: string } }[] = [];
    const recorder = (async (url: string, init: RequestInit) => {
      requests.push({ url, body: JSON.parse(init.body as string) });
      return new Response(JSON.stringify({ received: 1 }), { status: 202 });
    }) as typeof fetch;

    const result = await run([root], {
      report: "http://127.0.0.1:8787/",
      leakUrl: "https://example.com/commit/1",
      fetch: recorder,
    });
    expect(result.code).toBe(1);
    expect(requests.map((request) => request.url)).toEqual(
      Array(3).fill("http://127.0.0.1:8787/v1/leaks"),
    );
    expect(requests.map((request) => request.body.keys.length)).toEqual([1000, 1000, 5]);
    expect(requests.flatMap((request) => request.body.keys).sort()).toEqual([...generated].sort());
    expect(requests.every((request) => request.body.url === "https://example.com/commit/1")).toBe(
      true,
    );
    expect(result.stderr).toBe(`Reported ${generated.length} keys to http://127.0.0.1:8787/.\n`);
    expect(result.stdout.split("\n").filter(Boolean)).toHaveLength(generated.length * 2);
    for (const key of generated) expect(result.stdout + result.stderr).not.toContain(key);
  });

  it("--report refuses plain http off this machine (exit 2, nothing sent) and says when the server refuses", async () => {
    const [key] = await keys(1);
    const root = tree({ "k.txt": key?.plaintext as string });
    let sent = 0;
    const refusing = (async () => {
      sent++;
      return new Response("{}", { status: 500 });
    }) as typeof fetch;
    const offMachine = await run([root], { report: "http://keygate.example.com", fetch: refusing });
    expect(offMachine.code).toBe(2);
    expect(offMachine.stderr).toMatch(/plain http/);
    expect(sent).toBe(0);

    const refused = await run([root], { report: "https://keygate.example.com", fetch: refusing });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/answered 500/);
    expect(sent).toBe(1);
    expect(refused.stdout + refused.stderr).not.toContain(key?.plaintext);
  });
});

describe("docs/scan.md: the key pattern and the gitleaks rule", () => {
  const pattern = /<!-- key-pattern -->\s*```regex\n(.+)\n```/.exec(doc)?.[1];
  const rule = /<!-- gitleaks-rule -->\s*```toml\n([\s\S]+?)\n```/.exec(doc)?.[1] ?? "";
  const gitleaksRegex = /^regex = '''(.+)'''$/m.exec(rule)?.[1];

  it("gives the scanner's pattern and a complete gitleaks rule", () => {
    expect(pattern).toBe(KEY_PATTERN_SOURCE);
    expect(rule).toMatch(/^\[\[rules\]\]$/m);
    expect(rule).toMatch(/^id = "keygate-api-key"$/m);
    expect(rule).toMatch(/^description = ".+"$/m);
    expect(rule).toMatch(/^keywords = \["capy_"\]$/m);
    expect(gitleaksRegex).toContain(KEY_PATTERN_SOURCE);
  });

  it("the README gives the same rule", () => {
    expect(/```toml\n(\[\[rules\]\][\s\S]+?)\n```/.exec(readme)?.[1]).toBe(rule);
  });

  it("both match every generated valid key, in text too; a display prefix alone matches neither", async () => {
    const whole = new RegExp(`^(?:${pattern})$`);
    const gitleaks = new RegExp(gitleaksRegex as string);
    const generated = [
      ...(await keys(200)),
      ...(await keys(50, "acme", "test")),
      ...(await keys(50, "a1234567890123456789012345678901", "e1234567890123456789012345678901")),
    ];
    for (const { plaintext, displayPrefix: shown } of generated) {
      expect(whole.test(plaintext), plaintext).toBe(true);
      expect(gitleaks.exec(plaintext)?.[1]).toBe(plaintext);
      expect(gitleaks.exec(`API_KEY="${plaintext}"\n`)?.[1]).toBe(plaintext);
      expect(whole.test(shown)).toBe(false);
      expect(gitleaks.test(shown)).toBe(false);
      expect(gitleaks.test(`${shown}…`)).toBe(false);
    }
  });
});
