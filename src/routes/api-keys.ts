// Project-level API key management (seed 001), plus Keygate's own get/patch of one key.

import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { Core } from "../core/context";
import {
  adjustKeyCredits,
  createKey,
  getKeyWithBalance,
  listKeysWithBalances,
  liveCredits,
  revokeKey,
  rotateKey,
  toApiKey,
  updateKey,
} from "../core/keys";
import { MAX_CREDITS } from "../core/usage";
import { type ApiKeyRow, apiKeys } from "../db/schema";
import { bearerSecurity, requireAuth } from "../http/auth";
import { idempotent } from "../http/idempotency";
import {
  errorResponses,
  jsonBody,
  jsonResponse,
  optionalJsonBody,
  pagedJsonResponse,
  writeErrorResponses,
} from "../http/openapi";
import { PageQuerySchema, setNextLink } from "../http/paging";
import { type AppEnv, carriesSecret } from "../http/router";
import {
  DeviceNameSchema,
  EXAMPLE_ENVIRONMENT_ID,
  EXAMPLE_PROJECT_ID,
  ExpiresAtSchema,
  GracePeriodSchema,
  IdSchema,
  InstantSchema,
  iso,
  NameSchema,
  RotationIntervalSchema,
  ScopesSchema,
  toMs,
  WebhookUrlSchema,
} from "../schemas/fields";
import {
  ExternalIdSchema,
  governanceBodyFields,
  governanceKeyFields,
  governancePatchFields,
  toGovernanceInput,
} from "../schemas/governance";

/** Keygate's key object: the union of the seeds' fields. */
export const ApiKeySchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    project_id: z.string().nullable(),
    environment_id: z.string().nullable(),
    name: z.string(),
    key_prefix: z.string(),
    scopes: z.array(z.string()),
    created_at: InstantSchema,
    created_by_user_id: z.string().nullable(),
    source: z.enum(apiKeys.source.enumValues),
    device_name: z.string().nullable(),
    is_admin_managed: z.boolean(),
    is_active: z.boolean(),
    expires_at: InstantSchema.nullable(),
    last_used_at: InstantSchema.nullable(),
    revoked_at: InstantSchema.nullable(),
    replaced_by_key_id: z.string().nullable(),
    grace_expires_at: InstantSchema.nullable(),
    rotation_interval_days: z.number().int().nullable(),
    next_rotation_at: InstantSchema.nullable(),
    rotation_webhook_url: z.string().nullable(),
    leaked_at: InstantSchema.nullable().openapi({
      description: "When the key was first reported leaked (docs/leaks.md); null: never.",
    }),
    ...governanceKeyFields,
  })
  .openapi("ApiKey");

/** The key object with its exact credit balance, read from the usage object. */
const liveApiKey = async (core: Core, k: ApiKeyRow) =>
  toApiKey(k, core.now(), await liveCredits(core, k));

const KeyParams = z.object({
  keyID: IdSchema.openapi({ param: { name: "keyID", in: "path" }, description: "API key id." }),
});
const common = { tags: ["API keys"], security: bearerSecurity, middleware: requireAuth };

const list = createRoute({
  ...common,
  method: "get",
  path: "/v1/api-keys",
  summary: "List API keys",
  request: {
    query: PageQuerySchema.extend({
      project_id: IdSchema.openapi({ description: "Project id.", example: EXAMPLE_PROJECT_ID }),
      external_id: ExternalIdSchema.optional().openapi({
        description: "Only the keys of this owner.",
      }),
    }),
  },
  responses: {
    200: pagedJsonResponse(z.array(ApiKeySchema), "The project's keys, oldest first."),
    ...errorResponses,
  },
});

