// A project's webhooks tab: its endpoints for key events (admins add, change and delete them;
// members read), the deliveries with retry, and the signing secret (admins).
import type { Child } from "hono/jsx";
import { findProject, getWebhookSecret } from "../../core/projects";
import {
  createWebhookEndpoint,
  deleteWebhookEndpoint,
  getWebhookEndpoint,
  listWebhookEndpoints,
  MAX_ENDPOINTS_PER_PROJECT,
  updateWebhookEndpoint,
} from "../../core/webhook-endpoints";
import { listDeliveries, retryDelivery } from "../../core/webhooks";
import type { ProjectRow, WebhookEndpointRow } from "../../db/schema";
import {
  DeleteEndpointForm,
  EditEndpointForm,
  EndpointFormSchema,
  EndpointTable,
  endpointValues,
  NewEndpointForm,
  Subscriptions,
  ToggleFormSchema,
} from "../endpoints";
import { type FormValues, form, formErrors } from "../forms";
import { type C, flash, pageLinks, pageRequest, secretPage, section } from "../frame";
import { BASE, type FieldErrors, FormError, Notice, PageHead, SecretReveal } from "../layout";
import { submitOnce, withoutToken } from "../once";
import { DeliveryTable } from "../pages";
import { ProjectTabs } from "./projects";

export const webhooks = section();

/** All of a project's endpoints: there are at most 10. */
const endpointsOf = async (c: C, project: ProjectRow) =>
  (
    await listWebhookEndpoints(c.var.core, c.var.principal, project.id, {
      limit: MAX_ENDPOINTS_PER_PROJECT,
    })
  ).items;

const webhooksPage = async (
  c: C,
  project: ProjectRow,
  extra: Child = null,
  form: { values: FormValues; errors: FieldErrors } = { values: {}, errors: {} },
) => {
  const { core, principal } = c.var;
  const [endpoints, result] = await Promise.all([
    endpointsOf(c, project),
    listDeliveries(core, principal, project.id, pageRequest(c)),
  ]);
  const full = endpoints.length >= MAX_ENDPOINTS_PER_PROJECT;
  return c.render(
    <>
      <PageHead
        title={project.name}
        crumbs={[{ href: `${BASE}/projects`, label: "Projects" }]}
        sub="Webhooks: key events sent to the project's endpoints, and rotated keys to their own URL."
      />
      {flash(c)}
      {extra}
      {/* A member has no form to show its refusal next to. */}
      {principal.isAdmin ? null : <FormError errors={form.errors} />}
      <ProjectTabs project={project} current="webhooks" />
      <div class={principal.isAdmin ? "grid-2" : undefined}>
        <div class="card flush">
          <h2>Endpoints</h2>
          <EndpointTable
            project={project}
            endpoints={endpoints}
            now={core.now()}
            canChange={principal.isAdmin}
          />
        </div>
        {principal.isAdmin ? (
          <div class="card">
            <h2>New endpoint</h2>
            {full ? (
              <p class="muted">
                This project has {MAX_ENDPOINTS_PER_PROJECT} endpoints, the most it can have. Delete
                one to add another.
              </p>
            ) : (
              <NewEndpointForm project={project} values={form.values} errors={form.errors} />
            )}
          </div>
        ) : null}
      </div>
      <div class="card flush">
        <h2>Recent deliveries</h2>
        <DeliveryTable
          project={project}
          deliveries={result.items}
          endpoints={endpoints}
          now={core.now()}
          {...pageLinks(c, result.nextCursor)}
        />
      </div>
      {principal.isAdmin ? (
        <div class="card">
          <h2>Signing secret</h2>
          <p class="muted">
            Deliveries are signed per Standard Webhooks with the project's <code>whsec_</code>{" "}
            secret. Receivers need it to check signatures.
          </p>
          <form method="post" action={`${BASE}/projects/${project.id}/webhooks/secret`}>
            <button class="btn" type="submit">
              Reveal signing secret
            </button>
          </form>
        </div>
      ) : null}
    </>,
    { title: `Webhooks · ${project.name}`, section: "projects" },
  );
};

const projectOf = (c: C) =>
  findProject(c.var.core, c.var.principal, c.req.param("projectId") ?? "");
const webhooksPath = (project: ProjectRow) => `${BASE}/projects/${project.id}/webhooks`;

webhooks.post("/:projectId/webhooks/endpoints", form(EndpointFormSchema), async (c) => {
  const project = await projectOf(c);
  const submitted = c.req.valid("form");
  const { values } = submitted;
  if (!submitted.ok) return webhooksPage(c, project, null, submitted);
  const { url, events, description } = submitted.data;
  return submitOnce(
    c.var.core,
    c.var.principal,
    { path: c.req.path, values },
    {
      submit: async () => {
        try {
          const endpoint = await createWebhookEndpoint(c.var.core, c.var.actor, project.id, {
            url,
            events,
            description,
          });
          // A repeat is sent to the tab (with its own notice); the first, to the new row.
          const location = webhooksPath(project);
          const shown = `${location}?notice=endpoint-created#endpoint-${endpoint.id}`;
          return { created: c.redirect(shown, 303), location };
        } catch (error) {
          return {
            refused: await webhooksPage(c, project, null, { values, errors: formErrors(error) }),
          };
        }
      },
      again: (message) =>
        webhooksPage(c, project, null, { values: withoutToken(values), errors: { _: message } }),
      repeatNotice: "endpoint-created-before",
    },
  );
});

