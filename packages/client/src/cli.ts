#!/usr/bin/env node
// The `keygate` CLI: Keygate's management API from a terminal, over @keygate/client.
// Tables for people, `--json` for scripts. Keys it creates carry `source: "cli"`.
//
// Secrets never come from argv (other users read it in /proc/<pid>/cmdline): tokens and keys
// are read from stdin or a prompt; `--unsafe-token` / `--unsafe-key` are the explicit,
// documented-as-unsafe exceptions. They go only over https or to a loopback http URL.
import { randomBytes } from "node:crypto";
import {
  closeSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
} from "node:fs";
import { homedir } from "node:os";
import { basename, dirname, join } from "node:path";
import { Command, Option } from "commander";
import { type Row, record, table } from "./cli-format.js";
import { transportProblem } from "./cli-safety.js";
import { createKeygateClient, DEFAULT_URL, type KeygateClient } from "./index.js";
import { scanCommand } from "./scan.js";

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

/**
 * Atomically, readable by its owner only: a new temp file beside the config (O_EXCL, so never
 * through a symlink someone planted), written and synced, then renamed over the config (which
 * replaces a symlink there instead of following it).
 */
function writeConfig(config: Config): void {
  const path = configPath();
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString("hex")}.tmp`);
  const fd = openSync(temp, "wx", 0o600);
  try {
    writeSync(fd, `${JSON.stringify(config, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  try {
    renameSync(temp, path);
  } catch (error) {
    rmSync(temp, { force: true });
    throw error;
  }
}

const keygateUrl = () => process.env.KEYGATE_URL || readConfig().url || DEFAULT_URL;

/** The URL this run talks to (named when the connection fails). */
let target: string | undefined;

/** The URL a secret may go to, or exit 1 (plain http off this machine). */
function safeUrl(url: string): string {
  const problem = transportProblem(url);
  if (problem) fail(problem);
  target = url;
  return url;
}

/** KEYGATE_URL / KEYGATE_TOKEN win over what `keygate login` saved. */
function client(): KeygateClient {
  const token = process.env.KEYGATE_TOKEN || readConfig().token;
  if (!token) fail("Not logged in: run `keygate login` (it reads the token) or set KEYGATE_TOKEN.");
  return createKeygateClient({ url: safeUrl(keygateUrl()), token, client: "cli" });
}

/**
 * A secret from stdin when it is piped (`keygate login < token.txt`), else typed at a prompt
 * on the terminal, not echoed. Surrounding whitespace (a trailing newline) is dropped.
 */
async function readSecret(what: string): Promise<string> {
  const stdin = process.stdin;
  if (!stdin.isTTY) {
    const chunks: Buffer[] = [];
    for await (const chunk of stdin) chunks.push(chunk as Buffer);
    const value = Buffer.concat(chunks).toString("utf8").trim();
    if (!value) fail(`no ${what} on stdin.`);
    return value;
  }
  process.stderr.write(`${what[0]?.toUpperCase()}${what.slice(1)}: `);
  const value = await new Promise<string>((done) => {
    let typed = "";
    const finish = (answer: string) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      done(answer);
    };
    const onData = (chunk: string) => {
      for (const char of chunk) {
        if (char === "\r" || char === "\n" || char === "\u0004") return finish(typed);
        if (char === "\u0003") {
          finish("");
          return process.exit(130);
        }
        typed = char === "\u007f" || char === "\b" ? typed.slice(0, -1) : typed + char;
      }
    };
    stdin.setRawMode(true);
    stdin.setEncoding("utf8");
    stdin.on("data", onData);
    stdin.resume();
  });
  if (!value.trim()) fail(`no ${what} given.`);
  return value.trim();
}

