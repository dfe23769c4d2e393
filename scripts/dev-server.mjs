// A throwaway `wrangler dev` for scripts (browser check, soak): its own free loopback port,
// its own persistence directory with the migrations applied, and a stop() that ends it.
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";

const BIN = resolve("node_modules", ".bin");
const WRANGLER = join(BIN, "wrangler");
// wrangler needs Node 22: the one running this script (and node_modules/.bin's) comes first
// on PATH, also when the script is run without npm. Offline: no metrics, no update checks.
const ENV = {
  ...process.env,
  PATH: [dirname(process.execPath), BIN, process.env.PATH].join(delimiter),
  WRANGLER_SEND_METRICS: "false",
  CI: "1",
  NO_COLOR: "1",
};

/** A port the OS says is free on 127.0.0.1 (never 8787, the developer's own `npm start`). */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address();
      server.close(() => (port === 8787 ? freePort().then(resolve, reject) : resolve(port)));
    });
  });
}

/**
 * `configs`: wrangler configs to run together, the first one primary (e.g. the example
 * consumer, then Keygate); default Keygate alone. A private dev registry, so a service
 * binding never reaches someone else's `wrangler dev`.
 */
export async function startDevServer({ log = () => {}, configs = [] } = {}) {
  // Idempotent: writes .dev.vars when missing, adds the dashboard's dev sign-in when absent.
  execFileSync(process.execPath, ["scripts/setup-dev.mjs"], { stdio: "inherit" });
  const persistTo = mkdtempSync(join(tmpdir(), "keygate-dev-"));
  const env = { ...ENV, WRANGLER_REGISTRY_PATH: join(persistTo, "registry") };
  execFileSync(
    WRANGLER,
    ["d1", "migrations", "apply", "DB", "--local", "--persist-to", persistTo],
    {
      env,
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  const port = await freePort();
  const inspectorPort = await freePort();
  const child = spawn(
    WRANGLER,
    [
      "dev",
      ...configs.flatMap((config) => ["-c", config]),
      "--ip",
      "127.0.0.1",
      "--port",
      String(port),
      "--inspector-port",
      String(inspectorPort),
      "--persist-to",
      persistTo,
      "--show-interactive-dev-session=false",
      "--log-level=warn",
      "--test-scheduled",
    ],
    // Its own process group, so stop() ends wrangler and the workerd it starts.
    { env, detached: true, stdio: ["ignore", "pipe", "pipe"] },
  );
  let output = "";
  const collect = (chunk) => {
    output += chunk;
    log(String(chunk));
  };
  child.stdout.on("data", collect);
  child.stderr.on("data", collect);
  let exited = false;
  child.on("exit", () => {
    exited = true;
  });

  const stop = async () => {
    if (!exited) {
      try {
        process.kill(-child.pid, "SIGTERM");
      } catch {
        // already gone
      }
      const deadline = Date.now() + 5_000;
      while (!exited && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      if (!exited) {
        try {
          process.kill(-child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    rmSync(persistTo, { recursive: true, force: true });
  };

  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`wrangler dev exited early:\n${output}`);
    }
    try {
      const response = await fetch(`${url}/healthz`);
      if (response.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`wrangler dev did not answer /healthz within 90 s:\n${output}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, port, persistTo, stop, output: () => output };
}

/**
 * A JSON client for a dev server: `api(method, path, body?, bearer?)` → { status, body }.
 * `bearer` defaults to `token`; null sends no Authorization header (verify needs none).
 */
export function jsonClient(url, token) {
  return async function api(method, path, body, bearer = token) {
    const response = await fetch(`${url}${path}`, {
      method,
      headers: {
        ...(bearer === null ? {} : { authorization: `Bearer ${bearer}` }),
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  };
}
