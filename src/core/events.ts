// Key lifecycle events (SPEC Part 3): the outbox rows a key change queues for its project's
// webhook endpoints, written in the same D1 batch as the change and only if it committed.
// Delivery is the outbox's (core/webhooks.ts): signed, retried, fair, leased.
import { and, eq, type SQL, sql } from "drizzle-orm";
import { insertSelect } from "../db/conditional";
import {
  type ACTOR_TYPES,
  type ApiKeyRow,
  webhookDeliveries,
  webhookEndpoints,
} from "../db/schema";
import type { Core } from "./context";
import { ALL_EVENTS, type KeyEventType } from "./event-types";
import { toApiKey } from "./keys/present";
import { actorId, type Principal } from "./principal";
import { iso } from "./time";

/** Who caused an event: `data.actor`. */
export interface EventActor {
  type: (typeof ACTOR_TYPES)[number];
  id: string;
}

export const eventActor = (principal: Principal): EventActor => ({
  type: principal.type,
  id: actorId(principal),
});

/** The cron (scheduled rotation, grace sweep, expiry notices), as the actor of its events. */
export const SCHEDULER: EventActor = { type: "system", id: "scheduler" };

export interface KeyEvent {
  type: KeyEventType;
  /** The key as the change leaves it (never a plaintext: the row holds none). */
  key: ApiKeyRow;
  actor: EventActor;
  /**
   * Names this occurrence; with the endpoint's id it makes the `webhook-id`. Give a
   * deterministic one (see `occurrenceId`) where the same occurrence may be produced twice
   * (overlapping cron runs, a repeated report): its rows are then inserted once. Default: a
   * fresh random one.
   */
  occurrence?: string;
  /** Further members of `data`: `expires_in_days`, `leak`. */
  data?: Record<string, unknown>;
}

/** A deterministic occurrence id: 32 hex digits of SHA-256 over the parts. */
export async function occurrenceId(...parts: (string | number)[]): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(parts.map(String).join("\u0000")),
  );
  return [...new Uint8Array(digest).slice(0, 16)]
    .map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** The event body as stored and sent: `{ type, timestamp, data: { api_key, actor, … } }`. */
export function eventPayload(event: KeyEvent, now: number) {
  return {
    type: event.type,
    timestamp: iso(now),
    data: { api_key: toApiKey(event.key, now), actor: event.actor, ...event.data },
  };
}

/**
 * The outbox rows of one key event, as ONE statement to put in the change's batch after it:
 * a row per enabled endpoint of the key's project subscribed to the type (or to `*`),
 * inserted only if `condition` holds when the statement runs (e.g. `auditRecorded(id)`).
 * A `webhook-id` already queued is skipped, so a deterministic occurrence is queued once.
 * Undefined for an org-scoped key: it has no project, its events are in the audit log only.
 * Synchronous on purpose: a drizzle query is thenable, so an async function would run it.
 */
export function keyEventRows(core: Core, event: KeyEvent, condition: SQL) {
  const { key } = event;
  if (key.projectId === null) return undefined;
  const now = core.now();
  const occurrence = event.occurrence ?? crypto.randomUUID().replaceAll("-", "");
  const subscribed = sql`exists (select 1 from json_each(${webhookEndpoints.events})
    where value in (${event.type}, ${ALL_EVENTS}))`;
  return insertSelect(
    core.db,
    webhookDeliveries,
    {
      // ≤ 64 characters (ids in paths are): the occurrence's 32 and the endpoint's number.
      id: sql`'msg_' || ${occurrence} || '_' || ${webhookEndpoints.seq}`,
      organizationId: key.organizationId,
      projectId: key.projectId,
      keyId: key.id,
      eventType: event.type,
      endpointId: sql`${webhookEndpoints.id}`,
      url: sql`${webhookEndpoints.url}`,
      payload: eventPayload(event, now),
      status: "pending",
      attempts: 0,
      nextAttemptAt: now,
      createdAt: now,
      updatedAt: now,
    },
    sql`from ${webhookEndpoints} where ${and(
      eq(webhookEndpoints.organizationId, key.organizationId),
      eq(webhookEndpoints.projectId, key.projectId),
      eq(webhookEndpoints.enabled, true),
      subscribed,
      condition,
    )}`,
  ).onConflictDoNothing();
}
