import type { KeyService } from "../../../src/rpc/key-service";

declare global {
  namespace Cloudflare {
    interface Env {
      /** KeyService pinned by props to `org_pinned` (vitest.config.mts). */
      KEYGATE_PINNED: Service<KeyService>;
      /** KeyService without a pin. */
      TEST_KEYGATE: Service<KeyService>;
    }
  }
}