const create = createRoute({
  ...common,
  method: "post",
  path: "/v1/api-keys",
  summary: "Create an API key",
  description: "The plaintext `key` is in this response only.",
  request: {
    body: jsonBody(
      z.strictObject({
        project_id: IdSchema.openapi({ example: EXAMPLE_PROJECT_ID }),
        name: NameSchema,
        scopes: ScopesSchema.optional(),
        expires_at: ExpiresAtSchema.nullable().optional(),
        environment_id: IdSchema.optional().openapi({ example: EXAMPLE_ENVIRONMENT_ID }),
        rotation_interval_days: RotationIntervalSchema.nullable().optional(),
        rotation_webhook_url: WebhookUrlSchema.nullable().optional(),
        device_name: DeviceNameSchema.nullable().optional(),
        ...governanceBodyFields,
      }),
    ),
  },
  responses: {
    201: jsonResponse(ApiKeySchema.extend({ key: z.string() }), "The key and its plaintext."),
    ...writeErrorResponses,
  },
});

const get = createRoute({
  ...common,
  method: "get",
  path: "/v1/api-keys/{keyID}",
  summary: "Get an API key",
  request: { params: KeyParams },
  description: "`credits.remaining` is the exact live balance.",
  responses: { 200: jsonResponse(ApiKeySchema, "The key."), ...errorResponses },
});

const patch = createRoute({
  ...common,
  method: "patch",
  path: "/v1/api-keys/{keyID}",
  summary: "Update an API key",
  description:
    "Name, scopes, expiry, device name, rotation settings and the governance fields (`enabled`, `meta`, `external_id`, `ip_allowlist`, `ratelimits`, `credits`). `null` clears a field; `[]` is the same as `null` for `ip_allowlist` and `ratelimits`. `credits` sets the live balance (`credits: { refill }` alone changes the refill rule and keeps it); changing a limit's `limit` or `duration_ms` starts it afresh.",
  request: {
    params: KeyParams,
    body: jsonBody(
      z.strictObject({
        name: NameSchema.optional(),
        scopes: ScopesSchema.optional(),
        expires_at: ExpiresAtSchema.nullable().optional(),
        device_name: DeviceNameSchema.nullable().optional(),
        rotation_interval_days: RotationIntervalSchema.nullable().optional(),
        rotation_webhook_url: WebhookUrlSchema.nullable().optional(),
        ...governancePatchFields,
      }),
    ),
  },
  responses: { 200: jsonResponse(ApiKeySchema, "The updated key."), ...writeErrorResponses },
});

/** The body of a credits operation, on keys and on identities alike. */
export const CreditOperationSchema = z.strictObject({
  operation: z.enum(["set", "increment", "decrement"]),
  value: z.number().int().min(0).max(MAX_CREDITS),
});
export const CreditBalanceSchema = z.object({ remaining: z.number().int() });

const credits = createRoute({
  ...common,
  method: "post",
  path: "/v1/api-keys/{keyID}/credits",
  summary: "Set, increment or decrement a key's credits",
  description:
    "Atomic: concurrent operations never lose an update. `decrement` stops at 0, `increment` at 1 000 000 000 000. A key without credits answers 409.",
  request: {
    params: KeyParams,
    body: jsonBody(CreditOperationSchema),
  },
  responses: {
    200: jsonResponse(CreditBalanceSchema, "The balance after it."),
    ...writeErrorResponses,
  },
});

const revoke = createRoute({
  ...common,
  method: "delete",
  path: "/v1/api-keys/{keyID}",
  summary: "Revoke an API key",
  request: { params: KeyParams },
  responses: {
    204: { description: "Revoked (also when it already was)." },
    ...writeErrorResponses,
  },
});

export const RotationSchema = z
  .object({
    old_key_id: z.string(),
    new_key_id: z.string(),
    project_id: z.string().nullable(),
    name: z.string(),
    key: z.string(),
    key_prefix: z.string(),
    scopes: z.array(z.string()),
    expires_at: InstantSchema.nullable(),
    created_at: InstantSchema,
    grace_expires_at: InstantSchema.nullable(),
  })
  .openapi("Rotation");

