// The `keygate` CLI and the example consumer (@keygate/hono) end to end, the way a user runs
// them: `wrangler dev` with examples/consumer first and Keygate beside it (as
// `npm run dev:consumer`), the CLI's installed bin against that port, and the consumer's
// protected routes checked with the keys the CLI made.
//   npm run test:cli
// Exit code 1 on the first broken expectation.
import { execFile } from "node:child_process";
import {
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { startDevServer } from "./dev-server.mjs";

const log = (...args) => console.log("[cli]", ...args);
// examples/consumer/wrangler.toml pins the consumer's binding to this organization.
const PINNED_ORG = "org_dev";

function check(condition, message, detail) {
  if (!condition) {
    const error = new Error(message);
    error.detail = detail;
    throw error;
  }
  log(`ok  ${message}`);
}

const work = mkdtempSync(join(tmpdir(), "keygate-cli-"));
const cliEnv = {
  ...process.env,
  // The bin's `#!/usr/bin/env node` finds this Node first; the config goes to a temp file.
  PATH: [dirname(process.execPath), resolve("node_modules/.bin"), process.env.PATH].join(delimiter),
  KEYGATE_CONFIG: join(work, "config.json"),
  KEYGATE_TOKEN: "",
  KEYGATE_URL: "",
};
delete cliEnv.KEYGATE_TOKEN;
delete cliEnv.KEYGATE_URL;

/**
 * Run the installed `keygate` bin with `input` on its stdin (secrets go there, never in argv);
 * resolves { code, stdout, stderr }, never rejects.
 */
const keygate = (args, env = {}, input = "") =>
  new Promise((done) => {
    const child = execFile(
      resolve("node_modules/.bin/keygate"),
      args,
      { env: { ...cliEnv, ...env } },
      (error, stdout, stderr) => done({ code: error ? (error.code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin.end(input);
  });
const json = async (args) => {
  const run = await keygate([...args, "--json"]);
  if (run.code !== 0) throw new Error(`keygate ${args.join(" ")} failed: ${run.stderr}`);
  return JSON.parse(run.stdout);
};

const token = (org) =>
  new Promise((done, fail) =>
    execFile(process.execPath, ["scripts/token.mjs", "--org", org], (error, stdout) =>
      error ? fail(error) : done(stdout.trim()),
    ),
  );

const server = await startDevServer({
  configs: ["examples/consumer/wrangler.toml", "wrangler.toml"],
});
const consumer = (path, init = {}) =>
  fetch(`${server.url}${path}`, init).then(async (response) => ({
    status: response.status,
    headers: response.headers,
    body: await response.json(),
  }));
const bearer = (key) => ({ headers: { authorization: `Bearer ${key}` } });

let exitCode = 0;
try {
  const admin = await token(PINNED_ORG);
  const noLogin = await keygate(["projects", "list"]);
  check(noLogin.code === 1 && /login/.test(noLogin.stderr), "without login it says how", noLogin);
  const badLogin = await keygate(["login", "--url", server.url], {}, "nope\n");
  check(badLogin.code === 1 && /401/.test(badLogin.stderr), "login refuses a bad token", badLogin);

  // Secrets stay out of argv (/proc/<pid>/cmdline): --token is refused, nothing is saved.
  const argvLogin = await keygate(["login", "--token", admin, "--url", server.url]);
  check(
    argvLogin.code === 1 &&
      /command line is visible/.test(argvLogin.stderr) &&
      !readdirSync(work).includes("config.json"),
    "login --token <token> is refused (argv is readable by every user); nothing saved",
    argvLogin,
  );
  const emptyLogin = await keygate(["login", "--url", server.url], {}, "");
  check(
    emptyLogin.code === 1 && /no token/.test(emptyLogin.stderr),
    "login: empty stdin",
    emptyLogin,
  );
  // Plain http off this machine is refused before anything is sent.
  const plainHttp = await keygate(["login", "--url", "http://keygate.invalid"], {}, admin);
  check(
    plainHttp.code === 1 && /plain http/.test(plainHttp.stderr),
    "login refuses a non-loopback http:// URL",
    plainHttp,
  );
  const envHttp = await keygate(["projects", "list"], {
    KEYGATE_URL: "http://192.0.2.1:8787",
    KEYGATE_TOKEN: admin,
  });
  check(
    envHttp.code === 1 && /plain http/.test(envHttp.stderr),
    "every command refuses to send its token to a non-loopback http:// URL",
    envHttp,
  );

  // A symlink planted where the config goes: the login replaces it, never writes through it.
  const victim = join(work, "victim.txt");
  writeFileSync(victim, "untouched\n");
  symlinkSync(victim, cliEnv.KEYGATE_CONFIG);
  const unsafeLogin = await keygate(["login", "--unsafe-token", admin, "--url", server.url]);
  check(
    unsafeLogin.code === 0,
    "login --unsafe-token <token> (the explicit argv choice)",
    unsafeLogin,
  );
  check(
    readFileSync(victim, "utf8") === "untouched\n" &&
      lstatSync(cliEnv.KEYGATE_CONFIG).isFile() &&
      JSON.parse(readFileSync(cliEnv.KEYGATE_CONFIG, "utf8")).token === admin,
    "login writes the config as a new file (temp + rename), not through a planted symlink",
  );
  rmSync(cliEnv.KEYGATE_CONFIG);
  const login = await keygate(["login", "--url", server.url], {}, `${admin}\n`);
  check(login.code === 0, "keygate login --url … with the token on stdin", login);
  check(
    (statSync(cliEnv.KEYGATE_CONFIG).mode & 0o777) === 0o600,
    "the saved token is readable by its owner only",
  );
  check(
    readdirSync(work).sort().join(",") === "config.json,victim.txt",
    "no temp file left beside the config",
    readdirSync(work),
  );

  const project = await json(["projects", "create", "cli-e2e"]);
  check(/^whsec_/.test(project.webhook_signing_secret), "projects create shows the secret once");
  const humanProject = await keygate(["projects", "create", "cli-e2e-table"]);
  check(
    humanProject.code === 0 &&
      !humanProject.stdout.includes("[object Object]") &&
      /^environments\.0\.name\s+live$/m.test(humanProject.stdout),
    "projects create prints its environments readably (environments.0.name  live)",
    humanProject,
  );
  const table = await keygate(["projects", "list"]);
  check(
    table.code === 0 && /^ID\s+NAME/.test(table.stdout) && table.stdout.includes(project.id),
    "projects list prints a table for people",
    table,
  );
  const listed = await json(["projects", "list"]);
  check(
    listed.some((p) => p.id === project.id),
    "projects list --json for scripts",
  );

  const created = await json([
    "keys",
    "create",
    "--project",
    project.id,
    "--name",
    "from the cli",
    "--scopes",
    "read,reports",
  ]);
  check(/^capy_live_/.test(created.key), "keys create shows the plaintext once", created);
  const got = await json(["keys", "get", created.id]);
  check(got.source === "cli", 'keys the CLI creates carry source: "cli"', got);
  check(!JSON.stringify(got).includes(created.key), "keys get never shows the plaintext");
  const keys = await json(["keys", "list", "--project", project.id]);
  check(keys.length === 1 && keys[0].id === created.id, "keys list --project --json", keys);
  const keyTable = await keygate(["keys", "list", "--project", project.id]);
  check(/^ID\s+NAME\s+KEY_PREFIX/.test(keyTable.stdout), "keys list prints a table", keyTable);

  const verifyRun = await keygate(["verify", "--scopes", "read", "--json"], {}, created.key);
  const verified = JSON.parse(verifyRun.stdout || "{}");
  check(
    verifyRun.code === 0 && verified.valid === true && verified.key_id === created.id,
    "verify: VALID (the key on stdin)",
    verifyRun,
  );
  const lacking = await keygate(["verify", "--scopes", "write"], {}, `${created.key}\n`);
  check(lacking.code === 1 && /INSUFFICIENT_SCOPE/.test(lacking.stdout), "verify exits 1", lacking);
  const argvVerify = await keygate(["verify", created.key]);
  check(
    argvVerify.code === 1 && /command line is visible/.test(argvVerify.stderr),
    "verify <key> is refused (argv is readable by every user)",
    argvVerify,
  );
  const unsafeVerify = await keygate(["verify", "--unsafe-key", created.key, "--scopes", "read"]);
  check(
    unsafeVerify.code === 0,
    "verify --unsafe-key <key> (the explicit argv choice)",
    unsafeVerify,
  );

  // The consumer, pinned to PINNED_ORG, guards its routes with @keygate/hono.
  const ok = await consumer("/protected", bearer(created.key));
  check(ok.status === 200 && ok.body.key_id === created.id, "consumer: a good key passes", ok);
  const missing = await consumer("/protected");
  check(
    missing.status === 401 &&
      missing.headers.get("www-authenticate") === "Bearer" &&
      missing.headers.get("content-type") === "application/problem+json",
    "consumer: no key is a 401 problem with WWW-Authenticate: Bearer",
    missing,
  );
  const report = await consumer("/reports", { method: "POST", ...bearer(created.key) });
  check(report.status === 200, "consumer: POST /reports spends credits (none set: unlimited)");
  const narrow = await json(["keys", "create", "--project", project.id, "--name", "narrow"]);
  const forbidden = await consumer("/protected", bearer(narrow.key));
  check(
    forbidden.status === 403 && forbidden.body.code === "INSUFFICIENT_SCOPE",
    "consumer: a key without scope read is a 403",
    forbidden,
  );

  // A key of another organization: NOT_FOUND through the pinned binding.
  const outsider = await token("org_cli_outsider");
  const theirs = await fetch(`${server.url}/v1/projects`, {
    method: "POST",
    headers: { authorization: `Bearer ${outsider}`, "content-type": "application/json" },
    body: JSON.stringify({ name: "theirs" }),
  }).then((r) => r.json());
  const foreign = await keygate(
    ["keys", "create", "--project", theirs.id, "--name", "foreign", "--scopes", "read", "--json"],
    { KEYGATE_TOKEN: outsider },
  );
  const foreignKey = JSON.parse(foreign.stdout).key;
  const pinnedOut = await consumer("/protected", bearer(foreignKey));
  check(
    pinnedOut.status === 401 && pinnedOut.body.code === "NOT_FOUND",
    "consumer: another organization's key is NOT_FOUND (binding props pin the tenant)",
    pinnedOut,
  );

  // Credits and rate limits (set through the API; the CLI creates plain keys).
  const withFields = async (fields) => {
    const response = await fetch(`${server.url}/v1/api-keys`, {
      method: "POST",
      headers: { authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: JSON.stringify({ project_id: project.id, name: "governed", ...fields }),
    });
    return response.json();
  };
  const metered = await withFields({ scopes: ["reports"], credits: { remaining: 7 } });
  const post = () => consumer("/reports", { method: "POST", ...bearer(metered.key) });
  const paid = await post();
  check(
    paid.status === 200 && paid.body.credits?.remaining === 2,
    "consumer: POST /reports spends 5 credits",
    paid,
  );
  const broke = await post();
  check(
    broke.status === 429 &&
      broke.body.code === "USAGE_EXCEEDED" &&
      broke.headers.get("retry-after") === null,
    "consumer: out of credits (no refill) is a 429 without Retry-After",
    broke,
  );
  const limited = await withFields({
    scopes: ["read"],
    ratelimits: [{ name: "burst", limit: 1, duration_ms: 60_000 }],
  });
  // Both requests in one minute-aligned window: wait out the last 10 s of a minute first.
  while (60_000 - (Date.now() % 60_000) < 10_000) await new Promise((r) => setTimeout(r, 200));
  check((await consumer("/protected", bearer(limited.key))).status === 200, "limit: 1st passes");
  const over = await consumer("/protected", bearer(limited.key));
  const seconds = Number(over.headers.get("retry-after"));
  check(
    over.status === 429 &&
      over.body.code === "RATE_LIMITED" &&
      seconds >= 0 &&
      seconds <= 60 &&
      over.headers.get("ratelimit-policy") === '"burst";q=1' &&
      over.headers.get("ratelimit") === `"burst";r=0;t=${seconds}`,
    "consumer: over the limit is a 429 with Retry-After, RateLimit-Policy and RateLimit",
    { status: over.status, body: over.body, headers: Object.fromEntries(over.headers) },
  );

  // Identities: create with JSON members, find, update, credits, delete.
  const owner = `cust_cli_${Date.now().toString(36)}`;
  const identity = await json([
    "identities",
    "create",
    owner,
    "--meta",
    '{"plan":"pro"}',
    "--ratelimits",
    '[{"name":"requests","limit":100,"duration_ms":60000}]',
    "--credits",
    '{"remaining":50,"refill":{"interval":"monthly","amount":50}}',
  ]);
  check(
    identity.external_id === owner &&
      identity.meta?.plan === "pro" &&
      identity.ratelimits?.[0]?.limit === 100 &&
      identity.credits?.remaining === 50 &&
      identity.credits?.refill?.day === 1,
    "identities create <external-id> --meta --ratelimits --credits",
    identity,
  );
  const found = await json(["identities", "list", "--external-id", owner]);
  check(found.length === 1 && found[0].id === identity.id, "identities list --external-id", found);
  const identityTable = await keygate(["identities", "list"]);
  check(
    /^ID\s+EXTERNAL_ID/.test(identityTable.stdout) && identityTable.stdout.includes(owner),
    "identities list prints a table",
    identityTable,
  );
  const duplicate = await keygate(["identities", "create", owner]);
  check(
    duplicate.code === 1 && /^keygate: 409 .*already exists/.test(duplicate.stderr),
    "a second identity of one owner: exit 1 with the 409",
    duplicate,
  );
  const badJson = await keygate(["identities", "create", `${owner}_x`, "--meta", "{plan"]);
  check(
    badJson.code === 1 && /--meta is not JSON/.test(badJson.stderr),
    "identities create refuses an option that is not JSON, sending nothing",
    badJson,
  );
  const spent = await json(["identities", "credits", identity.id, "decrement", "20"]);
  check(spent.remaining === 30, "identities credits <id> decrement 20", spent);
  const badOperation = await keygate(["identities", "credits", identity.id, "halve", "2"]);
  check(
    badOperation.code === 1 && /set, increment or decrement/.test(badOperation.stderr),
    "identities credits: an unknown operation is refused",
    badOperation,
  );
  const updated = await json([
    "identities",
    "update",
    identity.id,
    "--external-id",
    `${owner}_renamed`,
    "--ratelimits",
    "null",
  ]);
  check(
    updated.external_id === `${owner}_renamed` &&
      updated.ratelimits === null &&
      updated.credits?.remaining === 30,
    "identities update --external-id --ratelimits null (credits untouched)",
    updated,
  );
  const gotIdentity = await json(["identities", "get", identity.id]);
  check(gotIdentity.external_id === `${owner}_renamed`, "identities get", gotIdentity);
  const deleted = await keygate(["identities", "delete", identity.id]);
  check(deleted.code === 0 && deleted.stdout.includes(identity.id), "identities delete", deleted);
  const afterDelete = await keygate(["identities", "get", identity.id]);
  check(
    afterDelete.code === 1 && /^keygate: 404/.test(afterDelete.stderr),
    "a deleted identity is a 404",
    afterDelete,
  );

  const rotated = await json(["keys", "rotate", created.id]);
  check(rotated.old_key_id === created.id && rotated.key !== created.key, "keys rotate", rotated);
  const old = await consumer("/protected", bearer(created.key));
  check(old.status === 401 && old.body.code === "REVOKED", "the rotated-out key is refused", old);
  const revoke = await keygate(["keys", "revoke", rotated.new_key_id]);
  check(revoke.code === 0, "keys revoke", revoke);
  const gone = await json(["keys", "get", rotated.new_key_id]);
  check(gone.is_active === false && gone.revoked_at !== null, "the key is revoked", gone);
} catch (error) {
  exitCode = 1;
  console.error(`[cli] FAILED: ${error.message}`);
  if (error.detail !== undefined) console.error(error.detail);
  console.error(server.output().slice(-4000));
} finally {
  await server.stop();
  rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);
