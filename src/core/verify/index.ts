export { type KeyRecord, memoryCache, publishKey } from "./cache";
export { type VerifyOptions, VerifyOptionsSchema, type VerifyPin } from "./options";
export {
  LAST_USED_INTERVAL_MS,
  VERIFY_CODES,
  type VerifyCode,
  type VerifyContext,
  type VerifyResult,
  verifyKey,
} from "./verify";
