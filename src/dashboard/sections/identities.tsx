// Identities (SPEC Part 3): the organization's owners of keys, with the limits and credits
// their keys share. Admins create, change and delete them; members read.
import { z } from "@hono/zod-openapi";
import type { FC } from "hono/jsx";
import { identityVerifications } from "../../core/analytics/queries";
import {
  createIdentity,
  deleteIdentity,
  getIdentity,
  listIdentities,
  liveIdentityCredits,
  updateIdentity,
} from "../../core/identities";
import { listedCredits, listKeys } from "../../core/keys";
import type { IdentityRow } from "../../db/schema";
import { ExternalIdSchema, MetaSchema } from "../../schemas/governance";
import {
  AccessFacts,
  AccessForm,
  accessValues,
  changedAccess,
  LimitFields,
  LimitsFormSchema,
} from "../access";
import { ChartAssets, rangeOf, rangeQuery, VerificationChart } from "../charts";
import { type FormValues, fields, form, formErrors } from "../forms";
import { type C, flash, pageLinks, pageRequest, section } from "../frame";
import { KeyTable } from "../keys";
import {
  BASE,
  described,
  Empty,
  Field,
  type FieldErrors,
  FormError,
  PageHead,
  Pager,
  Time,
} from "../layout";
import { SUBMISSION_FIELD, submissionToken, submitOnce, withoutToken } from "../once";

export const identities = section();

const META_EXAMPLE = '{"plan": "pro"}';

/** `meta` as JSON text: empty is none; otherwise a JSON object as the API takes it. */
const metaField = fields.text
  .transform((value, ctx) => {
    if (value === "") return null;
    try {
      return JSON.parse(value) as unknown;
    } catch {
      ctx.addIssue({ code: "custom", message: `Enter a JSON object, e.g. ${META_EXAMPLE}.` });
      return z.NEVER;
    }
  })
  .pipe(MetaSchema.nullable());

const NewIdentityFormSchema = z
  .object({
    external_id: fields.text.pipe(
      z.string().min(1, "Enter the owner's id in your own system.").pipe(ExternalIdSchema),
    ),
    meta: metaField,
  })
  .and(LimitsFormSchema);

const CreditsCell: FC<{ identity: IdentityRow; now: number }> = ({ identity, now }) => {
  const remaining = listedCredits(identity, now);
  return remaining === null ? (
    <span class="faint">Unlimited</span>
  ) : (
    <span>{remaining.toLocaleString("en-US")}</span>
  );
};

