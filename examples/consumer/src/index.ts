// An example consumer: a Worker of yours whose routes are guarded by Keygate keys with
// @keygate/hono, verified through a service binding to Keygate's `KeyService` entrypoint (RPC,
// no HTTP round trip), pinned to one organization by the binding's props (wrangler.toml).
import { type KeygateBinding, type KeygateVariables, keygate } from "@keygate/hono";
import { Hono, type MiddlewareHandler } from "hono";

export interface Env {
  KEYGATE: KeygateBinding & { ping(): Promise<"pong"> };
  /** Keygate's HTTP API: local development only (see wrangler.toml). */
  KEYGATE_API?: Fetcher;
}

const app = new Hono<{ Bindings: Env }>();

// Needs a key with scope `read`; `?project_id=` also requires the key to reach that project.
// A configured pin option that resolves to nothing answers 503 (fail closed), so the optional
// project pin is a second middleware, chosen when the query names a project.
const reader = keygate({ binding: "KEYGATE", requiredScopes: ["read"] });
const projectReader = keygate({
  binding: "KEYGATE",
  requiredScopes: ["read"],
  projectId: (c) => c.req.query("project_id"),
});
const readKey: MiddlewareHandler<{ Variables: KeygateVariables }> = (c, next) =>
  (c.req.query("project_id") === undefined ? reader : projectReader)(c, next);

app.get("/protected", readKey, (c) => {
  const key = c.var.apiKey;
  return c.json({
    ok: true,
    key_id: key.key_id,
    organization_id: key.organization_id,
    scopes: key.scopes,
  });
});

// Spends 5 of the key's credits per call (and 5 units of each of its rate limits); a key
// without credits is unlimited. Out of credits: 429.
app.post("/reports", keygate({ binding: "KEYGATE", requiredScopes: ["reports"], cost: 5 }), (c) =>
  c.json({ ok: true, key_id: c.var.apiKey.key_id, credits: c.var.apiKey.credits }),
);

// The same binding, a method that does nothing: the floor for the benchmark.
app.get("/noop", async (c) => c.json({ ok: await c.env.KEYGATE.ping() }));

// Local development: every other path goes to Keygate's HTTP API, so one port serves both.
app.all("*", (c) =>
  c.env.KEYGATE_API ? c.env.KEYGATE_API.fetch(c.req.raw) : c.json({ error: "Not found." }, 404),
);

export default {
  fetch: app.fetch,

  // Local development: `wrangler dev` delivers cron runs (`/cdn-cgi/local/scheduled`) to the
  // first config, this consumer; hand them to Keygate, whose jobs they are.
  async scheduled(controller, env) {
    if (!env.KEYGATE_API) return;
    const keygate = env.KEYGATE_API as Fetcher & {
      scheduled(options: {
        scheduledTime: Date;
        cron: string;
      }): Promise<{ outcome: string } | undefined>;
    };
    // Across `wrangler dev` workers the result may be undefined; a failed run still throws.
    const result = await keygate.scheduled({
      scheduledTime: new Date(controller.scheduledTime),
      cron: controller.cron,
    });
    if (result && result.outcome !== "ok") {
      throw new Error(`Keygate's scheduled run ended with "${result.outcome}".`);
    }
  },
} satisfies ExportedHandler<Env>;
