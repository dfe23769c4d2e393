// The dashboard's Identities pages (SPEC Part 3): list, create, limits and credits, keys,
// usage chart, delete; admins change, members read; another organization's is a 404.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { dash, tokenOf } from "./dashboard-harness";
import { call, newKey, newOrg } from "./helpers";

type Org = Awaited<ReturnType<typeof newOrg>>;

async function newIdentity(org: Org, body: Record<string, unknown> = {}) {
  const created = await call("POST", "/v1/identities", {
    token: org.admin,
    body: { external_id: `cust_${crypto.randomUUID().slice(0, 8)}`, ...body },
  });
  if (created.status !== 201) throw new Error(`identity create failed: ${created.text}`);
  return created.body as { id: string; external_id: string };
}

const apiIdentity = async (org: Org, id: string) =>
  call("GET", `/v1/identities/${id}`, { token: org.admin });

const errorOf = (html: string, field: string) =>
  new RegExp(`id="${field}-error"[^>]*>([^<]*)<`).exec(html)?.[1];

describe("dashboard identities", () => {
  it("creates an identity with metadata, limits and credits, once per form", async () => {
    const org = await newOrg("dash-identity-create");
    const form = await dash("GET", "/dashboard/identities/new", { session: org.admin });
    expect(form.status).toBe(200);
    const submission = tokenOf(form.text) as string;
    const fields = {
      submission,
      external_id: "cust_acme",
      meta: '{"plan":"pro"}',
      rl_name_0: "api",
      rl_limit_0: "100",
      rl_window_0: "60",
      credits_remaining: "500",
      refill_interval: "monthly",
      refill_amount: "1000",
      refill_day: "15",
    };
    const created = await dash("POST", "/dashboard/identities", {
      session: org.admin,
      form: fields,
    });
    expect(created.status).toBe(303);
    const location = created.headers.get("location") as string;
    expect(location).toMatch(/^\/dashboard\/identities\/[\w-]+\?notice=identity-created$/);
    const id = location.split("/")[3]?.split("?")[0] as string;
    expect((await apiIdentity(org, id)).body).toMatchObject({
      external_id: "cust_acme",
      meta: { plan: "pro" },
      ratelimits: [{ name: "api", limit: 100, duration_ms: 60_000 }],
      credits: { remaining: 500, refill: { interval: "monthly", amount: 1000, day: 15 } },
    });
    // A double click: the identity it created, not a second one (nor a 409).
    const again = await dash("POST", "/dashboard/identities", { session: org.admin, form: fields });
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe(
      `/dashboard/identities/${id}?notice=identity-created-before`,
    );
    const list = await dash("GET", "/dashboard/identities", { session: org.admin });
    expect(list.status).toBe(200);
    expect(list.text).toContain(`href="/dashboard/identities/${id}"`);
    expect(list.text.match(/cust_acme<\/a>/g)).toHaveLength(1);
    // A second identity of the same owner is refused next to the form.
    const duplicate = await dash("POST", "/dashboard/identities", {
      session: org.admin,
      form: { external_id: "cust_acme" },
    });
    expect(duplicate.status).toBe(200);
    expect(duplicate.text).toContain("already exists in this organization");
  });

  it("refuses what the API refuses, next to each field, creating nothing", async () => {
    const org = await newOrg("dash-identity-refuse");
    const page = await dash("POST", "/dashboard/identities", {
      session: org.admin,
      form: {
        external_id: "not an id",
        meta: "{not json",
        rl_name_0: "api",
        rl_limit_0: "0",
        credits_remaining: "-5",
      },
    });
    expect(page.status).toBe(200);
    expect(errorOf(page.text, "external_id")).toBe(
      "Must be 1–255 characters of letters, digits and . _ : @ -.",
    );
    expect(errorOf(page.text, "meta")).toBe(
      "Enter a JSON object, e.g. {&quot;plan&quot;: &quot;pro&quot;}.",
    );
    expect(errorOf(page.text, "rl_limit_0")).toMatch(/^Too small/);
    expect(errorOf(page.text, "credits_remaining")).toMatch(/^Too small/);
    const array = await dash("POST", "/dashboard/identities", {
      session: org.admin,
      form: { external_id: "", meta: "[1,2]" },
    });
    expect(errorOf(array.text, "external_id")).toBe("Enter the owner&#39;s id in your own system.");
    expect(errorOf(array.text, "meta")).toBe("Must be a JSON object.");
    const listed = await call("GET", "/v1/identities", { token: org.admin });
    expect(listed.body.identities).toEqual([]);
  });

  it("lists page by page and finds one by external id", async () => {
    const org = await newOrg("dash-identity-list");
    for (let i = 0; i < 27; i++) await newIdentity(org, { external_id: `owner_${i}` });
    const first = await dash("GET", "/dashboard/identities", { session: org.admin });
    expect(first.text).toContain("owner_0<");
    expect(first.text).not.toContain("owner_26<");
    const next = /href="(\/dashboard\/identities\?cursor=[^"]+)"/.exec(first.text)?.[1] as string;
    const second = await dash("GET", next.replaceAll("&amp;", "&"), { session: org.admin });
    expect(second.text).toContain("owner_26<");
    const found = await dash("GET", "/dashboard/identities?external_id=owner_7", {
      session: org.admin,
    });
    expect(found.text).toContain("owner_7<");
    expect(found.text).not.toContain("owner_8<");
    const none = await dash("GET", "/dashboard/identities?external_id=nobody%20here", {
      session: org.admin,
    });
    expect(none.status).toBe(200);
    expect(none.text).toContain("No identity with that external id");
  });

  it("shows the identity's keys and its usage chart", async () => {
    const org = await newOrg("dash-identity-keys");
    const identity = await newIdentity(org);
    const own = await newKey(org.admin, org.project.id, {
      name: "Owned key",
      external_id: identity.external_id,
    });
    await newKey(org.admin, org.project.id, { name: "Someone else's", external_id: "other" });
    const page = await dash("GET", `/dashboard/identities/${identity.id}?range=30d`, {
      session: org.admin,
    });
    expect(page.status).toBe(200);
    expect(page.text).toContain(`href="/dashboard/keys/${own.id}"`);
    expect(page.text).toContain("Owned key");
    expect(page.text).not.toContain("Someone else");
    expect(page.text).toContain("this identity&#39;s keys are");
    expect(page.text).toContain('aria-current="page">Last 30 days');
  });

  it("edits limits and credits, prefilling the live balance and never giving spent credits back", async () => {
    const org = await newOrg("dash-identity-credits");
    const identity = await newIdentity(org, { credits: { remaining: 100 } });
    const path = `/dashboard/identities/${identity.id}`;
    const page = await dash("GET", path, { session: org.admin });
    expect(page.text).toMatch(/id="credits_remaining"[^>]*value="100"/);
    // Spent while the page was open.
    const spent = await call("POST", `/v1/identities/${identity.id}/credits`, {
      token: org.admin,
      body: { operation: "decrement", value: 30 },
    });
    expect(spent.body.remaining).toBe(70);
    // The form sent back with the balance it showed and a new refill: only the refill changes.
    const refill = await dash("POST", `${path}/limits`, {
      session: org.admin,
      form: {
        credits_remaining: "100",
        credits_remaining_shown: "100",
        refill_interval: "daily",
        refill_amount: "100",
        rl_name_0: "api",
        rl_limit_0: "5",
        rl_window_0: "1",
      },
    });
    expect(refill.status).toBe(303);
    expect(refill.headers.get("location")).toBe(`${path}?notice=identity-updated`);
    expect((await apiIdentity(org, identity.id)).body).toMatchObject({
      ratelimits: [{ name: "api", limit: 5, duration_ms: 1000 }],
      credits: { remaining: 70, refill: { interval: "daily", amount: 100, day: null } },
    });
    // An edited balance is set.
    const set = await dash("POST", `${path}/limits`, {
      session: org.admin,
      form: {
        credits_remaining: "250",
        credits_remaining_shown: "70",
        refill_interval: "daily",
        refill_amount: "100",
        rl_name_0: "api",
        rl_limit_0: "5",
        rl_window_0: "1",
      },
    });
    expect(set.status).toBe(303);
    expect((await apiIdentity(org, identity.id)).body.credits.remaining).toBe(250);
    const bad = await dash("POST", `${path}/limits`, {
      session: org.admin,
      form: { credits_remaining: "5", refill_interval: "monthly", refill_amount: "0" },
    });
    expect(bad.status).toBe(200);
    expect(errorOf(bad.text, "refill_amount")).toMatch(/^Too small/);
    expect((await apiIdentity(org, identity.id)).body.credits.remaining).toBe(250);
    // Emptied: unlimited, no limits.
    const cleared = await dash("POST", `${path}/limits`, { session: org.admin, form: {} });
    expect(cleared.status).toBe(303);
    expect((await apiIdentity(org, identity.id)).body).toMatchObject({
      ratelimits: null,
      credits: null,
    });
  });

  it("a refill alone cannot give an identity without credits a balance", async () => {
    const org = await newOrg("dash-identity-refill-alone");
    const identity = await newIdentity(org);
    const page = await dash("POST", `/dashboard/identities/${identity.id}/limits`, {
      session: org.admin,
      form: {
        credits_remaining: "5",
        credits_remaining_shown: "5",
        refill_interval: "daily",
        refill_amount: "5",
      },
    });
    expect(page.status).toBe(200);
    expect(page.text).toContain("An identity without credits needs remaining");
    expect((await apiIdentity(org, identity.id)).body.credits).toBeNull();
  });

  it("deletes after a confirmation page", async () => {
    const org = await newOrg("dash-identity-delete");
    const identity = await newIdentity(org);
    const path = `/dashboard/identities/${identity.id}`;
    const confirm = await dash("GET", `${path}/delete`, { session: org.admin });
    expect(confirm.status).toBe(200);
    expect(confirm.text).toContain(`Delete “${identity.external_id}”?`);
    expect((await apiIdentity(org, identity.id)).status).toBe(200);
    const deleted = await dash("POST", `${path}/delete`, { session: org.admin });
    expect(deleted.status).toBe(303);
    expect(deleted.headers.get("location")).toBe("/dashboard/identities?notice=identity-deleted");
    expect((await apiIdentity(org, identity.id)).status).toBe(404);
    expect((await dash("GET", path, { session: org.admin })).status).toBe(404);
  });

  it("members read, and cannot create, change or delete", async () => {
    const org = await newOrg("dash-identity-member");
    const identity = await newIdentity(org, { credits: { remaining: 10 } });
    const path = `/dashboard/identities/${identity.id}`;
    const list = await dash("GET", "/dashboard/identities", { session: org.member });
    expect(list.status).toBe(200);
    expect(list.text).toContain(identity.external_id);
    expect(list.text).not.toContain("New identity");
    const page = await dash("GET", path, { session: org.member });
    expect(page.status).toBe(200);
    expect(page.text).toContain("Only organization admins can change identities.");
    expect(page.text).not.toContain(`action="${path}/limits"`);
    expect(page.text).not.toContain("Delete…");
    const created = await dash("POST", "/dashboard/identities", {
      session: org.member,
      form: { external_id: "member_made" },
    });
    expect(created.text).toContain("Only organization admins can change identities.");
    const changed = await dash("POST", `${path}/limits`, {
      session: org.member,
      form: { credits_remaining: "999" },
    });
    expect(changed.text).toContain("Only organization admins can change identities.");
    const deleted = await dash("POST", `${path}/delete`, { session: org.member });
    expect(deleted.text).toContain("Only organization admins can change identities.");
    const after = await apiIdentity(org, identity.id);
    expect(after.body.credits.remaining).toBe(10);
    const listed = await call("GET", "/v1/identities", { token: org.admin });
    expect(listed.body.identities).toHaveLength(1);
  });

  it("another organization's identity is a 404 on every page and form", async () => {
    const org = await newOrg("dash-identity-mine");
    const other = await newOrg("dash-identity-theirs");
    const theirs = await newIdentity(other, { credits: { remaining: 10 } });
    const path = `/dashboard/identities/${theirs.id}`;
    for (const [method, url, form] of [
      ["GET", path, undefined],
      ["GET", `${path}/delete`, undefined],
      ["POST", `${path}/limits`, { credits_remaining: "1" }],
      ["POST", `${path}/delete`, {}],
    ] as const) {
      const answer = await dash(method, url, { session: org.admin, ...(form ? { form } : {}) });
      expect(answer.status, `${method} ${url}`).toBe(404);
    }
    expect((await apiIdentity(other, theirs.id)).body.credits.remaining).toBe(10);
    const list = await dash("GET", "/dashboard/identities", { session: org.admin });
    expect(list.text).not.toContain(theirs.external_id);
  });

  it("never answers 5xx to random identity forms and queries (fixed seed)", {
    timeout: 120_000,
  }, async () => {
    const org = await newOrg("dash-identity-fuzz");
    const identity = await newIdentity(org);
    const text = fc.oneof(
      fc.constantFrom("", "-1", "1e309", "{}", "[]", '{"__proto__":{}}', "null", "a".repeat(300)),
      fc.string({ maxLength: 40 }),
    );
    const field = fc.constantFrom(
      "external_id",
      "meta",
      "credits_remaining",
      "credits_remaining_shown",
      "refill_interval",
      "refill_amount",
      "refill_day",
      "rl_name_0",
      "rl_limit_0",
      "rl_window_0",
      "__proto__",
      "constructor",
    );
    const seen: number[] = [];
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          "/dashboard/identities",
          `/dashboard/identities/${identity.id}/limits`,
          `/dashboard/identities/${identity.id}?range=`,
        ),
        fc.dictionary(field, text, { maxKeys: 6 }),
        async (path, form) => {
          const answer = path.includes("?")
            ? await dash("GET", `${path}${encodeURIComponent(form.meta ?? "")}`, {
                session: org.admin,
              })
            : await dash("POST", path, { session: org.admin, form });
          seen.push(answer.status);
          expect(answer.status, `${path} ${JSON.stringify(form)}`).toBeLessThan(500);
        },
      ),
      { numRuns: 100, seed: 20_261_206 },
    );
    const external = await dash("GET", "/dashboard/identities?external_id=%00%ff", {
      session: org.admin,
    });
    expect(external.status).toBe(200);
    expect(seen.filter((status) => status === 200 || status === 303).length).toBeGreaterThan(50);
  });
});
