#!/usr/bin/env node
// The `keygate` CLI: Keygate's management API from a terminal, over @keygate/client.
// Tables for people, `--json` for scripts. Keys it creates carry `source: "cli"`.
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { Command } from "commander";
import { createKeygateClient, DEFAULT_URL, type KeygateClient } from "./index.js";

interface Config {
  url?: string;
  token?: string;
}

/** `$KEYGATE_CONFIG`, else `$XDG_CONFIG_HOME/keygate/config.json` (~/.config by default). */
const configPath = () =>
  process.env.KEYGATE_CONFIG ??
  join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "keygate", "config.json");

function readConfig(): Config {
  try {
    return JSON.parse(readFileSync(configPath(), "utf8")) as Config;
  } catch {
    return {};
  }
}

function writeConfig(config: Config): void {
  const path = configPath();
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, `${JSON.stringify(config, null, 2)}\n`, { mode: 0o600 });
  chmodSync(path, 0o600);
}

const keygateUrl = () => process.env.KEYGATE_URL || readConfig().url || DEFAULT_URL;

/** KEYGATE_URL / KEYGATE_TOKEN win over what `keygate login` saved. */
function client(): KeygateClient {
  const token = process.env.KEYGATE_TOKEN || readConfig().token;
  if (!token) fail("Not logged in: run `keygate login --token <token>` or set KEYGATE_TOKEN.");
  return createKeygateClient({ url: keygateUrl(), token, client: "cli" });
}

function fail(message: string): never {
  process.stderr.write(`keygate: ${message}\n`);
  return process.exit(1);
}

/** The body of a successful answer, or exit 1 with Keygate's problem detail. */
function unwrap<T>(answer: { data?: T; error?: unknown; response: Response }): T {
  if (answer.error !== undefined || !answer.response.ok) {
    const problem = answer.error as { detail?: string; error?: string } | undefined;
    fail(
      `${answer.response.status} ${problem?.detail ?? problem?.error ?? answer.response.statusText}`,
    );
  }
  return answer.data as T;
}

type Row = Record<string, unknown>;