/** An option that used to take a secret in argv: refuse it and say what to do instead. */
const argvSecret = (what: string, instead: string) => () =>
  fail(
    `a ${what} on the command line is visible to every user of this machine ` +
      `(/proc/<pid>/cmdline, ps): ${instead}.`,
  );

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
  .description(
    "save a token (Clerk session or Keygate key) and Keygate's URL; the token is read from " +
      "$KEYGATE_TOKEN, else stdin (`keygate login < token.txt`), else a prompt",
  )
  .option("--url <url>", "Keygate's base URL", process.env.KEYGATE_URL || DEFAULT_URL)
  .option(
    "--unsafe-token <token>",
    "UNSAFE: the token in argv, where every user of the machine can read it",
  )
  .addOption(
    new Option("--token <token>")
      .hideHelp()
      .argParser(
        argvSecret(
          "token",
          'pipe it (`printf %s "$TOKEN" | keygate login`), type it at the prompt, or set KEYGATE_TOKEN',
        ),
      ),
  )
  .action(async (options: { unsafeToken?: string; url: string }) => {
    const url = safeUrl(options.url.replace(/\/+$/, ""));
    const token = options.unsafeToken || process.env.KEYGATE_TOKEN || (await readSecret("token"));
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

/**
 * A JSON option (`--meta '{"plan":"pro"}'`, `null` to clear), or exit 1 saying which. Boxed:
 * commander turns an option value of null into "".
 */
const jsonOption = (name: string) => (value: string) => {
  try {
    return { json: JSON.parse(value) as unknown };
  } catch {
    return fail(`--${name} is not JSON: ${value}`);
  }
};

const IDENTITY_COLUMNS = ["id", "external_id", "ratelimits", "credits", "created_at"];

interface IdentityOptions {
  meta?: { json: unknown };
  ratelimits?: { json: unknown };
  credits?: { json: unknown };
}

/**
 * The members given (`null` clears one on update). The JSON is the user's and Keygate checks
 * it (a 400 names the field), so the bodies built with it are not typed further (`as never`).
 */
const identityFields = (options: IdentityOptions) => ({
  ...(options.meta === undefined ? {} : { meta: options.meta.json }),
  ...(options.ratelimits === undefined ? {} : { ratelimits: options.ratelimits.json }),
  ...(options.credits === undefined ? {} : { credits: options.credits.json }),
});

/** The options create and update share: each one JSON, as in the API's body. */
const withIdentityOptions = (command: Command) =>
  command
    .option(
      "--meta <json>",
      'a JSON object returned by verify, e.g. \'{"plan":"pro"}\'',
      jsonOption("meta"),
    )
    .option(
      "--ratelimits <json>",
      'shared limits, e.g. \'[{"name":"requests","limit":100,"duration_ms":60000}]\'',
      jsonOption("ratelimits"),
    )
    .option(
      "--credits <json>",
      'shared credits, e.g. \'{"remaining":1000,"refill":{"interval":"monthly","amount":1000}}\'',
      jsonOption("credits"),
    );

const identities = program
  .command("identities")
  .description("list, create, get, update and delete identities; set their credits");

identities
  .command("list")
  .description("the organization's identities (oldest first)")
  .option("--external-id <id>", "only the identity of this owner")
  .action(async (options: { externalId?: string }) => {
    const body = unwrap(
      await client().GET("/v1/identities", {
        params: {
          query: {
            limit: 100,
            ...(options.externalId ? { external_id: options.externalId } : {}),
          },
        },
      }),
    );
    print(json(), body.identities, () => table(body.identities as Row[], IDENTITY_COLUMNS));
  });

withIdentityOptions(
  identities
    .command("create <external-id>")
    .description("create an identity: the owner in your own system, unique in the organization"),
).action(async (externalId: string, options: IdentityOptions) => {
  const body = unwrap(
    await client().POST("/v1/identities", {
      body: { external_id: externalId, ...identityFields(options) } as never,
    }),
  );
  print(json(), body, () => record(body as Row));
});

identities
  .command("get <id>")
  .description("one identity, with its exact live credits")
  .action(async (id: string) => {
    const body = unwrap(
      await client().GET("/v1/identities/{identityID}", { params: { path: { identityID: id } } }),
    );
    print(json(), body, () => record(body as Row));
  });

withIdentityOptions(
  identities
    .command("update <id>")
    .description("change an identity's external id, meta, limits or credits (null clears one)")
    .option("--external-id <id>", "a new owner id, unique in the organization"),
).action(async (id: string, options: IdentityOptions & { externalId?: string }) => {
  const body = unwrap(
    await client().PATCH("/v1/identities/{identityID}", {
      params: { path: { identityID: id } },
      body: {
        ...(options.externalId ? { external_id: options.externalId } : {}),
        ...identityFields(options),
      } as never,
    }),
  );
  print(json(), body, () => record(body as Row));
});

identities
  .command("delete <id>")
  .description("delete an identity (its keys stop sharing its limits and credits)")
  .action(async (id: string) => {
    unwrap(
      await client().DELETE("/v1/identities/{identityID}", {
        params: { path: { identityID: id } },
      }),
    );
    print(json(), { id, deleted: true }, () => `Deleted ${id}.`);
  });

identities
  .command("credits <id> <operation> <value>")
  .description("set, increment or decrement an identity's credits (atomic); prints the balance")
  .action(async (id: string, operation: string, value: string) => {
    if (operation !== "set" && operation !== "increment" && operation !== "decrement") {
      fail(`the operation is set, increment or decrement, not ${operation}`);
    }
    if (!/^\d+$/.test(value)) fail(`the value is a whole number of credits, not ${value}`);
    const body = unwrap(
      await client().POST("/v1/identities/{identityID}/credits", {
        params: { path: { identityID: id } },
        body: { operation, value: Number(value) },
      }),
    );
    print(json(), body, () => record(body as Row));
  });

program
  .command("verify")
  .description(
    "verify a key, read from stdin (`keygate verify < key.txt`) or a prompt; exits 1 when it is not valid",
  )
  .argument("[key]", "refused: a key in argv is visible to every user of the machine")
  .option("--scopes <list>", "comma-separated scopes it must hold", list)
  .option("--project <id>", "the project it must reach")
  .option(
    "--unsafe-key <key>",
    "UNSAFE: the key in argv, where every user of the machine can read it",
  )
  .action(
    async (
      argvKey: string | undefined,
      options: { scopes?: string[]; project?: string; unsafeKey?: string },
    ) => {
      if (argvKey !== undefined) {
        argvSecret(
          "key",
          'pipe it (`printf %s "$KEY" | keygate verify`) or type it at the prompt',
        )();
      }
      const url = safeUrl(keygateUrl());
      const key = options.unsafeKey || (await readSecret("key"));
      // Verification needs no credential: the key is its own.
      const keygate = createKeygateClient({ url, client: "cli" });
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
    },
  );

program
  .command("scan")
  .description(
    "find Keygate keys in files (format and checksum, no network); prints path:line:column and " +
      "the display prefix, never a key; exit 1 when it finds any, 0 when none, 2 on a usage error",
  )
  .argument("[paths...]", "files or directories (default: .); skips .git, node_modules, binaries")
  .option("--json", "print [{ path, line, column, prefix }]")
  .option(
    "--report <base url>",
    "send the keys found to <base url>/v1/leaks (https, or loopback http)",
  )
  .option("--leak-url <url>", "with --report: where the keys were found (sent as `url`)")
  .exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2))
  .action(
    async (paths: string[], options: { json?: boolean; report?: string; leakUrl?: string }) => {
      process.exitCode = await scanCommand(paths, { ...options, json: options.json || json() });
    },
  );

await program.parseAsync(process.argv).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  // A network failure says nothing of where it tried: name the URL.
  fail(
    error instanceof TypeError
      ? `${message} (is Keygate running at ${target ?? keygateUrl()}?)`
      : message,
  );
});
