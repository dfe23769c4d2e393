// The packages installed the way users install them: `npm pack` @keygate/hono and
// @keygate/client into a temp folder, a consumer project there that depends on the two
// tarballs (plus hono, typescript and @cloudflare/workers-types at this repository's
// versions), typechecked with every README snippet marked `<!-- compile: consumer -->`, and
// `npx keygate --help` run from the consumer and from this repository.
//   npm run test:pack            (npm run pack: only the tarballs, into dist/)
// The install prefers npm's cache (`--prefer-offline`): after `npm ci` every package is there.
// Exit code 1 on the first broken expectation.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";

const log = (...args) => console.log("[pack]", ...args);
/** This repository's installed version of a package (what npm ci put in npm's cache). */
const versionOf = (name) =>
  JSON.parse(readFileSync(join("node_modules", name, "package.json"), "utf8")).version;

/** The ```ts blocks right after a `<!-- compile: consumer -->` line. */
export function markedSnippets(markdown) {
  const lines = markdown.split("\n");
  const snippets = [];
  for (let i = 0; i + 1 < lines.length; i++) {
    if (lines[i].trim() !== "<!-- compile: consumer -->") continue;
    if (!/^```(ts|typescript)\s*$/.test(lines[i + 1].trim())) {
      throw new Error(`line ${i + 2}: the compile marker must sit right above a \`\`\`ts block`);
    }
    const end = lines.findIndex((line, j) => j > i + 1 && line.trim() === "```");
    if (end < 0) throw new Error(`line ${i + 2}: the marked block never closes`);
    snippets.push({ line: i + 3, code: lines.slice(i + 2, end).join("\n") });
  }
  return snippets;
}

// Node 22 and this repository's bins first (also when run without npm).
const env = {
  ...process.env,
  PATH: [dirname(process.execPath), resolve("node_modules/.bin"), process.env.PATH].join(delimiter),
  NO_COLOR: "1",
};
const run = (command, args, options = {}) =>
  execFileSync(command, args, { env, encoding: "utf8", stdio: "pipe", ...options });
const npm = (args, cwd) => run("npm", args, { cwd });

const work = mkdtempSync(join(tmpdir(), "keygate-pack-"));
let exitCode = 0;
try {
  // The snippets first: a missing marker fails before anything is built.
  const sources = ["packages/hono/README.md", "README.md"];
  const snippets = sources.flatMap((file) =>
    markedSnippets(readFileSync(file, "utf8")).map((snippet) => ({ file, ...snippet })),
  );
  if (!snippets.some((snippet) => snippet.file === "packages/hono/README.md")) {
    throw new Error("packages/hono/README.md has no ```ts block marked <!-- compile: consumer -->");
  }
  log(`snippets: ${snippets.map((s) => `${s.file}:${s.line}`).join(", ")}`);

  const packed = JSON.parse(
    npm([
      "pack",
      "-w",
      "@keygate/hono",
      "-w",
      "@keygate/client",
      "--pack-destination",
      work,
      "--json",
    ]).replace(/^[^[]*/s, ""),
  );
  const tarball = (name) => {
    const found = packed.find((entry) => entry.name === name);
    if (!found) throw new Error(`npm pack made no tarball for ${name}`);
    return join(work, found.filename);
  };
  for (const entry of packed) {
    log(`${entry.filename}: ${entry.entryCount} files, ${entry.size} bytes`);
    const files = entry.files.map((file) => file.path);
    if (!files.includes("dist/index.d.ts") || !files.includes("dist/index.js")) {
      throw new Error(`${entry.filename} lacks dist/index.js or dist/index.d.ts: ${files}`);
    }
    if (files.some((file) => /^(src|test)\//.test(file))) {
      throw new Error(`${entry.filename} ships sources or tests: ${files}`);
    }
  }

  const consumer = join(work, "consumer");
  mkdirSync(join(consumer, "src"), { recursive: true });
  writeFileSync(
    join(consumer, "package.json"),
    `${JSON.stringify(
      {
        name: "keygate-pack-consumer",
        private: true,
        type: "module",
        dependencies: {
          "@keygate/client": `file:${tarball("@keygate/client")}`,
          "@keygate/hono": `file:${tarball("@keygate/hono")}`,
          hono: versionOf("hono"),
        },
        devDependencies: {
          "@cloudflare/workers-types": versionOf("@cloudflare/workers-types"),
          typescript: versionOf("typescript"),
        },
      },
      null,
      2,
    )}\n`,
  );
  writeFileSync(
    join(consumer, "tsconfig.json"),
    `${JSON.stringify(
      {
        compilerOptions: {
          target: "ES2022",
          module: "ESNext",
          moduleResolution: "Bundler",
          lib: ["ES2023"],
          types: ["@cloudflare/workers-types"],
          strict: true,
          noEmit: true,
          // The consumer's own code is checked; its dependencies' .d.ts are the packages' job.
          skipLibCheck: true,
        },
        include: ["src"],
      },
      null,
      2,
    )}\n`,
  );
  snippets.forEach((snippet, i) => {
    const header = `// ${snippet.file}, the snippet at line ${snippet.line}\n`;
    writeFileSync(
      join(consumer, "src", `snippet-${i}.ts`),
      `${header}${snippet.code}\nexport {};\n`,
    );
  });
  // Both packages from a consumer's side: the client's types too.
  writeFileSync(
    join(consumer, "src", "client.ts"),
    `import { createKeygateClient, type ApiKey } from "@keygate/client";
const keygate = createKeygateClient({ url: "http://127.0.0.1:8787", token: "t" });
export const keys: Promise<ApiKey[] | undefined> = keygate
  .GET("/v1/api-keys", { params: { query: { project_id: "p" } } })
  .then((answer) => answer.data);
`,
  );

  // --prefer-offline: what `npm ci` put in npm's cache is used without asking the registry.
  npm(["install", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"], consumer);
  log("consumer installed from the tarballs");
  const honos = run("npm", ["ls", "hono", "--all", "--parseable"], { cwd: consumer })
    .trim()
    .split("\n")
    .filter(Boolean);
  if (honos.length !== 1) throw new Error(`the consumer has ${honos.length} copies of hono`);
  log("one copy of hono (a peer dependency of @keygate/hono)");

  run(join(consumer, "node_modules/.bin/tsc"), ["-p", consumer], { cwd: consumer });
  log(`typechecked ${snippets.length} README snippet(s) and the client against the tarballs`);

  for (const [where, cwd] of [
    ["the consumer", consumer],
    ["this repository", process.cwd()],
  ]) {
    // As a user types it; npm_config_yes=false: never fetch npm's unrelated `keygate` instead.
    const help = run("npx", ["keygate", "--help"], {
      cwd,
      env: { ...env, npm_config_yes: "false" },
    });
    if (!/Usage: keygate/.test(help) || !/Manage Keygate projects/.test(help)) {
      throw new Error(`npx keygate --help from ${where} printed:\n${help}`);
    }
    log(`npx keygate --help runs from ${where}`);
  }
  log("ok");
} catch (error) {
  exitCode = 1;
  console.error(`[pack] FAILED: ${error.message}`);
  for (const stream of ["stdout", "stderr"])
    if (error[stream]) console.error(String(error[stream]));
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);
