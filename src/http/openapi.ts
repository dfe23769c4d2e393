// Shared OpenAPI pieces: the problem schema, the error responses routes declare, bodies.
import { z } from "@hono/zod-openapi";

export const ProblemSchema = z
  .object({
    type: z.string(),
    title: z.string(),
    status: z.number().int(),
    detail: z.string(),
    instance: z.string(),
    error: z.string().openapi({ description: "Same as `detail`, for `{ error }` clients." }),
    errors: z.array(z.object({ location: z.string(), message: z.string(), value: z.unknown() })),
    $schema: z
      .string()
      .optional()
      .openapi({ description: "On the `/api/v1` surface only, as in its seed." }),
  })
  .openapi("Problem");

const problem = (description: string) => ({
  description,
  content: { "application/problem+json": { schema: ProblemSchema } },
});

/** The error responses every management route can give. */
export const errorResponses = {
  400: problem("Invalid request: each bad field is named in `errors[]`."),
  401: problem("Missing or invalid credentials."),
  403: problem("Authenticated, but not allowed."),
  404: problem("Not found, or not visible to the caller."),
  429: problem("Too many requests from this caller: wait for `Retry-After` seconds."),
  503: problem("Storage unavailable; retry."),
} as const;

/** Any request with a body (every method but GET) can also get these. */
export const bodyErrorResponses = {
  413: problem("The body is over 64 KiB."),
  415: problem("The body is not JSON."),
} as const;

/** The error responses of a management route that takes a body. */
export const writeErrorResponses = {
  ...errorResponses,
  409: problem("Conflicts with the resource's current state."),
  ...bodyErrorResponses,
} as const;

export const jsonBody = <T extends z.ZodType>(schema: T, description?: string) => ({
  required: true,
  ...(description ? { description } : {}),
  content: { "application/json": { schema } },
});

/** A body whose fields are all optional: a bare POST is `{}` (see the body guard). */
export const optionalJsonBody = <T extends z.ZodType>(schema: T) => ({
  ...jsonBody(schema, "Optional: a POST without a body means `{}`."),
  required: false,
});

export const jsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  description,
  content: { "application/json": { schema } },
});
