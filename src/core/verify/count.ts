import { countVerification } from "../analytics/aggregator";
import type { Core } from "../context";
import type { VerifyOptions } from "./options";
import { type VerifyContext, verifyKey } from "./verify";

/**
 * A verification call (HTTP verify and RPC): the verdict, then counted for analytics.
 * Counting never awaits and never throws. A key used as a management or verifier
 * credential goes through `verifyKey` alone (see authenticate), so it never counts.
 */
export async function verifyAndCount(
  core: Core,
  key: string,
  options: VerifyOptions = {},
  context: VerifyContext = {},
) {
  const outcome = await verifyKey(core, key, options, context);
  const { result, record } = outcome;
  // No record: MALFORMED or NOT_FOUND, never counted (a key hidden by a pin is NOT_FOUND too).
  if (record) {
    countVerification(core, {
      organizationId: record.organizationId,
      projectId: record.projectId,
      keyId: record.id,
      code: result.code,
      at: core.now(),
      credits: result.credits?.remaining ?? null,
    });
  }
  return outcome;
}
