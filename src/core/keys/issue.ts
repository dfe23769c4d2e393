import { type ApiKeyRow, apiKeys, auditEvents } from "../../db/schema";
import { auditRecorded, auditValues } from "../audit";
import { type Core, defaultKeyPrefix } from "../context";
import { invalid } from "../errors";
import { eventActor, keyEventRows } from "../events";
import { type GovernanceInput, governanceAudit, governanceColumns } from "../governance";
import { generateKey } from "../key-material";
import { type Actor, actorId, requireAdmin, requireOrganization, requireScope } from "../principal";
import { findProject, resolveEnvironment } from "../projects";
import { expiryNoticeAt } from "./expiry";
import {
  boundedExpiry,
  type KeySource,
  nextRotationAt,
  requireFuture,
  requireGrantable,
  sourceOf,
} from "./rules";

export interface CreateKeyInput {
  /** The organization a surface's path names; another than the caller's is a 404. */
  organizationId?: string | undefined;
  /** null: an org-scoped key, reaching every project of the organization. */
  projectId: string | null;
  /** The environment by id (seed 001) or by name (seed 000); default `live`. */
  environment?: { id?: string | undefined; name?: string | undefined };
  name: string;
  scopes: string[];
  expiresAt?: number | null | undefined;
  deviceName?: string | null | undefined;
  isAdminManaged?: boolean | undefined;
  rotationIntervalDays?: number | null | undefined;
  rotationWebhookUrl?: string | null | undefined;
  source?: KeySource | undefined;
  /** enabled, meta, external_id, ip_allowlist, ratelimits, credits (SPEC Part 2). */
  governance?: GovernanceInput | undefined;
}

export async function createKey(core: Core, actor: Actor, input: CreateKeyInput) {
  const { principal } = actor;
  if (input.organizationId !== undefined) requireOrganization(principal, input.organizationId);
  requireScope(principal, "keys:write");
  requireGrantable(principal, input.scopes);
  if (input.isAdminManaged) requireAdmin(principal, "create admin-managed keys");
  const now = core.now();
  requireFuture("expires_at", input.expiresAt, now);
  const expiresAt = boundedExpiry(principal, input.expiresAt) ?? null;

  let prefix = defaultKeyPrefix(core.env);
  let environmentId: string | null = null;
  let environmentName = input.environment?.name ?? "live";
  if (input.projectId === null) {
    requireAdmin(principal, "create organization-scoped keys");
    if (input.environment?.id) {
      throw invalid("environment_id", "org-scoped keys have no environment", input.environment.id);
    }
    if (input.rotationWebhookUrl) {
      throw invalid(
        "rotation_webhook_url",
        "rotation webhooks are signed with a project's secret: give a project_id",
        input.rotationWebhookUrl,
      );
    }
  } else {
    const project = await findProject(core, principal, input.projectId);
    const environment = await resolveEnvironment(core, project, input.environment ?? {});
    prefix = project.keyPrefix;
    environmentId = environment.id;
    environmentName = environment.name;
  }

  const material = await generateKey(prefix, environmentName);
  const id = crypto.randomUUID();
  const interval = input.rotationIntervalDays ?? null;
  // The whole row (every column its default), so the created event shows the key as stored.
  const row: ApiKeyRow = {
    seq: 0,
    id,
    organizationId: principal.organizationId,
    projectId: input.projectId,
    environmentId,
    environment: environmentName,
    name: input.name,
    keyHash: material.hash,
    keyPrefix: material.displayPrefix,
    scopes: input.scopes,
    source: input.source ?? sourceOf(principal, actor.client),
    createdByUserId: actorId(principal),
    deviceName: input.deviceName ?? null,
    isAdminManaged: input.isAdminManaged ?? false,
    createdAt: now,
    updatedAt: now,
    expiresAt,
    lastUsedAt: null,
    revokedAt: null,
    replacedByKeyId: null,
    rotatedFromKeyId: null,
    graceExpiresAt: null,
    rotationIntervalDays: interval,
    nextRotationAt: nextRotationAt(interval, now),
    rotationWebhookUrl: input.rotationWebhookUrl ?? null,
    enabled: true,
    meta: null,
    externalId: null,
    ipAllowlist: null,
    ratelimits: null,
    creditsRemaining: null,
    creditsRefill: null,
    creditsVersion: null,
    creditsSeen: null,
    creditsSeenAt: null,
    // The first key of its lineage: its rotation successors share its usage state.
    lineageId: id,
    version: 0,
    leakedAt: null,
    expiryNoticeAt: expiryNoticeAt(expiresAt),
    ...governanceColumns(input.governance ?? {}, now),
  };
  const { seq: _seq, ...values } = row;
  const audit = auditValues(core, actor, {
    action: "api_key.created",
    targetType: "api_key",
    targetId: id,
    projectId: input.projectId,
    metadata: {
      name: input.name,
      scopes: input.scopes,
      key_prefix: material.displayPrefix,
      ...governanceAudit(input.governance ?? {}),
    },
  });
  const event = keyEventRows(
    core,
    { type: "api_key.created", key: row, actor: eventActor(principal) },
    auditRecorded(audit.id),
  );
  const insert = core.db.insert(apiKeys).values(values).returning();
  const [inserted] = await core.db.batch(
    event
      ? [insert, core.db.insert(auditEvents).values(audit), event]
      : [insert, core.db.insert(auditEvents).values(audit)],
  );
  return { key: inserted[0] as ApiKeyRow, plaintext: material.plaintext };
}
