import { type DrizzleD1Database, drizzle } from "drizzle-orm/d1";
import * as schema from "../db/schema";
import type { Env } from "../env";

export type Database = DrizzleD1Database<typeof schema>;

/** What every core operation needs: storage, config, background work and the clock. */
export interface Core {
  env: Env;
  db: Database;
  /** Work that may follow the response (last-used stamps, cache refills). */
  waitUntil(promise: Promise<unknown>): void;
  /** "Now" in ms. Requests use the wall clock; cron runs use the controller's scheduledTime. */
  now(): number;
}

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

export function createCore(
  env: Env,
  ctx: { waitUntil(promise: Promise<unknown>): void },
  now: () => number = Date.now,
): Core {
  return {
    env,
    db: databaseFor(env.DB),
    waitUntil: (promise) => ctx.waitUntil(promise.catch(() => undefined)),
    now,
  };
}

export const defaultKeyPrefix = (env: Env) => env.KEY_PREFIX || "capy";
