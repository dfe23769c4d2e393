// Keygate's own: projects, their environments, webhook secret and webhook deliveries.

import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import {
  createEnvironment,
  createProject,
  getProject,
  getWebhookSecret,
  listEnvironments,
  listProjects,
  rotateWebhookSecret,
  updateProject,
} from "../core/projects";
import { listDeliveries, retryDelivery } from "../core/webhooks";
import {
  type EnvironmentRow,
  LEAK_POLICIES,
  type ProjectRow,
  type WebhookDeliveryRow,
  webhookDeliveries,
} from "../db/schema";
import { bearerSecurity, requireAuth } from "../http/auth";
import { idempotent } from "../http/idempotency";
import {
  errorResponses,
  jsonBody,
  jsonResponse,
  pagedJsonResponse,
  writeErrorResponses,
} from "../http/openapi";
import { PageQuerySchema, setNextLink } from "../http/paging";
import { type AppEnv, carriesSecret } from "../http/router";
import { IdSchema, InstantSchema, iso, NameSchema, SlugSchema } from "../schemas/fields";

const ProjectSchema = z
  .object({
    id: z.string(),
    organization_id: z.string(),
    name: z.string(),
    key_prefix: z.string(),
    leak_policy: z.enum(LEAK_POLICIES),
    created_at: InstantSchema,
    updated_at: InstantSchema,
  })
  .openapi("Project");

const EnvironmentSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    name: z.string(),
    created_at: InstantSchema,
  })
  .openapi("Environment");

const WebhookSecretSchema = z
  .object({
    webhook_signing_secret: z.string(),
    previous_webhook_signing_secret: z.string().nullable(),
    previous_secret_expires_at: InstantSchema.nullable(),
  })
  .openapi("WebhookSecret");

const DeliverySchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    key_id: z.string(),
    event_type: z.string(),
    endpoint_id: z.string().nullable().openapi({
      description:
        "The webhook endpoint it goes to; null for a rotation delivery to the key's own `rotation_webhook_url`.",
    }),
    url: z.string(),
    status: z.enum(webhookDeliveries.status.enumValues),
    attempts: z.number().int(),
    next_attempt_at: InstantSchema.nullable(),
    last_attempt_at: InstantSchema.nullable(),
    last_status_code: z.number().int().nullable(),
    last_error: z.string().nullable(),
    delivered_at: InstantSchema.nullable(),
    created_at: InstantSchema,
  })
  .openapi("WebhookDelivery");

const toProject = (p: ProjectRow) => ({
  id: p.id,
  organization_id: p.organizationId,
  name: p.name,
  key_prefix: p.keyPrefix,
  leak_policy: p.leakPolicy,
  created_at: iso(p.createdAt) as string,
  updated_at: iso(p.updatedAt) as string,
});

const toEnvironment = (e: EnvironmentRow) => ({
  id: e.id,
  project_id: e.projectId,
  name: e.name,
  created_at: iso(e.createdAt) as string,
});

/** Never the key: deliveries are listed by status only. */
const toDelivery = (d: WebhookDeliveryRow) => ({
  id: d.id,
  project_id: d.projectId,
  key_id: d.keyId,
  event_type: d.eventType,
  endpoint_id: d.endpointId,
  url: d.url,
  status: d.status,
  attempts: d.attempts,
  next_attempt_at: iso(d.nextAttemptAt),
  last_attempt_at: iso(d.lastAttemptAt),
  last_status_code: d.lastStatusCode,
  last_error: d.lastError,
  delivered_at: iso(d.deliveredAt),
  created_at: iso(d.createdAt) as string,
});

const toSecrets = (s: {
  current: string;
  previous: string | null;
  previousExpiresAt: number | null;
}) => ({
  webhook_signing_secret: s.current,
  previous_webhook_signing_secret: s.previous,
  previous_secret_expires_at: iso(s.previousExpiresAt),
});

