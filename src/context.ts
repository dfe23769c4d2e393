// The one composition root: every door (HTTP, RPC, cron, queue) builds its Core here, so a
// guarantee added here (storage-fault marking, the clock, background work) holds at all of them.
import { drizzle } from "drizzle-orm/d1";
import { assertConfigured } from "./core/config";
import type { Core, Database } from "./core/context";
import { withStorageFaults } from "./core/storage-faults";
import { type IsolateView, isolateView } from "./core/verify/feed";
import * as schema from "./db/schema";

// Building a drizzle instance walks the whole schema: do it once per D1 binding, not per
// request. The instance keeps no per-request state.
const databases = new WeakMap<D1Database, Database>();

function databaseFor(d1: D1Database): Database {
  let db = databases.get(d1);
  if (!db) {
    db = drizzle(d1, { schema });
    databases.set(d1, db);
  }
  return db;
}

export interface DoorOptions {
  /** "Now" in ms: the wall clock for requests, the controller's scheduledTime for cron. */
  now?: () => number;
  /** Another isolate's caches, in tests; the module's own by default. */
  isolate?: IsolateView;
}

export function createCore(
  env: Env,
  ctx: { waitUntil(promise: Promise<unknown>): void },
  options: DoorOptions = {},
): Core {
  // A bad KEY_PREFIX would mint keys that can never verify: every door refuses to work.
  assertConfigured(env);
  const guarded = withStorageFaults(env);
  return {
    env: guarded,
    db: databaseFor(guarded.DB),
    waitUntil: (promise) => ctx.waitUntil(promise.catch(() => undefined)),
    now: options.now ?? Date.now,
    isolate: options.isolate ?? isolateView,
  };
}
