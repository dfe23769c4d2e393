// Mint a dev Clerk-shaped session token, signed with the key scripts/setup-dev.mjs made.
//   npm run token -- [--org org_dev] [--role admin] [--user user_dev] [--v1] [--ttl 3600]
//   (--ttl in seconds; negative for an already expired token: --ttl -10)
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { mintSessionToken } from "../src/dashboard/session-token.ts";

// `--ttl -10` (an already expired token) is a value, not an option: parseArgs would refuse it.
const args = [];
for (const arg of process.argv.slice(2)) {
  if (args.at(-1) === "--ttl" && /^-\d+$/.test(arg)) args[args.length - 1] = `--ttl=${arg}`;
  else args.push(arg);
}

const { values } = parseArgs({
  args,
  options: {
    org: { type: "string", default: "org_dev" },
    role: { type: "string", default: "admin" },
    user: { type: "string", default: "user_dev" },
    ttl: { type: "string", default: "3600" },
    v1: { type: "boolean", default: false },
    key: { type: "string", default: ".keygate/clerk-dev-private.pem" },
  },
});

if (!existsSync(values.key)) {
  console.error(
    `No private key at ${values.key}: run \`npm run setup\` (with no .dev.vars) first.`,
  );
  process.exit(1);
}

const ttl = Number(values.ttl);
if (!Number.isInteger(ttl)) {
  console.error(
    `--ttl takes whole seconds (e.g. 3600, or -10 for an expired token), not ${values.ttl}.`,
  );
  process.exit(1);
}

const role = values.role.replace(/^org:/, "");
if (role !== "admin" && role !== "member") {
  console.error(`--role is admin or member, not ${values.role}.`);
  process.exit(1);
}
const token = await mintSessionToken(
  readFileSync(values.key, "utf8"),
  {
    organizationId: values.org,
    userId: values.user,
    role,
    version: values.v1 ? 1 : 2,
  },
  { nowMs: Date.now(), ttlSeconds: ttl },
);
process.stdout.write(`${token}\n`);
