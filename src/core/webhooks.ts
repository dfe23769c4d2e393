import { and, eq, inArray, isNotNull, isNull, lte, ne, or } from "drizzle-orm";
import { fairBatch } from "../db/fair";
import {
  type ApiKeyRow,
  type DELIVERY_STATUSES,
  projects,
  type WebhookDeliveryRow,
  webhookDeliveries,
  webhookEndpoints,
} from "../db/schema";
import { auditedChange } from "./audit";
import type { Core } from "./context";
import { decrypt, encrypt, signWebhook } from "./crypto";
import { conflict, notFound } from "./errors";
import type { PageRequest } from "./pagination";
import { type Actor, type Principal, requireScope } from "./principal";
import { findProject, listProjectRows, webhookSecrets } from "./projects";
import { iso } from "./time";

export const ROTATED_EVENT = "api_key.rotated";
/** Attempts before a delivery is given up as `failed`. */
export const MAX_ATTEMPTS = 8;
/** Backoff after attempt n (1-based): 30 s · 2^(n-1), so 30 s, 1 min, 2 min … 32 min. */
export const BACKOFF_BASE_MS = 30_000;
export const DELIVERY_TIMEOUT_MS = 10_000;
/**
 * Deliveries attempted per cron run, shared round-robin across organizations; the rest wait
 * for the next minute.
 */
export const DELIVERY_BATCH = 25;
/**
 * A claimed delivery is invisible to other runs this long after the claim's real time (a run
 * that dies frees it). Longer than DELIVERY_TIMEOUT_MS, so no attempt outlives its lease.
 */
export const LEASE_MS = 60_000;

export type DeliveryStatus = (typeof DELIVERY_STATUSES)[number];

/** The outbox row for a rotation. The new plaintext is stored only AES-GCM encrypted. */
export async function rotationDeliveryValues(
  core: Core,
  event: { old: ApiKeyRow; fresh: ApiKeyRow; plaintext: string },
) {
  const { old, fresh } = event;
  const now = core.now();
  return {
    id: `msg_${crypto.randomUUID().replaceAll("-", "")}`,
    organizationId: old.organizationId,
    projectId: old.projectId as string,
    keyId: fresh.id,
    eventType: ROTATED_EVENT,
    url: old.rotationWebhookUrl as string,
    payload: {
      type: ROTATED_EVENT,
      timestamp: iso(now),
      data: {
        old_key_id: old.id,
        new_key_id: fresh.id,
        key_prefix: fresh.keyPrefix,
        organization_id: fresh.organizationId,
        project_id: fresh.projectId,
        environment_id: fresh.environmentId,
        name: fresh.name,
        scopes: fresh.scopes,
        expires_at: iso(fresh.expiresAt),
        created_at: iso(fresh.createdAt),
        grace_expires_at: iso(old.graceExpiresAt),
        next_rotation_at: iso(fresh.nextRotationAt),
      },
    },
    encryptedKey: await encrypt(core.env.ENCRYPTION_KEY, event.plaintext),
    status: "pending" as DeliveryStatus,
    attempts: 0,
    nextAttemptAt: now,
    createdAt: now,
    updatedAt: now,
  };
}

export const listDeliveries = (
  core: Core,
  principal: Principal,
  projectId: string,
  page: PageRequest,
) =>
  listProjectRows(
    core,
    principal,
    projectId,
    { table: webhookDeliveries, kind: "webhook_deliveries", order: "newest" },
    page,
  );

/**
 * Whether a delivery can be queued again: not delivered, and — for a rotation delivery — its
 * key still held (an event delivery carries none).
 */
export const isRetryable = (
  d: Pick<WebhookDeliveryRow, "status" | "endpointId" | "encryptedKey">,
) => d.status !== "delivered" && (d.endpointId !== null || d.encryptedKey !== null);

/**
 * Queue a failed delivery again now, with a fresh attempt budget. A rotation delivery only
 * while its key is still held (a delivery erases it when it is given up), so only a pending
 * one can be retried — or a failed one whose key has not been erased. An event delivery
 * carries no key: any that has not succeeded can be retried.
 */
