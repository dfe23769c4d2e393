// Key management by capability: issue, find and list, change and revoke, rotate.
export { revokeKey, type UpdateKeyInput, updateKey } from "./change";
export {
  adjustKeyCredits,
  getKeyWithBalance,
  listedCredits,
  listKeysWithBalances,
  liveCredits,
} from "./credits";
export { dueNotice, EXPIRY_BATCH, expiryNoticeAt, sendExpiryNotices } from "./expiry";
export { findKey, getKey, type KeyPlace } from "./find";
export { type CreateKeyInput, createKey } from "./issue";
export { type KeyFilter, listKeys } from "./list";
export { type ApiKeyObject, type GovernanceRow, toApiKey, toGovernanceFields } from "./present";
export { lostRotationRace, rotateKey, rotateRow, SCHEDULED_GRACE_MS } from "./rotate";
export { isActive, isChangeable, isLive, type KeySource, mayChangeKey } from "./rules";
export { ROTATION_BATCH, rotateDueKeys, SWEEP_BATCH, sweepExpiredGrace } from "./scheduled";
