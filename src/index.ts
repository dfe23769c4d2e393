import { runScheduled } from "./cron";
import { createApp } from "./http/app";
import { runQueue } from "./queue";

export { KeyUsage } from "./durable/key-usage";
export { RevocationFeed } from "./durable/revocation-feed";
export type { VerifyCode, VerifyOptions, VerifyResult } from "./rpc/key-service";
export { KeyService } from "./rpc/key-service";

const app = createApp();

export default {
  fetch: app.fetch,
  async scheduled(controller, env, ctx) {
    await runScheduled(controller, env, ctx);
  },
  async queue(batch, env, ctx) {
    await runQueue(batch, env, ctx);
  },
} satisfies ExportedHandler<Env>;
