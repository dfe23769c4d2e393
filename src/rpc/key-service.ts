import { WorkerEntrypoint } from "cloudflare:workers";
import { createCore } from "../context";
import { isDomainError } from "../core/errors";
import {
  type VerifyOptions,
  VerifyOptionsSchema,
  type VerifyResult,
  verifyAndCount,
} from "../core/verify";

// Consumers import their types from this one module:
//   import type { KeyService, VerifyResult } from "<keygate>/src/rpc/key-service";
export type { VerifyCode, VerifyOptions, VerifyResult } from "../core/verify";

/** The options of one call, checked by the same schema as HTTP verify's body. */
function parseOptions(options: unknown): VerifyOptions {
  const parsed = VerifyOptionsSchema.safeParse(options ?? {});
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const field = issue?.path.map(String).join(".") || "options";
  throw new TypeError(`verify: ${field} ${issue?.message ?? "is invalid"}.`);
}

/**
 * What other Workers call over a service binding:
 * `[[services]] binding = "KEYGATE", service = "keygate", entrypoint = "KeyService"`.
 * Storage failure with nothing cached throws; it never answers `valid: true`.
 */
export class KeyService extends WorkerEntrypoint<Env> {
  /** The same verdict as `POST /v1/keys/verify`, without the HTTP round trip. */
  async verify(key: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const core = createCore(this.env, this.ctx);
    try {
      const { result } = await verifyAndCount(core, key, parseOptions(options));
      return result;
    } catch (error) {
      // The RPC door's mapping of a domain error: a plain Error with its message (what
      // crosses a service binding); anything else as it is.
      if (isDomainError(error)) throw new Error(error.message);
      throw error;
    }
  }

  /** Liveness: does nothing, so it is also the floor the benchmark compares verify against. */
  async ping(): Promise<"pong"> {
    return "pong";
  }
}
