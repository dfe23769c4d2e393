import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { configDefaults, defineConfig } from "vitest/config";

// A fresh Clerk-shaped signing key per run: the Worker verifies with the public half through
// @clerk/backend, exactly as in production; tests sign session tokens with the private half.
const clerk = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 0x10001 });
const otherClerk = generateKeyPairSync("rsa", { modulusLength: 2048, publicExponent: 0x10001 });
const pem = (key: typeof clerk.publicKey | typeof clerk.privateKey, type: "spki" | "pkcs8") =>
  key.export({ type, format: "pem" }).toString();

export default defineConfig(async () => ({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        // A small limiter of the same kind as MANAGEMENT_RATE_LIMITER (3 000 per 10 s), so a
        // test spends a caller's budget in a few calls, well inside one window on any machine.
        ratelimits: {
          TEST_MANAGEMENT_LIMITER: { namespace_id: "9001", simple: { limit: 30, period: 10 } },
          TEST_VERIFY_MISS_LIMITER: { namespace_id: "9002", simple: { limit: 5, period: 60 } },
        },
        bindings: {
          TEST_MIGRATIONS: await readD1Migrations("migrations"),
          CLERK_JWT_KEY: pem(clerk.publicKey, "spki"),
          ENCRYPTION_KEY: randomBytes(32).toString("base64"),
          TEST_CLERK_PRIVATE_KEY: pem(clerk.privateKey, "pkcs8"),
          TEST_OTHER_PRIVATE_KEY: pem(otherClerk.privateKey, "pkcs8"),
          // Every verification's counts leave at once, so a test that awaits its request has
          // handed them to the queue (the batching itself is tested with its own window).
          VERIFICATION_BATCH_MS: "0",
        },
        // A consumer's binding pinned to one organization by props (test/pinning.test.ts),
        // exactly as `[[services]] … [services.props] organization_id = "…"` configures it.
        // TEST_KEYGATE: the same entrypoint without a pin (packages/hono tests).
        serviceBindings: {
          KEYGATE_PINNED: {
            name: "keygate",
            entrypoint: "KeyService",
            props: { organization_id: "org_pinned" },
          },
          TEST_KEYGATE: { name: "keygate", entrypoint: "KeyService" },
        },
        // Deliver queued batches within 50 ms instead of wrangler.toml's 1 s.
        queueConsumers: { "keygate-verification-events": { maxBatchTimeout: 0.05 } },
      },
    }),
  ],
  // Tests use the packages' sources; consumers get their built dist/.
  resolve: {
    alias: {
      "@keygate/hono": new URL("./packages/hono/src/index.ts", import.meta.url).pathname,
      "@keygate/client": new URL("./packages/client/src/index.ts", import.meta.url).pathname,
    },
  },
  test: {
    // bench/ holds `npm run bench:d1` (statements counted at the D1 binding): not a test.
    exclude: process.env.BENCH_D1
      ? configDefaults.exclude
      : [...configDefaults.exclude, "bench/**"],
    setupFiles: ["./test/apply-migrations.ts"],
    // Every cron run logs its one summary line; tests that care spy on console themselves.
    onConsoleLog: (log: string) => !log.startsWith("cron run "),
    testTimeout: 20_000,
    hookTimeout: 30_000,
  },
}));
