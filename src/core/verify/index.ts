export { type KeyRecord, memoryCache, publishKey } from "./cache";
export { verifyAndCount } from "./count";
export type { VerifyOptions, VerifyPin } from "./options";
export {
  VERIFY_CODES,
  type VerifyCode,
  type VerifyContext,
  type VerifyResult,
  verifyKey,
} from "./verify";
