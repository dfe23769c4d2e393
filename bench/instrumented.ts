// The benchmark's Worker: Keygate as it ships, with its storage bindings counted from outside
// (production code counts nothing). `npm run bench` runs it in place of src/index.ts and reads
// the counts at GET /__bench/reads, through the consumer's pass-through in the RPC session.
import type { ExecutionContext } from "@cloudflare/workers-types";
import worker, { KeyService as ShippedKeyService } from "../src/index";

// The usage object is Keygate's own class: the binding names it in the bench's config too.
export { KeyUsage, RevocationFeed } from "../src/index";

/**
 * Storage reads, `usage`: KeyUsage objects asked (one per limited verification), and `feed`:
 * RevocationFeed shards asked (background polls, and announcements of changes).
 */
const reads = { kv: 0, d1: 0, usage: 0, feed: 0 };

function countD1(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (property !== "prepare" || typeof value !== "function") {
        return typeof value === "function" ? value.bind(target) : value;
      }
      return (sql: string) => {
        if (/^\s*select\b/i.test(sql)) reads.d1++;
        return value.call(target, sql);
      };
    },
  });
}

function countKv(kv: KVNamespace): KVNamespace {
  return new Proxy(kv, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property !== "get") return value.bind(target);
      return (...args: unknown[]) => {
        reads.kv++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

function countObjects<N extends object>(namespace: N, counter: "usage" | "feed"): N {
  return new Proxy(namespace, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property !== "get") return value.bind(target);
      return (...args: unknown[]) => {
        reads[counter]++;
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

// One counted view per env object, so Keygate's per-binding caches (drizzle) stay warm.
const views = new WeakMap<Env, Env>();
function counted(env: Env): Env {
  let view = views.get(env);
  if (!view) {
    const db = countD1(env.DB);
    const kv = countKv(env.KEY_CACHE);
    const usage = countObjects(env.KEY_USAGE, "usage");
    const feed = countObjects(env.REVOCATION_FEED, "feed");
    view = new Proxy(env, {
      get(target, property, receiver) {
        if (property === "DB") return db;
        if (property === "KEY_CACHE") return kv;
        if (property === "KEY_USAGE") return usage;
        if (property === "REVOCATION_FEED") return feed;
        return Reflect.get(target, property, receiver);
      },
    });
    views.set(env, view);
  }
  return view;
}

export class KeyService extends ShippedKeyService {
  constructor(ctx: ExecutionContext, env: Env) {
    super(ctx as never, counted(env));
  }
}

export default {
  ...worker,
  fetch(request, env, ctx) {
    if (new URL(request.url).pathname === "/__bench/reads") return Response.json(reads);
    return worker.fetch(request, counted(env), ctx);
  },
  scheduled(controller, env, ctx) {
    return worker.scheduled(controller, counted(env), ctx);
  },
} satisfies ExportedHandler<Env>;
