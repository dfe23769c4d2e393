// A project's webhooks tab: rotation deliveries with retry, and the signing secret (admins).
import type { Child } from "hono/jsx";
import { findProject, getWebhookSecret } from "../../core/projects";
import { listDeliveries, retryDelivery } from "../../core/webhooks";
import type { ProjectRow } from "../../db/schema";
import { formErrors } from "../forms";
import { type C, flash, pageLinks, pageRequest, secretPage, section } from "../frame";
import { BASE, Notice, PageHead, SecretReveal } from "../layout";
import { DeliveryTable } from "../pages";
import { ProjectTabs } from "./projects";

export const webhooks = section();

const webhooksPage = async (c: C, project: ProjectRow, extra: Child = null) => {
  const { core, principal } = c.var;
  const result = await listDeliveries(core, principal, project.id, pageRequest(c));
  return c.render(
    <>
      <PageHead
        title={project.name}
        crumbs={[{ href: `${BASE}/projects`, label: "Projects" }]}
        sub="Rotation webhooks: each delivery of a new key to its webhook URL."
      />
      {flash(c)}
      {extra}
      <ProjectTabs project={project} current="webhooks" />
      <div class="card flush">
        <DeliveryTable
          project={project}
          deliveries={result.items}
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

webhooks.get("/:projectId/webhooks", async (c) => {
  const project = await findProject(c.var.core, c.var.principal, c.req.param("projectId"));
  return webhooksPage(c, project);
});

webhooks.post("/:projectId/webhooks/:deliveryId/retry", async (c) => {
  const project = await findProject(c.var.core, c.var.principal, c.req.param("projectId"));
  try {
    await retryDelivery(c.var.core, c.var.actor, project.id, c.req.param("deliveryId"));
  } catch (error) {
    const errors = formErrors(error);
    return webhooksPage(
      c,
      project,
      <Notice kind="error" title="The delivery was not retried.">
        {errors._ ?? Object.values(errors)[0]}
      </Notice>,
    );
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
