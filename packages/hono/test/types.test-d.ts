// Type-level: @keygate/hono's public types are Keygate's own, written out so that a consumer
// never imports Keygate's source. Checked by `npm run typecheck` (tsc), not at run time.
import type { KeygateBinding, VerifyCode, VerifyOptions, VerifyResult } from "@keygate/hono";
import type {
  VerifyCode as KeygateCode,
  VerifyOptions as KeygateOptions,
  VerifyResult as KeygateResult,
  KeyService,
} from "../../../src/rpc/key-service";

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;

type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/**
 * Once Keygate's VerifyResult has SPEC Part 2's members (the governance work), the two must be
 * equal; until then, every member Keygate already has must match and its codes be ours.
 */
type Common = Exclude<keyof KeygateResult, "code">;
type ResultMatches = "enabled" extends keyof KeygateResult
  ? Equal<VerifyResult, KeygateResult> & Equal<VerifyCode, KeygateCode>
  : Equal<Pick<VerifyResult, Common>, Pick<KeygateResult, Common>> &
      (KeygateCode extends VerifyCode ? true : false);
export const resultMatches: ResultMatches = true;

/** Every option Keygate's RPC verify takes, the package passes with the same type. */
type OptionsMatch = Mutual<
  Pick<Required<VerifyOptions>, keyof KeygateOptions>,
  Required<KeygateOptions>
>;
export const optionsMatch: OptionsMatch = true;

/** Keygate's KeyService (what a service binding reaches) is a KeygateBinding (with Part 2). */
type ServiceIsBinding = "enabled" extends keyof KeygateResult
  ? KeyService extends KeygateBinding
    ? true
    : false
  : true;
export const serviceIsBinding: ServiceIsBinding = true;
