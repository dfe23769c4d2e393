import type { Core } from "../context";
import { MINUTE_MS, type VerificationMessage } from "./aggregator";

/**
 * The consumer side: adds a delivered batch of queue messages into D1 and advances
 * `last_used_at` from it, in one atomic D1 batch. Rows travel as one JSON parameter per
 * statement (json_each), so a statement carries hundreds of rows and stays far under D1's 100
 * bound parameters. Queues deliver at least once: the message ids go into
 * verification_batches in the same D1 batch, whose primary key refuses a second insert, so a
 * redelivered message rolls its batch back and is then dropped: it counts once.
 */

/** Rows per statement: about 120 bytes each as JSON, so a parameter stays near 60 KB. */
export const ROWS_PER_STATEMENT = 500;

export interface ConsumeResult {
  /** Messages added now. */
  added: number;
  /** Messages already added by an earlier delivery (or repeated in this one). */
  duplicates: number;
  /** Bodies that are not verification messages: dropped. */
  rejected: number;
}

export async function addVerificationMessages(
  core: Core,
  bodies: readonly unknown[],
): Promise<ConsumeResult> {
  const seen = new Set<string>();
  const messages: VerificationMessage[] = [];
  let rejected = 0;
  let duplicates = 0;
  for (const body of bodies) {
    if (!isVerificationMessage(body)) {
      rejected++;
      continue;
    }
    if (seen.has(body.id)) {
      duplicates++;
      continue;
    }
    seen.add(body.id);
    messages.push(body);
  }
  if (messages.length === 0) return { added: 0, duplicates, rejected };
  try {
    await core.env.DB.batch(statements(core, messages));
    return { added: messages.length, duplicates, rejected };
  } catch (error) {
    // Either a redelivery (a message id is already recorded) or a real failure.
    const done = await processedAmong(
      core,
      messages.map((message) => message.id),
    );
    if (done.size === 0) throw error;
    const fresh = messages.filter((message) => !done.has(message.id));
    const again = await addVerificationMessages(core, fresh);
    return { added: again.added, duplicates: duplicates + done.size, rejected };
  }
}

function statements(core: Core, messages: VerificationMessage[]) {
  const now = core.now();
  // Sum across messages first: one row per (key, minute, code) for the whole delivery.
  const counts = new Map<string, [string, string | null, string, number, string, number]>();
  const lastValid = new Map<string, [string, string, number]>();
  const creditsSeen = new Map<string, [string, string, number, number]>();
  for (const message of messages) {
    for (const [keyId, minute, code, n] of message.counts) {
      const owner = message.keys[keyId];
      if (!owner) continue;
      const slot = `${keyId} ${minute} ${code}`;
      const row = counts.get(slot);
      if (row) row[5] += n;
      else counts.set(slot, [owner[0], owner[1], keyId, minute, code, n]);
    }
    for (const [keyId, [organizationId, , at, credits]] of Object.entries(message.keys)) {
      if (credits) {
        const seen = creditsSeen.get(keyId);
        if (!seen || seen[3] <= credits[1]) {
          creditsSeen.set(keyId, [organizationId, keyId, credits[0], credits[1]]);
        }
      }
      if (at === null) continue;
      const previous = lastValid.get(keyId);
      if (!previous || previous[2] < at) lastValid.set(keyId, [organizationId, keyId, at]);
    }
  }
  const db = core.env.DB;
  const queries: D1PreparedStatement[] = [
    // First, so a redelivered message fails the whole batch before anything is added.
    db
      .prepare(
        "INSERT INTO verification_batches (id, processed_at) SELECT value, ?1 FROM json_each(?2)",
      )
      .bind(now, JSON.stringify(messages.map((message) => message.id))),
  ];
  for (const rows of chunks([...counts.values()], ROWS_PER_STATEMENT)) {
    queries.push(db.prepare(ADD_COUNTS).bind(JSON.stringify(rows)));
  }
  for (const rows of chunks([...lastValid.values()], ROWS_PER_STATEMENT)) {
    queries.push(db.prepare(STAMP_LAST_USED).bind(JSON.stringify(rows)));
  }
  for (const rows of chunks([...creditsSeen.values()], ROWS_PER_STATEMENT)) {
    queries.push(db.prepare(NOTE_CREDITS_SEEN).bind(JSON.stringify(rows)));
  }
  return queries;
}

