import {
  index,
  integer,
  primaryKey,
  sqliteTable,
  text,
  uniqueIndex,
} from "drizzle-orm/sqlite-core";
import type { KeyMeta, LimitSpec as RateLimitRule, RefillSpec as RefillRule } from "./columns";

// The enums, in one place: the columns carry them, and the wire schemas derive theirs from
// the columns (`apiKeys.source.enumValues`).
export const KEY_SOURCES = ["dashboard", "api", "rotation", "cli"] as const;
// "github" and "report": a leak reported by GitHub secret scanning or by anyone (SPEC Part 3).
export const ACTOR_TYPES = ["user", "api_key", "system", "github", "report"] as const;
export const DELIVERY_STATUSES = ["pending", "delivered", "failed"] as const;
/** What a project does with a key reported leaked (SPEC Part 3 "Leaked keys"). */
export const LEAK_POLICIES = ["revoke", "disable", "notify"] as const;

// Timestamps are integer milliseconds since the epoch; the presenters turn them into RFC 3339.
// Every table carries organization_id so that every query can be scoped by tenant.
// `seq` is a monotonically increasing row number: lists page on it, so rows added while a
// client pages through a list are never skipped nor seen twice.

export const projects = sqliteTable(
  "projects",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    organizationId: text("organization_id").notNull(),
    name: text("name").notNull(),
    keyPrefix: text("key_prefix").notNull(),
    // Standard Webhooks signing secrets, AES-GCM encrypted under ENCRYPTION_KEY.
    webhookSecretEnc: text("webhook_secret_enc").notNull(),
    previousWebhookSecretEnc: text("previous_webhook_secret_enc"),
    previousWebhookSecretExpiresAt: integer("previous_webhook_secret_expires_at"),
    leakPolicy: text("leak_policy", { enum: LEAK_POLICIES }).notNull().default("revoke"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("projects_org_seq").on(t.organizationId, t.seq)],
);

export const environments = sqliteTable(
  "environments",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    organizationId: text("organization_id").notNull(),
    projectId: text("project_id").notNull(),
    name: text("name").notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [uniqueIndex("environments_project_name").on(t.projectId, t.name)],
);

export const apiKeys = sqliteTable(
  "api_keys",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    organizationId: text("organization_id").notNull(),
    projectId: text("project_id"),
    environmentId: text("environment_id"),
    // The environment's name as the key carries it (`capy_<environment>_…`); org-scoped keys
    // have no environment row but still a name in their key.
    environment: text("environment").notNull().default("live"),
    name: text("name").notNull(),
    // SHA-256 of the whole key, hex. The plaintext is never stored.
    keyHash: text("key_hash").notNull().unique(),
    keyPrefix: text("key_prefix").notNull(),
    scopes: text("scopes", { mode: "json" }).$type<string[]>().notNull(),
    source: text("source", { enum: KEY_SOURCES }).notNull(),
    createdByUserId: text("created_by_user_id"),
    deviceName: text("device_name"),
    isAdminManaged: integer("is_admin_managed", { mode: "boolean" }).notNull(),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    expiresAt: integer("expires_at"),
    lastUsedAt: integer("last_used_at"),
    revokedAt: integer("revoked_at"),
    replacedByKeyId: text("replaced_by_key_id"),
    rotatedFromKeyId: text("rotated_from_key_id"),
    graceExpiresAt: integer("grace_expires_at"),
    rotationIntervalDays: integer("rotation_interval_days"),
    nextRotationAt: integer("next_rotation_at"),
    rotationWebhookUrl: text("rotation_webhook_url"),
    // Governance (SPEC Part 2). Unset fields are null, never {} or [].
    enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
    meta: text("meta", { mode: "json" }).$type<KeyMeta>(),
    externalId: text("external_id"),
    /** Normalised addresses and CIDR blocks (see core/ip.ts); null = any address. */
    ipAllowlist: text("ip_allowlist", { mode: "json" }).$type<string[]>(),
    ratelimits: text("ratelimits", { mode: "json" }).$type<RateLimitRule[]>(),
    /** null = unlimited. The live balance is the KeyUsage object's; this is what D1 last set. */
    creditsRemaining: integer("credits_remaining"),
    creditsRefill: text("credits_refill", { mode: "json" }).$type<RefillRule>(),
    /** When D1 last set the credits (ms): a newer version makes the usage object adopt them. */
    creditsVersion: integer("credits_version"),
    /**
     * The balance the key's latest counted verification or credits operation left, and when
     * (ms): what key lists show, noted by the queue consumer (no Durable Object call per row).
     */
    creditsSeen: integer("credits_seen"),
    creditsSeenAt: integer("credits_seen_at"),
    /** The KeyUsage object shared with rotation successors: the first key's id, copied on. */
    lineageId: text("lineage_id"),
    /**
     * Bumped by every change to the key's verdict inputs (a conditional update on the version
     * read), after the revocation feed has announced the new version (docs/revocation.md).
     */
    version: integer("version").notNull().default(0),
    /** When the key was first reported leaked (ms); null = never. */
    leakedAt: integer("leaked_at"),
    /**
     * When the cron next owes this key an expiry event (`api_key.expiring` 7 or 1 days before
     * `expires_at`, `api_key.expired` at it), ms; null = none owed. Indexed, so a run reads
     * only the keys that are due, however many keys there are.
     */
    expiryNoticeAt: integer("expiry_notice_at"),
  },
  (t) => [
    index("api_keys_expiry_notice").on(t.expiryNoticeAt),
    index("api_keys_org_seq").on(t.organizationId, t.seq),
    index("api_keys_org_external_seq").on(t.organizationId, t.externalId, t.seq),
    index("api_keys_project_seq").on(t.projectId, t.seq),
    index("api_keys_next_rotation").on(t.nextRotationAt),
    index("api_keys_grace").on(t.graceExpiresAt),
    // At most one successor per key: a second concurrent rotation cannot commit.
    uniqueIndex("api_keys_rotated_from").on(t.rotatedFromKeyId),
  ],
);

