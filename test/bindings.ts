// Counting and breaking storage at the bindings themselves: a read path that production code
// forgets to announce is still counted, because nothing in src counts anything.
import { env } from "cloudflare:workers";
import { type MockInstance, vi } from "vitest";

export interface StorageCounts {
  /** KV reads (`get`) of KEY_CACHE. */
  kv: number;
  /** D1 reads: SELECT statements prepared (each query, in a batch or alone, is one). */
  d1: number;
}

type AnyFunction = (...args: unknown[]) => unknown;

/**
 * Wraps `object[method]` so `count` sees every call, on top of whatever it does now (the real
 * binding, or a fault a test injected). Returns the undo.
 */
function tap(object: object, method: string, count: (args: unknown[]) => void): () => void {
  const target = object as Record<string, AnyFunction>;
  const current = target[method] as AnyFunction;
  const mocked = vi.isMockFunction(current);
  const inner = mocked
    ? ((current as unknown as MockInstance<AnyFunction>).getMockImplementation() ?? current)
    : current;
  const spy = vi.spyOn(target, method) as unknown as MockInstance<AnyFunction>;
  spy.mockImplementation((...args: unknown[]) => {
    count(args);
    return inner.apply(object, args);
  });
  return () => (mocked ? spy.mockImplementation(inner) : spy.mockRestore());
}

/** Storage read while `run` runs (its background work included, if it awaits it). */
export async function storageDuring(run: () => Promise<unknown>): Promise<StorageCounts> {
  const counts = { kv: 0, d1: 0 };
  const untapKv = tap(env.KEY_CACHE, "get", () => counts.kv++);
  const untapD1 = tap(env.DB, "prepare", ([sql]) => {
    // The analytics queue consumer may run meanwhile (it reads only its own bookkeeping).
    if (/^\s*select\b/i.test(String(sql)) && !/verification_batches/.test(String(sql))) {
      counts.d1++;
    }
  });
  try {
    await run();
  } finally {
    untapKv();
    untapD1();
  }
  return counts;
}

/** Make D1 fail the way an outage does. */
export const breakD1 = () =>
  vi.spyOn(env.DB, "prepare").mockImplementation(() => {
    throw new Error("D1_ERROR: Network connection lost.");
  });

/** Make KV reads fail the way an outage does. */
export const breakKv = () =>
  vi.spyOn(env.KEY_CACHE, "get").mockImplementation(() => {
    throw new Error("KV GET failed: 503 Service Unavailable");
  });
