// Organization-scoped keys: admins only, like the API.
import { forbidden } from "../../core/errors";
import { listKeys } from "../../core/keys";
import { type FormValues, form } from "../forms";
import { type C, pageLinks, pageRequest, section } from "../frame";
import { KeyTable, NewKeyForm, NewKeyFormSchema } from "../keys";
import { BASE, Empty, type FieldErrors, PageHead } from "../layout";
import { createKeyOnce } from "./keys";

export const orgKeys = section();

orgKeys.use(async (c, next) => {
  if (!c.var.principal.isAdmin) {
    throw forbidden("Only organization admins can see organization-scoped keys.");
  }
  await next();
});

const NoOrgKeys = () => (
  <Empty title="No organization keys">
    <p>An organization key reaches every project: use it for automation that manages keys.</p>
  </Empty>
);

const newOrgKeyPage = (c: C, values: FormValues, errors: FieldErrors) =>
  c.render(
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
    { title: "New organization key", section: "org-keys" },
  );

orgKeys.get("/", async (c) => {
  const { core, principal } = c.var;
  const keys = await listKeys(core, principal, { projectId: null }, pageRequest(c));
  return c.render(
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
    { title: "Organization keys", section: "org-keys" },
  );
});

orgKeys.get("/new", (c) => newOrgKeyPage(c, {}, {}));

orgKeys.post("/", form(NewKeyFormSchema), async (c) => {
  const submitted = c.req.valid("form");
  const { values } = submitted;
  if (!submitted.ok) return newOrgKeyPage(c, values, submitted.errors);
  const { name, scopes, expires_at: expiresAt } = submitted.data;
  const input = { projectId: null, name, scopes, expiresAt };
  return createKeyOnce(c, values, input, {
    section: "org-keys",
    title: "Organization key created",
    form: (shown, errors) => newOrgKeyPage(c, shown, errors),
  });
});
