// Key pages: the list, the create and edit forms, rotation, revocation, and the one page that
// shows a plaintext key.
import { z } from "@hono/zod-openapi";
import type { FC } from "hono/jsx";
import { isActive } from "../core/keys";
import type { ApiKeyRow, EnvironmentRow, ProjectRow } from "../db/schema";
import { AccessFacts } from "./access";
import { type FormValues, fields, localInput } from "./forms";
import {
  BASE,
  Chips,
  described,
  Empty,
  Field,
  type FieldErrors,
  FormError,
  Notice,
  PageHead,
  Pager,
  SecretReveal,
  Time,
} from "./layout";
import { SUBMISSION_FIELD, submissionToken } from "./once";

export function keyStatus(key: ApiKeyRow, now: number): { label: string; kind: string } {
  if (key.revokedAt !== null) {
    return key.replacedByKeyId
      ? { label: "Rotated", kind: "" }
      : { label: "Revoked", kind: "danger" };
  }
  if (key.replacedByKeyId !== null) {
    return isActive(key, now)
      ? { label: "In grace period", kind: "warn" }
      : { label: "Rotated", kind: "" };
  }
  if (key.expiresAt !== null && key.expiresAt <= now) return { label: "Expired", kind: "danger" };
  if (!key.enabled) return { label: "Disabled", kind: "warn" };
  return { label: "Active", kind: "ok" };
}

export const StatusBadge: FC<{ keyRow: ApiKeyRow; now: number }> = ({ keyRow, now }) => {
  const status = keyStatus(keyRow, now);
  return (
    <>
      <span class={`badge ${status.kind}`}>{status.label}</span>
      {keyRow.leakedAt !== null ? (
        <>
          {" "}
          <span class="badge danger" title="Reported leaked">
            Leaked
          </span>
        </>
      ) : null}
    </>
  );
};

/** A leaked key's page opens with when it was reported, the policy, and where that left it. */
export const LeakedBanner: FC<{ keyRow: ApiKeyRow; project: ProjectRow | null; now: number }> = ({
  keyRow,
  project,
  now,
}) => {
  if (keyRow.leakedAt === null) return null;
  // Org-scoped keys are always revoked.
  const policy = project?.leakPolicy ?? "revoke";
  const state =
    keyRow.revokedAt !== null
      ? "It is revoked: every verification refuses it."
      : !keyRow.enabled
        ? "It is disabled: every verification refuses it until it is enabled again."
        : "It still verifies: rotate it, then revoke it.";
  return (
    <Notice kind="error" title="This key was reported leaked.">
      Reported <Time ms={keyRow.leakedAt} now={now} rel /> (
      <Time ms={keyRow.leakedAt} now={now} />
      ); the leak policy is <code>{policy}</code>. {state}
    </Notice>
  );
};

