import { OpenAPIHono, type z } from "@hono/zod-openapi";
import type { Core } from "../core/context";
import type { Actor, Principal } from "../core/principal";
import { validationProblem } from "./problem";

export type AppEnv = {
  Bindings: Env;
  Variables: { core: Core; principal: Principal; actor: Actor };
};

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
