// Keygate's own: a project's webhook endpoints for key lifecycle events (SPEC Part 3).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookEndpoints,
  MAX_ENDPOINTS_PER_PROJECT,
  updateWebhookEndpoint,
} from "../core/webhook-endpoints";
import { WEBHOOK_URL_RULE } from "../core/webhook-url";
import type { WebhookEndpointRow } from "../db/schema";
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
import type { AppEnv } from "../http/router";
import {
  DescriptionSchema,
  EndpointEventsSchema,
  IdSchema,
  InstantSchema,
  iso,
  WebhookUrlSchema,
} from "../schemas/fields";
import { ProjectParams } from "./projects";

export const WebhookEndpointSchema = z
  .object({
    id: z.string(),
    project_id: z.string(),
    url: z.string(),
    events: z.array(z.string()),
    description: z.string().nullable(),
    enabled: z.boolean(),
    created_at: InstantSchema,
    updated_at: InstantSchema,
  })
  .openapi("WebhookEndpoint");

export const toWebhookEndpoint = (e: WebhookEndpointRow) => ({
  id: e.id,
  project_id: e.projectId,
  url: e.url,
  events: e.events,
  description: e.description,
  enabled: e.enabled,
  created_at: iso(e.createdAt) as string,
  updated_at: iso(e.updatedAt) as string,
});

const EndpointParams = ProjectParams.extend({
  endpointID: IdSchema.openapi({
    param: { name: "endpointID", in: "path" },
    description: "Webhook endpoint id.",
  }),
});

const UrlSchema = WebhookUrlSchema.openapi({
  description: `Where the events are delivered: ${WEBHOOK_URL_RULE}.`,
});

const access =
  "Needs `projects:read` (reads) or `projects:write` (changes), or a Clerk user of the organization (admins change, members read).";
const common = { tags: ["Webhook endpoints"], security: bearerSecurity, middleware: requireAuth };

const create = createRoute({
  ...common,
  method: "post",
  path: "/v1/projects/{id}/webhook-endpoints",
  summary: "Create a webhook endpoint",
  description: `The project's key lifecycle events of the subscribed types are delivered to it, signed with the project's webhook signing secret. At most ${MAX_ENDPOINTS_PER_PROJECT} per project (409 beyond). ${access}`,
  request: {
    params: ProjectParams,
    body: jsonBody(
      z.strictObject({
        url: UrlSchema,
        events: EndpointEventsSchema,
        description: DescriptionSchema.nullable().optional(),
      }),
    ),
  },
  responses: {
    201: jsonResponse(WebhookEndpointSchema, "The endpoint, enabled."),
    ...writeErrorResponses,
  },
});

const list = createRoute({
  ...common,
  method: "get",
  path: "/v1/projects/{id}/webhook-endpoints",
  summary: "List a project's webhook endpoints",
  description: `Oldest first. ${access}`,
  request: { params: ProjectParams, query: PageQuerySchema },
  responses: {
    200: pagedJsonResponse(
      z.object({ webhook_endpoints: z.array(WebhookEndpointSchema) }),
      "Webhook endpoints.",
    ),
    ...errorResponses,
  },
});

const get = createRoute({
  ...common,
  method: "get",
  path: "/v1/projects/{id}/webhook-endpoints/{endpointID}",
  summary: "Get a webhook endpoint",
  description: access,
  request: { params: EndpointParams },
  responses: { 200: jsonResponse(WebhookEndpointSchema, "The endpoint."), ...errorResponses },
});

const patch = createRoute({
  ...common,
  method: "patch",
  path: "/v1/projects/{id}/webhook-endpoints/{endpointID}",
  summary: "Update a webhook endpoint",
  description: `\`url\`, \`events\`, \`description\` (\`null\` clears it), \`enabled\` (a disabled endpoint gets no new deliveries). ${access}`,
  request: {
    params: EndpointParams,
    body: jsonBody(
      z.strictObject({
        url: UrlSchema.optional(),
        events: EndpointEventsSchema.optional(),
        description: DescriptionSchema.nullable().optional(),
        enabled: z.boolean().optional(),
      }),
    ),
  },
  responses: {
    200: jsonResponse(WebhookEndpointSchema, "The updated endpoint."),
    ...writeErrorResponses,
  },
});

const remove = createRoute({
  ...common,
  method: "delete",
  path: "/v1/projects/{id}/webhook-endpoints/{endpointID}",
  summary: "Delete a webhook endpoint",
  description: access,
  request: { params: EndpointParams },
  responses: { 204: { description: "Deleted." }, ...writeErrorResponses },
});

export function registerWebhookEndpoints(app: OpenAPIHono<AppEnv>) {
  app.openapi(list, async (c) => {
    const { id } = c.req.valid("param");
    const page = await listWebhookEndpoints(c.var.core, c.var.principal, id, c.req.valid("query"));
    setNextLink(c, page);
    return c.json({ webhook_endpoints: page.items.map(toWebhookEndpoint) }, 200);
  });

  app.openapi(idempotent(create), async (c) => {
    const body = c.req.valid("json");
    const row = await createWebhookEndpoint(c.var.core, c.var.actor, c.req.valid("param").id, {
      url: body.url,
      events: body.events,
      description: body.description,
    });
    return c.json(toWebhookEndpoint(row), 201);
  });

  app.openapi(get, async (c) => {
    const { id, endpointID } = c.req.valid("param");
    const row = await getWebhookEndpoint(c.var.core, c.var.principal, id, endpointID);
    return c.json(toWebhookEndpoint(row), 200);
  });

  app.openapi(patch, async (c) => {
    const { id, endpointID } = c.req.valid("param");
    const row = await updateWebhookEndpoint(
      c.var.core,
      c.var.actor,
      id,
      endpointID,
      c.req.valid("json"),
    );
    return c.json(toWebhookEndpoint(row), 200);
  });

  app.openapi(remove, async (c) => {
    const { id, endpointID } = c.req.valid("param");
    await deleteWebhookEndpoint(c.var.core, c.var.actor, id, endpointID);
    return c.body(null, 204);
  });
}
