// Projects: the list and create form, a project's keys and its verification chart, new keys.
import { z } from "@hono/zod-openapi";
import type { FC } from "hono/jsx";
import { projectVerifications } from "../../core/analytics/queries";
import { listKeys } from "../../core/keys";
import { createProject, findProject, listEnvironments, listProjects } from "../../core/projects";
import type { ProjectRow } from "../../db/schema";
import { SlugSchema } from "../../schemas/fields";
import { ChartAssets, rangeOf, rangeQuery, VerificationChart } from "../charts";
import { type FormValues, fields, form, formErrors } from "../forms";
import { type C, flash, pageLinks, pageRequest, section } from "../frame";
import { KeyTable, NewKeyForm, NewKeyFormSchema, NoKeys } from "../keys";
import { BASE, type FieldErrors, PageHead, Tabs } from "../layout";
import { submitOnce, withoutToken } from "../once";
import { NewProjectForm, ProjectTable } from "../pages";
import { createKeyOnce } from "./keys";
import { LeakPolicyCard } from "./leak-policy";

export const projects = section();

const projectsPage = async (c: C, values: FormValues = {}, errors: FieldErrors = {}) => {
  const result = await listProjects(c.var.core, c.var.principal, pageRequest(c));
  const links = pageLinks(c, result.nextCursor);
  return c.render(
    <>
      <PageHead
        title="Projects"
        sub="Each project has its own keys, environments and webhook secret."
      />
      <div class="grid-2">
        <div class="card flush">
          <ProjectTable projects={result.items} now={c.var.core.now()} {...links} />
        </div>
        <div class="card">
          <h2>New project</h2>
          <NewProjectForm values={values} errors={errors} />
        </div>
      </div>
    </>,
    { title: "Projects", section: "projects" },
  );
};

projects.get("/", (c) => projectsPage(c));

const NewProjectFormSchema = z.object({
  name: fields.name,
  key_prefix: fields.text.refine(
    (prefix) => prefix === "" || SlugSchema.safeParse(prefix).success,
    {
      message: "Use 1–32 lowercase letters and digits, starting with a letter.",
    },
  ),
});

projects.post("/", form(NewProjectFormSchema), async (c) => {
  const submitted = c.req.valid("form");
  const { values } = submitted;
  if (!submitted.ok) return projectsPage(c, values, submitted.errors);
  const { name, key_prefix: prefix } = submitted.data;
  return submitOnce(
    c.var.core,
    c.var.principal,
    { path: c.req.path, values },
    {
      submit: async () => {
        try {
          const { project } = await createProject(c.var.core, c.var.actor, {
            name,
            keyPrefix: prefix || undefined,
          });
          const location = `${BASE}/projects/${project.id}`;
          return { created: c.redirect(`${location}?notice=project-created`, 303), location };
        } catch (error) {
          return { refused: await projectsPage(c, values, formErrors(error)) };
        }
      },
      again: (message) => projectsPage(c, withoutToken(values), { _: message }),
      repeatNotice: "project-created-before",
    },
  );
});

/** A project's tabs: its keys, and its webhooks. */
export const ProjectTabs: FC<{ project: ProjectRow; current: "keys" | "webhooks" }> = ({
  project,
  current,
}) => (
  <Tabs
    tabs={[
      { href: `${BASE}/projects/${project.id}`, label: "Keys", current: current === "keys" },
      {
        href: `${BASE}/projects/${project.id}/webhooks`,
        label: "Webhooks",
        current: current === "webhooks",
      },
    ]}
  />
);

projects.get("/:projectId", async (c) => {
  const { core, principal } = c.var;
  const project = await findProject(core, principal, c.req.param("projectId"));
  const range = rangeOf(c.req.query("range"));
  const query = rangeQuery(range, core.now());
  const [keys, usage] = await Promise.all([
    listKeys(core, principal, { projectId: project.id }, pageRequest(c)),
    projectVerifications(core, principal, project.id, query),
  ]);
  return c.render(
    <>
      <PageHead
        title={project.name}
        crumbs={[{ href: `${BASE}/projects`, label: "Projects" }]}
        sub={
          <>
            Keys start with <code>{project.keyPrefix}_</code> · project <code>{project.id}</code>
          </>
        }
        actions={
          <a class="btn primary" href={`${BASE}/projects/${project.id}/keys/new`}>
            New key
          </a>
        }
      />
      {flash(c)}
      <ProjectTabs project={project} current="keys" />
      <div class="card flush">
        <KeyTable
          keys={keys.items}
          now={core.now()}
          empty={NoKeys}
          {...pageLinks(c, keys.nextCursor)}
        />
      </div>
      <VerificationChart
        data={usage}
        range={range}
        path={`${BASE}/projects/${project.id}`}
        what="project"
        topKeys={usage.top_keys}
        {...query}
      />
      <LeakPolicyCard project={project} />
    </>,
    { title: project.name, section: "projects", head: <ChartAssets /> },
  );
});

const newKeyPage = async (c: C, project: ProjectRow, values: FormValues, errors: FieldErrors) => {
  const environments = await listEnvironments(c.var.core, c.var.principal, project.id);
  return c.render(
    <div class="narrow">
      <PageHead
        title="New key"
        crumbs={[
          { href: `${BASE}/projects`, label: "Projects" },
          { href: `${BASE}/projects/${project.id}`, label: project.name },
        ]}
      />
      <div class="card">
        <NewKeyForm
          action={`${BASE}/projects/${project.id}/keys`}
          environments={environments}
          values={values}
          errors={errors}
          cancel={`${BASE}/projects/${project.id}`}
        />
      </div>
    </div>,
    { title: `New key · ${project.name}`, section: "projects" },
  );
};

projects.get("/:projectId/keys/new", async (c) => {
  const project = await findProject(c.var.core, c.var.principal, c.req.param("projectId"));
  return newKeyPage(c, project, {}, {});
});

const NewProjectKeyFormSchema = NewKeyFormSchema.extend({
  environment_id: fields.text,
  rotation_interval_days: fields.rotationInterval,
  rotation_webhook_url: fields.webhookUrl,
});

projects.post("/:projectId/keys", form(NewProjectKeyFormSchema), async (c) => {
  const project = await findProject(c.var.core, c.var.principal, c.req.param("projectId"));
  const submitted = c.req.valid("form");
  const { values } = submitted;
  if (!submitted.ok) return newKeyPage(c, project, values, submitted.errors);
  const { data } = submitted;
  const input = {
    projectId: project.id,
    environment: { id: data.environment_id || undefined },
    name: data.name,
    scopes: data.scopes,
    expiresAt: data.expires_at,
    rotationIntervalDays: data.rotation_interval_days,
    rotationWebhookUrl: data.rotation_webhook_url,
  };
  return createKeyOnce(c, values, input, {
    section: "projects",
    title: "Key created",
    form: (shown, errors) => newKeyPage(c, project, shown, errors),
  });
});