/**
 * Identities (SPEC Part 3 "Identities"): one owner in the customer's system (`external_id`,
 * unique in its organization) whose keys (same `external_id`) share its limits and credits.
 * Its live credits are a KeyUsage object of its own, named `identity:<id>`.
 */
export const identities = sqliteTable(
  "identities",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    organizationId: text("organization_id").notNull(),
    externalId: text("external_id").notNull(),
    meta: text("meta", { mode: "json" }).$type<KeyMeta>(),
    ratelimits: text("ratelimits", { mode: "json" }).$type<RateLimitRule[]>(),
    /** As on api_keys: null = unlimited; the live balance is the usage object's. */
    creditsRemaining: integer("credits_remaining"),
    creditsRefill: text("credits_refill", { mode: "json" }).$type<RefillRule>(),
    creditsVersion: integer("credits_version"),
    /** As on api_keys: the balance the latest credits operation left, and when (ms). */
    creditsSeen: integer("credits_seen"),
    creditsSeenAt: integer("credits_seen_at"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [
    index("identities_org_seq").on(t.organizationId, t.seq),
    uniqueIndex("identities_org_external").on(t.organizationId, t.externalId),
  ],
);

export const auditEvents = sqliteTable(
  "audit_events",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    organizationId: text("organization_id").notNull(),
    actorType: text("actor_type", { enum: ACTOR_TYPES }).notNull(),
    actorId: text("actor_id").notNull(),
    action: text("action").notNull(),
    targetType: text("target_type").notNull(),
    targetId: text("target_id").notNull(),
    projectId: text("project_id"),
    ip: text("ip"),
    userAgent: text("user_agent"),
    metadata: text("metadata", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
    createdAt: integer("created_at").notNull(),
  },
  (t) => [index("audit_events_org_seq").on(t.organizationId, t.seq)],
);

/**
 * A project's webhook endpoints for key lifecycle events (SPEC Part 3 "Key lifecycle events"):
 * at most 10 per project, each subscribed to a list of event types or `["*"]`.
 */
export const webhookEndpoints = sqliteTable(
  "webhook_endpoints",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    id: text("id").notNull().unique(),
    organizationId: text("organization_id").notNull(),
    projectId: text("project_id").notNull(),
    url: text("url").notNull(),
    events: text("events", { mode: "json" }).$type<string[]>().notNull(),
    description: text("description"),
    enabled: integer("enabled", { mode: "boolean" }).notNull().default(true),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
  },
  (t) => [index("webhook_endpoints_project_seq").on(t.organizationId, t.projectId, t.seq)],
);

