// The dashboard at /dashboard: server-rendered pages over the same core the API uses. Pages
// call core functions with the signed-in user as the actor; nothing goes through HTTP twice.
import { type Context, Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Child } from "hono/jsx";
import UPLOT_SCRIPT from "uplot/dist/uPlot.iife.min.js";
import UPLOT_STYLES from "uplot/dist/uPlot.min.css";
import { createCore } from "../context";
import { keyVerifications, projectVerifications } from "../core/analytics/queries";
import { listAuditEvents } from "../core/audit";
import type { Core } from "../core/context";
import { forbidden, isDomainError, loggable } from "../core/errors";
import {
  type CreateKeyInput,
  createKey,
  getKey,
  listKeys,
  liveCredits,
  revokeKey,
  rotateKey,
  type UpdateKeyInput,
  updateKey,
} from "../core/keys";
import { DEFAULT_PAGE_SIZE } from "../core/pagination";
import type { Actor } from "../core/principal";
import {
  createProject,
  findProject,
  getWebhookSecret,
  listEnvironments,
  listProjects,
} from "../core/projects";
import { enforceRateLimit } from "../core/rate-limit";
import { isStorageFault } from "../core/storage-faults";
import { listDeliveries, retryDelivery } from "../core/webhooks";
import type { ApiKeyRow, ProjectRow } from "../db/schema";
import { actorOf } from "../http/auth";
import { MAX_BODY_BYTES } from "../http/body";
import { SlugSchema } from "../http/fields";
import { AccessForm, accessValues, changedAccess, readAccess } from "./access";
import { CHART_SCRIPT, CLERK_SCRIPT, SCRIPT, STYLES } from "./assets";
import { ChartAssets, rangeOf, rangeQuery, VerificationChart } from "./charts";
import { FormReader, type FormValues, formErrors, localInput, readForm } from "./forms";
import {
  EditKeyForm,
  editValues,
  GRACE_CHOICES,
  isChangeable,
  KeyFacts,
  KeyShownOnce,
  KeyTable,
  mayChange,
  NewKeyForm,
  NoKeys,
  RevokeForm,
  RotateForm,
  StatusBadge,
} from "./keys";
import {
  BASE,
  Empty,
  type FieldErrors,
  type Frame,
  formatInstant,
  Layout,
  Notice,
  PageHead,
  SecretReveal,
  Tabs,
} from "./layout";
import { submitOnce, withoutToken } from "./once";
import {
  AuditTable,
  DeliveryTable,
  DevSignInForm,
  ErrorPage,
  NewProjectForm,
  ProjectTable,
  SignInCard,
} from "./pages";
import {
  clearSessionCookie,
  clerkFrontendApi,
  mintDevSession,
  originAllowed,
  principalOfSession,
  sessionPrincipal,
  setSessionCookie,
  type UserPrincipal,
} from "./session";

type DashboardEnv = {
  Bindings: Env;
  Variables: { core: Core; principal: UserPrincipal; actor: Actor };
};
type C = Context<DashboardEnv>;

const PAGE_SIZE = 25;

const devSignInEnabled = (env: Env) => env.DEV_SIGN_IN === "true";

function clerkOf(env: Env) {
  const frontendApi = clerkFrontendApi(env.CLERK_PUBLISHABLE_KEY);
  return frontendApi && env.CLERK_PUBLISHABLE_KEY
    ? { frontendApi, publishableKey: env.CLERK_PUBLISHABLE_KEY }
    : null;
}

/** `script-src 'self'` and no inline code; Clerk's origin is allowed only when it is used. */
function contentSecurityPolicy(env: Env): string {
  const clerk = clerkOf(env);
  const fapi = clerk ? ` https://${clerk.frontendApi}` : "";
  const captcha = clerk ? " https://challenges.cloudflare.com" : "";
  return [
    "default-src 'none'",
    `script-src 'self'${fapi}${captcha}`,
    // Clerk's components inject their own styles; without Clerk, nothing inline at all.
    `style-src 'self'${clerk ? " 'unsafe-inline'" : ""}`,
    `img-src 'self' data:${clerk ? " https://img.clerk.com" : ""}`,
    `connect-src 'self'${fapi}`,
    clerk ? `frame-src${captcha}` : null,
    clerk ? "worker-src 'self' blob:" : null,
    "font-src 'self'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    "base-uri 'none'",
  ]
    .filter(Boolean)
    .join("; ");
}

