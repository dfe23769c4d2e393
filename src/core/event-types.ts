// The key lifecycle events a project's webhook endpoints subscribe to (SPEC Part 3 "Key
// lifecycle events"). No storage, no routes: whatever produces or fans out events imports this.

/** Every event type, in the order the SPEC lists them. */
export const KEY_EVENT_TYPES = [
  "api_key.created",
  "api_key.updated",
  "api_key.revoked",
  "api_key.rotated",
  "api_key.expiring",
  "api_key.expired",
  "api_key.leaked",
  "api_key.credits_exhausted",
] as const;

export type KeyEventType = (typeof KEY_EVENT_TYPES)[number];

/** The subscription to every event type, now and later: `events: ["*"]`. */
export const ALL_EVENTS = "*";

export const isKeyEventType = (value: string): value is KeyEventType =>
  (KEY_EVENT_TYPES as readonly string[]).includes(value);

/** Whether an endpoint with these subscriptions takes events of `type` (its `enabled` aside). */
export const subscribes = (endpoint: { events: readonly string[] }, type: string): boolean =>
  endpoint.events.includes(ALL_EVENTS) || endpoint.events.includes(type);