export const ProjectParams = z.object({
  id: IdSchema.openapi({ param: { name: "id", in: "path" } }),
});
const KeyPrefixSchema = z
  .string()
  .regex(
    /^[a-z][a-z0-9]{0,15}$/,
    "must be 1–16 lowercase letters and digits, starting with a letter",
  )
  .openapi({ example: "capy" });
const LeakPolicySchema = z.enum(LEAK_POLICIES).openapi({
  description:
    "What a key of this project reported leaked gets (docs/leaks.md): `revoke` (the default), `disable` (`enabled: false`) or `notify` (only `leaked_at`, the audit event and the `api_key.leaked` event). Org-scoped keys are always revoked.",
  example: "revoke",
});
const common = { tags: ["Projects"], security: bearerSecurity, middleware: requireAuth };

const create = createRoute({
  ...common,
  method: "post",
  path: "/v1/projects",
  summary: "Create a project",
  description:
    "Creates the project with `live` and `test` environments. The response carries the project's webhook signing secret (`whsec_…`) once.",
  request: {
    body: jsonBody(
      z.strictObject({
        name: NameSchema,
        key_prefix: KeyPrefixSchema.optional(),
        leak_policy: LeakPolicySchema.optional(),
      }),
    ),
  },
  responses: {
    201: jsonResponse(
      ProjectSchema.extend({
        environments: z.array(EnvironmentSchema),
        webhook_signing_secret: z.string(),
      }),
      "The project, its environments and its webhook signing secret.",
    ),
    ...writeErrorResponses,
  },
});

const list = createRoute({
  ...common,
  method: "get",
  path: "/v1/projects",
  summary: "List projects",
  request: { query: PageQuerySchema },
  responses: {
    200: pagedJsonResponse(
      z.object({ projects: z.array(ProjectSchema) }),
      "Projects, oldest first.",
    ),
    ...errorResponses,
  },
});

const get = createRoute({
  ...common,
  method: "get",
  path: "/v1/projects/{id}",
  summary: "Get a project",
  request: { params: ProjectParams },
  responses: { 200: jsonResponse(ProjectSchema, "The project."), ...errorResponses },
});

const patch = createRoute({
  ...common,
  method: "patch",
  path: "/v1/projects/{id}",
  summary: "Update a project",
  request: {
    params: ProjectParams,
    body: jsonBody(
      z.strictObject({
        name: NameSchema.optional(),
        key_prefix: KeyPrefixSchema.optional(),
        leak_policy: LeakPolicySchema.optional(),
      }),
    ),
  },
  responses: { 200: jsonResponse(ProjectSchema, "The updated project."), ...writeErrorResponses },
});

const listEnvs = createRoute({
  ...common,
  method: "get",
  path: "/v1/projects/{id}/environments",
  summary: "List a project's environments",
  request: { params: ProjectParams },
  responses: {
    200: jsonResponse(z.object({ environments: z.array(EnvironmentSchema) }), "Environments."),
    ...errorResponses,
  },
});

const createEnv = createRoute({
  ...common,
  method: "post",
  path: "/v1/projects/{id}/environments",
  summary: "Create an environment",
  request: {
    params: ProjectParams,
    body: jsonBody(z.strictObject({ name: SlugSchema.openapi({ example: "staging" }) })),
  },
  responses: { 201: jsonResponse(EnvironmentSchema, "The environment."), ...writeErrorResponses },
});

const getSecret = createRoute({
  ...common,
  method: "get",
  path: "/v1/projects/{id}/webhook-secret",
  summary: "Read the webhook signing secret (org admins)",
  request: { params: ProjectParams },
  responses: {
    200: jsonResponse(WebhookSecretSchema, "The signing secret(s)."),
    ...errorResponses,
  },
});

const rotateSecret = createRoute({
  ...common,
  method: "post",
  path: "/v1/projects/{id}/webhook-secret",
  summary: "Rotate the webhook signing secret (org admins)",
  description:
    "Deliveries are signed with both the new and the old secret for 24 hours. While a previous secret is still in those 24 hours, another rotation is refused with 409 (so no secret stops verifying earlier than 24 h after it was replaced).",
  request: { params: ProjectParams },
  responses: { 200: jsonResponse(WebhookSecretSchema, "The new secret."), ...writeErrorResponses },
});