/** Only a path inside the dashboard: never an open redirect. */
function safeNext(value: string | undefined): string {
  if (!value?.startsWith(`${BASE}/`) || value.includes("\\")) {
    return `${BASE}/projects`;
  }
  return value;
}

function page(c: C, frame: Omit<Frame, "principal" | "clerk">, body: Child, status = 200) {
  const principal = c.get("principal") ?? null;
  return c.html(
    <Layout {...frame} principal={principal} clerk={clerkOf(c.env)}>
      {body}
    </Layout>,
    status as 200,
  );
}

/** A page with a plaintext on it: never stored by the browser or anything in between. */
function secretPage(c: C, frame: Omit<Frame, "principal" | "clerk">, body: Child) {
  c.header("Cache-Control", "no-store");
  c.header("Pragma", "no-cache");
  return page(c, frame, body);
}

/** Links of a paged list: the next cursor on the same path, and the first page. */
function pageLinks(c: C, nextCursor: string | null) {
  const path = new URL(c.req.url).pathname;
  return {
    next: nextCursor ? `${path}?cursor=${encodeURIComponent(nextCursor)}` : null,
    first: c.req.query("cursor") ? path : null,
  };
}

const pageRequest = (c: C, limit = PAGE_SIZE) => ({
  limit,
  cursor: c.req.query("cursor")?.slice(0, 200) || undefined,
});

const NOTICES: Record<string, string> = {
  "project-created": "Project created.",
  "project-created-before": "That form was submitted before: this is the project it created.",
  "key-updated": "Changes saved.",
  "access-updated": "Access settings saved.",
  "key-revoked": "Key revoked. It no longer verifies anywhere.",
  "delivery-retried": "Delivery queued again; it is sent within a minute.",
  "key-created-before":
    "That form was submitted before: this is the key it created. Its secret was shown once, then; rotate the key if the secret was lost.",
};

function flash(c: C) {
  const notice = c.req.query("notice") ?? "";
  const message = Object.hasOwn(NOTICES, notice) ? NOTICES[notice] : undefined;
  return message ? <Notice>{message}</Notice> : null;
}

const signedIn: MiddlewareHandler<DashboardEnv> = async (c, next) => {
  const principal = await sessionPrincipal(c.var.core, c);
  if (!principal) {
    const here = new URL(c.req.url);
    const back = c.req.method === "GET" ? `${here.pathname}${here.search}` : `${BASE}/projects`;
    return c.redirect(`${BASE}/sign-in?next=${encodeURIComponent(back)}`, 303);
  }
  await enforceRateLimit(c.env.MANAGEMENT_RATE_LIMITER, principal);
  c.set("principal", principal);
  c.set("actor", actorOf(c, principal));
  await next();
};

/**
 * A create-key form's POST: the key, shown once on the page that answers, or the form again
 * with the core's errors. Once per form (see once.ts): a repeat goes to the key it created.
 */
function createKeyOnce(
  c: C,
  values: FormValues,
  input: CreateKeyInput,
  page: {
    section: Frame["section"];
    title: string;
    form: (values: FormValues, errors: FieldErrors) => Response | Promise<Response>;
  },
) {
  const { core, principal, actor } = c.var;
  return submitOnce(
    core,
    principal,
    { path: c.req.path, values },
    {
      submit: async () => {
        try {
          const { key, plaintext } = await createKey(core, actor, input);
          const created = await secretPage(
            c,
            { title: "Key created", section: page.section },
            <KeyShownOnce title={page.title} keyRow={key} plaintext={plaintext} now={core.now()} />,
          );
          return { created, location: `${BASE}/keys/${key.id}` };
        } catch (error) {
          return { refused: await page.form(values, formErrors(error)) };
        }
      },
      again: (message) => page.form(withoutToken(values), { _: message }),
      repeatNotice: "key-created-before",
    },
  );
}

