// Keygate's key object (the union of the seeds' fields): what the routes answer and what
// lifecycle events carry as `data.api_key`. Pure: no storage, no wire schema.
import type { ApiKeyRow } from "../../db/schema";
import type { RateLimitRule, RefillRule } from "../governance";
import { iso } from "../time";
import { isActive } from "./rules";

export interface GovernanceRow {
  enabled: boolean;
  meta: Record<string, unknown> | null;
  externalId: string | null;
  ipAllowlist: string[] | null;
  ratelimits: RateLimitRule[] | null;
  creditsRemaining: number | null;
  creditsRefill: RefillRule | null;
}

/** The key object's governance members; `remaining` overrides the stored balance when known. */
export const toGovernanceFields = (row: GovernanceRow, remaining?: number) => ({
  enabled: row.enabled,
  meta: row.meta,
  external_id: row.externalId,
  ip_allowlist: row.ipAllowlist,
  ratelimits:
    row.ratelimits?.map((r) => ({ name: r.name, limit: r.limit, duration_ms: r.durationMs })) ??
    null,
  credits:
    row.creditsRemaining === null
      ? null
      : { remaining: remaining ?? row.creditsRemaining, refill: row.creditsRefill },
});

/** `remaining`: the live credit balance when it was read (else the stored one is shown). */
export const toApiKey = (k: ApiKeyRow, now: number, remaining?: number | null) => ({
  id: k.id,
  organization_id: k.organizationId,
  project_id: k.projectId,
  environment_id: k.environmentId,
  name: k.name,
  key_prefix: k.keyPrefix,
  scopes: k.scopes,
  created_at: iso(k.createdAt) as string,
  created_by_user_id: k.createdByUserId,
  source: k.source,
  device_name: k.deviceName,
  is_admin_managed: k.isAdminManaged,
  is_active: isActive(k, now),
  expires_at: iso(k.expiresAt),
  last_used_at: iso(k.lastUsedAt),
  revoked_at: iso(k.revokedAt),
  replaced_by_key_id: k.replacedByKeyId,
  grace_expires_at: iso(k.graceExpiresAt),
  rotation_interval_days: k.rotationIntervalDays,
  next_rotation_at: iso(k.nextRotationAt),
  rotation_webhook_url: k.rotationWebhookUrl,
  leaked_at: iso(k.leakedAt),
  ...toGovernanceFields(k, remaining ?? undefined),
});

export type ApiKeyObject = ReturnType<typeof toApiKey>;