const IdentityTable: FC<{
  rows: IdentityRow[];
  now: number;
  next: string | null;
  first: string | null;
  filtered: boolean;
}> = ({ rows, now, next, first, filtered }) =>
  rows.length === 0 && !first ? (
    <Empty title={filtered ? "No identity with that external id" : "No identities yet"}>
      <p>
        An identity is an owner in your own system (a customer, a team). Keys whose{" "}
        <code>external_id</code> is its external id share its rate limits and credits.
      </p>
    </Empty>
  ) : (
    <>
      <table class="list">
        <thead>
          <tr>
            <th scope="col">External id</th>
            <th scope="col">Rate limits</th>
            <th scope="col">Credits</th>
            <th scope="col">Created</th>
          </tr>
        </thead>
        <tbody>
          {rows.map((identity) => (
            <tr>
              <td class="name" data-label="External id">
                <a href={`${BASE}/identities/${identity.id}`}>{identity.externalId}</a>
              </td>
              <td data-label="Rate limits">
                {identity.ratelimits?.length ? (
                  identity.ratelimits.map((r) => r.name).join(", ")
                ) : (
                  <span class="faint">None</span>
                )}
              </td>
              <td data-label="Credits">
                <CreditsCell identity={identity} now={now} />
              </td>
              <td data-label="Created" class="nowrap">
                <Time ms={identity.createdAt} now={now} rel />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager next={next} first={first} count={rows.length} />
    </>
  );

identities.get("/", async (c) => {
  const { core, principal } = c.var;
  // A filter that is no external id finds nothing: it is not an error on a list page.
  const filter = c.req.query("external_id")?.trim().slice(0, 255) || undefined;
  const result = await listIdentities(core, principal, { externalId: filter }, pageRequest(c));
  return c.render(
    <>
      <PageHead
        title="Identities"
        sub="Owners in your own system. Their keys (same external id) share their rate limits and credits."
        actions={
          principal.isAdmin ? (
            <a class="btn primary" href={`${BASE}/identities/new`}>
              New identity
            </a>
          ) : null
        }
      />
      {flash(c)}
      <form class="filter" method="get" action={`${BASE}/identities`}>
        <Field id="external_id" label="External id" errors={{}}>
          <input
            type="search"
            {...described("external_id", {})}
            value={filter ?? ""}
            placeholder="user_1234"
            spellcheck={false}
          />
        </Field>
        <div class="form-foot">
          <button class="btn" type="submit">
            Find
          </button>
          {filter ? (
            <a class="btn link" href={`${BASE}/identities`}>
              Show all
            </a>
          ) : null}
        </div>
      </form>
      <div class="card flush">
        <IdentityTable
          rows={result.items}
          now={core.now()}
          filtered={filter !== undefined}
          {...pageLinks(c, result.nextCursor)}
        />
      </div>
    </>,
    { title: "Identities", section: "identities" },
  );
});

const newIdentityPage = (c: C, values: FormValues, errors: FieldErrors) =>
  c.render(
    <div class="narrow">
      <PageHead
        title="New identity"
        crumbs={[{ href: `${BASE}/identities`, label: "Identities" }]}
        sub="Keys whose external id is this identity's share its rate limits and credits."
      />
      <div class="card">
        <form class="stack" method="post" action={`${BASE}/identities`}>
          <FormError errors={errors} />
          {/* A reload of the page this form's POST renders must not create it twice. */}
          <input type="hidden" name={SUBMISSION_FIELD} value={submissionToken(values)} />
          <Field
            id="external_id"
            label="External id"
            hint="The owner in your own system, e.g. a customer id. Unique in the organization."
            errors={errors}
          >
            <input
              type="text"
              {...described("external_id", errors, true)}
              value={values.external_id ?? ""}
              maxlength={255}
              autocomplete="off"
              spellcheck={false}
              required
            />
          </Field>
          <Field
            id="meta"
            label="Metadata"
            hint={`Optional JSON object returned by verify, e.g. ${META_EXAMPLE}.`}
            errors={errors}
          >
            <textarea {...described("meta", errors, true)} rows={3} spellcheck={false}>
              {values.meta ?? ""}
            </textarea>
          </Field>
          <LimitFields keyRow={null} values={values} errors={errors} />
          <div class="form-foot">
            <button class="btn primary" type="submit">
              Create identity
            </button>
            <a class="btn link" href={`${BASE}/identities`}>
              Cancel
            </a>
          </div>
        </form>
      </div>
    </div>,
    { title: "New identity", section: "identities" },
  );

identities.get("/new", (c) => newIdentityPage(c, {}, {}));

identities.post("/", form(NewIdentityFormSchema), async (c) => {
  const submitted = c.req.valid("form");
  const { values } = submitted;
  if (!submitted.ok) return newIdentityPage(c, values, submitted.errors);
  const { external_id, meta, ratelimits, credits } = submitted.data;
  return submitOnce(
    c.var.core,
    c.var.principal,
    { path: c.req.path, values },
    {
      submit: async () => {
        try {
          const identity = await createIdentity(c.var.core, c.var.actor, {
            externalId: external_id,
            meta,
            ratelimits,
            credits,
          });
          const location = `${BASE}/identities/${identity.id}`;
          return { created: c.redirect(`${location}?notice=identity-created`, 303), location };
        } catch (error) {
          return { refused: await newIdentityPage(c, values, formErrors(error)) };
        }
      },
      again: (message) => newIdentityPage(c, withoutToken(values), { _: message }),
      repeatNotice: "identity-created-before",
    },
  );
});

const findIdentity = (c: C) =>
  getIdentity(c.var.core, c.var.principal, c.req.param("identityId") ?? "");

/** An identity and its exact balance (the usage object's; the row may lag it). */
async function loadIdentity(c: C) {
  const identity = await findIdentity(c);
  return { identity, remaining: await liveIdentityCredits(c.var.core, identity) };
}

const identityPage = async (
  c: C,
  { identity, remaining }: { identity: IdentityRow; remaining: number | null },
  access: { values: FormValues; errors: FieldErrors } | null = null,
) => {
  const { core, principal } = c.var;
  const now = core.now();
  const range = rangeOf(c.req.query("range"));
  const query = rangeQuery(range, now);
  const [keys, usage] = await Promise.all([
    listKeys(core, principal, { externalId: identity.externalId }, pageRequest(c)),
    identityVerifications(core, principal, identity.id, query),
  ]);
  const path = `${BASE}/identities/${identity.id}`;
  return c.render(
    <>
      <PageHead
        title={identity.externalId}
        crumbs={[{ href: `${BASE}/identities`, label: "Identities" }]}
        sub={
          <>
            Identity <code>{identity.id}</code>
          </>
        }
        actions={
          principal.isAdmin ? (
            <a class="btn danger-quiet" href={`${path}/delete`}>
              Delete…
            </a>
          ) : null
        }
      />
      {flash(c)}
      <VerificationChart
        data={usage}
        range={range}
        path={path}
        what="identity"
        topKeys={usage.top_keys}
        {...query}
      />
      <div class="grid-2">
        <div class="card">
          <h2>Details</h2>
          <dl class="facts">
            <dt>External id</dt>
            <dd>
              <code>{identity.externalId}</code>
            </dd>
            <dt>Metadata</dt>
            <dd>
              {identity.meta ? (
                <code>{JSON.stringify(identity.meta)}</code>
              ) : (
                <span class="faint">None</span>
              )}
            </dd>
            <AccessFacts keyRow={identity} remaining={remaining} />
            <dt>Created</dt>
            <dd>
              <Time ms={identity.createdAt} now={now} />
            </dd>
          </dl>
        </div>
        <div class="card">
          <h2>Limits and credits</h2>
          {principal.isAdmin ? (
            <AccessForm
              keyRow={identity}
              action={`${path}/limits`}
              toggle={false}
              values={access?.values ?? accessValues(identity, remaining)}
              errors={access?.errors ?? {}}
            />
          ) : (
            <p class="muted">Only organization admins can change identities.</p>
          )}
        </div>
      </div>
      <div class="card flush">
        <h2>Keys</h2>
        <KeyTable
          keys={keys.items}
          now={now}
          empty={NoIdentityKeys}
          {...pageLinks(c, keys.nextCursor)}
        />
      </div>
    </>,
    { title: identity.externalId, section: "identities", head: <ChartAssets /> },
  );
};

const NoIdentityKeys: FC = () => (
  <Empty title="No keys belong to this identity yet">
    <p>
      A key belongs to it when the key's <code>external_id</code> is this identity's external id
      (set it when creating the key, or with <code>PATCH</code>).
    </p>
  </Empty>
);

identities.get("/:identityId", async (c) => identityPage(c, await loadIdentity(c)));

identities.post("/:identityId/limits", form(LimitsFormSchema), async (c) => {
  const loaded = await loadIdentity(c);
  const { identity } = loaded;
  const { values, ...submitted } = c.req.valid("form");
  if (!submitted.ok) return identityPage(c, loaded, { values, errors: submitted.errors });
  const { ratelimits, credits, creditsRefill } = changedAccess(identity, submitted.data);
  try {
    await updateIdentity(c.var.core, c.var.actor, identity.id, {
      ratelimits,
      credits,
      creditsRefill,
    });
  } catch (error) {
    return identityPage(c, loaded, { values, errors: formErrors(error) });
  }
  return c.redirect(`${BASE}/identities/${identity.id}?notice=identity-updated`, 303);
});

const deletePage = (c: C, identity: IdentityRow, errors: FieldErrors) =>
  c.render(
    <div class="narrow">
      <PageHead
        title={`Delete “${identity.externalId}”?`}
        crumbs={[
          { href: `${BASE}/identities`, label: "Identities" },
          { href: `${BASE}/identities/${identity.id}`, label: identity.externalId },
        ]}
      />
      <div class="card">
        <form class="stack" method="post" action={`${BASE}/identities/${identity.id}/delete`}>
          <FormError errors={errors} />
          <p>
            Its keys keep working, each with its own limits and credits only: from their next
            verification on they no longer share this identity's. Its credits balance is lost.
          </p>
          <div class="form-foot">
            <button class="btn danger" type="submit">
              Delete identity
            </button>
            <a class="btn link" href={`${BASE}/identities/${identity.id}`}>
              Cancel
            </a>
          </div>
        </form>
      </div>
    </div>,
    { title: "Delete identity", section: "identities" },
  );

identities.get("/:identityId/delete", async (c) => {
  const identity = await findIdentity(c);
  return deletePage(c, identity, {});
});

identities.post("/:identityId/delete", async (c) => {
  const identity = await findIdentity(c);
  try {
    await deleteIdentity(c.var.core, c.var.actor, identity.id);
  } catch (error) {
    return deletePage(c, identity, formErrors(error));
  }
  return c.redirect(`${BASE}/identities?notice=identity-deleted`, 303);
});
