// Static files for the [assets] binding (wrangler.toml): the dashboard's stylesheet and
// scripts and uPlot under fingerprinted names (name.<hash>.ext, cached for a year), and the
// API reference's Scalar bundle. Writes public/ and src/dashboard/asset-manifest.json (the
// names the pages link to); both are generated, git-ignored, and rebuilt by `npm run build`.
import { createHash } from "node:crypto";
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, extname, join } from "node:path";

const OUT = "public";
const DASHBOARD_ASSETS = join(OUT, "dashboard", "assets");
const MANIFEST = join("src", "dashboard", "asset-manifest.json");

/** Logical name (what the pages ask for) → source file. */
const SOURCES = {
  "app.css": "src/dashboard/static/app.css",
  "app.js": "src/dashboard/static/app.js",
  "clerk.js": "src/dashboard/static/clerk.js",
  "chart.js": "src/dashboard/static/chart.js",
  "uplot.css": "node_modules/uplot/dist/uPlot.min.css",
  "uplot.js": "node_modules/uplot/dist/uPlot.iife.min.js",
};

rmSync(OUT, { recursive: true, force: true });
mkdirSync(DASHBOARD_ASSETS, { recursive: true });

const manifest = {};
for (const [name, source] of Object.entries(SOURCES)) {
  const content = readFileSync(source);
  const hash = createHash("sha256").update(content).digest("hex").slice(0, 12);
  const ext = extname(name);
  const file = `${basename(name, ext)}.${hash}${ext}`;
  writeFileSync(join(DASHBOARD_ASSETS, file), content);
  manifest[name] = file;
}
writeFileSync(MANIFEST, `${JSON.stringify(manifest, null, 2)}\n`);

// /docs/scalar.js reads it from the binding (src/routes/meta.ts); the page's own URL stays.
copyFileSync(
  "node_modules/@scalar/api-reference/dist/browser/standalone.js",
  join(OUT, "standalone.js"),
);
