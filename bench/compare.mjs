// npm run bench:compare -- --before a1.json a2.json … --after b1.json b2.json …
//
// Compares two builds from results files of `npm run bench` (BENCH_OUT=…), taken alternately
// in one session so that the machine's drift falls on both alike: per scenario, the median p50
// and req/s of each build, after ÷ before, and each build's median p50 as a multiple of its
// run's floor. The before build runs its own bench from its own checkout (a git worktree at the
// older commit, `npm ci`), so older results files name their scenarios as that bench did; only
// scenarios both sides have are compared. Prints a table; `--out file` also writes it as JSON.
import { readFileSync, writeFileSync } from "node:fs";

function parseArgs(argv) {
  const groups = { before: [], after: [] };
  let out = null;
  let group = null;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--before" || arg === "--after") group = arg.slice(2);
    else if (arg === "--out") out = argv[++i];
    else if (group) groups[group].push(arg);
    else throw new Error(`${arg}: name --before or --after first`);
  }
  if (groups.before.length === 0 || groups.after.length === 0) {
    throw new Error(
      "usage: compare.mjs --before <results.json…> --after <results.json…> [--out f]",
    );
  }
  return { groups, out };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};
const round = (value, digits = 2) => Number(value.toFixed(digits));

/** scenario key ("HTTP verify, warm (memory hit)") → that scenario's rows, one per file. */
function load(files) {
  const byScenario = new Map();
  const settings = new Set();
  for (const file of files) {
    const results = JSON.parse(readFileSync(file, "utf8"));
    settings.add(JSON.stringify(results.settings));
    for (const row of results.rows) {
      const key = `${row.transport} ${row.scenario}`;
      if (!byScenario.has(key)) byScenario.set(key, []);
      byScenario.get(key).push(row);
    }
  }
  return { byScenario, settings };
}

function main() {
  const { groups, out } = parseArgs(process.argv.slice(2));
  const before = load(groups.before);
  const after = load(groups.after);
  const settings = new Set([...before.settings, ...after.settings]);
  if (settings.size > 1) {
    throw new Error(`the runs used different settings: ${[...settings].join(" vs ")}`);
  }
  const rows = [];
  for (const [scenario, beforeRows] of before.byScenario) {
    const afterRows = after.byScenario.get(scenario);
    if (!afterRows) continue;
    const m = (list, field) => median(list.map((row) => row[field]));
    rows.push({
      scenario,
      before_p50_ms: beforeRows.map((row) => row.p50_ms),
      after_p50_ms: afterRows.map((row) => row.p50_ms),
      p50_after_vs_before: round(m(afterRows, "p50_ms") / m(beforeRows, "p50_ms")),
      rps_after_vs_before: round(m(afterRows, "rps") / m(beforeRows, "rps")),
      before_p50_vs_floor: round(m(beforeRows, "p50_vs_floor")),
      after_p50_vs_floor: round(m(afterRows, "p50_vs_floor")),
    });
  }
  const header = ["scenario", "p50 before (ms)", "p50 after (ms)", "p50 ×", "req/s ×", "×floor"];
  const body = rows.map((row) => [
    row.scenario,
    row.before_p50_ms.map((v) => v.toFixed(1)).join(" "),
    row.after_p50_ms.map((v) => v.toFixed(1)).join(" "),
    row.p50_after_vs_before.toFixed(2),
    row.rps_after_vs_before.toFixed(2),
    `${row.before_p50_vs_floor.toFixed(2)} → ${row.after_p50_vs_floor.toFixed(2)}`,
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((cells) => cells[i].length)));
  const line = (cells) => cells.map((cell, i) => cell.padEnd(widths[i])).join("  ");
  console.log(line(header));
  console.log(line(widths.map((w) => "-".repeat(w))));
  for (const cells of body) console.log(line(cells));
  console.log(
    `\n${groups.before.length} run(s) before, ${groups.after.length} after; medians. ` +
      `Settings: ${[...settings][0]}`,
  );
  if (out) {
    const files = { before: groups.before, after: groups.after };
    writeFileSync(
      out,
      `${JSON.stringify({ settings: JSON.parse([...settings][0]), files, rows }, null, 2)}\n`,
    );
    console.log(`wrote ${out}`);
  }
}

try {
  main();
} catch (error) {
  console.error(`bench:compare: ${error.message}`);
  process.exit(2);
}
