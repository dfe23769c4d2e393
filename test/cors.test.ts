// Dashboards call Keygate from the browser with Clerk session tokens: CORS preflights and
// response headers, open to any origin unless CLERK_AUTHORIZED_PARTIES names the dashboards.
import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import worker from "../src/index";
import { BASE, newOrg } from "./helpers";

async function send(request: Request, bindings: Record<string, unknown> = {}) {
  const ctx = createExecutionContext();
  const response = await worker.fetch(
    request as Request<unknown, IncomingRequestCfProperties>,
    { ...env, ...bindings },
    ctx,
  );
  await response.text();
  await waitOnExecutionContext(ctx);
  return response;
}

const preflight = (origin: string) =>
  new Request(`${BASE}/v1/api-keys`, {
    method: "OPTIONS",
    headers: {
      origin,
      "access-control-request-method": "POST",
      "access-control-request-headers": "authorization, content-type",
    },
  });

describe("CORS", () => {
  it("answers a preflight from any origin when no authorized parties are set", async () => {
    const response = await send(preflight("https://dash.example.com"));
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("access-control-allow-methods")).toContain("POST");
    expect(response.headers.get("access-control-allow-headers")?.toLowerCase()).toContain(
      "authorization",
    );
  });

  it("exposes Link and the error headers on real responses", async () => {
    const { admin } = await newOrg("cors");
    const response = await send(
      new Request(`${BASE}/v1/projects`, {
        headers: { origin: "https://dash.example.com", authorization: `Bearer ${admin}` },
      }),
    );
    expect(response.status).toBe(200);
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("access-control-expose-headers")).toContain("Link");
    const refused = await send(
      new Request(`${BASE}/v1/projects`, { headers: { origin: "https://dash.example.com" } }),
    );
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("*");
  });

  it("allows only the authorized parties when CLERK_AUTHORIZED_PARTIES is set", async () => {
    const parties = {
      CLERK_AUTHORIZED_PARTIES: "https://app.example.com, https://admin.example.com",
    };
    const allowed = await send(preflight("https://admin.example.com"), parties);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://admin.example.com");
    const other = await send(preflight("https://evil.example.com"), parties);
    expect(other.headers.get("access-control-allow-origin")).toBeNull();
  });
});