export async function retryDelivery(
  core: Core,
  actor: Actor,
  projectId: string,
  deliveryId: string,
) {
  requireScope(actor.principal, "projects:write");
  const project = await findProject(core, actor.principal, projectId);
  const delivery = await core.db.query.webhookDeliveries.findFirst({
    where: and(
      eq(webhookDeliveries.organizationId, project.organizationId),
      eq(webhookDeliveries.projectId, project.id),
      eq(webhookDeliveries.id, deliveryId),
    ),
  });
  if (!delivery) throw notFound("Webhook delivery");
  if (delivery.status === "delivered") throw conflict("This delivery has already succeeded.");
  // Only a rotation delivery carries a key (an event delivery has none to lose).
  const rotation = delivery.endpointId === null;
  if (!isRetryable(delivery)) {
    throw conflict(
      "The key of this delivery was erased when it was given up; rotate the key again.",
    );
  }
  const now = core.now();
  const row = await auditedChange<WebhookDeliveryRow>(
    core,
    actor,
    core.db
      .update(webhookDeliveries)
      // Asked for now: claimable at once, even while an earlier attempt is in flight.
      .set({
        status: "pending",
        attempts: 0,
        nextAttemptAt: now,
        leasedUntil: null,
        updatedAt: now,
      })
      .where(
        and(
          eq(webhookDeliveries.organizationId, delivery.organizationId),
          eq(webhookDeliveries.id, delivery.id),
          // Re-checked here: an attempt may have delivered it (and erased the key) since.
          ne(webhookDeliveries.status, "delivered"),
          rotation ? isNotNull(webhookDeliveries.encryptedKey) : undefined,
        ),
      )
      .returning(),
    {
      action: "webhook_delivery.retried",
      targetType: "webhook_delivery",
      targetId: delivery.id,
      projectId: project.id,
    },
  );
  if (!row) throw conflict("This delivery was completed or given up while it was being retried.");
  return row;
}

/** No attempt in flight, judged on the wall clock (a run's instant may lie ahead of it). */
const notLeased = () =>
  or(isNull(webhookDeliveries.leasedUntil), lte(webhookDeliveries.leasedUntil, Date.now()));

export const backoffMs = (attempts: number) => BACKOFF_BASE_MS * 2 ** (attempts - 1);

/**
 * Deliver due outbox rows: claim each with a conditional update (so overlapping runs never
 * send the same attempt twice), POST it signed per Standard Webhooks, then record the
 * outcome. A slow or failing receiver only costs its own row, and the batch is shared
 * round-robin across organizations, so a tenant's backlog only delays its own deliveries.
 */
export async function deliverDue(core: Core): Promise<{ attempted: number; delivered: number }> {
  const now = core.now();
  const isDue = and(
    eq(webhookDeliveries.status, "pending"),
    lte(webhookDeliveries.nextAttemptAt, now),
    notLeased(),
  );
  const columns = {
    id: webhookDeliveries.id,
    organizationId: webhookDeliveries.organizationId,
    dueAt: webhookDeliveries.nextAttemptAt,
    seq: webhookDeliveries.seq,
  };
  const due = await core.db
    .select()
    .from(webhookDeliveries)
    .where(
      inArray(webhookDeliveries.id, fairBatch(webhookDeliveries, columns, isDue, DELIVERY_BATCH)),
    );
  // Settled, not all: one row's storage error must not abandon the others mid-flight.
  const settled = await Promise.allSettled(due.map((row) => deliverOne(core, row, now)));
  const outcomes = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
  const failures = settled.flatMap((s) => (s.status === "rejected" ? [s.reason] : []));
  if (failures.length > 0) throw new AggregateError(failures, "Some deliveries failed.");
  return {
    attempted: outcomes.filter((o) => o !== null).length,
    delivered: outcomes.filter(Boolean).length,
  };
}

