// An example consumer: a Worker of yours whose routes are guarded by Keygate keys, verified
// through a service binding to Keygate's `KeyService` entrypoint (RPC, no HTTP round trip).
import type { KeyService, VerifyResult } from "../../../src/rpc/key-service";

export interface Env {
  KEYGATE: Service<KeyService>;
  /** Keygate's HTTP API: local development only (see wrangler.toml). */
  KEYGATE_API?: Fetcher;
  REQUIRED_SCOPE?: string;
}

const FORBIDDEN_CODES = new Set<VerifyResult["code"]>(["INSUFFICIENT_SCOPE", "WRONG_PROJECT"]);

/** GET /protected with `Authorization: Bearer <key>`; `?project_id=` also checks the project. */
async function protectedRoute(request: Request, env: Env, url: URL): Promise<Response> {
  const match = /^Bearer[ ]+(\S+)$/i.exec(request.headers.get("authorization") ?? "");
  if (!match) {
    return Response.json(
      { error: "Send your API key as `Authorization: Bearer <key>`." },
      { status: 401, headers: { "www-authenticate": "Bearer" } },
    );
  }
  let result: VerifyResult;
  try {
    result = await env.KEYGATE.verify(match[1] as string, {
      requiredScopes: env.REQUIRED_SCOPE ? [env.REQUIRED_SCOPE] : [],
      projectId: url.searchParams.get("project_id") ?? undefined,
    });
  } catch {
    // Keygate could not reach its storage and had nothing cached: fail closed.
    return Response.json(
      { error: "Key verification is unavailable; try again shortly." },
      { status: 503, headers: { "retry-after": "1" } },
    );
  }
  if (!result.valid) {
    const status = FORBIDDEN_CODES.has(result.code) ? 403 : 401;
    return Response.json(
      { error: `The API key was rejected (${result.code}).`, code: result.code },
      { status, headers: status === 401 ? { "www-authenticate": "Bearer" } : {} },
    );
  }
  return Response.json({
    ok: true,
    key_id: result.key_id,
    organization_id: result.organization_id,
    scopes: result.scopes,
  });
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (request.method === "GET") {
      switch (url.pathname) {
        case "/protected":
          return protectedRoute(request, env, url);
        // The same binding, a method that does nothing: the floor for the benchmark.
        case "/noop":
          return Response.json({ ok: await env.KEYGATE.ping() });
      }
    }
    if (env.KEYGATE_API) return env.KEYGATE_API.fetch(request);
    return Response.json({ error: "Not found." }, { status: 404 });
  },

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