/** Aligned columns, a header line, `-` for null. */
function table(rows: Row[], columns: string[]): string {
  const cell = (value: unknown) =>
    value === null || value === undefined
      ? "-"
      : Array.isArray(value)
        ? value.join(",") || "-"
        : String(value);
  const cells = rows.map((row) => columns.map((column) => cell(row[column])));
  const widths = columns.map((column, i) =>
    Math.max(column.length, ...cells.map((line) => (line[i] as string).length)),
  );
  const line = (values: string[]) =>
    values
      .map((value, i) => value.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join("\n");
}

/** One record as `field  value` lines. */
const record = (row: Row) =>
  table(
    Object.entries(row).map(([field, value]) => ({ field, value })),
    ["field", "value"],
  )
    .split("\n")
    .slice(1)
    .join("\n");

function print(json: boolean, value: unknown, human: () => string): void {
  process.stdout.write(`${json ? JSON.stringify(value, null, 2) : human()}\n`);
}

const list = (value: string) =>
  value
    .split(",")
    .map((item) => item.trim())
    .filter(Boolean);

const KEY_COLUMNS = ["id", "name", "key_prefix", "scopes", "is_active", "source", "expires_at"];

const program = new Command("keygate")
  .description("Manage Keygate projects and API keys.")
  .version("0.1.0")
  .option("--json", "print JSON instead of tables")
  .showHelpAfterError();

const json = () => Boolean(program.opts().json);

program
  .command("login")
  .description("save a token (Clerk session or Keygate key) and Keygate's URL")
  .option("--token <token>", "the bearer token (default: $KEYGATE_TOKEN)")
  .option("--url <url>", "Keygate's base URL", process.env.KEYGATE_URL || DEFAULT_URL)
  .action(async (options: { token?: string; url: string }) => {
    const token = options.token || process.env.KEYGATE_TOKEN;
    if (!token) fail("login needs --token <token> (or KEYGATE_TOKEN).");
    const url = options.url.replace(/\/+$/, "");
    // A 401 means the token is no good; 403 only that it may not list projects.
    const { response } = await createKeygateClient({ url, token }).GET("/v1/projects", {
      params: { query: { limit: 1 } },
    });
    if (response.status === 401) fail("Keygate refused the token (401).");
    writeConfig({ url, token });
    print(json(), { url, config: configPath() }, () => `Logged in to ${url} (${configPath()}).`);
  });

const projects = program.command("projects").description("list and create projects");

projects
  .command("list")
  .description("the organization's projects")
  .action(async () => {
    const body = unwrap(await client().GET("/v1/projects", { params: { query: { limit: 100 } } }));
    print(json(), body.projects, () =>
      table(body.projects, ["id", "name", "key_prefix", "created_at"]),
    );
  });

projects
  .command("create <name>")
  .description("create a project (its webhook signing secret is shown once)")
  .option("--key-prefix <prefix>", "the prefix of its keys (default: Keygate's KEY_PREFIX)")
  .action(async (name: string, options: { keyPrefix?: string }) => {
    const body = unwrap(
      await client().POST("/v1/projects", {
        body: { name, ...(options.keyPrefix ? { key_prefix: options.keyPrefix } : {}) },
      }),
    );
    print(json(), body, () => record(body as Row));
  });

const keys = program.command("keys").description("list, create, get, revoke and rotate keys");

keys
  .command("list")
  .description("the keys of a project")
  .requiredOption("--project <id>", "the project")
  .action(async (options: { project: string }) => {
    const body = unwrap(
      await client().GET("/v1/api-keys", {
        params: { query: { project_id: options.project, limit: 100 } },
      }),
    );
    print(json(), body, () => table(body as Row[], KEY_COLUMNS));
  });

keys
  .command("create")
  .description("create a key (the plaintext is shown once)")
  .requiredOption("--project <id>", "the project")
  .requiredOption("--name <name>", "a name for people")
  .option("--scopes <list>", "comma-separated scopes", list, [] as string[])
  .option("--expires-at <time>", "RFC 3339 expiry")
  .option("--environment <id>", "the environment id (default: live)")
  .action(
    async (options: {
      project: string;
      name: string;
      scopes: string[];
      expiresAt?: string;
      environment?: string;
    }) => {
      const body = unwrap(
        await client().POST("/v1/api-keys", {
          body: {
            project_id: options.project,
            name: options.name,
            scopes: options.scopes,
            ...(options.expiresAt ? { expires_at: options.expiresAt } : {}),
            ...(options.environment ? { environment_id: options.environment } : {}),
          },
        }),
      );
      print(json(), body, () => `${record(body as Row)}\n\nThe key is shown only now: ${body.key}`);
    },
  );

keys
  .command("get <id>")
  .description("one key")
  .action(async (id: string) => {
    const body = unwrap(
      await client().GET("/v1/api-keys/{keyID}", { params: { path: { keyID: id } } }),
    );
    print(json(), body, () => record(body as Row));
  });

keys
  .command("revoke <id>")
  .description("revoke a key at once")
  .action(async (id: string) => {
    unwrap(await client().DELETE("/v1/api-keys/{keyID}", { params: { path: { keyID: id } } }));
    print(json(), { id, revoked: true }, () => `Revoked ${id}.`);
  });

keys
  .command("rotate <id>")
  .description("replace a key by a new one (the plaintext is shown once)")
  .option("--grace <seconds>", "how long the old key still works (default 0)", Number)
  .action(async (id: string, options: { grace?: number }) => {
    const body = unwrap(
      await client().POST("/v1/api-keys/{keyID}/rotate", {
        params: { path: { keyID: id } },
        body: options.grace === undefined ? {} : { grace_period_seconds: options.grace },
      }),
    );
    print(json(), body, () => `${record(body as Row)}\n\nThe key is shown only now: ${body.key}`);
  });

program
  .command("verify <key>")
  .description("verify a key; exits 1 when it is not valid")
  .option("--scopes <list>", "comma-separated scopes it must hold", list)
  .option("--project <id>", "the project it must reach")
  .action(async (key: string, options: { scopes?: string[]; project?: string }) => {
    // Verification needs no credential: the key is its own.
    const keygate = createKeygateClient({ url: keygateUrl(), client: "cli" });
    const body = unwrap(
      await keygate.POST("/v1/keys/verify", {
        body: {
          key,
          ...(options.scopes ? { required_scopes: options.scopes } : {}),
          ...(options.project ? { project_id: options.project } : {}),
        },
      }),
    );
    print(json(), body, () => record(body as Row));
    if (!body.valid) process.exitCode = 1;
  });

await program.parseAsync(process.argv).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  // A network failure says nothing of where it tried: name the URL.
  fail(
    error instanceof TypeError ? `${message} (is Keygate running at ${keygateUrl()}?)` : message,
  );
});
