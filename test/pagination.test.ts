import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { call, newKey, newOrg, nextLink } from "./helpers";

/** Follow Link rel="next" from `first`, collecting ids; `between` runs after each page. */
async function walk(
  token: string,
  first: string,
  ids: (body: unknown) => string[],
  between: (page: number) => Promise<void> = async () => {},
) {
  const seen: string[] = [];
  let path: string | null = first;
  let page = 0;
  while (path) {
    const response = await call("GET", path, { token });
    expect(response.status).toBe(200);
    seen.push(...ids(response.body));
    path = nextLink(response.headers);
    await between(page++);
    if (page > 50) throw new Error("runaway pagination");
  }
  return { seen, pages: page };
}

describe("pagination", () => {
  it("pages every list with limit and a Link rel=next cursor, keeping body shapes", async () => {
    const org = await newOrg("paging");
    const created: string[] = [];
    for (let i = 0; i < 7; i++) created.push((await newKey(org.admin, org.project.id)).id);

    const seed001 = await walk(
      org.admin,
      `/v1/api-keys?project_id=${org.project.id}&limit=3`,
      (b) => (b as { id: string }[]).map((k) => k.id),
    );
    expect(seed001).toEqual({ seen: created, pages: 3 });

    const seed000 = await walk(org.admin, `/v1/organizations/${org.org}/api-keys?limit=2`, (b) =>
      (b as { api_keys: { id: string }[] }).api_keys.map((k) => k.id),
    );
    expect(seed000.seen).toEqual(created);

    const seed002 = await walk(org.admin, `/api/v1/projects/${org.project.id}/keys?limit=4`, (b) =>
      (b as { key_id: string }[]).map((k) => k.key_id),
    );
    expect(seed002.seen).toEqual(created);
  });

  it("defaults to 50 per page and has no Link on the last page", async () => {
    const org = await newOrg("paging-default");
    for (let i = 0; i < 52; i++) await newKey(org.admin, org.project.id);
    const first = await call("GET", `/v1/api-keys?project_id=${org.project.id}`, {
      token: org.admin,
    });
    expect(first.body).toHaveLength(50);
    const next = nextLink(first.headers) as string;
    expect(next).toContain(`project_id=${org.project.id}`);
    const second = await call("GET", next, { token: org.admin });
    expect(second.body).toHaveLength(2);
    expect(second.headers.get("link")).toBeNull();
    const all = await call("GET", `/v1/api-keys?project_id=${org.project.id}&limit=100`, {
      token: org.admin,
    });
    expect(all.body).toHaveLength(52);
    expect(all.headers.get("link")).toBeNull();
  });

  it("never skips or repeats a key while keys are being added", async () => {
    const org = await newOrg("paging-inserts");
    const existing: string[] = [];
    for (let i = 0; i < 6; i++) existing.push((await newKey(org.admin, org.project.id)).id);
    const added: string[] = [];
    const { seen } = await walk(
      org.admin,
      `/v1/organizations/${org.org}/api-keys?limit=2`,
      (b) => (b as { api_keys: { id: string }[] }).api_keys.map((k) => k.id),
      async (page) => {
        if (page < 3) added.push((await newKey(org.admin, org.project.id)).id);
      },
    );
    expect(new Set(seen).size).toBe(seen.length);
    expect(seen.slice(0, existing.length)).toEqual(existing);
    expect(seen).toEqual([...existing, ...added]);
  });

  it("rejects a cursor it did not issue", async () => {
    const org = await newOrg("paging-bad");
    const response = await call("GET", `/v1/api-keys?project_id=${org.project.id}&cursor=bogus`, {
      token: org.admin,
    });
    expect(response.status).toBe(400);
    expect(response.body.errors[0].location).toBe("query.cursor");
  });

  it("seals its cursors: opaque, bound to their list and organization, tamper-evident", async () => {
    const a = await newOrg("sealed-a");
    const b = await newOrg("sealed-b");
    await newKey(a.admin, a.project.id);
    await newKey(a.admin, a.project.id);
    const first = await call("GET", `/v1/api-keys?project_id=${a.project.id}&limit=1`, {
      token: a.admin,
    });
    const next = nextLink(first.headers) as string;
    const cursor = new URL(next, "http://x").searchParams.get("cursor") as string;
    expect(cursor).toMatch(/^[A-Za-z0-9_-]{40,}$/);
    // The row number it stands for is nowhere in it: nothing about other tenants' volume leaks.
    const seq = await env.DB.prepare("select seq from api_keys where id = ?")
      .bind(first.body[0].id)
      .first<{ seq: number }>();
    const bytes = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
    expect(bytes).not.toContain(String(seq?.seq));
    expect((await call("GET", next, { token: a.admin })).status).toBe(200);

    const replays = [
      // another list of the same organization
      [`/v1/projects?cursor=${cursor}`, a.admin],
      [`/v1/organizations/${a.org}/audit-log?cursor=${cursor}`, a.admin],
      // the same list shape in another organization
      [`/v1/api-keys?project_id=${b.project.id}&cursor=${cursor}`, b.admin],
      // altered by one character
      [next.replace(/cursor=(.)/, (_, c) => `cursor=${c === "A" ? "B" : "A"}`), a.admin],
    ] as const;
    for (const [path, token] of replays) {
      const response = await call("GET", path, { token });
      expect(response.status, path).toBe(400);
      expect(response.body.errors[0].location).toBe("query.cursor");
    }
  });
});