// Rows: [organization_id, project_id, key_id, minute, code, count].
const ADD_COUNTS = `INSERT INTO verification_counts
    (organization_id, project_id, key_id, granularity, bucket_start, code, count)
  SELECT value ->> 0, value ->> 1, value ->> 2, 'minute', value ->> 3, value ->> 4, value ->> 5
    FROM json_each(?1) WHERE true
  ON CONFLICT (key_id, granularity, bucket_start, code)
    DO UPDATE SET count = verification_counts.count + excluded.count`;

/**
 * A stamp within this much of the new one is left alone: a hot key verified by hundreds of
 * isolates costs three row writes a minute, and last_used_at stays within 60 s of the truth
 * (this slack plus the batch window and the queue's delivery).
 */
export const LAST_USED_SLACK_MS = 20_000;

// Rows: [organization_id, key_id, last VALID answer]. last_used_at only moves forward, and
// only on VALID answers (the producer sends no time for a key that had none). Tenant-scoped
// like every write.
const STAMP_LAST_USED = `UPDATE api_keys SET last_used_at = used.at
  FROM (SELECT value ->> 0 AS organization_id, value ->> 1 AS key_id, value ->> 2 AS at
          FROM json_each(?1)) AS used
  WHERE api_keys.id = used.key_id AND api_keys.organization_id = used.organization_id
    AND (api_keys.last_used_at IS NULL OR api_keys.last_used_at <= used.at - ${LAST_USED_SLACK_MS})`;

// Rows: [organization_id, key_id, credits remaining, at]: the balance a key list shows
// (credits_seen), from the newest answer; a newer one already noted wins. Tenant-scoped.
const NOTE_CREDITS_SEEN = `UPDATE api_keys SET credits_seen = seen.remaining, credits_seen_at = seen.at
  FROM (SELECT value ->> 0 AS organization_id, value ->> 1 AS key_id, value ->> 2 AS remaining,
               value ->> 3 AS at FROM json_each(?1)) AS seen
  WHERE api_keys.id = seen.key_id AND api_keys.organization_id = seen.organization_id
    AND (api_keys.credits_seen_at IS NULL OR api_keys.credits_seen_at <= seen.at)`;

async function processedAmong(core: Core, ids: string[]): Promise<Set<string>> {
  const { results } = await core.env.DB.prepare(
    "SELECT id FROM verification_batches WHERE id IN (SELECT value FROM json_each(?1))",
  )
    .bind(JSON.stringify(ids))
    .all<{ id: string }>();
  return new Set(results.map((row) => row.id));
}

function* chunks<T>(items: T[], size: number): Generator<T[]> {
  for (let i = 0; i < items.length; i += size) yield items.slice(i, i + size);
}

const isId = (value: unknown): value is string =>
  typeof value === "string" && value.length > 0 && value.length <= 255;

/** The queue carries only what Keygate sent, but a consumer checks before it writes. */
function isVerificationMessage(body: unknown): body is VerificationMessage {
  if (typeof body !== "object" || body === null) return false;
  const message = body as Partial<VerificationMessage>;
  if (message.v !== 1 || !isId(message.id)) return false;
  if (typeof message.keys !== "object" || message.keys === null) return false;
  if (!Array.isArray(message.counts)) return false;
  for (const owner of Object.values(message.keys)) {
    if (!Array.isArray(owner) || !isId(owner[0])) return false;
    if (owner[1] !== null && !isId(owner[1])) return false;
    if (owner[2] !== null && !Number.isSafeInteger(owner[2])) return false;
    const credits = owner[3];
    if (credits != null) {
      if (!Array.isArray(credits) || !credits.every((n) => Number.isSafeInteger(n) && n >= 0)) {
        return false;
      }
    }
  }
  return message.counts.every(
    (entry) =>
      Array.isArray(entry) &&
      isId(entry[0]) &&
      Number.isSafeInteger(entry[1]) &&
      entry[1] % MINUTE_MS === 0 &&
      typeof entry[2] === "string" &&
      /^[A-Z_]{1,32}$/.test(entry[2]) &&
      Number.isSafeInteger(entry[3]) &&
      entry[3] > 0,
  );
}
