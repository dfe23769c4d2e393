// Completes package-lock.json with the platform-specific optional packages of biome and
// workerd that this machine's npm registry does not serve (it answers 404 for the darwin,
// win32, android and musl builds). `npm install` here leaves them out of the lock, and
// `npm ci` then refuses the lock as out of sync. Run `npm run lock` after changing
// dependencies: each missing package is recorded, with its os/cpu, beside the build for
// this platform, so npm ci skips it here and installs it on the platform it is for.
import { readFileSync, writeFileSync } from "node:fs";

const file = new URL("../package-lock.json", import.meta.url);
const lock = JSON.parse(readFileSync(file, "utf8"));
const packages = lock.packages;

/** Where npm would resolve `dep` from package path `from` (the Node module lookup). */
function resolve(from, dep, version) {
  let dir = from;
  for (;;) {
    const candidate = `${dir ? `${dir}/` : ""}node_modules/${dep}`;
    if (packages[candidate] && (!version || packages[candidate].version === version)) {
      return candidate;
    }
    if (!dir) return null;
    const parent = dir.lastIndexOf("/node_modules/");
    dir = parent < 0 ? "" : dir.slice(0, parent);
  }
}

const platform = (name) => ({
  os: [
    /darwin/.test(name)
      ? "darwin"
      : /win/.test(name)
        ? "win32"
        : /android/.test(name)
          ? "android"
          : "linux",
  ],
  cpu: [/arm64/.test(name) ? "arm64" : "x64"],
  ...(/musl/.test(name) ? { libc: ["musl"] } : {}),
});

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  const optional = Object.entries(entry.optionalDependencies ?? {});
  for (const [dep, version] of optional) {
    // Only exact versions are platform builds; ranges (fsevents) resolve as usual.
    if (!/^\d/.test(version) || resolve(path, dep, version)) continue;
    const sibling = optional.map(([name]) => resolve(path, name, version)).find(Boolean);
    if (!sibling) continue;
    const at = `${sibling.slice(0, sibling.lastIndexOf("node_modules/"))}node_modules/${dep}`;
    packages[at] = { version, dev: entry.dev, optional: true, ...platform(dep) };
    console.log(`recorded ${at}@${version}`);
    added++;
  }
}

lock.packages = Object.fromEntries(
  Object.entries(packages).sort(([a], [b]) => a.localeCompare(b, "en")),
);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(added ? `package-lock.json: ${added} entries recorded` : "package-lock.json: complete");