export const webhookDeliveries = sqliteTable(
  "webhook_deliveries",
  {
    seq: integer("seq").primaryKey({ autoIncrement: true }),
    // Also the `webhook-id` header: the same on every attempt.
    id: text("id").notNull().unique(),
    organizationId: text("organization_id").notNull(),
    projectId: text("project_id").notNull(),
    keyId: text("key_id").notNull(),
    eventType: text("event_type").notNull(),
    /** The lifecycle-event endpoint; null for a rotation delivery to a key's own URL. */
    endpointId: text("endpoint_id"),
    url: text("url").notNull(),
    // The event without the plaintext key; the key is merged in at send time.
    payload: text("payload", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
    // The new plaintext key, AES-GCM encrypted; null once delivered or given up.
    encryptedKey: text("encrypted_key"),
    status: text("status", { enum: DELIVERY_STATUSES }).notNull(),
    attempts: integer("attempts").notNull(),
    nextAttemptAt: integer("next_attempt_at"),
    lastAttemptAt: integer("last_attempt_at"),
    // While an attempt is in flight: until when (real time, ms) no other run may claim it.
    leasedUntil: integer("leased_until"),
    lastStatusCode: integer("last_status_code"),
    lastError: text("last_error"),
    createdAt: integer("created_at").notNull(),
    updatedAt: integer("updated_at").notNull(),
    deliveredAt: integer("delivered_at"),
  },
  (t) => [
    index("webhook_deliveries_project_seq").on(t.projectId, t.seq),
    index("webhook_deliveries_due").on(t.status, t.nextAttemptAt),
  ],
);

/**
 * `Idempotency-Key` records (SPEC Part 2 "Idempotent writes"): one per organization, caller
 * and key, kept 24 h. The first response is stored sealed (AES-GCM under ENCRYPTION_KEY): it
 * may hold a plaintext API key or webhook secret.
 */
export const idempotencyKeys = sqliteTable(
  "idempotency_keys",
  {
    organizationId: text("organization_id").notNull(),
    // `user:<id>` or `key:<id>`: who sent it.
    caller: text("caller").notNull(),
    // SHA-256 of the header as sent: the header itself is the client's and never stored.
    keyHash: text("key_hash").notNull(),
    // SHA-256 of method, path and body: a retry must send the same request.
    requestHash: text("request_hash").notNull(),
    // Which request holds the record: only it may complete or release it.
    claim: text("claim").notNull(),
    // null while the first request runs.
    status: integer("status"),
    response: text("response"),
    createdAt: integer("created_at").notNull(),
    expiresAt: integer("expires_at").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.organizationId, t.caller, t.keyHash] }),
    index("idempotency_keys_expires").on(t.expiresAt),
  ],
);

/** The stored resolutions: minute rows for 7 days, then folded into hour rows for 400 days. */
export const COUNT_GRANULARITIES = ["minute", "hour"] as const;

// Verifications per key, per UTC minute (or hour, once folded), per code. Added into by the
// queue consumer (`count = count + excluded.count`); a verification lives in exactly one row.
export const verificationCounts = sqliteTable(
  "verification_counts",
  {
    organizationId: text("organization_id").notNull(),
    // null for an org-scoped key: it appears only in its own key's analytics.
    projectId: text("project_id"),
    keyId: text("key_id").notNull(),
    granularity: text("granularity", { enum: COUNT_GRANULARITIES }).notNull(),
    bucketStart: integer("bucket_start").notNull(),
    code: text("code").notNull(),
    count: integer("count").notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.keyId, t.granularity, t.bucketStart, t.code] }),
    index("verification_counts_project").on(
      t.organizationId,
      t.projectId,
      t.granularity,
      t.bucketStart,
    ),
    index("verification_counts_age").on(t.granularity, t.bucketStart),
  ],
);

// Queue messages already added into verification_counts, so a redelivery counts once.
export const verificationBatches = sqliteTable(
  "verification_batches",
  {
    id: text("id").primaryKey(),
    processedAt: integer("processed_at").notNull(),
  },
  (t) => [index("verification_batches_processed_at").on(t.processedAt)],
);

export type ProjectRow = typeof projects.$inferSelect;
export type EnvironmentRow = typeof environments.$inferSelect;
export type ApiKeyRow = typeof apiKeys.$inferSelect;
export type AuditEventRow = typeof auditEvents.$inferSelect;
export type WebhookDeliveryRow = typeof webhookDeliveries.$inferSelect;
export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect;
export type VerificationCountRow = typeof verificationCounts.$inferSelect;
export type IdentityRow = typeof identities.$inferSelect;
