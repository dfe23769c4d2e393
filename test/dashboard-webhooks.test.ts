// The dashboard's Webhooks tab (SPEC Part 3 "Key lifecycle events"): a project's endpoints with
// their subscriptions, the create / edit / enable / delete forms (admins; members read), and the
// recent deliveries with their event type and endpoint.
import { describe, expect, it } from "vitest";
import { dash, orgWithKey, tokenOf } from "./dashboard-harness";
import { call } from "./helpers";
import type { Json } from "./webhooks-harness";

/** The message rendered next to `field` (its `-error` element). */
const errorOf = (html: string, field: string) =>
  new RegExp(`id="${field}-error"[^>]*>([^<]*)<`).exec(html)?.[1];

const endpointsOf = async (org: { admin: string; project: { id: string } }): Promise<Json[]> =>
  (await call("GET", `/v1/projects/${org.project.id}/webhook-endpoints`, { token: org.admin })).body
    .webhook_endpoints;

describe("dashboard webhooks tab", () => {
  it("adds an endpoint from the form once, lists it with its events, and shows it to members read-only", async () => {
    const org = await orgWithKey();
    const tab = `/dashboard/projects/${org.project.id}/webhooks`;
    const empty = await dash("GET", tab, { session: org.admin });
    expect(empty.status).toBe(200);
    expect(empty.text).toContain("No webhook endpoints yet");
    expect(empty.text).toContain('name="event_api_key.leaked"');
    const token = tokenOf(empty.text);
    expect(token).toBeDefined();
    const form = {
      submission: token as string,
      url: "https://hooks.example/dash",
      description: "Billing sync",
      "event_api_key.revoked": "on",
      "event_api_key.leaked": "on",
    };
    const created = await dash("POST", `${tab}/endpoints`, { session: org.admin, form });
    expect(created.status, created.text).toBe(303);
    const [endpoint] = await endpointsOf(org);
    expect(endpoint).toMatchObject({
      url: "https://hooks.example/dash",
      description: "Billing sync",
      events: ["api_key.revoked", "api_key.leaked"],
      enabled: true,
    });
    expect(created.headers.get("location")).toBe(
      `${tab}?notice=endpoint-created#endpoint-${endpoint.id}`,
    );
    // The same form posted again (a reload) goes to what it created, creating nothing.
    const again = await dash("POST", `${tab}/endpoints`, { session: org.admin, form });
    expect(again.status).toBe(303);
    expect(again.headers.get("location")).toBe(`${tab}?notice=endpoint-created-before`);
    expect(await endpointsOf(org)).toHaveLength(1);

    const shown = await dash("GET", `${tab}?notice=endpoint-created`, { session: org.admin });
    expect(shown.text).toContain("Webhook endpoint added.");
    expect(shown.text).toContain(`id="endpoint-${endpoint.id}"`);
    expect(shown.text).toContain("https://hooks.example/dash");
    expect(shown.text).toContain("api_key.leaked");
    expect(shown.text).toContain(">enabled<");
    expect(shown.text).toContain(">Disable<");

    const member = await dash("GET", tab, { session: org.member });
    expect(member.status).toBe(200);
    expect(member.text).toContain("https://hooks.example/dash");
    expect(member.text).not.toContain("New endpoint");
    expect(member.text).not.toContain(">Disable<");
    const memberEdit = await dash("GET", `${tab}/endpoints/${endpoint.id}`, {
      session: org.member,
    });
    expect(memberEdit.status).toBe(200);
    expect(memberEdit.text).toContain("api_key.revoked");
    expect(memberEdit.text).not.toContain(`action="${tab}/endpoints`);
  });

  it("refuses a bad URL or no events next to the field, creating nothing; all events is ['*']", async () => {
    const org = await orgWithKey();
    const tab = `/dashboard/projects/${org.project.id}/webhooks`;
    const refused = await dash("POST", `${tab}/endpoints`, {
      session: org.admin,
      form: { url: "http://hooks.example/plain", description: "d".repeat(129) },
    });
    expect(refused.status).toBe(200);
    expect(errorOf(refused.text, "url")).toBe(
      "Must be an https:// URL (http:// only for localhost).",
    );
    expect(errorOf(refused.text, "events")).toBe("Choose at least one event, or all events.");
    expect(errorOf(refused.text, "description")).toBe("Must be at most 128 characters.");
    expect(refused.text).toContain('value="http://hooks.example/plain"');
    const blank = await dash("POST", `${tab}/endpoints`, {
      session: org.admin,
      form: { url: " ", all_events: "on" },
    });
    expect(errorOf(blank.text, "url")).toBe("Enter the URL to deliver to.");
    expect(await endpointsOf(org)).toEqual([]);

    const all = await dash("POST", `${tab}/endpoints`, {
      session: org.admin,
      form: { url: "http://localhost:9000/hooks", all_events: "on", "event_api_key.created": "on" },
    });
    expect(all.status, all.text).toBe(303);
    expect((await endpointsOf(org))[0]).toMatchObject({ events: ["*"], description: null });
    const tabPage = await dash("GET", tab, { session: org.admin });
    expect(tabPage.text).toContain("all events");
  });

  it("edits, disables, enables and deletes an endpoint; members are refused each", async () => {
    const org = await orgWithKey();
    const made = await call("POST", `/v1/projects/${org.project.id}/webhook-endpoints`, {
      token: org.admin,
      body: { url: "https://hooks.example/edit", events: ["api_key.created"] },
    });
    const one = `/dashboard/projects/${org.project.id}/webhooks/endpoints/${made.body.id}`;
    const page = await dash("GET", one, { session: org.admin });
    expect(page.status).toBe(200);
    expect(page.text).toMatch(/name="event_api_key.created" checked/);
    expect(page.text).toMatch(/name="enabled" checked/);

    // Members: each change refused with the reason, nothing changed.
    for (const [path, form] of [
      [one, { url: "https://hooks.example/member", all_events: "on" }],
      [`${one}/enabled`, { enabled: "false" }],
      [`${one}/delete`, {}],
    ] as const) {
      const refused = await dash("POST", path, { session: org.member, form });
      expect(refused.status, path).toBe(200);
      expect(refused.text, path).toContain(
        "Only organization admins can change webhook endpoints.",
      );
    }
    const newByMember = await dash(
      "POST",
      `/dashboard/projects/${org.project.id}/webhooks/endpoints`,
      {
        session: org.member,
        form: { url: "https://hooks.example/member", all_events: "on" },
      },
    );
    expect(newByMember.text).toContain("Only organization admins can change webhook endpoints.");
    expect(await endpointsOf(org)).toEqual([made.body]);

    const edited = await dash("POST", one, {
      session: org.admin,
      form: {
        url: "https://hooks.example/edited",
        description: "Renamed",
        "event_api_key.expiring": "on",
        "event_api_key.expired": "on",
      },
    });
    expect(edited.status, edited.text).toBe(303);
    expect((await endpointsOf(org))[0]).toMatchObject({
      url: "https://hooks.example/edited",
      description: "Renamed",
      events: ["api_key.expiring", "api_key.expired"],
      enabled: false, // the box was not ticked
    });
    const enabled = await dash("POST", `${one}/enabled`, {
      session: org.admin,
      form: { enabled: "true" },
    });
    expect(enabled.status).toBe(303);
    expect((await endpointsOf(org))[0].enabled).toBe(true);
    const disabled = await dash("POST", `${one}/enabled`, {
      session: org.admin,
      form: { enabled: "false" },
    });
    expect(disabled.status).toBe(303);
    expect((await endpointsOf(org))[0].enabled).toBe(false);

    const deleted = await dash("POST", `${one}/delete`, { session: org.admin, form: {} });
    expect(deleted.status).toBe(303);
    expect(deleted.headers.get("location")).toContain("notice=endpoint-deleted");
    expect(await endpointsOf(org)).toEqual([]);
    expect((await dash("GET", one, { session: org.admin })).status).toBe(404);
    const twice = await dash("POST", `${one}/delete`, { session: org.admin, form: {} });
    expect(twice.status).toBe(404);
  });

  it("shows each delivery's event type and where it went", async () => {
    const org = await orgWithKey();
    const hooked = await call("POST", "/v1/api-keys", {
      token: org.admin,
      body: {
        project_id: org.project.id,
        name: "hooked",
        rotation_webhook_url: "https://hooks.example/rotation",
      },
    });
    await call("POST", `/v1/api-keys/${hooked.body.id}/rotate`, { token: org.admin, body: {} });
    const tab = await dash("GET", `/dashboard/projects/${org.project.id}/webhooks`, {
      session: org.member,
    });
    expect(tab.text).toContain("api_key.rotated");
    expect(tab.text).toContain("to the rotation webhook URL of the key");
    expect(tab.text).toContain("Recent deliveries");
  });

  it("keeps another organization's endpoints to it", async () => {
    const a = await orgWithKey();
    const b = await orgWithKey();
    const made = await call("POST", `/v1/projects/${a.project.id}/webhook-endpoints`, {
      token: a.admin,
      body: { url: "https://hooks.example/a", events: ["*"] },
    });
    const one = `/dashboard/projects/${a.project.id}/webhooks/endpoints/${made.body.id}`;
    expect((await dash("GET", one, { session: b.admin })).status).toBe(404);
    const other = `/dashboard/projects/${b.project.id}/webhooks/endpoints/${made.body.id}`;
    expect((await dash("GET", other, { session: b.admin })).status).toBe(404);
    expect((await dash("POST", `${one}/delete`, { session: b.admin, form: {} })).status).toBe(404);
    expect(await endpointsOf(a)).toHaveLength(1);
  });
});