/** null: another run claimed it first; true: delivered; false: failed this attempt. */
async function deliverOne(
  core: Core,
  row: WebhookDeliveryRow,
  now: number,
): Promise<boolean | null> {
  const attempt = row.attempts + 1;
  // The lease is real time at both ends (taken here, judged by notLeased): a late run would
  // otherwise lease a row into the past, and a run whose instant lies ahead of the wall clock
  // would see a lease still running as over, and send the attempt again.
  const leaseUntil = Date.now() + LEASE_MS;
  const claimed = await core.db
    .update(webhookDeliveries)
    .set({
      attempts: attempt,
      nextAttemptAt: Math.max(now, Date.now()) + LEASE_MS,
      leasedUntil: leaseUntil,
      lastAttemptAt: now,
      updatedAt: now,
    })
    .where(
      and(
        eq(webhookDeliveries.organizationId, row.organizationId),
        eq(webhookDeliveries.id, row.id),
        eq(webhookDeliveries.status, "pending"),
        eq(webhookDeliveries.attempts, row.attempts),
        notLeased(),
      ),
    )
    .returning({ id: webhookDeliveries.id });
  if (claimed.length === 0) return null;

  let statusCode: number | null = null;
  let error: string | null = null;
  let giveUp = false;
  try {
    const response = await send(core, row);
    statusCode = response.status;
    await response.body?.cancel();
    if (!response.ok) error = `Receiver answered ${response.status}`;
  } catch (cause) {
    giveUp = cause instanceof GiveUp;
    error = giveUp
      ? (cause as GiveUp).message
      : cause instanceof Error
        ? `${cause.name}: ${cause.message}`
        : String(cause);
  }

  const delivered = error === null;
  const givenUp = !delivered && (giveUp || attempt >= MAX_ATTEMPTS || statusCode === 410);
  await core.db
    .update(webhookDeliveries)
    .set({
      status: delivered ? "delivered" : givenUp ? "failed" : "pending",
      lastStatusCode: statusCode,
      lastError: error?.slice(0, 500) ?? null,
      nextAttemptAt: delivered || givenUp ? null : now + backoffMs(attempt),
      leasedUntil: null,
      deliveredAt: delivered ? now : null,
      // The key is erased as soon as it is no longer needed (and otherwise left untouched:
      // never sent back to D1 as a parameter).
      ...(delivered || givenUp ? { encryptedKey: null } : {}),
      updatedAt: now,
    })
    .where(
      and(
        eq(webhookDeliveries.organizationId, row.organizationId),
        eq(webhookDeliveries.id, row.id),
        // A success is recorded whatever happened meanwhile (nothing is sent twice); a
        // failure only while the row is still this attempt's, so it cannot undo a retry
        // queued meanwhile (attempts back to 0).
        delivered ? undefined : eq(webhookDeliveries.attempts, attempt),
      ),
    );
  return delivered;
}

/** An attempt that must not be tried again: the delivery is given up at once. */
class GiveUp extends Error {
  override name = "GiveUp";
}

/**
 * The body of a delivery and where it goes. A rotation delivery merges its decrypted key into
 * its payload and goes to the key's own URL; an event delivery goes as stored, to its
 * endpoint's current URL — and is given up when the endpoint was deleted or disabled since.
 */
async function target(core: Core, row: WebhookDeliveryRow): Promise<{ url: string; body: string }> {
  if (row.endpointId !== null) {
    const endpoint = await core.db.query.webhookEndpoints.findFirst({
      where: and(
        eq(webhookEndpoints.organizationId, row.organizationId),
        eq(webhookEndpoints.projectId, row.projectId),
        eq(webhookEndpoints.id, row.endpointId),
      ),
    });
    if (!endpoint) throw new GiveUp("The webhook endpoint was deleted.");
    if (!endpoint.enabled) throw new GiveUp("The webhook endpoint is disabled.");
    return { url: endpoint.url, body: JSON.stringify(row.payload) };
  }
  if (row.encryptedKey === null) throw new Error("The key of this delivery was erased.");
  const key = await decrypt(core.env.ENCRYPTION_KEY, row.encryptedKey);
  const payload = row.payload as { data: Record<string, unknown> };
  return { url: row.url, body: JSON.stringify({ ...payload, data: { ...payload.data, key } }) };
}

async function send(core: Core, row: WebhookDeliveryRow): Promise<Response> {
  const project = await core.db.query.projects.findFirst({
    where: and(eq(projects.organizationId, row.organizationId), eq(projects.id, row.projectId)),
  });
  if (!project) throw new Error("The project of this delivery no longer exists.");
  const { url, body } = await target(core, row);
  // The attempt's real send time, not the run's scheduledTime: receivers check it against
  // their own clock (Standard Webhooks libraries refuse anything 5 min off), and a run may be
  // scheduled for another instant (a late cron, or `--test-scheduled` with `time=`).
  const timestamp = Math.floor(Date.now() / 1000);
  const secrets = await webhookSecrets(core, project);
  const signatures = [await signWebhook(secrets.current, row.id, timestamp, body)];
  if (secrets.previous)
    signatures.push(await signWebhook(secrets.previous, row.id, timestamp, body));
  return fetch(url, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "user-agent": "Keygate-Webhooks/1",
      "webhook-id": row.id,
      "webhook-timestamp": String(timestamp),
      "webhook-signature": signatures.join(" "),
    },
    body,
    redirect: "manual",
    signal: AbortSignal.timeout(DELIVERY_TIMEOUT_MS),
  });
}
