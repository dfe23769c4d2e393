// `npm start`: first-run set-up (scripts/setup-dev.mjs, local D1 migrations), then `wrangler dev`
// on 127.0.0.1 with the cron trigger testable. The port is `--port N` (or `--port=N`), else
// $PORT, else 8787; every other argument goes to wrangler dev as it is.
import { execFileSync, spawn } from "node:child_process";

const DEFAULT_PORT = "8787";
const args = process.argv.slice(2);
let port = process.env.PORT || DEFAULT_PORT;
const rest = [];
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === "--port" || arg === "-p") port = args[++i] ?? "";
  else if (arg.startsWith("--port=")) port = arg.slice("--port=".length);
  else rest.push(arg);
}
if (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535) {
  console.error(`The port must be a number from 1 to 65535, not ${JSON.stringify(port)}.`);
  process.exit(1);
}

const run = (command, commandArgs, env = process.env) =>
  execFileSync(command, commandArgs, { stdio: "inherit", env });
try {
  run(process.execPath, ["scripts/setup-dev.mjs"]);
  run(process.execPath, ["scripts/build-assets.mjs"]);
  run("wrangler", ["d1", "migrations", "apply", "DB", "--local"], { ...process.env, CI: "1" });
} catch (error) {
  process.exit(typeof error.status === "number" ? error.status : 1);
}

// Keygate never reads `request.cf`, so wrangler need not download it: offline, that fetch
// printed a `getaddrinfo ENOTFOUND workers.cloudflare.com` stack trace at every start.
const child = spawn(
  "wrangler",
  ["dev", "--ip", "127.0.0.1", "--port", port, "--test-scheduled", ...rest],
  { stdio: "inherit", env: { ...process.env, CLOUDFLARE_CF_FETCH_ENABLED: "false" } },
);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
