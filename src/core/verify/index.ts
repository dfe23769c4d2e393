export { type KeyRecord, memoryCache, publishKey } from "./cache";
export { verifyAndCount } from "./count";
export {
  announceChanges,
  announceEntries,
  type ChangingKey,
  IsolateView,
  identityFeedName,
  isolateView,
  ownerFeedName,
} from "./feed";
export type { VerifyOptions, VerifyPin } from "./options";
export {
  VERIFY_CODES,
  type VerifyCode,
  type VerifyContext,
  type VerifyResult,
  verifyKey,
} from "./verify";
