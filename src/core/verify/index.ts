export { type KeyRecord, memoryCache, publishKey } from "./cache";
export { verifyAndCount } from "./count";
export { type VerifyOptions, VerifyOptionsSchema } from "./options";
export {
  VERIFY_CODES,
  type VerifyCode,
  type VerifyResult,
  verifyKey,
} from "./verify";
