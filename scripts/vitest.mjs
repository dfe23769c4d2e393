// `npm test`: vitest, with its output passed through line by line except the reports workerd
// makes of errors the tests provoke on purpose. workerd logs every exception thrown out of an
// RPC or Durable Object method as "uncaught" and its request as "hung", even when the caller
// awaits the rejection (checked through a service binding and `exports` alike, 2026-12-06);
// the pool writes those lines from outside the test process, so they are filtered here. Only
// the refusals and injected faults the tests expect are dropped: any other uncaught
// exception still shows. The exit code is vitest's.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";

const require = createRequire(import.meta.url);
const vitest = join(dirname(require.resolve("vitest/package.json")), "vitest.mjs");

/** An expected refusal or injected fault, reported as uncaught by workerd. */
const EXPECTED =
  /^uncaught exception; (source = Uncaught \(in promise\); stack = (TypeError|Error): (verify: |KeyService binding props: |value must be |Key storage is unavailable|The usage store is unavailable|D1_ERROR: Network connection lost)|exception = .*(Worker's code had hung|D1_ERROR: Network connection lost))/;
/** The lines that continue such a report: its stack. */
const CONTINUATION = /^(\s+at |stack: )/;

function filter(input, output) {
  let pending = "";
  let dropping = false;
  const line = (text) => {
    if (EXPECTED.test(text)) dropping = true;
    else if (!(dropping && CONTINUATION.test(text))) dropping = false;
    if (!dropping) output.write(`${text}\n`);
  };
  input.setEncoding("utf8");
  input.on("data", (chunk) => {
    const lines = (pending + chunk).split("\n");
    pending = lines.pop() ?? "";
    for (const text of lines) line(text);
  });
  input.on("end", () => {
    if (pending) line(pending);
  });
}

const child = spawn(process.execPath, [vitest, "run", ...process.argv.slice(2)], {
  stdio: ["inherit", "pipe", "pipe"],
});
filter(child.stdout, process.stdout);
filter(child.stderr, process.stderr);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("close", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
