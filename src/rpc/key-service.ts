import { WorkerEntrypoint } from "cloudflare:workers";
import { createCore } from "../core/context";
import { storageReads } from "../core/key-cache";
import { type VerifyOptions, type VerifyResult, verifyKey } from "../core/verify";
import type { Env } from "../env";

// Consumers import their types from this one module:
//   import type { KeyService, VerifyResult } from "<keygate>/src/rpc/key-service";
export type { VerifyCode, VerifyOptions, VerifyResult } from "../core/verify";

/** Storage reads made by verification in the answering isolate since it started. */
export interface VerifyStats {
  kv: number;
  d1: number;
}

/**
 * What other Workers call over a service binding:
 * `[[services]] binding = "KEYGATE", service = "keygate", entrypoint = "KeyService"`.
 * Storage failure with nothing cached throws; it never answers `valid: true`.
 */
export class KeyService extends WorkerEntrypoint<Env> {
  /** The same verdict as `POST /v1/keys/verify`, without the HTTP round trip. */
  async verify(key: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const { requiredScopes, projectId } = options ?? {};
    if (requiredScopes !== undefined && !isStringArray(requiredScopes)) {
      throw new TypeError("requiredScopes must be an array of strings.");
    }
    if (projectId !== undefined && typeof projectId !== "string") {
      throw new TypeError("projectId must be a string.");
    }
    const core = createCore(this.env, this.ctx);
    const { result } = await verifyKey(core, key, { requiredScopes, projectId });
    return result;
  }

  /** A method that does nothing: the floor the benchmark compares verify against. */
  async ping(): Promise<"pong"> {
    return "pong";
  }

  /** Storage reads of this isolate's verifications, so a benchmark can count them per call. */
  async stats(): Promise<VerifyStats> {
    return { kv: storageReads.kv, d1: storageReads.d1 };
  }
}

const isStringArray = (value: unknown): value is string[] =>
  Array.isArray(value) && value.every((item) => typeof item === "string");
