/**
 * Storage faults are known by where they come from, not by what they say: every error that
 * leaves the D1 or KV binding (thrown, or a rejected promise) is remembered, so the error
 * handler answers 503 for it whatever its message ("D1_ERROR: …", "Network connection
 * lost.", "internal error; reference = …") and 500 only for Keygate's own bugs.
 */
const faults = new WeakSet<object>();

function mark(error: unknown): unknown {
  const fault = typeof error === "object" && error !== null ? error : new Error(String(error));
  faults.add(fault);
  return fault;
}

/** True for an error raised by a storage binding, or one wrapping it (drizzle's `cause`). */
export function isStorageFault(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 5 && typeof current === "object" && current !== null; depth++) {
    if (faults.has(current)) return true;
    if (current instanceof AggregateError && current.errors.some(isStorageFault)) return true;
    current = (current as { cause?: unknown }).cause;
  }
  return false;
}

type AnyFunction = (...args: unknown[]) => unknown;

/** Calls `fn`, marking whatever it throws or rejects with. */
function guarded(fn: AnyFunction, self: object, args: unknown[]): unknown {
  let result: unknown;
  try {
    result = fn.apply(self, args);
  } catch (error) {
    throw mark(error);
  }
  if (typeof (result as Promise<unknown> | undefined)?.then === "function") {
    return (result as Promise<unknown>).then(undefined, (error) => {
      throw mark(error);
    });
  }
  return result;
}

// Statements handed out by the guard, and the binding's own statement behind each: the
// binding's batch() takes only its own.
const statements = new WeakMap<object, object>();

function guardStatement(statement: object): object {
  const proxy = new Proxy(statement, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property === "bind") {
        return (...args: unknown[]) => guardStatement(guarded(value, target, args) as object);
      }
      return (...args: unknown[]) => guarded(value, target, args);
    },
  });
  statements.set(proxy, statement);
  return proxy;
}

function guardD1(db: D1Database): D1Database {
  return new Proxy(db, {
    get(target, property) {
      // Read on every call, so a test's vi.spyOn on the binding still takes effect.
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      if (property === "prepare") {
        return (...args: unknown[]) => guardStatement(guarded(value, target, args) as object);
      }
      if (property === "batch") {
        return (list: object[]) =>
          guarded(value, target, [list.map((s) => statements.get(s) ?? s)]);
      }
      return (...args: unknown[]) => guarded(value, target, args);
    },
  });
}

function guardKv(kv: KVNamespace): KVNamespace {
  return new Proxy(kv, {
    get(target, property) {
      const value = Reflect.get(target, property, target);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => guarded(value, target, args);
    },
  });
}

// One guarded view per binding object: drizzle instances are cached by binding identity.
const guardedBindings = new WeakMap<object, object>();

function once<T extends object>(binding: T, guard: (binding: T) => T): T {
  let view = guardedBindings.get(binding) as T | undefined;
  if (!view) {
    view = guard(binding);
    guardedBindings.set(binding, view);
  }
  return view;
}

const guardedEnvs = new WeakMap<object, object>();

/** The env with its storage bindings behind the fault guard; everything else read through. */
export function withStorageFaults<E extends { DB: D1Database; KEY_CACHE: KVNamespace }>(env: E): E {
  let view = guardedEnvs.get(env) as E | undefined;
  if (!view) {
    view = new Proxy(env, {
      get(target, property, receiver) {
        if (property === "DB") return once(target.DB, guardD1);
        if (property === "KEY_CACHE") return once(target.KEY_CACHE, guardKv);
        return Reflect.get(target, property, receiver);
      },
    });
    guardedEnvs.set(env, view);
  }
  return view;
}