export function createDashboard() {
  const app = new Hono<DashboardEnv>();

  app.use(async (c, next) => {
    c.set("core", createCore(c.env, c.executionCtx));
    await next();
    c.header("Content-Security-Policy", contentSecurityPolicy(c.env));
    c.header("X-Content-Type-Options", "nosniff");
    c.header("X-Frame-Options", "DENY");
    c.header("Referrer-Policy", "same-origin");
    // Pages are per user: never in a shared cache. Assets set their own.
    if (!c.res.headers.has("Cache-Control")) c.header("Cache-Control", "private, no-cache");
  });

  // CSRF: every mutation, whatever its content type, comes from this origin.
  app.use(async (c, next) => {
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && !originAllowed(c)) {
      return c.html(
        <Layout title="Request refused">
          <ErrorPage
            title="Request refused"
            message="This form was not sent from a Keygate page, so nothing was changed. Go back, reload the page and try again."
            signedIn={false}
          />
        </Layout>,
        403,
      );
    }
    await next();
  });

  // Forms are small: at most 64 KiB, as for the API's JSON bodies.
  app.use(
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) =>
        c.html(
          <Layout title="Too large">
            <ErrorPage
              title="Too large"
              message="That form was larger than Keygate accepts; nothing was changed."
              signedIn={false}
            />
          </Layout>,
          413,
        ),
    }),
  );

  const asset = (body: string, type: string) => (c: C) =>
    c.body(body, 200, {
      "content-type": type,
      "cache-control": "public, max-age=300",
    });
  app.get("/assets/app.css", asset(STYLES, "text/css; charset=utf-8"));
  app.get("/assets/app.js", asset(SCRIPT, "text/javascript; charset=utf-8"));
  app.get("/assets/clerk.js", asset(CLERK_SCRIPT, "text/javascript; charset=utf-8"));
  app.get("/assets/uplot.js", asset(UPLOT_SCRIPT, "text/javascript; charset=utf-8"));
  app.get("/assets/uplot.css", asset(UPLOT_STYLES, "text/css; charset=utf-8"));
  app.get("/assets/chart.js", asset(CHART_SCRIPT, "text/javascript; charset=utf-8"));

  // ---------- sign-in ----------

  app.get("/", (c) => c.redirect(`${BASE}/projects`, 302));

  app.get("/sign-in", async (c) => {
    const next = safeNext(c.req.query("next"));
    let message: string | null = null;
    try {
      if (await sessionPrincipal(c.var.core, c)) return c.redirect(next, 302);
    } catch (error) {
      if (!isDomainError(error, "forbidden")) throw error;
      message = error.message;
    }
    return page(
      c,
      { title: "Sign in" },
      <SignInCard
        clerk={clerkOf(c.env) !== null}
        devSignIn={devSignInEnabled(c.env)}
        next={next}
        message={message}
      />,
    );
  });

  app.get("/dev-sign-in", (c) => {
    if (!devSignInEnabled(c.env)) return notFoundPage(c);
    return page(
      c,
      { title: "Development sign-in" },
      <DevSignInForm
        values={{}}
        errors={{}}
        canMint={Boolean(c.env.DEV_SIGNING_KEY)}
        next={safeNext(c.req.query("next"))}
      />,
    );
  });

  app.post("/dev-sign-in", async (c) => {
    if (!devSignInEnabled(c.env)) return notFoundPage(c);
    const values = await readForm(c);
    const next = safeNext(values.next);
    const canMint = Boolean(c.env.DEV_SIGNING_KEY);
    const errors: FieldErrors = {};
    let token = (values.token ?? "").trim();
    if (canMint) {
      const org = (values.org ?? "").trim();
      const user = (values.user ?? "").trim();
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(org)) errors.org = "Use 1–64 letters, digits, _ or -.";
      if (!/^[A-Za-z0-9_-]{1,64}$/.test(user)) errors.user = "Use 1–64 letters, digits, _ or -.";
      if (Object.keys(errors).length === 0) {
        token = await mintDevSession(
          c.env.DEV_SIGNING_KEY as string,
          {
            organizationId: org,
            userId: user,
            role: values.role === "member" ? "member" : "admin",
            azp: new URL(c.req.url).origin,
          },
          Date.now(),
        );
      }
    } else if (token === "") {
      errors.token = "Paste a session token.";
    }
    if (Object.keys(errors).length === 0) {
      // The cookie is only set once the token passes the very check every page makes.
      const principal = await principalOfSession(c.var.core, token).catch(() => null);
      if (principal) {
        setSessionCookie(c, token);
        return c.redirect(next, 303);
      }
      errors[canMint ? "_" : "token"] = canMint
        ? "DEV_SIGNING_KEY does not match CLERK_JWT_KEY: delete .dev.vars and run npm start again."
        : "This token is not a valid session for this service (expired, or signed with another key).";
    }
    return page(
      c,
      { title: "Development sign-in" },
      <DevSignInForm values={values} errors={errors} canMint={canMint} next={next} />,
    );
  });

  app.post("/sign-out", (c) => {
    clearSessionCookie(c);
    return c.redirect(`${BASE}/sign-in`, 303);
  });

  // ---------- everything below needs a session ----------

  app.use("/projects/*", signedIn);
  app.use("/projects", signedIn);
  app.use("/keys/*", signedIn);
  app.use("/org-keys/*", signedIn);
  app.use("/org-keys", signedIn);
  app.use("/audit", signedIn);

  // ---------- projects ----------

  const projectsPage = async (c: C, values: FormValues = {}, errors: FieldErrors = {}) => {
    const result = await listProjects(c.var.core, c.var.principal, pageRequest(c));
    const links = pageLinks(c, result.nextCursor);
    return page(
      c,
      { title: "Projects", section: "projects" },
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
    );
  };

  app.get("/projects", (c) => projectsPage(c));

  app.post("/projects", async (c) => {
    const values = await readForm(c);
    const form = new FormReader(values);
    const name = form.name();
    const prefix = form.text("key_prefix");
    if (prefix !== "" && !SlugSchema.safeParse(prefix).success) {
      form.errors.key_prefix = "Use 1–32 lowercase letters and digits, starting with a letter.";
    }
    if (!form.ok) return projectsPage(c, values, form.errors);
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

  const projectTabs = (project: ProjectRow, current: "keys" | "webhooks") => (
    <Tabs
      tabs={[
        { href: `${BASE}/projects/${project.id}`, label: "Keys", current: current === "keys" },
        {
          href: `${BASE}/projects/${project.id}/webhooks`,
          label: "Webhook deliveries",
          current: current === "webhooks",
        },
      ]}
    />
  );

  app.get("/projects/:projectId", async (c) => {
    const { core, principal } = c.var;
    const project = await findProject(core, principal, c.req.param("projectId"));
    const range = rangeOf(c.req.query("range"));
    const query = rangeQuery(range, core.now());
    const [keys, usage] = await Promise.all([
      listKeys(core, principal, { projectId: project.id }, pageRequest(c)),
      projectVerifications(core, principal, project.id, query),
    ]);
    return page(
      c,
      { title: project.name, section: "projects", head: <ChartAssets /> },
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
        {projectTabs(project, "keys")}
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
      </>,
    );
  });

  const newKeyPage = async (c: C, project: ProjectRow, values: FormValues, errors: FieldErrors) => {
    const environments = await listEnvironments(c.var.core, c.var.principal, project.id);
    return page(
      c,
      { title: `New key · ${project.name}`, section: "projects" },
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
    );
  };

  app.get("/projects/:projectId/keys/new", async (c) => {
    const project = await findProject(c.var.core, c.var.principal, c.req.param("projectId"));
    return newKeyPage(c, project, {}, {});
  });

  app.post("/projects/:projectId/keys", async (c) => {
    const project = await findProject(c.var.core, c.var.principal, c.req.param("projectId"));
    const values = await readForm(c);
    const form = new FormReader(values);
    const input = {
      projectId: project.id,
      environment: { id: form.text("environment_id") || undefined },
      name: form.name(),
      scopes: form.scopes(),
      expiresAt: form.instant("expires_at"),
      rotationIntervalDays: form.rotationInterval(),
      rotationWebhookUrl: form.webhookUrl(),
    };
    if (!form.ok) return newKeyPage(c, project, values, form.errors);
    return createKeyOnce(c, values, input, {
      section: "projects",
      title: "Key created",
      form: (shown, errors) => newKeyPage(c, project, shown, errors),
    });
  });

  // ---------- webhook deliveries ----------

  const webhooksPage = async (c: C, project: ProjectRow, extra: Child = null) => {
    const { core, principal } = c.var;
    const result = await listDeliveries(core, principal, project.id, pageRequest(c));
    return page(
      c,
      { title: `Webhooks · ${project.name}`, section: "projects" },
      <>
        <PageHead
          title={project.name}
          crumbs={[{ href: `${BASE}/projects`, label: "Projects" }]}
          sub="Rotation webhooks: each delivery of a new key to its webhook URL."
        />
        {flash(c)}
        {extra}
        {projectTabs(project, "webhooks")}
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
    );
  };

  app.get("/projects/:projectId/webhooks", async (c) => {
    const project = await findProject(c.var.core, c.var.principal, c.req.param("projectId"));
    return webhooksPage(c, project);
  });

  app.post("/projects/:projectId/webhooks/:deliveryId/retry", async (c) => {
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

  app.post("/projects/:projectId/webhooks/secret", async (c) => {
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

  // ---------- one key ----------

  const keyPage = async (
    c: C,
    key: ApiKeyRow,
    values: FormValues | null = null,
    errors: FieldErrors = {},
    access: { values: FormValues; errors: FieldErrors } | null = null,
  ) => {
    const { core, principal } = c.var;
    const now = core.now();
    const range = rangeOf(c.req.query("range"));
    const query = rangeQuery(range, now);
    const [project, remaining, usage] = await Promise.all([
      key.projectId ? findProject(core, principal, key.projectId) : null,
      // The exact balance from the usage store (the row may lag it by up to a minute).
      liveCredits(core, key),
      keyVerifications(core, principal, key.id, query),
    ]);
    const changeable = isChangeable(key, now) && mayChange(principal, key);
    const crumbs = project
      ? [
          { href: `${BASE}/projects`, label: "Projects" },
          { href: `${BASE}/projects/${project.id}`, label: project.name },
        ]
      : [{ href: `${BASE}/org-keys`, label: "Organization keys" }];
    return page(
      c,
      { title: key.name, section: project ? "projects" : "org-keys", head: <ChartAssets /> },
      <>
        <PageHead
          title={
            <>
              {key.name} <StatusBadge keyRow={key} now={now} />
            </>
          }
          crumbs={crumbs}
          actions={
            changeable ? (
              <>
                <a class="btn" href={`${BASE}/keys/${key.id}/rotate`}>
                  Rotate…
                </a>
                <a class="btn danger-quiet" href={`${BASE}/keys/${key.id}/revoke`}>
                  Revoke…
                </a>
              </>
            ) : null
          }
        />
        {flash(c)}
        <VerificationChart
          data={usage}
          range={range}
          path={`${BASE}/keys/${key.id}`}
          what="key"
          {...query}
        />
        <div class="grid-2">
          <div class="card">
            <h2>Details</h2>
            <KeyFacts keyRow={key} project={project} now={now} remaining={remaining} />
          </div>
          <div class="card">
            <h2>Edit</h2>
            {changeable ? (
              <EditKeyForm keyRow={key} values={values ?? editValues(key)} errors={errors} />
            ) : isChangeable(key, now) ? (
              <p class="muted">
                Only organization admins can change{" "}
                {key.projectId === null ? "organization-scoped" : "admin-managed"} keys.
              </p>
            ) : (
              <p class="muted">A revoked, expired or rotated key can no longer be changed.</p>
            )}
          </div>
        </div>
        {changeable ? (
          <div class="card">
            <h2>Access</h2>
            <AccessForm
              keyRow={key}
              values={access?.values ?? accessValues(key, remaining)}
              errors={access?.errors ?? {}}
            />
          </div>
        ) : null}
      </>,
    );
  };

  const loadKey = (c: C) => getKey(c.var.core, c.var.principal, c.req.param("keyId") as string);

  app.get("/keys/:keyId", async (c) => keyPage(c, await loadKey(c)));

  app.post("/keys/:keyId", async (c) => {
    const key = await loadKey(c);
    const values = await readForm(c);
    const form = new FormReader(values);
    const input = changedFields(key, form);
    if (!form.ok) return keyPage(c, key, values, form.errors);
    try {
      await updateKey(c.var.core, c.var.actor, key.id, input);
    } catch (error) {
      return keyPage(c, key, values, formErrors(error));
    }
    return c.redirect(`${BASE}/keys/${key.id}?notice=key-updated`, 303);
  });

  app.post("/keys/:keyId/access", async (c) => {
    const key = await loadKey(c);
    const values = await readForm(c);
    const form = new FormReader(values);
    const input = changedAccess(key, readAccess(form));
    if (!form.ok) return keyPage(c, key, null, {}, { values, errors: form.errors });
    try {
      await updateKey(c.var.core, c.var.actor, key.id, { governance: input });
    } catch (error) {
      return keyPage(c, key, null, {}, { values, errors: formErrors(error) });
    }
    return c.redirect(`${BASE}/keys/${key.id}?notice=access-updated`, 303);
  });

  const confirmPage = (c: C, key: ApiKeyRow, title: string, body: Child) =>
    page(
      c,
      { title, section: key.projectId ? "projects" : "org-keys" },
      <div class="narrow">
        <PageHead
          title={title}
          crumbs={[{ href: `${BASE}/keys/${key.id}`, label: key.name }]}
          sub={<code>{key.keyPrefix}…</code>}
        />
        <div class="card">{body}</div>
      </div>,
    );

  app.get("/keys/:keyId/rotate", async (c) => {
    const key = await loadKey(c);
    return confirmPage(
      c,
      key,
      `Rotate “${key.name}”`,
      <RotateForm keyRow={key} errors={{}} grace="3600" />,
    );
  });

  app.post("/keys/:keyId/rotate", async (c) => {
    const key = await loadKey(c);
    const form = new FormReader(await readForm(c));
    const grace = form.choice(
      "grace",
      GRACE_CHOICES.map((g) => g.value),
      "0",
    );
    const seconds = GRACE_CHOICES.find((g) => g.value === grace)?.seconds ?? 0;
    if (!form.ok) {
      return confirmPage(
        c,
        key,
        `Rotate “${key.name}”`,
        <RotateForm keyRow={key} errors={form.errors} grace={grace} />,
      );
    }
    try {
      const { fresh, old, plaintext } = await rotateKey(c.var.core, c.var.actor, key.id, seconds);
      const note =
        seconds === 0
          ? "The old key was revoked."
          : `The old key keeps working until ${formatInstant(old.graceExpiresAt as number)}.`;
      return secretPage(
        c,
        { title: "Key rotated", section: fresh.projectId ? "projects" : "org-keys" },
        <KeyShownOnce
          title="New key issued"
          keyRow={fresh}
          plaintext={plaintext}
          note={note}
          now={c.var.core.now()}
        />,
      );
    } catch (error) {
      return confirmPage(
        c,
        key,
        `Rotate “${key.name}”`,
        <RotateForm keyRow={key} errors={formErrors(error)} grace={grace} />,
      );
    }
  });

  app.get("/keys/:keyId/revoke", async (c) => {
    const key = await loadKey(c);
    return confirmPage(c, key, `Revoke “${key.name}”?`, <RevokeForm keyRow={key} errors={{}} />);
  });

  app.post("/keys/:keyId/revoke", async (c) => {
    const key = await loadKey(c);
    try {
      await revokeKey(c.var.core, c.var.actor, key.id);
    } catch (error) {
      return confirmPage(
        c,
        key,
        `Revoke “${key.name}”?`,
        <RevokeForm keyRow={key} errors={formErrors(error)} />,
      );
    }
    return c.redirect(`${BASE}/keys/${key.id}?notice=key-revoked`, 303);
  });

  // ---------- organization-scoped keys (admins) ----------

  const requireAdminPage = (c: C) => {
    if (!c.var.principal.isAdmin) {
      throw forbidden("Only organization admins can see organization-scoped keys.");
    }
  };

  const newOrgKeyPage = (c: C, values: FormValues, errors: FieldErrors) =>
    page(
      c,
      { title: "New organization key", section: "org-keys" },
      <div class="narrow">
        <PageHead
          title="New organization key"
          crumbs={[{ href: `${BASE}/org-keys`, label: "Organization keys" }]}
          sub="An organization-scoped key reaches every project. Give it only the scopes it needs."
        />
        <div class="card">
          <NewKeyForm
            action={`${BASE}/org-keys`}
            environments={null}
            values={values}
            errors={errors}
            cancel={`${BASE}/org-keys`}
          />
        </div>
      </div>,
    );

  app.get("/org-keys", async (c) => {
    requireAdminPage(c);
    const { core, principal } = c.var;
    const keys = await listKeys(core, principal, { projectId: null }, pageRequest(c));
    return page(
      c,
      { title: "Organization keys", section: "org-keys" },
      <>
        <PageHead
          title="Organization keys"
          sub="Keys that reach every project of the organization, e.g. for automation. Admins only."
          actions={
            <a class="btn primary" href={`${BASE}/org-keys/new`}>
              New organization key
            </a>
          }
        />
        <div class="card flush">
          <KeyTable
            keys={keys.items}
            now={core.now()}
            empty={NoOrgKeys}
            {...pageLinks(c, keys.nextCursor)}
          />
        </div>
      </>,
    );
  });

  app.get("/org-keys/new", (c) => {
    requireAdminPage(c);
    return newOrgKeyPage(c, {}, {});
  });

  app.post("/org-keys", async (c) => {
    requireAdminPage(c);
    const values = await readForm(c);
    const form = new FormReader(values);
    const input = {
      projectId: null,
      name: form.name(),
      scopes: form.scopes(),
      expiresAt: form.instant("expires_at"),
    };
    if (!form.ok) return newOrgKeyPage(c, values, form.errors);
    return createKeyOnce(c, values, input, {
      section: "org-keys",
      title: "Organization key created",
      form: (shown, errors) => newOrgKeyPage(c, shown, errors),
    });
  });

  // ---------- audit log ----------

  app.get("/audit", async (c) => {
    const { core, principal } = c.var;
    const result = await listAuditEvents(
      core,
      principal,
      principal.organizationId,
      pageRequest(c, DEFAULT_PAGE_SIZE),
    );
    return page(
      c,
      { title: "Audit log", section: "audit" },
      <>
        <PageHead title="Audit log" sub="Every change in this organization, newest first." />
        <div class="card flush">
          <AuditTable events={result.items} now={core.now()} {...pageLinks(c, result.nextCursor)} />
        </div>
      </>,
    );
  });

  app.all("*", (c) =>
    // `/dashboard/` (the API's routes are strict about slashes; a person typing it is not).
    c.req.path === `${BASE}/` && c.req.method === "GET"
      ? c.redirect(`${BASE}/projects`, 302)
      : notFoundPage(c),
  );

  app.onError((error, c) => {
    const signedIn = Boolean(c.get("principal"));
    const show = (title: string, message: string, status: number) =>
      page(c, { title }, <ErrorPage title={title} message={message} signedIn={signedIn} />, status);
    if (isDomainError(error)) {
      switch (error.kind) {
        case "unauthorized":
          return c.redirect(`${BASE}/sign-in`, 303);
        case "not_found":
          return show("Not found", error.message, 404);
        case "forbidden":
          return show("Not allowed", error.message, 403);
        case "invalid":
          return show("Bad request", error.message, 400);
        case "rate_limited":
          c.header("Retry-After", String(error.details.retryAfterSeconds ?? 1));
          return show("Slow down", error.message, 429);
        case "unavailable":
          c.header("Retry-After", "1");
          return show("Temporarily unavailable", error.message, 503);
        default:
          break;
      }
    }
    if (isStorageFault(error)) {
      c.header("Retry-After", "1");
      return show("Temporarily unavailable", "Storage is unavailable; try again shortly.", 503);
    }
    console.error(`dashboard request failed: ${c.req.method} ${c.req.path}:`, loggable(error));
    return show(
      "Something went wrong",
      "An unexpected error occurred; nothing is shown of it here.",
      500,
    );
  });

  return app;
}

function notFoundPage(c: C) {
  return page(
    c,
    { title: "Not found" },
    <ErrorPage
      title="Not found"
      message="There is no such page in the dashboard."
      signedIn={Boolean(c.get("principal"))}
    />,
    404,
  );
}

/**
 * Only what the form changed goes to the core: an unchanged schedule must not restart, an
 * unchanged (minute-rounded) expiry already past must not block a rename, and the audit log
 * names the fields that really changed.
 */
function changedFields(key: ApiKeyRow, form: FormReader): UpdateKeyInput {
  const input: UpdateKeyInput = {};
  const name = form.name();
  if (name !== key.name) input.name = name;
  const scopes = form.scopes();
  if (scopes.join(" ") !== key.scopes.join(" ")) input.scopes = scopes;
  if (form.text("expires_at") !== localInput(key.expiresAt)) {
    input.expiresAt = form.instant("expires_at");
  }
  if (key.projectId !== null) {
    const interval = form.rotationInterval();
    if (interval !== key.rotationIntervalDays) input.rotationIntervalDays = interval;
    const url = form.webhookUrl();
    if (url !== key.rotationWebhookUrl) input.rotationWebhookUrl = url;
  }
  return input;
}

const NoOrgKeys = () => (
  <Empty title="No organization keys">
    <p>An organization key reaches every project: use it for automation that manages keys.</p>
  </Empty>
);
