// Keygate's own: verify a key over HTTP. The key in the body is the credential; an optional
// verifier key in `Authorization` pins the answers to its tenant (SPEC Part 2).
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import { authenticateVerifier } from "../core/authenticate";
import { verifyAndCount } from "../core/verify";
import { countMiss } from "../http/auth";
import { bodyErrorResponses, errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import type { AppEnv } from "../http/router";
import { EXAMPLE_ORGANIZATION_ID, EXAMPLE_PROJECT_ID } from "../schemas/fields";
import { IP_ADDRESS_PATTERN } from "../schemas/governance";
import { VerifyOptionsSchema, VerifyResultSchema } from "../schemas/verify";

const options = VerifyOptionsSchema.shape;
/** No credential, or a verifier key. */
const optionalBearer: Record<string, string[]>[] = [{}, { bearerAuth: [] }];

const route = createRoute({
  method: "post",
  path: "/v1/keys/verify",
  tags: ["Verification"],
  summary: "Verify an API key",
  description: [
    "Checks, in this order, the first failing one answering: `MALFORMED`, `NOT_FOUND`, `REVOKED`, `EXPIRED`, `DISABLED`, `WRONG_PROJECT`, `IP_NOT_ALLOWED`, `INSUFFICIENT_SCOPE`, `RATE_LIMITED`, `USAGE_EXCEEDED`; else `VALID`. Rate limits and credits are decided together: when one refuses, nothing is spent.",
    "`VALID`, `RATE_LIMITED` and `USAGE_EXCEEDED` carry the key's metadata (`reset_at`, `refill_at` say when to come back); every other answer has `valid: false` and no metadata (its governance members are null).",
    "Verify answers 200 with its verdict (it is a question, not the protected resource), except for a client address sending too many unknown keys: those answers are 429 with `Retry-After` (genuine keys always get their verdict). Turning `RATE_LIMITED` into a 429 with `Retry-After` (or `USAGE_EXCEEDED` into a 429) is the consumer's job, as `@keygate/hono` does.",
    "No `Authorization` header is needed. With `Authorization: Bearer <key with scope keys:verify>` (a verifier key) the answers are pinned to that key's organization (and its project, if it has one): another organization's key answers `NOT_FOUND`, exactly as an unknown key. A Clerk session token pins to its active organization likewise. A bad verifier credential is a 401. Consumers should pin, by a verifier key or `organization_id`.",
  ].join("\n\n"),
  security: optionalBearer,
  request: {
    body: jsonBody(
      z.strictObject({
        key: z.string().openapi({ example: "capy_live_…" }),
        // The RPC options' own schemas, by their wire names: one contract for both doors.
        // The document states what they take beyond the shared schemas' bare types.
        required_scopes: options.requiredScopes,
        project_id: options.projectId.openapi({ example: EXAMPLE_PROJECT_ID }),
        organization_id: options.organizationId.openapi({ example: EXAMPLE_ORGANIZATION_ID }),
        ip: options.ip.openapi({
          pattern: IP_ADDRESS_PATTERN,
          description:
            "The caller's client address, checked against the key's `ip_allowlist`: IPv4 (`203.0.113.7`, no leading zeros) or IPv6 (RFC 4291 text, no zone, no prefix).",
        }),
        cost: options.cost,
        ratelimits: options.ratelimits.openapi({
          description:
            "Apply only these of the key's rate limits, each at its own `cost`; default: all of them at `cost`. Each `name` at most once, and only names the key has (400 otherwise).",
          uniqueItems: true,
          example: [{ name: "requests", cost: 1 }],
        }),
      }),
    ),
  },
  responses: {
    200: jsonResponse(VerifyResultSchema, "The verdict (valid or not)."),
    400: errorResponses[400],
    401: {
      ...errorResponses[401],
      description: "A verifier credential was sent (`Authorization`) and is not valid.",
    },
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
    const authorization = c.req.header("authorization");
    const pin =
      authorization === undefined
        ? undefined
        : await authenticateVerifier(c.var.core, authorization, countMiss(c));
    const { result } = await verifyAndCount(
      c.var.core,
      body.key,
      {
        requiredScopes: body.required_scopes,
        projectId: body.project_id,
        organizationId: body.organization_id,
        ip: body.ip,
        cost: body.cost,
        ratelimits: body.ratelimits,
      },
      { pin },
    );
    // Unknown keys cost a D1 read each: a client sending too many gets 429s for them.
    // Genuine keys are never counted, so they are never limited.
    if (result.code === "NOT_FOUND") await countMiss(c)();
    return c.json(result, 200);
  });
}