const endpointPage = (
  c: C,
  project: ProjectRow,
  endpoint: WebhookEndpointRow,
  values: FormValues,
  errors: FieldErrors,
) =>
  c.render(
    <div class="narrow">
      <PageHead
        title={endpoint.description ?? "Webhook endpoint"}
        crumbs={[
          { href: `${BASE}/projects`, label: "Projects" },
          { href: webhooksPath(project), label: project.name },
        ]}
        sub={<code>{endpoint.url}</code>}
      />
      <div class="card">
        {c.var.principal.isAdmin ? null : <FormError errors={errors} />}
        {c.var.principal.isAdmin ? (
          <EditEndpointForm project={project} endpoint={endpoint} values={values} errors={errors} />
        ) : (
          <dl class="facts">
            <dt>URL</dt>
            <dd class="mono">{endpoint.url}</dd>
            <dt>Events</dt>
            <dd>
              <Subscriptions events={endpoint.events} />
            </dd>
            <dt>State</dt>
            <dd>{endpoint.enabled ? "enabled" : "disabled"}</dd>
          </dl>
        )}
      </div>
      {c.var.principal.isAdmin ? (
        <div class="card">
          <h2>Delete</h2>
          <DeleteEndpointForm project={project} endpoint={endpoint} />
        </div>
      ) : null}
    </div>,
    { title: `Webhook endpoint · ${project.name}`, section: "projects" },
  );

const endpointOf = async (c: C) => {
  const project = await projectOf(c);
  const id = c.req.param("endpointId") ?? "";
  const endpoint = await getWebhookEndpoint(c.var.core, c.var.principal, project.id, id);
  return { project, endpoint };
};

webhooks.get("/:projectId/webhooks/endpoints/:endpointId", async (c) => {
  const { project, endpoint } = await endpointOf(c);
  return endpointPage(c, project, endpoint, endpointValues(endpoint), {});
});

webhooks.post("/:projectId/webhooks/endpoints/:endpointId", form(EndpointFormSchema), async (c) => {
  const { project, endpoint } = await endpointOf(c);
  const submitted = c.req.valid("form");
  if (!submitted.ok) return endpointPage(c, project, endpoint, submitted.values, submitted.errors);
  try {
    await updateWebhookEndpoint(c.var.core, c.var.actor, project.id, endpoint.id, submitted.data);
  } catch (error) {
    return endpointPage(c, project, endpoint, submitted.values, formErrors(error));
  }
  return c.redirect(`${webhooksPath(project)}?notice=endpoint-updated`, 303);
});

/** A row's button, or a change that failed: the tab again with why. */
const refusedOnTab = (c: C, project: ProjectRow, title: string, error: unknown) => {
  const errors = formErrors(error);
  return webhooksPage(
    c,
    project,
    <Notice kind="error" title={title}>
      {errors._ ?? Object.values(errors)[0]}
    </Notice>,
  );
};

webhooks.post(
  "/:projectId/webhooks/endpoints/:endpointId/enabled",
  form(ToggleFormSchema),
  async (c) => {
    const project = await projectOf(c);
    const submitted = c.req.valid("form");
    const enabled = submitted.ok ? submitted.data.enabled === "true" : true;
    const id = c.req.param("endpointId");
    try {
      await updateWebhookEndpoint(c.var.core, c.var.actor, project.id, id, { enabled });
    } catch (error) {
      return refusedOnTab(c, project, "The endpoint was not changed.", error);
    }
    return c.redirect(`${webhooksPath(project)}?notice=endpoint-updated`, 303);
  },
);

webhooks.post("/:projectId/webhooks/endpoints/:endpointId/delete", async (c) => {
  const project = await projectOf(c);
  try {
    await deleteWebhookEndpoint(c.var.core, c.var.actor, project.id, c.req.param("endpointId"));
  } catch (error) {
    return refusedOnTab(c, project, "The endpoint was not deleted.", error);
  }
  return c.redirect(`${webhooksPath(project)}?notice=endpoint-deleted`, 303);
});

webhooks.get("/:projectId/webhooks", async (c) => {
  return webhooksPage(c, await projectOf(c));
});

webhooks.post("/:projectId/webhooks/:deliveryId/retry", async (c) => {
  const project = await projectOf(c);
  try {
    await retryDelivery(c.var.core, c.var.actor, project.id, c.req.param("deliveryId"));
  } catch (error) {
    return refusedOnTab(c, project, "The delivery was not retried.", error);
  }
  return c.redirect(`${BASE}/projects/${project.id}/webhooks?notice=delivery-retried`, 303);
});

webhooks.post("/:projectId/webhooks/secret", async (c) => {
  const { core, actor } = c.var;
  const project = await findProject(core, actor.principal, c.req.param("projectId"));
  const secrets = await getWebhookSecret(core, actor, project.id);
  return secretPage(
    c,
    { title: "Signing secret", section: "projects" },
    <div class="narrow">
      <PageHead
        title="Webhook signing secret"
        crumbs={[
          { href: `${BASE}/projects`, label: "Projects" },
          { href: `${BASE}/projects/${project.id}/webhooks`, label: project.name },
        ]}
      />
      <SecretReveal id="signing-secret" value={secrets.current} what="the signing secret" />
    </div>,
  );
});
