// Mint a dev Clerk-shaped session token, signed with the key scripts/setup-dev.mjs made.
//   npm run token -- [--org org_dev] [--role admin] [--user user_dev] [--v1] [--ttl 3600]
//   (--ttl in seconds; negative for an already expired token: --ttl -10)
import { createPrivateKey, createSign } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { parseArgs } from "node:util";

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

const b64url = (value) => Buffer.from(value).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const role = values.role.replace(/^org:/, "");
const claims = {
  sub: values.user,
  sid: `sess_dev_${now}`,
  iat: now,
  nbf: now - 5,
  exp: now + ttl,
  iss: "https://clerk.keygate.local",
  ...(values.v1
    ? { v: 1, org_id: values.org, org_role: `org:${role}` }
    : { v: 2, o: { id: values.org, rol: role, slg: values.org } }),
};
const head = `${b64url(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "ins_dev" }))}.${b64url(JSON.stringify(claims))}`;
const signature = createSign("RSA-SHA256")
  .update(head)
  .sign(createPrivateKey(readFileSync(values.key)), "base64url");
process.stdout.write(`${head}.${signature}\n`);
