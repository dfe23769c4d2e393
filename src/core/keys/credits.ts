// A key's credits as the management routes see them: the exact live balance, and the
// set / increment / decrement operations (SPEC Part 2 `POST /v1/api-keys/{keyID}/credits`).
import type { ApiKeyRow } from "../../db/schema";
import { auditInsert } from "../audit";
import type { Core } from "../context";
import { conflict } from "../errors";
import { type Actor, requireScope } from "../principal";
import type { CreditOperation } from "../usage";
import { adjustCredits, readCredits } from "../usage-store";
import { creditsSpecOf, lineageOf } from "../verify/cache";
import { findKey } from "./find";
import { requireChangeable, requireKeyAdmin } from "./rules";

/** The exact remaining credits (the usage object's), or null for a key without credits. */
export async function liveCredits(core: Core, key: ApiKeyRow): Promise<number | null> {
  const spec = creditsSpecOf(key);
  if (!spec) return null;
  return (await readCredits(core, lineageOf(key), spec)).remaining;
}

/** Atomic in the usage object: concurrent operations never lose an update. */
export async function adjustKeyCredits(
  core: Core,
  actor: Actor,
  keyId: string,
  operation: CreditOperation,
  value: number,
): Promise<{ remaining: number }> {
  const { principal } = actor;
  requireScope(principal, "keys:write");
  const key = await findKey(core, principal, keyId);
  requireKeyAdmin(principal, key, "change");
  requireChangeable(key, core.now());
  const spec = creditsSpecOf(key);
  if (!spec) throw conflict("This key has no credits (unlimited): set them with PATCH first.");
  const { remaining } = await adjustCredits(core, lineageOf(key), spec, operation, value);
  // After the fact: the usage object is not D1, so the two cannot be one batch.
  await auditInsert(core, actor, {
    action: "api_key.credits_adjusted",
    targetType: "api_key",
    targetId: key.id,
    projectId: key.projectId,
    metadata: { operation, value, remaining },
  });
  return { remaining };
}
