import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { AppEnv } from "../http/router";

const health = createRoute({
  method: "get",
  path: "/healthz",
  tags: ["Meta"],
  summary: "Liveness check",
  security: [],
  responses: {
    200: {
      description: "The Worker is up.",
      content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
    },
  },
});

// The reference page loads Scalar from this Worker (static assets), never from a CDN.
const DOCS_HTML = `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>Keygate API reference</title>
    <link rel="icon" href="data:," />
  </head>
  <body>
    <div id="app"></div>
    <script src="/docs/scalar.js"></script>
    <script>
      Scalar.createApiReference("#app", {
        url: "/openapi.json",
        // Offline: no web fonts, telemetry, AI agent, MCP generator or hosted toolbar, all of
        // which call Scalar's servers. Every tag starts open so each operation is listed.
        withDefaultFonts: false,
        telemetry: false,
        agent: { disabled: true },
        mcp: { disabled: true },
        showDeveloperTools: "never",
        hideClientButton: false,
        defaultOpenAllTags: true,
        // One token, entered once, for every operation (seed 002's take bearerAuth too).
        authentication: { preferredSecurityScheme: "bearerAuth" },
      });
    </script>
  </body>
</html>`;

export function registerMeta(app: OpenAPIHono<AppEnv>) {
  app.openapi(health, (c) => c.json({ status: "ok" as const }, 200));

  app.get("/docs", (c) => c.html(DOCS_HTML));
  app.get("/docs/scalar.js", async (c) => {
    if (!c.env.ASSETS) return c.text("// API reference bundle not available", 404);
    const asset = await c.env.ASSETS.fetch(new URL("/standalone.js", c.req.url));
    return new Response(asset.body, {
      status: asset.status,
      headers: {
        "content-type": "text/javascript; charset=utf-8",
        "cache-control": "public, max-age=3600",
      },
    });
  });
}
