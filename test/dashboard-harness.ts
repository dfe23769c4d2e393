// What the dashboard tests share: set-up, fixtures and helpers (split out of one test file).
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import worker from "../src/index";
import { BASE, newKey, newOrg } from "./helpers";
export interface PageOptions {
  session?: string | undefined;
  origin?: string | null;
  form?: Record<string, string>;
  /** A body of another content type (the Origin check holds whatever the type). */
  raw?: { type: string; body: string };
  env?: Partial<Env>;
  base?: string;
}

/** One dashboard request as a browser sends it: the session cookie, Origin on mutations. */
export async function dash(method: string, path: string, options: PageOptions = {}) {
  const base = options.base ?? BASE;
  const headers = new Headers();
  if (options.session) headers.set("cookie", `__session=${options.session}`);
  if (method !== "GET" && options.origin !== null) headers.set("origin", options.origin ?? base);
  let body: string | undefined;
  if (options.form) {
    headers.set("content-type", "application/x-www-form-urlencoded");
    body = new URLSearchParams(options.form).toString();
  } else if (options.raw) {
    headers.set("content-type", options.raw.type);
    body = options.raw.body;
  }
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    new Request(`${base}${path}`, { method, headers, body, redirect: "manual" }) as Request<
      unknown,
      IncomingRequestCfProperties
    >,
    { ...env, DEV_SIGN_IN: undefined, DEV_SIGNING_KEY: undefined, ...options.env },
    ctx,
  );
  const text = await response.text();
  await waitOnExecutionContext(ctx);
  return { status: response.status, headers: response.headers, text };
}

export const plaintextOf = (html: string) => /<code id="new-key">([^<]+)<\/code>/.exec(html)?.[1];
export const tokenOf = (html: string) => /name="submission" value="([^"]+)"/.exec(html)?.[1];

export async function orgWithKey() {
  const org = await newOrg("dash");
  const key = await newKey(org.admin, org.project.id, {
    name: "Checkout",
    scopes: ["orders:read"],
  });
  return { ...org, key };
}
