// Keygate's own: the two doors through which leaked keys are reported (SPEC Part 3 "Leaked
// keys"). GitHub's secret-scanning partner endpoint (signed by GitHub) and a public report
// endpoint (no credentials, 60 reports an hour per client address). docs/leaks.md.
import { createRoute, type OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { hashKey } from "../core/key-material";
import { reportLeaks } from "../core/leaks/apply";
import { verifyGitHubSignature } from "../core/leaks/github";
import { enforceLeakReportLimit, LEAK_REPORTS_PER_HOUR } from "../core/rate-limit";
import { missBucket } from "../http/auth";
import { MAX_LEAK_BODY_BYTES } from "../http/body";
import { bodyErrorResponses, errorResponses, jsonBody, jsonResponse } from "../http/openapi";
import type { AppEnv } from "../http/router";

/** At most this many tokens in one report, at either door. */
export const MAX_LEAK_REPORT = 1_000;
const EXAMPLE_KEY = "capy_live_…";

const leakBodyErrors = {
  ...bodyErrorResponses,
  413: {
    ...bodyErrorResponses[413],
    description: `The body is over ${MAX_LEAK_BODY_BYTES / 1024 / 1024} MiB.`,
  },
};

const GitHubMatchSchema = z
  .object({
    token: z.string().openapi({ example: EXAMPLE_KEY }),
    type: z.string().openapi({ example: "keygate_api_key" }),
    url: z
      .string()
      .nullish()
      .openapi({ example: "https://github.com/octo/app/blob/abc123/.env#L3" }),
    source: z.string().nullish().openapi({ example: "commit" }),
  })
  .openapi("GitHubSecretScanningMatch");

const GitHubFeedbackSchema = z
  .object({
    token_hash: z.string().openapi({
      description: "Lowercase hex SHA-256 of the token.",
      example: "3d2b6a0ce0bd1d1a6fbb5a1a8d7b0e4f0f1e4c7d2b6a0ce0bd1d1a6fbb5a1a8d",
    }),
    token_type: z.string().openapi({ example: "keygate_api_key" }),
    label: z.enum(["true_positive", "false_positive"]),
  })
  .openapi("GitHubSecretScanningFeedback");

/**
 * GitHub signs the raw body: checked on its bytes, before the body is parsed for the route.
 * A missing, unknown or bad signature is a 401 and nothing of the body is used.
 */
const gitHubSignature: MiddlewareHandler<AppEnv> = async (c, next) => {
  const body = new Uint8Array(await c.req.arrayBuffer());
  await verifyGitHubSignature(
    c.var.core,
    body,
    c.req.header("github-public-key-identifier"),
    c.req.header("github-public-key-signature"),
  );
  await next();
};

const github = createRoute({
  method: "post",
  path: "/v1/leaks/github",
  tags: ["Leaked keys"],
  summary: "GitHub secret scanning: report leaked keys",
  description: [
    "GitHub's secret-scanning partner endpoint. GitHub posts the Keygate keys it found in public code; each genuine one (any organization, active or not) is marked `leaked_at` and its project's `leak_policy` is applied within the revocation bound. A key already reported changes nothing.",
    "Signed by GitHub: `Github-Public-Key-Signature` is a base64 DER ECDSA P-256 / SHA-256 signature over the raw body by the key `Github-Public-Key-Identifier` names, one of GitHub's published secret-scanning keys (`GITHUB_SECRET_SCANNING_KEYS`, or fetched from GitHub and kept an hour). A missing, unknown or bad signature is a 401.",
    `The answer labels each token: \`true_positive\` for a Keygate key, \`false_positive\` otherwise. At most ${MAX_LEAK_REPORT} matches per request.`,
  ].join("\n\n"),
  security: [],
  middleware: gitHubSignature,
  request: {
    headers: z.object({
      "github-public-key-identifier": z
        .string()
        .optional()
        .openapi({ description: "Which of GitHub's keys signed the body." }),
      "github-public-key-signature": z
        .string()
        .optional()
        .openapi({ description: "Base64 DER ECDSA P-256 / SHA-256 signature of the raw body." }),
    }),
    body: jsonBody(z.array(GitHubMatchSchema).max(MAX_LEAK_REPORT)),
  },
  responses: {
    200: jsonResponse(z.array(GitHubFeedbackSchema), "One label per match, in order."),
    400: errorResponses[400],
    401: { ...errorResponses[401], description: "A missing, unknown or bad GitHub signature." },
    ...leakBodyErrors,
    503: errorResponses[503],
  },
});

const report = createRoute({
  method: "post",
  path: "/v1/leaks",
  tags: ["Leaked keys"],
  summary: "Report leaked keys",
  description: [
    "Anyone may report Keygate keys they found exposed, without credentials. The answer is the same whatever the keys are: it never tells whether a key exists. Strings that are not well-formed keys (format and checksum) are dropped without a storage read; each genuine key is marked `leaked_at` and its project's `leak_policy` applied within the revocation bound (a key already reported changes nothing).",
    `At most ${LEAK_REPORTS_PER_HOUR} reports an hour per client address (an IPv6 client by its /64); the next is a 429 with \`Retry-After\`.`,
  ].join("\n\n"),
  security: [],
  request: {
    body: jsonBody(
      z.strictObject({
        keys: z
          .array(z.string())
          .min(1)
          .max(MAX_LEAK_REPORT)
          .openapi({ example: [EXAMPLE_KEY] }),
        url: z.string().max(2048).optional().openapi({
          description: "Where the keys were found.",
          example: "https://pastebin.com/abc",
        }),
      }),
    ),
  },
  responses: {
    202: jsonResponse(
      z.object({ received: z.number().int().openapi({ example: 1 }) }).openapi("LeakReceipt"),
      "Received: how many strings the report held.",
    ),
    400: errorResponses[400],
    ...leakBodyErrors,
    429: {
      ...errorResponses[429],
      description: `More than ${LEAK_REPORTS_PER_HOUR} reports this hour from this client address.`,
    },
    503: errorResponses[503],
  },
});

export function registerLeaks(app: OpenAPIHono<AppEnv>) {
  app.openapi(github, async (c) => {
    const matches = c.req.valid("json");
    const genuine = await reportLeaks(
      c.var.core,
      "github",
      matches.map((m) => ({ token: m.token, url: m.url || null, foundIn: m.source ?? null })),
    );
    const feedback = await Promise.all(
      matches.map(async (m) => {
        const tokenHash = await hashKey(m.token);
        return {
          token_hash: tokenHash,
          token_type: m.type,
          label: genuine.has(tokenHash) ? ("true_positive" as const) : ("false_positive" as const),
        };
      }),
    );
    return c.json(feedback, 200);
  });

  app.openapi(report, async (c) => {
    const body = c.req.valid("json");
    await enforceLeakReportLimit(c.var.core, missBucket(c));
    await reportLeaks(
      c.var.core,
      "report",
      body.keys.map((token) => ({ token, url: body.url ?? null })),
    );
    return c.json({ received: body.keys.length }, 202);
  });
}