export const KeyTable: FC<{
  keys: ApiKeyRow[];
  now: number;
  next: string | null;
  first: string | null;
  empty: FC;
}> = ({ keys, now, next, first, empty: EmptyState }) =>
  keys.length === 0 && !first ? (
    <EmptyState />
  ) : (
    <>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">Status</th>
            <th scope="col">Prefix</th>
            <th scope="col">Scopes</th>
            <th scope="col">Environment</th>
            <th scope="col">Last used</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {keys.map((key) => (
            <tr>
              <td class="name" data-label="Name">
                <a href={`${BASE}/keys/${key.id}`}>{key.name}</a>
              </td>
              <td data-label="Status">
                <StatusBadge keyRow={key} now={now} />
              </td>
              <td data-label="Prefix">
                <code>{key.keyPrefix}…</code>
              </td>
              <td data-label="Scopes">
                <Chips values={key.scopes} />
              </td>
              <td data-label="Environment">{key.environment}</td>
              <td data-label="Last used" class="nowrap">
                <Time ms={key.lastUsedAt} now={now} rel never="Never" />
              </td>
              <td data-label="Created" class="nowrap">
                <Time ms={key.createdAt} now={now} rel />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager next={next} first={first} count={keys.length} />
    </>
  );

/** The create forms' fields (a project key's form adds its environment and rotation). */
export const NewKeyFormSchema = z.object({
  name: fields.name,
  scopes: fields.scopes,
  expires_at: fields.instant,
});

/** The create form, for a project key (with environments) or an org-scoped key. */
export const NewKeyForm: FC<{
  action: string;
  environments: EnvironmentRow[] | null;
  values: FormValues;
  errors: FieldErrors;
  cancel: string;
}> = ({ action, environments, values, errors, cancel }) => (
  <form class="stack" method="post" action={action}>
    <FormError errors={errors} />
    {/* A reload of the page this form's POST renders must not create a second key. */}
    <input type="hidden" name={SUBMISSION_FIELD} value={submissionToken(values)} />
    <Field
      id="name"
      label="Name"
      hint="What uses it, e.g. “CI deploy” or “Billing service”."
      errors={errors}
    >
      <input
        type="text"
        {...described("name", errors, true)}
        value={values.name ?? ""}
        maxlength={128}
        required
        autocomplete="off"
      />
    </Field>
    <Field
      id="scopes"
      label="Scopes"
      hint="Separated by spaces or commas, e.g. read:orders write:orders. Leave empty for none."
      errors={errors}
    >
      <input
        type="text"
        {...described("scopes", errors, true)}
        value={values.scopes ?? ""}
        autocomplete="off"
        spellcheck={false}
      />
    </Field>
    <div class="row">
      {environments ? (
        <Field id="environment_id" label="Environment" errors={errors}>
          <select {...described("environment_id", errors)}>
            {environments.map((env) => (
              <option value={env.id} selected={values.environment_id === env.id}>
                {env.name}
              </option>
            ))}
          </select>
        </Field>
      ) : null}
      <Field id="expires_at" label="Expires (UTC)" hint="Optional." errors={errors}>
        <input
          type="datetime-local"
          {...described("expires_at", errors, true)}
          value={values.expires_at ?? ""}
        />
      </Field>
    </div>
    {environments ? <RotationFields values={values} errors={errors} /> : null}
    <div class="form-foot">
      <button class="btn primary" type="submit">
        Create key
      </button>
      <a class="btn link" href={cancel}>
        Cancel
      </a>
    </div>
  </form>
);

const RotationFields: FC<{ values: FormValues; errors: FieldErrors }> = ({ values, errors }) => (
  <div class="row wide-last">
    <Field
      id="rotation_interval_days"
      label="Rotate every (days)"
      hint="Optional. Each new key goes to the webhook."
      errors={errors}
    >
      <input
        type="number"
        min={1}
        max={365}
        step={1}
        inputmode="numeric"
        {...described("rotation_interval_days", errors, true)}
        value={values.rotation_interval_days ?? ""}
      />
    </Field>
    <Field
      id="rotation_webhook_url"
      label="Rotation webhook URL"
      hint="https:// (http:// only for localhost). Receives each new key, signed."
      errors={errors}
    >
      <input
        type="url"
        {...described("rotation_webhook_url", errors, true)}
        value={values.rotation_webhook_url ?? ""}
        placeholder="https://example.com/hooks/keygate"
        autocomplete="off"
        spellcheck={false}
      />
    </Field>
  </div>
);

export const editValues = (key: ApiKeyRow): FormValues => ({
  name: key.name,
  scopes: key.scopes.join(" "),
  expires_at: localInput(key.expiresAt),
  rotation_interval_days: key.rotationIntervalDays === null ? "" : String(key.rotationIntervalDays),
  rotation_webhook_url: key.rotationWebhookUrl ?? "",
});

export const EditKeyForm: FC<{ keyRow: ApiKeyRow; values: FormValues; errors: FieldErrors }> = ({
  keyRow,
  values,
  errors,
}) => (
  <form class="stack" method="post" action={`${BASE}/keys/${keyRow.id}`}>
    <FormError errors={errors} />
    <Field id="name" label="Name" errors={errors}>
      <input
        type="text"
        {...described("name", errors)}
        value={values.name ?? ""}
        maxlength={128}
        required
        autocomplete="off"
      />
    </Field>
    <Field id="scopes" label="Scopes" hint="Separated by spaces or commas." errors={errors}>
      <input
        type="text"
        {...described("scopes", errors, true)}
        value={values.scopes ?? ""}
        autocomplete="off"
        spellcheck={false}
      />
    </Field>
    <Field id="expires_at" label="Expires (UTC)" hint="Empty: never expires." errors={errors}>
      <input
        type="datetime-local"
        {...described("expires_at", errors, true)}
        value={values.expires_at ?? ""}
      />
    </Field>
    {keyRow.projectId !== null ? <RotationFields values={values} errors={errors} /> : null}
    <div class="form-foot">
      <button class="btn primary" type="submit">
        Save changes
      </button>
    </div>
  </form>
);

export const KeyFacts: FC<{
  keyRow: ApiKeyRow;
  project: ProjectRow | null;
  now: number;
  /** The exact credit balance, when the key has credits. */
  remaining?: number | null;
}> = ({ keyRow: key, project, now, remaining = null }) => (
  <dl class="facts">
    <dt>Status</dt>
    <dd>
      <StatusBadge keyRow={key} now={now} />
      {key.replacedByKeyId !== null && key.graceExpiresAt !== null && isActive(key, now) ? (
        <span class="muted">
          {" "}
          until <Time ms={key.graceExpiresAt} now={now} />
        </span>
      ) : null}
    </dd>
    <dt>Prefix</dt>
    <dd>
      <code>{key.keyPrefix}…</code>
    </dd>
    <dt>Scopes</dt>
    <dd>
      <Chips values={key.scopes} />
    </dd>
    <dt>Belongs to</dt>
    <dd>
      {project ? (
        <>
          Project <a href={`${BASE}/projects/${project.id}`}>{project.name}</a>
          <span class="muted"> · {key.environment}</span>
        </>
      ) : (
        <>
          Organization (every project) <span class="muted">· {key.environment}</span>
        </>
      )}
    </dd>
    <dt>Last used</dt>
    <dd>
      {key.lastUsedAt === null ? (
        <span class="faint">Never</span>
      ) : (
        <>
          <Time ms={key.lastUsedAt} now={now} rel />{" "}
          <span class="muted">
            (<Time ms={key.lastUsedAt} now={now} />)
          </span>
        </>
      )}
    </dd>
    <dt>Created</dt>
    <dd>
      <Time ms={key.createdAt} now={now} />
      {key.createdByUserId ? <span class="muted"> by {key.createdByUserId}</span> : null}
    </dd>
    <dt>Expires</dt>
    <dd>
      <Time ms={key.expiresAt} now={now} never="Never" />
    </dd>
    <AccessFacts keyRow={key} remaining={remaining} />
    <dt>Rotation</dt>
    <dd>
      {key.rotationIntervalDays === null ? (
        <span class="faint">Not scheduled</span>
      ) : (
        <>
          Every {key.rotationIntervalDays} {key.rotationIntervalDays === 1 ? "day" : "days"}
          {key.nextRotationAt !== null ? (
            <span class="muted">
              {" "}
              · next <Time ms={key.nextRotationAt} now={now} />
            </span>
          ) : null}
        </>
      )}
    </dd>
    <dt>Webhook</dt>
    <dd>
      {key.rotationWebhookUrl ? (
        <code>{key.rotationWebhookUrl}</code>
      ) : (
        <span class="faint">None</span>
      )}
    </dd>
    {key.rotatedFromKeyId ? (
      <>
        <dt>Replaces</dt>
        <dd>
          <a href={`${BASE}/keys/${key.rotatedFromKeyId}`}>the key it was rotated from</a>
        </dd>
      </>
    ) : null}
    {key.replacedByKeyId ? (
      <>
        <dt>Replaced by</dt>
        <dd>
          <a href={`${BASE}/keys/${key.replacedByKeyId}`}>its successor</a>
        </dd>
      </>
    ) : null}
    <dt>Key ID</dt>
    <dd>
      <code>{key.id}</code>
    </dd>
  </dl>
);

export const GRACE_CHOICES = [
  { value: "0", seconds: 0, label: "No grace period", note: "The old key stops working now." },
  { value: "3600", seconds: 3600, label: "1 hour", note: "Both keys work for an hour." },
  { value: "86400", seconds: 86_400, label: "24 hours", note: "Both keys work for a day." },
  { value: "604800", seconds: 604_800, label: "7 days", note: "Both keys work for a week." },
] as const;

export const RotateForm: FC<{ keyRow: ApiKeyRow; errors: FieldErrors; grace: string }> = ({
  keyRow,
  errors,
  grace,
}) => (
  <form class="stack" method="post" action={`${BASE}/keys/${keyRow.id}/rotate`}>
    <FormError errors={errors} />
    <p>
      Rotation issues a new key with the same name, scopes, expiry and settings. The old key keeps
      working for the grace period you choose, so you can deploy the new one first.
    </p>
    <fieldset>
      <legend class="legend">Grace period for the old key</legend>
      {GRACE_CHOICES.map((choice) => (
        <label class="choice">
          <input type="radio" name="grace" value={choice.value} checked={grace === choice.value} />
          <span>
            {choice.label}
            <small>{choice.note}</small>
          </span>
        </label>
      ))}
    </fieldset>
    {errors.grace ? <span class="error">{errors.grace}</span> : null}
    <div class="form-foot">
      <button class="btn primary" type="submit">
        Rotate key
      </button>
      <a class="btn link" href={`${BASE}/keys/${keyRow.id}`}>
        Cancel
      </a>
    </div>
  </form>
);

export const RevokeForm: FC<{ keyRow: ApiKeyRow; errors: FieldErrors }> = ({ keyRow, errors }) => (
  <form class="stack" method="post" action={`${BASE}/keys/${keyRow.id}/revoke`}>
    <FormError errors={errors} />
    <Notice kind="error" title="This cannot be undone.">
      Every request that uses <code>{keyRow.keyPrefix}…</code> will be refused at once, wherever it
      is verified.
    </Notice>
    <div class="form-foot">
      <button class="btn danger" type="submit">
        Revoke “{keyRow.name}”
      </button>
      <a class="btn link" href={`${BASE}/keys/${keyRow.id}`}>
        Cancel
      </a>
    </div>
  </form>
);

/** The only page that ever holds a plaintext key: rendered in the POST's own response. */
export const KeyShownOnce: FC<{
  title: string;
  keyRow: ApiKeyRow;
  plaintext: string;
  note?: string;
  now: number;
}> = ({ title, keyRow, plaintext, note, now }) => (
  <div class="narrow">
    <PageHead
      title={title}
      sub={note}
      crumbs={[{ href: `${BASE}/keys/${keyRow.id}`, label: keyRow.name }]}
    />
    <SecretReveal id="new-key" value={plaintext} what="this key" />
    <div class="card">
      <dl class="facts">
        <dt>Name</dt>
        <dd>{keyRow.name}</dd>
        <dt>Prefix</dt>
        <dd>
          <code>{keyRow.keyPrefix}…</code>
        </dd>
        <dt>Scopes</dt>
        <dd>
          <Chips values={keyRow.scopes} />
        </dd>
        <dt>Expires</dt>
        <dd>
          <Time ms={keyRow.expiresAt} now={now} never="Never" />
        </dd>
      </dl>
    </div>
    <a class="btn" href={`${BASE}/keys/${keyRow.id}`}>
      I have copied it — go to the key
    </a>
  </div>
);

export const NoKeys: FC = () => (
  <Empty title="No keys yet">
    <p>Create a key to let a service call your API; it is shown once, then only its prefix.</p>
  </Empty>
);
