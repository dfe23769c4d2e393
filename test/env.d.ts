import type { D1Migration } from "cloudflare:test";

// The Worker's own Env comes from `npm run types` (src/worker-configuration.d.ts); the test
// pool adds these bindings (vitest.config.mts).
declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      TEST_CLERK_PRIVATE_KEY: string;
      TEST_OTHER_PRIVATE_KEY: string;
      TEST_MANAGEMENT_LIMITER: RateLimit;
      /** KeyService bound with props `{ organization_id: "org_pinned" }` (vitest.config.mts). */
      KEYGATE_PINNED: Service<import("../src/rpc/key-service").KeyService>;
    }
  }
}
