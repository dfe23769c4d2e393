import { OpenAPIHono, type z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { Core } from "../core/context";
import type { Actor, Principal } from "../core/principal";
import { validationProblem } from "./problem";

export type AppEnv = {
  Bindings: Env;
  Variables: {
    core: Core;
    principal: Principal;
    actor: Actor;
    /** The key whose plaintext this response carries (an idempotent replay checks it). */
    issuedKeyId?: string;
  };
};

/**
 * This response carries a plaintext secret: no browser, proxy or CDN may keep it. A key's
 * plaintext names its key, so that replaying the response later can check it is still live.
 */
export function carriesSecret(c: Context<AppEnv>, issuedKeyId?: string) {
  c.header("Cache-Control", "no-store");
  if (issuedKeyId !== undefined) c.set("issuedKeyId", issuedKeyId);
}

/**
 * A router whose validation failures are problem+json, like every other error. Strict
 * paths: `/v1/projects/` is not `/v1/projects`, on every route alike (a 404).
 */
export function createRouter() {
  return new OpenAPIHono<AppEnv>({
    strict: true,
    defaultHook: (result) => {
      if (!result.success) {
        const { error, target, data } = result as unknown as {
          error: z.ZodError;
          target: string;
          data: unknown;
        };
        throw validationProblem(error, target, data);
      }
    },
  });
}
