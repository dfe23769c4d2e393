// Keygate's own: verify a key over HTTP. The key in the body is the credential (no auth header).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { tooManyMisses, withinMissBudget } from "../core/rate-limit";
import { VERIFY_CODES, VerifyOptionsSchema, verifyKey } from "../core/verify";
import { InstantSchema } from "../http/fields";
import { bodyErrorResponses, errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import type { AppEnv } from "../http/router";

export const VerifyResultSchema = z
  .object({
    valid: z.boolean(),
    code: z.enum(VERIFY_CODES),
    key_id: z.string().nullable(),
    organization_id: z.string().nullable(),
    project_id: z.string().nullable(),
    environment_id: z.string().nullable(),
    scopes: z.array(z.string()).nullable(),
    expires_at: InstantSchema.nullable(),
    in_grace: z.boolean(),
  })
  .openapi("VerifyResult");

const route = createRoute({
  method: "post",
  path: "/v1/keys/verify",
  tags: ["Verification"],
  summary: "Verify an API key",
  description:
    "Checks format and checksum, then revocation, expiry, grace, scopes and project. Invalid keys get `valid: false`, a `code`, and no metadata.",
  security: [],
  request: {
    body: jsonBody(
      z.strictObject({
        key: z.string().openapi({ example: "capy_live_…" }),
        // The RPC options' own schemas, by their wire names: one contract for both doors.
        required_scopes: VerifyOptionsSchema.shape.requiredScopes,
        project_id: VerifyOptionsSchema.shape.projectId,
      }),
    ),
  },
  responses: {
    200: jsonResponse(VerifyResultSchema, "The verdict (valid or not)."),
    400: errorResponses[400],
    ...bodyErrorResponses,
    429: {
      ...errorResponses[429],
      description:
        "Too many unknown keys (answers that would be NOT_FOUND) from this client address: 600 a minute per location. Genuine keys are never limited.",
    },
    503: errorResponses[503],
  },
});

export function registerVerify(app: OpenAPIHono<AppEnv>) {
  app.openapi(route, async (c) => {
    const body = c.req.valid("json");
    const { result } = await verifyKey(c.var.core, body.key, {
      requiredScopes: body.required_scopes,
      projectId: body.project_id,
    });
    // Unknown keys cost a D1 read each: an address sending too many gets 429s for them.
    // Genuine keys are never counted, so they are never limited.
    const address = c.req.header("cf-connecting-ip") ?? c.req.header("x-real-ip") ?? "unknown";
    if (
      result.code === "NOT_FOUND" &&
      !(await withinMissBudget(c.env.VERIFY_MISS_RATE_LIMITER, `verify:${address}`))
    ) {
      throw tooManyMisses("unknown keys");
    }
    return c.json(result, 200);
  });
}
