// Production limits, checked before anyone deploys: `wrangler deploy --dry-run` bundles the
// Worker as a deploy would (nothing is uploaded), then
//   size      the modules it would upload, gzipped, must stay within SIZE_BUDGET_KIB;
//   start-up  `wrangler check startup` runs that bundle in workerd (locally, offline) and
//             profiles its start-up phase; the CPU it was active must stay within
//             STARTUP_BUDGET_MS.
// Budgets and why: docs/packages-and-deploy.md. Cloudflare's limits: 3 MB (Free) / 10 MB
// (Paid) compressed, 1 s start-up.
//   npm run test:bundle [-- --size-kib N --startup-ms N]   (override a budget, e.g. to see it fail)
// Exit code 1 when a budget is passed or a step fails.
import { execFileSync } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { gzipSync } from "node:zlib";

/** Compressed size of the uploaded modules: today ~307 KiB. */
const SIZE_BUDGET_KIB = 512;
/** CPU active during start-up, measured locally: today ~60–75 ms. */
const STARTUP_BUDGET_MS = 300;

const { values } = parseArgs({
  options: {
    "size-kib": { type: "string", default: String(SIZE_BUDGET_KIB) },
    "startup-ms": { type: "string", default: String(STARTUP_BUDGET_MS) },
  },
});
const sizeBudget = Number(values["size-kib"]);
const startupBudget = Number(values["startup-ms"]);

const log = (...args) => console.log("[bundle]", ...args);
const WRANGLER = resolve("node_modules/.bin/wrangler");
// Node 22 first (wrangler needs it); offline: no metrics, no Request.cf download.
const env = {
  ...process.env,
  PATH: [dirname(process.execPath), resolve("node_modules/.bin"), process.env.PATH].join(delimiter),
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
  CI: "1",
  NO_COLOR: "1",
};
const wrangler = (args) =>
  execFileSync(WRANGLER, args, { env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });

/** CPU time of a V8 .cpuprofile spent outside `(idle)`, in ms (each sample owns its delta). */
export function activeMs(profile) {
  const idle = new Set(
    profile.nodes.filter((node) => node.callFrame.functionName === "(idle)").map((n) => n.id),
  );
  let micros = 0;
  profile.samples.forEach((id, i) => {
    if (!idle.has(id)) micros += profile.timeDeltas[i] ?? 0;
  });
  return micros / 1000;
}

const work = mkdtempSync(join(tmpdir(), "keygate-bundle-"));
let exitCode = 0;
try {
  const outdir = join(work, "out");
  const bundle = join(work, "worker.bundle");
  const deployed = wrangler(["deploy", "--dry-run", "--outdir", outdir, "--outfile", bundle]);
  const reported = /Total Upload: ([\d.]+ KiB) \/ gzip: ([\d.]+ KiB)/.exec(deployed);

  // What a deploy uploads: every module in the outdir (not source maps, not wrangler's README).
  const modules = readdirSync(outdir).filter((f) => !f.endsWith(".map") && f !== "README.md");
  let raw = 0;
  let gzipped = 0;
  for (const file of modules) {
    const bytes = readFileSync(join(outdir, file));
    raw += bytes.length;
    gzipped += gzipSync(bytes, { level: 9 }).length;
  }
  const kib = (bytes) => `${(bytes / 1024).toFixed(1)} KiB`;
  log(
    `modules: ${modules.join(", ")}: ${kib(raw)}, gzip ${kib(gzipped)}` +
      (reported ? ` (wrangler: ${reported[1]}, gzip ${reported[2]})` : ""),
  );
  // The larger of the two counts is held to the budget.
  const reportedBytes = reported ? Number.parseFloat(reported[2]) * 1024 : 0;
  gzipped = Math.max(gzipped, reportedBytes);
  const sizeOk = gzipped <= sizeBudget * 1024;
  log(
    `${sizeOk ? "ok " : "OVER"} compressed size ${kib(gzipped)} of a ${sizeBudget} KiB budget ` +
      "(Cloudflare: 3 MB Free, 10 MB Paid)",
  );

  const profilePath = join(work, "startup.cpuprofile");
  const checked = wrangler(["check", "startup", "--worker", bundle, "--outfile", profilePath]);
  const startup = activeMs(JSON.parse(readFileSync(profilePath, "utf8")));
  const wranglerActive = /Active: ([\d.]+ ms)/.exec(checked)?.[1];
  const startupOk = startup <= startupBudget;
  log(
    `${startupOk ? "ok " : "OVER"} start-up: ${startup.toFixed(1)} ms of CPU active ` +
      `(wrangler: ${wranglerActive ?? "n/a"}) of a ${startupBudget} ms budget (Cloudflare: 1 s)`,
  );
  if (!sizeOk || !startupOk) exitCode = 1;
} catch (error) {
  exitCode = 1;
  console.error(`[bundle] FAILED: ${error.message}`);
  for (const stream of ["stdout", "stderr"]) {
    if (error[stream]) console.error(String(error[stream]));
  }
} finally {
  rmSync(work, { recursive: true, force: true });
}
process.exit(exitCode);
