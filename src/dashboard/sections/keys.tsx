// One key: its page (facts, chart, edit and access forms), rotate and revoke, and the
// create-key answer the project and organization-key sections share.
import { z } from "@hono/zod-openapi";
import type { Child } from "hono/jsx";
import { keyVerifications } from "../../core/analytics/queries";
import {
  type CreateKeyInput,
  createKey,
  getKey,
  getKeyWithBalance,
  isChangeable,
  mayChangeKey,
  revokeKey,
  rotateKey,
  type UpdateKeyInput,
  updateKey,
} from "../../core/keys";
import { findProject } from "../../core/projects";
import type { ApiKeyRow } from "../../db/schema";
import { AccessForm, AccessFormSchema, accessValues, changedAccess } from "../access";
import { ChartAssets, rangeOf, rangeQuery, VerificationChart } from "../charts";
import { type FormValues, fields, form, formErrors, localInput } from "../forms";
import { type C, flash, type PageFrame, secretPage, section } from "../frame";
import {
  EditKeyForm,
  editValues,
  GRACE_CHOICES,
  KeyFacts,
  KeyShownOnce,
  LeakedBanner,
  RevokeForm,
  RotateForm,
  StatusBadge,
} from "../keys";
import { BASE, type FieldErrors, formatInstant, PageHead } from "../layout";
import { submitOnce, withoutToken } from "../once";

export const keys = section();

/**
 * A create-key form's POST: the key, shown once on the page that answers, or the form again
 * with the core's errors. Once per form (see once.ts): a repeat goes to the key it created.
 */
export function createKeyOnce(
  c: C,
  values: FormValues,
  input: CreateKeyInput,
  page: {
    section: PageFrame["section"];
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

const keyPage = async (
  c: C,
  { key, remaining }: { key: ApiKeyRow; remaining: number | null },
  values: FormValues | null = null,
  errors: FieldErrors = {},
  access: { values: FormValues; errors: FieldErrors } | null = null,
) => {
  const { core, principal } = c.var;
  const now = core.now();
  const range = rangeOf(c.req.query("range"));
  const query = rangeQuery(range, now);
  const [project, usage] = await Promise.all([
    key.projectId ? findProject(core, principal, key.projectId) : null,
    keyVerifications(core, principal, key.id, query),
  ]);
  const changeable = isChangeable(key, now) && mayChangeKey(principal, key);
  const crumbs = project
    ? [
        { href: `${BASE}/projects`, label: "Projects" },
        { href: `${BASE}/projects/${project.id}`, label: project.name },
      ]
    : [{ href: `${BASE}/org-keys`, label: "Organization keys" }];
  return c.render(
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
      <LeakedBanner keyRow={key} project={project} now={now} />
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
            action={`${BASE}/keys/${key.id}/access`}
            toggle
            values={access?.values ?? accessValues(key, remaining)}
            errors={access?.errors ?? {}}
          />
        </div>
      ) : null}
    </>,
    { title: key.name, section: project ? "projects" : "org-keys", head: <ChartAssets /> },
  );
};

const loadKey = (c: C) => getKey(c.var.core, c.var.principal, c.req.param("keyId") as string);
/** A key and its exact balance from the usage store (the row may lag it). */
const loadKeyWithBalance = (c: C) =>
  getKeyWithBalance(c.var.core, c.var.principal, c.req.param("keyId") as string);

keys.get("/:keyId", async (c) => keyPage(c, await loadKeyWithBalance(c)));

/** The edit form; the rotation fields are a project key's (an org key's form has none). */
const EditKeyFormSchema = z.object({
  name: fields.name,
  scopes: fields.scopes,
  expires_at: fields.instant,
  rotation_interval_days: fields.rotationInterval,
  rotation_webhook_url: fields.webhookUrl,
});

