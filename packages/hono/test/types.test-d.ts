// Type-level: @keygate/hono's public types are Keygate's own, written out so that a consumer
// never imports Keygate's source. Checked by `npm run typecheck` (tsc), not at run time.
import type { KeygateBinding, VerifyCode, VerifyOptions, VerifyResult } from "@keygate/hono";
import type { z } from "zod";
import type {
  VerifyCode as KeygateCode,
  VerifyOptions as KeygateOptions,
  KeyService,
} from "../../../src/rpc/key-service";
import type { VerifyResultSchema } from "../../../src/schemas/verify";

/** The verdict as Keygate's one schema describes it (HTTP and RPC answer this). */
type KeygateResult = z.output<typeof VerifyResultSchema>;

type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
type Mutual<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;

/** The verdict and its codes are exactly Keygate's. */
export const resultMatches: Equal<VerifyResult, KeygateResult> = true;
export const codesMatch: Equal<VerifyCode, KeygateCode> = true;

/** Every option Keygate's RPC verify takes, the package passes with the same type. */
export const optionsMatch: Mutual<
  Pick<Required<VerifyOptions>, keyof KeygateOptions>,
  Required<KeygateOptions>
> = true;
export const noOtherOptions: Exclude<keyof VerifyOptions, keyof KeygateOptions> extends never
  ? true
  : false = true;

/** Keygate's KeyService (what a service binding reaches) is a KeygateBinding. */
export const serviceIsBinding: KeyService extends KeygateBinding ? true : false = true;
