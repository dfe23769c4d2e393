// Projects, webhook deliveries, the audit log, sign-in and the error pages.
import type { FC } from "hono/jsx";
import { isRetryable } from "../core/webhooks";
import type {
  AuditEventRow,
  ProjectRow,
  WebhookDeliveryRow,
  WebhookEndpointRow,
} from "../db/schema";
import type { FormValues } from "./forms";
import {
  BASE,
  described,
  Empty,
  Field,
  type FieldErrors,
  FormError,
  formatInstant,
  Pager,
  Time,
} from "./layout";
import { SUBMISSION_FIELD, submissionToken } from "./once";

export const ProjectTable: FC<{
  projects: ProjectRow[];
  now: number;
  next: string | null;
  first: string | null;
}> = ({ projects, now, next, first }) =>
  projects.length === 0 && !first ? (
    <Empty title="No projects yet">
      <p>A project holds the keys of one product or service. Create the first one here.</p>
    </Empty>
  ) : (
    <>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Project</th>
            <th scope="col">Key prefix</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {projects.map((project) => (
            <tr>
              <td class="name" data-label="Project">
                <a href={`${BASE}/projects/${project.id}`}>{project.name}</a>
              </td>
              <td data-label="Key prefix">
                <code>{project.keyPrefix}_</code>
              </td>
              <td data-label="Created" class="nowrap">
                <Time ms={project.createdAt} now={now} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager next={next} first={first} count={projects.length} />
    </>
  );

export const NewProjectForm: FC<{ values: FormValues; errors: FieldErrors }> = ({
  values,
  errors,
}) => (
  <form class="stack" method="post" action={`${BASE}/projects`}>
    <FormError errors={errors} />
    {/* A double click, or Back and submit, must not create a second project. */}
    <input type="hidden" name={SUBMISSION_FIELD} value={submissionToken(values)} />
    <Field id="name" label="Project name" errors={errors}>
      <input
        type="text"
        {...described("name", errors)}
        value={values.name ?? ""}
        maxlength={128}
        required
        autocomplete="off"
      />
    </Field>
    <Field
      id="key_prefix"
      label="Key prefix"
      hint="Optional: lowercase letters and digits, starting with a letter. Keys look like prefix_live_…"
      errors={errors}
    >
      <input
        type="text"
        {...described("key_prefix", errors, true)}
        value={values.key_prefix ?? ""}
        maxlength={32}
        autocomplete="off"
        spellcheck={false}
      />
    </Field>
    <div class="form-foot">
      <button class="btn primary" type="submit">
        Create project
      </button>
    </div>
  </form>
);

const DELIVERY_BADGE: Record<string, string> = {
  delivered: "ok",
  pending: "warn",
  failed: "danger",
};

/** Where a delivery went: an endpoint of the project, or the key's own rotation URL. */
const DeliveryTarget: FC<{ delivery: WebhookDeliveryRow; endpoints: WebhookEndpointRow[] }> = ({
  delivery,
  endpoints,
}) => {
  if (delivery.endpointId === null)
    return <div class="sub">to the rotation webhook URL of the key</div>;
  const endpoint = endpoints.find((e) => e.id === delivery.endpointId);
  return (
    <div class="sub">
      to endpoint {endpoint ? (endpoint.description ?? endpoint.url) : "(deleted)"}
    </div>
  );
};

export const DeliveryTable: FC<{
  project: ProjectRow;
  deliveries: WebhookDeliveryRow[];
  endpoints?: WebhookEndpointRow[];
  now: number;
  next: string | null;
  first: string | null;
}> = ({ project, deliveries, endpoints = [], now, next, first }) =>
  deliveries.length === 0 && !first ? (
    <Empty title="No webhook deliveries yet">
      <p>
        Key events go to the project's webhook endpoints, and a rotated key's successor to its
        rotation webhook URL, signed with the project's secret. Each delivery and its attempts
        appear here.
      </p>
    </Empty>
  ) : (
    <>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Delivery</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Last result</th>
            <th scope="col">Created</th>
            <th scope="col">
              <span class="muted">Action</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {deliveries.map((d) => (
            <tr>
              <td class="name" data-label="Delivery">
                <a href={`${BASE}/keys/${d.keyId}`}>{d.eventType}</a>
                <DeliveryTarget delivery={d} endpoints={endpoints} />
                <div class="sub mono">{d.url}</div>
              </td>
              <td data-label="Status">
                <span class={`badge ${DELIVERY_BADGE[d.status] ?? ""}`}>{d.status}</span>
                {d.status === "pending" && d.nextAttemptAt !== null ? (
                  <div class="sub">
                    next <Time ms={d.nextAttemptAt} now={now} rel />
                  </div>
                ) : null}
              </td>
              <td data-label="Attempts">{d.attempts}</td>
              <td data-label="Last result">
                {d.lastStatusCode !== null ? `HTTP ${d.lastStatusCode}` : null}
                {d.lastError ? <div class="sub">{d.lastError}</div> : null}
                {d.lastStatusCode === null && !d.lastError ? <span class="faint">—</span> : null}
              </td>
              <td data-label="Created" class="nowrap">
                <Time ms={d.createdAt} now={now} rel />
              </td>
              <td data-label="Action">
                {isRetryable(d) ? (
                  <form
                    method="post"
                    action={`${BASE}/projects/${project.id}/webhooks/${d.id}/retry`}
                  >
                    <button class="btn small" type="submit">
                      Retry now
                    </button>
                  </form>
                ) : (
                  <span class="faint">—</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager next={next} first={first} count={deliveries.length} />
    </>
  );

const ACTIONS: Record<string, string> = {
  "project.created": "Created project",
  "project.updated": "Changed project",
  "project.webhook_secret_rotated": "Rotated webhook secret",
  "environment.created": "Created environment",
  "api_key.created": "Created key",
  "api_key.updated": "Changed key",
  "api_key.revoked": "Revoked key",
  "api_key.rotated": "Rotated key",
  "webhook_delivery.retried": "Retried webhook delivery",
  "identity.created": "Created identity",
  "identity.updated": "Changed identity",
  "identity.deleted": "Deleted identity",
  "identity.credits_adjusted": "Adjusted identity credits",
  "webhook_endpoint.created": "Added webhook endpoint",
  "webhook_endpoint.updated": "Changed webhook endpoint",
  "webhook_endpoint.deleted": "Deleted webhook endpoint",
};

const snake = (name: string) => name.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** A few words on what changed, from the event's metadata (never a secret: see audit.ts). */
function auditDetail(event: AuditEventRow): string | null {
  const m = event.metadata as Record<string, unknown>;
  if (typeof m.name === "string") return `“${m.name}”`;
  if (typeof m.url === "string") return m.url;
  if (Array.isArray(m.fields)) {
    // Events recorded before 2026-12-01 named columns (nextRotationAt, creditsVersion); newer
    // ones name the key's fields, which this leaves as they are.
    const fields = [
      ...new Set(
        m.fields
          .filter((f) => f !== "nextRotationAt")
          .map((f) => snake(String(f)).replace(/^credits_.*/, "credits")),
      ),
    ];
    return `changed ${fields.join(", ")}`;
  }
  if (typeof m.grace_expires_at === "string") {
    return `old key valid until ${formatInstant(Date.parse(m.grace_expires_at))}`;
  }
  return null;
}

export const AuditTable: FC<{
  events: AuditEventRow[];
  now: number;
  next: string | null;
  first: string | null;
}> = ({ events, now, next, first }) =>
  events.length === 0 && !first ? (
    <Empty title="Nothing recorded yet">
      <p>
        Every change to projects, keys and webhooks is recorded here: who, what, when, from where.
      </p>
    </Empty>
  ) : (
    <>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Action</th>
            <th scope="col">Target</th>
            <th scope="col">Actor</th>
            <th scope="col">From</th>
            <th scope="col">When</th>
          </tr>
        </thead>
        <tbody>
          {events.map((event) => {
            const detail = auditDetail(event);
            return (
              <tr>
                <td class="name" data-label="Action">
                  {ACTIONS[event.action] ?? event.action}
                  <div class="sub mono">{event.action}</div>
                </td>
                <td data-label="Target">
                  {event.targetType === "api_key" ? (
                    <a href={`${BASE}/keys/${event.targetId}`}>key {event.targetId.slice(0, 8)}</a>
                  ) : event.targetType === "project" ? (
                    <a href={`${BASE}/projects/${event.targetId}`}>
                      project {event.targetId.slice(0, 8)}
                    </a>
                  ) : (
                    <span>
                      {event.targetType} {event.targetId.slice(0, 12)}
                    </span>
                  )}
                  {detail ? <div class="sub">{detail}</div> : null}
                </td>
                <td data-label="Actor">
                  <span class="mono">{event.actorId}</span>
                  <div class="sub">{event.actorType.replace("_", " ")}</div>
                </td>
                <td data-label="From">{event.ip ?? <span class="faint">—</span>}</td>
                <td data-label="When" class="nowrap">
                  <Time ms={event.createdAt} now={now} />
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      <Pager next={next} first={first} count={events.length} />
    </>
  );

export const SignInCard: FC<{
  clerk: boolean;
  devSignIn: boolean;
  next: string;
  message?: string | null;
}> = ({ clerk, devSignIn, next, message }) => (
  <div class="signin">
    <div class="brand">
      <span class="brand-mark" aria-hidden="true">
        K
      </span>
      Keygate
    </div>
    <div class="card">
      <h1>Sign in</h1>
      {message ? <p class="muted">{message}</p> : null}
      {clerk ? (
        <>
          <div id="clerk-sign-in" data-next={next}>
            <p class="muted">Loading the sign-in form…</p>
          </div>
          <noscript>
            <p>Signing in with Clerk needs JavaScript.</p>
          </noscript>
        </>
      ) : (
        <p class="muted">
          This deployment has no Clerk sign-in configured (CLERK_PUBLISHABLE_KEY). Sign in through
          your organization's Clerk application, which sets the session cookie.
        </p>
      )}
      {devSignIn ? (
        <p>
          <a class="btn" href={`${BASE}/dev-sign-in?next=${encodeURIComponent(next)}`}>
            Local development sign-in
          </a>
        </p>
      ) : null}
    </div>
  </div>
);

export const DevSignInForm: FC<{
  values: FormValues;
  errors: FieldErrors;
  canMint: boolean;
  next: string;
}> = ({ values, errors, canMint, next }) => (
  <div class="signin">
    <div class="brand">
      <span class="brand-mark" aria-hidden="true">
        K
      </span>
      Keygate
    </div>
    <div class="card">
      <h1>Development sign-in</h1>
      <p class="muted">
        Local only (DEV_SIGN_IN in .dev.vars). Signs a Clerk-shaped session with the dev key; the
        dashboard then verifies it exactly as it verifies Clerk's.
      </p>
      <form class="stack" method="post" action={`${BASE}/dev-sign-in`}>
        <FormError errors={errors} />
        <input type="hidden" name="next" value={next} />
        {canMint ? (
          <>
            <Field id="org" label="Organization ID" errors={errors}>
              <input
                type="text"
                {...described("org", errors)}
                value={values.org ?? "org_dev"}
                required
                autocomplete="off"
                spellcheck={false}
              />
            </Field>
            <Field id="user" label="User ID" errors={errors}>
              <input
                type="text"
                {...described("user", errors)}
                value={values.user ?? "user_dev"}
                required
                autocomplete="off"
                spellcheck={false}
              />
            </Field>
            <fieldset>
              <legend class="legend">Role</legend>
              <label class="choice">
                <input type="radio" name="role" value="admin" checked={values.role !== "member"} />
                <span>
                  Admin<small>Everything, including organization-scoped keys.</small>
                </span>
              </label>
              <label class="choice">
                <input type="radio" name="role" value="member" checked={values.role === "member"} />
                <span>
                  Member<small>Projects and their keys.</small>
                </span>
              </label>
            </fieldset>
          </>
        ) : (
          <Field
            id="token"
            label="Session token"
            hint="No DEV_SIGNING_KEY in .dev.vars: paste one from `npm run token -- --org org_dev --role admin`."
            errors={errors}
          >
            <textarea {...described("token", errors, true)} required spellcheck={false} />
          </Field>
        )}
        <div class="form-foot">
          <button class="btn primary" type="submit">
            Sign in
          </button>
        </div>
      </form>
    </div>
  </div>
);

export const ErrorPage: FC<{ title: string; message: string; signedIn: boolean }> = ({
  title,
  message,
  signedIn,
}) => (
  <div class="narrow">
    <div class="card">
      <h1>{title}</h1>
      <p class="muted">{message}</p>
      <p>
        {signedIn ? (
          <a class="btn" href={`${BASE}/projects`}>
            Back to projects
          </a>
        ) : (
          <a class="btn" href={`${BASE}/sign-in`}>
            Sign in
          </a>
        )}
      </p>
    </div>
  </div>
);