keys.post("/:keyId", form(EditKeyFormSchema), async (c) => {
  const loaded = await loadKeyWithBalance(c);
  const { key } = loaded;
  const submitted = c.req.valid("form");
  if (!submitted.ok) return keyPage(c, loaded, submitted.values, submitted.errors);
  try {
    await updateKey(c.var.core, c.var.actor, key.id, changedFields(key, submitted));
  } catch (error) {
    return keyPage(c, loaded, submitted.values, formErrors(error));
  }
  return c.redirect(`${BASE}/keys/${key.id}?notice=key-updated`, 303);
});

keys.post("/:keyId/access", form(AccessFormSchema), async (c) => {
  const loaded = await loadKeyWithBalance(c);
  const { key } = loaded;
  const { values, ...submitted } = c.req.valid("form");
  if (!submitted.ok) return keyPage(c, loaded, null, {}, { values, errors: submitted.errors });
  try {
    await updateKey(c.var.core, c.var.actor, key.id, {
      governance: changedAccess(key, submitted.data),
    });
  } catch (error) {
    return keyPage(c, loaded, null, {}, { values, errors: formErrors(error) });
  }
  return c.redirect(`${BASE}/keys/${key.id}?notice=access-updated`, 303);
});

const confirmPage = (c: C, key: ApiKeyRow, title: string, body: Child) =>
  c.render(
    <div class="narrow">
      <PageHead
        title={title}
        crumbs={[{ href: `${BASE}/keys/${key.id}`, label: key.name }]}
        sub={<code>{key.keyPrefix}…</code>}
      />
      <div class="card">{body}</div>
    </div>,
    { title, section: key.projectId ? "projects" : "org-keys" },
  );

keys.get("/:keyId/rotate", async (c) => {
  const key = await loadKey(c);
  return confirmPage(
    c,
    key,
    `Rotate “${key.name}”`,
    <RotateForm keyRow={key} errors={{}} grace="3600" />,
  );
});

const RotateFormSchema = z.object({
  grace: fields.choice(
    GRACE_CHOICES.map((g) => g.value),
    "0",
  ),
});

keys.post("/:keyId/rotate", form(RotateFormSchema), async (c) => {
  const key = await loadKey(c);
  const submitted = c.req.valid("form");
  const grace = submitted.ok ? submitted.data.grace : "0";
  const seconds = GRACE_CHOICES.find((g) => g.value === grace)?.seconds ?? 0;
  if (!submitted.ok) {
    return confirmPage(
      c,
      key,
      `Rotate “${key.name}”`,
      <RotateForm keyRow={key} errors={submitted.errors} grace={grace} />,
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

keys.get("/:keyId/revoke", async (c) => {
  const key = await loadKey(c);
  return confirmPage(c, key, `Revoke “${key.name}”?`, <RevokeForm keyRow={key} errors={{}} />);
});

keys.post("/:keyId/revoke", async (c) => {
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

/**
 * Only what the form changed goes to the core: an unchanged schedule must not restart, an
 * unchanged (minute-rounded) expiry already past must not block a rename, and the audit log
 * names the fields that really changed.
 */
function changedFields(
  key: ApiKeyRow,
  { values, data }: { values: FormValues; data: z.output<typeof EditKeyFormSchema> },
): UpdateKeyInput {
  const input: UpdateKeyInput = {};
  if (data.name !== key.name) input.name = data.name;
  if (data.scopes.join(" ") !== key.scopes.join(" ")) input.scopes = data.scopes;
  if ((values.expires_at ?? "").trim() !== localInput(key.expiresAt)) {
    input.expiresAt = data.expires_at;
  }
  if (key.projectId !== null) {
    if (data.rotation_interval_days !== key.rotationIntervalDays) {
      input.rotationIntervalDays = data.rotation_interval_days;
    }
    if (data.rotation_webhook_url !== key.rotationWebhookUrl) {
      input.rotationWebhookUrl = data.rotation_webhook_url;
    }
  }
  return input;
}