const deliveries = createRoute({
  ...common,
  method: "get",
  path: "/v1/projects/{id}/webhook-deliveries",
  summary: "List webhook deliveries",
  request: { params: ProjectParams, query: PageQuerySchema },
  responses: {
    200: pagedJsonResponse(
      z.object({ webhook_deliveries: z.array(DeliverySchema) }),
      "Deliveries, newest first.",
    ),
    ...errorResponses,
  },
});

const retry = createRoute({
  ...common,
  method: "post",
  path: "/v1/projects/{id}/webhook-deliveries/{deliveryId}/retry",
  summary: "Retry a webhook delivery now",
  request: {
    params: ProjectParams.extend({
      deliveryId: z
        .string()
        .min(1)
        .max(64)
        .openapi({ param: { name: "deliveryId", in: "path" } }),
    }),
  },
  responses: { 200: jsonResponse(DeliverySchema, "The delivery, queued."), ...writeErrorResponses },
});

export function registerProjects(app: OpenAPIHono<AppEnv>) {
  app.openapi(idempotent(create), async (c) => {
    const body = c.req.valid("json");
    const created = await createProject(c.var.core, c.var.actor, {
      name: body.name,
      keyPrefix: body.key_prefix,
      leakPolicy: body.leak_policy,
    });
    carriesSecret(c);
    return c.json(
      {
        ...toProject(created.project),
        environments: created.environments.map(toEnvironment),
        webhook_signing_secret: created.webhookSigningSecret,
      },
      201,
    );
  });

  app.openapi(list, async (c) => {
    const page = await listProjects(c.var.core, c.var.principal, c.req.valid("query"));
    setNextLink(c, page);
    return c.json({ projects: page.items.map(toProject) }, 200);
  });

  app.openapi(get, async (c) => {
    const project = await getProject(c.var.core, c.var.principal, c.req.valid("param").id);
    return c.json(toProject(project), 200);
  });

  app.openapi(patch, async (c) => {
    const body = c.req.valid("json");
    const project = await updateProject(c.var.core, c.var.actor, c.req.valid("param").id, {
      name: body.name,
      keyPrefix: body.key_prefix,
      leakPolicy: body.leak_policy,
    });
    return c.json(toProject(project), 200);
  });

  app.openapi(listEnvs, async (c) => {
    const envs = await listEnvironments(c.var.core, c.var.principal, c.req.valid("param").id);
    return c.json({ environments: envs.map(toEnvironment) }, 200);
  });

  app.openapi(idempotent(createEnv), async (c) => {
    const env = await createEnvironment(
      c.var.core,
      c.var.actor,
      c.req.valid("param").id,
      c.req.valid("json").name,
    );
    return c.json(toEnvironment(env), 201);
  });

  app.openapi(getSecret, async (c) => {
    const secrets = await getWebhookSecret(c.var.core, c.var.actor, c.req.valid("param").id);
    carriesSecret(c);
    return c.json(toSecrets(secrets), 200);
  });

  app.openapi(idempotent(rotateSecret), async (c) => {
    const secrets = await rotateWebhookSecret(c.var.core, c.var.actor, c.req.valid("param").id);
    carriesSecret(c);
    return c.json(toSecrets(secrets), 200);
  });

  app.openapi(deliveries, async (c) => {
    const page = await listDeliveries(
      c.var.core,
      c.var.principal,
      c.req.valid("param").id,
      c.req.valid("query"),
    );
    setNextLink(c, page);
    return c.json({ webhook_deliveries: page.items.map(toDelivery) }, 200);
  });

  app.openapi(retry, async (c) => {
    const { id, deliveryId } = c.req.valid("param");
    const delivery = await retryDelivery(c.var.core, c.var.actor, id, deliveryId);
    return c.json(toDelivery(delivery), 200);
  });
}
