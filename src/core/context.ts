import type { Database } from "../db/database";
import type { IsolateView } from "./verify/feed";

export type { Database } from "../db/database";

/**
 * What every core operation needs: storage, config, background work and the clock. Built by
 * the composition root (src/context.ts), the same way at every door.
 */
export interface Core {
  /** Bindings behind the storage-fault guard, vars and secrets. */
  env: Env;
  db: Database;
  /** Work that may follow the response (cache refills, verification counts). */
  waitUntil(promise: Promise<unknown>): void;
  /** "Now" in ms. Requests use the wall clock; cron runs use the controller's scheduledTime. */
  now(): number;
  /** This isolate's caches and what it heard of changes (tests build other isolates). */
  isolate: IsolateView;
}

export { defaultKeyPrefix } from "./config";