const rotate = createRoute({
  ...common,
  method: "post",
  path: "/v1/api-keys/{keyID}/rotate",
  summary: "Rotate an API key with optional grace period",
  description:
    "Issues a replacement with the same settings. The old key stays valid for `grace_period_seconds` (default 0: revoked at once). A revoked or already replaced key answers 409.",
  request: {
    params: KeyParams,
    body: optionalJsonBody(z.strictObject({ grace_period_seconds: GracePeriodSchema.optional() })),
  },
  responses: { 201: jsonResponse(RotationSchema, "The new key, once."), ...writeErrorResponses },
});

export function registerApiKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(list, async (c) => {
    const { project_id, external_id, ...page } = c.req.valid("query");
    const result = await listKeysWithBalances(
      c.var.core,
      c.var.principal,
      { projectId: project_id, externalId: external_id },
      page,
    );
    setNextLink(c, result);
    const now = c.var.core.now();
    return c.json(
      result.items.map(({ key, remaining }) => toApiKey(key, now, remaining ?? undefined)),
      200,
    );
  });

  app.openapi(idempotent(create), async (c) => {
    const body = c.req.valid("json");
    const { key, plaintext } = await createKey(c.var.core, c.var.actor, {
      projectId: body.project_id,
      environment: { id: body.environment_id },
      name: body.name,
      scopes: body.scopes ?? [],
      expiresAt: toMs(body.expires_at),
      deviceName: body.device_name,
      rotationIntervalDays: body.rotation_interval_days,
      rotationWebhookUrl: body.rotation_webhook_url,
      governance: toGovernanceInput(body),
    });
    carriesSecret(c, key.id);
    return c.json({ ...toApiKey(key, c.var.core.now()), key: plaintext }, 201);
  });

  app.openapi(get, async (c) => {
    const { key, remaining } = await getKeyWithBalance(
      c.var.core,
      c.var.principal,
      c.req.valid("param").keyID,
    );
    return c.json(toApiKey(key, c.var.core.now(), remaining ?? undefined), 200);
  });

  app.openapi(patch, async (c) => {
    const body = c.req.valid("json");
    const key = await updateKey(c.var.core, c.var.actor, c.req.valid("param").keyID, {
      name: body.name,
      scopes: body.scopes,
      expiresAt: toMs(body.expires_at),
      deviceName: body.device_name,
      rotationIntervalDays: body.rotation_interval_days,
      rotationWebhookUrl: body.rotation_webhook_url,
      governance: toGovernanceInput(body),
    });
    return c.json(await liveApiKey(c.var.core, key), 200);
  });

  app.openapi(idempotent(credits), async (c) => {
    const { operation, value } = c.req.valid("json");
    const result = await adjustKeyCredits(
      c.var.core,
      c.var.actor,
      c.req.valid("param").keyID,
      operation,
      value,
    );
    return c.json(result, 200);
  });

  app.openapi(revoke, async (c) => {
    await revokeKey(c.var.core, c.var.actor, c.req.valid("param").keyID);
    return c.body(null, 204);
  });

  app.openapi(idempotent(rotate), async (c) => {
    const body = c.req.valid("json");
    const rotation = await rotateKey(
      c.var.core,
      c.var.actor,
      c.req.valid("param").keyID,
      body.grace_period_seconds ?? 0,
    );
    carriesSecret(c, rotation.fresh.id);
    return c.json(toRotation(rotation), 201);
  });
}

export const toRotation = (r: { old: ApiKeyRow; fresh: ApiKeyRow; plaintext: string }) => ({
  old_key_id: r.old.id,
  new_key_id: r.fresh.id,
  project_id: r.fresh.projectId,
  name: r.fresh.name,
  key: r.plaintext,
  key_prefix: r.fresh.keyPrefix,
  scopes: r.fresh.scopes,
  expires_at: iso(r.fresh.expiresAt),
  created_at: iso(r.fresh.createdAt) as string,
  grace_expires_at: iso(r.old.graceExpiresAt),
});
