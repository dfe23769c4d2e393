import { WorkerEntrypoint } from "cloudflare:workers";
import { createCore } from "../core/context";
import { type VerifyOptions, type VerifyResult, verifyKey } from "../core/verify";
import type { Env } from "../env";

export type { VerifyCode, VerifyOptions, VerifyResult } from "../core/verify";

/**
 * What other Workers call over a service binding:
 * `[[services]] binding = "KEYGATE", service = "keygate", entrypoint = "KeyService"`.
 * Storage failure with nothing cached throws; it never answers `valid: true`.
 */
export class KeyService extends WorkerEntrypoint<Env> {
  async verify(key: string, options: VerifyOptions = {}): Promise<VerifyResult> {
    const core = createCore(this.env, this.ctx);
    const { result } = await verifyKey(core, key, {
      requiredScopes: options.requiredScopes,
      projectId: options.projectId,
    });
    return result;
  }

  /** A method that does nothing: the floor the benchmark compares verify against. */
  async ping(): Promise<"pong"> {
    return "pong";
  }
}
