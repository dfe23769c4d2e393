import { applyD1Migrations } from "cloudflare:test";
import { env } from "cloudflare:workers";

// Setup files run before each test file; migrations are idempotent.
await applyD1Migrations(env.DB, env.TEST_MIGRATIONS);

// Faults the tests inject on purpose make the Worker log what it logs for a real outage. Those
// lines are expected: keep them out of the output, so that an unexpected error stands out.
const INJECTED =
  /injected fault|D1_ERROR: Network connection lost|KV GET failed|KV PUT failed|rate limiter unreachable|Storage is unavailable|storage is unavailable/;
const log = console.error.bind(console);
console.error = (...args: unknown[]) => {
  if (args.some((arg) => INJECTED.test(typeof arg === "string" ? arg : String(arg)))) return;
  log(...args);
};
