import type { Core } from "../context";

/**
 * The producer side of verification analytics. Each isolate counts verifications in memory
 * per (key, UTC minute, code) and hands the counts to the `VERIFICATION_EVENTS` queue in
 * batches bounded by size and by time. Nothing here is awaited by a verification: the send
 * runs in `ctx.waitUntil`, and a failed send loses that batch only.
 */

/** One verification of a genuine key, as analytics sees it. */
export interface CountedVerification {
  organizationId: string;
  /** null for an org-scoped key. */
  projectId: string | null;
  keyId: string;
  code: string;
  /** When it was answered, ms. */
  at: number;
  /** The key's credits after it, for a key with credits (what a key list then shows). */
  credits?: number | null;
}

/**
 * Per key in a batch: organization, project, the last VALID answer (ms) or null, and the
 * key's credits after its last counted answer `[remaining, at]` (absent or null without).
 */
export type KeyOwner = [
  organizationId: string,
  projectId: string | null,
  lastValidAt: number | null,
  credits?: [remaining: number, at: number] | null,
];

/** What travels on the queue: one isolate's batch. */
export interface VerificationMessage {
  v: 1;
  /** Chosen by the producer, so a redelivered message is known by its body alone. */
  id: string;
  keys: Record<string, KeyOwner>;
  /** [key id, minute start (ms), code, count]. */
  counts: [keyId: string, minute: number, code: string, count: number][];
}

/** Codes that never count: the key is not genuine (or not shown to exist, under a pin). */
const UNCOUNTED = new Set(["MALFORMED", "NOT_FOUND"]);

export const MINUTE_MS = 60_000;

/** A batch is sent once it is this old (ms), unless `VERIFICATION_BATCH_MS` says otherwise. */
export const DEFAULT_BATCH_WINDOW_MS = 5_000;

/**
 * At most this many (key, minute, code) counts in one batch: under 100 KB with 64-character
 * organization ids; longer ids split the batch into several messages (MAX_MESSAGE_BYTES).
 */
export const MAX_BATCH_ENTRIES = 400;

// Optional at runtime: a Worker deployed without the queue binding still verifies.
const queueOf = (core: Core): Queue<VerificationMessage> | undefined =>
  core.env.VERIFICATION_EVENTS;

export function batchWindowMs(core: Core): number {
  const configured = Number(core.env.VERIFICATION_BATCH_MS);
  return Number.isFinite(configured) && configured >= 0 ? configured : DEFAULT_BATCH_WINDOW_MS;
}

/**
 * A verification that does not send the batch waits for it (in its own waitUntil) if no
 * other did in the last second: a few waiters per batch, so that one cut short does not
 * strand it, and never one timer per verification (workerd allows 10 000 per isolate).
 */
export const WAITER_SPACING_MS = 1_000;

class Batch {
  /** When the latest waiter for this batch was started. */
  waiterAt: number | null = null;
  readonly keys = new Map<string, KeyOwner>();
  readonly counts = new Map<string, [string, number, string, number]>();

  constructor(readonly openedAt: number) {}

  add(event: CountedVerification): void {
    const minute = Math.floor(event.at / MINUTE_MS) * MINUTE_MS;
    const slot = `${event.keyId} ${minute} ${event.code}`;
    const entry = this.counts.get(slot);
    if (entry) entry[3]++;
    else this.counts.set(slot, [event.keyId, minute, event.code, 1]);
    const key: KeyOwner = this.keys.get(event.keyId) ?? [
      event.organizationId,
      event.projectId,
      null,
    ];
    if (event.code === "VALID") key[2] = Math.max(key[2] ?? event.at, event.at);
    if (typeof event.credits === "number" && (key[3] == null || key[3][1] <= event.at)) {
      key[3] = [event.credits, event.at];
    }
    this.keys.set(event.keyId, key);
  }

  get full(): boolean {
    return this.counts.size >= MAX_BATCH_ENTRIES;
  }

  /** One message, or several if unusually long ids would take it past the size limit. */
  toMessages(): VerificationMessage[] {
    return split([...this.counts.values()], this.keys);
  }
}

/** Under Queues' 128 KB per message, with room for its metadata. */
export const MAX_MESSAGE_BYTES = 120_000;

function split(
  counts: VerificationMessage["counts"],
  owners: Map<string, KeyOwner>,
): VerificationMessage[] {
  const keys: VerificationMessage["keys"] = {};
  for (const [keyId] of counts) {
    keys[keyId] = owners.get(keyId) as VerificationMessage["keys"][string];
  }
  const message: VerificationMessage = { v: 1, id: crypto.randomUUID(), keys, counts };
  const bytes = new TextEncoder().encode(JSON.stringify(message)).length;
  if (bytes <= MAX_MESSAGE_BYTES || counts.length < 2) return [message];
  const half = Math.ceil(counts.length / 2);
  return [...split(counts.slice(0, half), owners), ...split(counts.slice(half), owners)];
}

// The isolate's open batch. Swapped out synchronously before a send, so two sends never
// carry the same counts.
let open: Batch | null = null;

/**
 * Count one verification. Called on the verify path: it never throws and never awaits. The
 * batch goes out from this call's `waitUntil` when it is full or old enough; otherwise a call's
 * `waitUntil` waits out the rest of the window (at most the window) and sends it then, so a
 * batch whose isolate receives no further request still leaves.
 */
export function countVerification(core: Core, event: CountedVerification): void {
  try {
    if (UNCOUNTED.has(event.code) || !queueOf(core)) return;
    const batch = open ?? new Batch(event.at);
    open = batch;
    batch.add(event);
    const window = batchWindowMs(core);
    const age = event.at - batch.openedAt;
    if (batch.full || age >= window) {
      core.waitUntil(send(core, take(batch)));
    } else if (batch.waiterAt === null || event.at - batch.waiterAt >= WAITER_SPACING_MS) {
      batch.waiterAt = event.at;
      core.waitUntil(sendWhenDue(core, batch, window - age));
    }
  } catch (error) {
    // Analytics is best effort: a verification never fails because of it.
    console.warn("verification analytics: could not count", error);
  }
}

function take(batch: Batch): Batch {
  if (open === batch) open = null;
  return batch;
}

async function sendWhenDue(core: Core, batch: Batch, delayMs: number): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, delayMs)));
  // Another call sent it already (or it was sent by size): nothing to do.
  if (open !== batch) return;
  await send(core, take(batch));
}

async function send(core: Core, batch: Batch): Promise<void> {
  const queue = queueOf(core);
  if (!queue || batch.counts.size === 0) return;
  try {
    await Promise.all(
      batch.toMessages().map((message) => queue.send(message, { contentType: "json" })),
    );
  } catch (error) {
    // Lost: this batch's counts only. Verifications and later batches are unaffected.
    console.warn("verification analytics: a batch could not be queued", error);
  }
}

/** Sends whatever this isolate holds now (tests and benchmarks; never on the verify path). */
export async function flushVerificationCounts(core: Core): Promise<void> {
  if (open) await send(core, take(open));
}
