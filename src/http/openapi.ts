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

type HeaderObject = { description: string; schema: { type: "string" | "integer" } };

/** The response headers Keygate sends, each documented once. */
export const responseHeaders = {
  Link: {
    description: 'The next page, `<absolute URL>; rel="next"`; absent on the last page.',
    schema: { type: "string" },
  },
  "Retry-After": {
    description: "Seconds to wait before retrying.",
    schema: { type: "integer" },
  },
  "WWW-Authenticate": {
    description: "`Bearer`: send an API key or a Clerk session token.",
    schema: { type: "string" },
  },
  Allow: {
    description: "The methods the path does take, e.g. `GET, POST`.",
    schema: { type: "string" },
  },
} satisfies Record<string, HeaderObject>;

const problem = (description: string, headers?: Record<string, HeaderObject>) => ({
  description,
  ...(headers ? { headers } : {}),
  content: { "application/problem+json": { schema: ProblemSchema } },
});

/** The error responses every management route can give. */
export const errorResponses = {
  400: problem("Invalid request: each bad field is named in `errors[]`."),
  401: problem("Missing or invalid credentials.", {
    "WWW-Authenticate": responseHeaders["WWW-Authenticate"],
  }),
  403: problem("Authenticated, but not allowed."),
  404: problem("Not found, or not visible to the caller."),
  429: problem("Too many requests from this caller: wait for `Retry-After` seconds.", {
    "Retry-After": responseHeaders["Retry-After"],
  }),
  503: problem("Storage unavailable; retry.", { "Retry-After": responseHeaders["Retry-After"] }),
} as const;

/** Any path answers a method it does not take with this (not part of any one operation). */
export const methodNotAllowedResponse = {
  description: "This path does not take this method; `Allow` lists those it does.",
  headers: { Allow: responseHeaders.Allow },
  content: {
    "application/problem+json": { schema: { $ref: "#/components/schemas/Problem" } },
  },
};

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

/** A page of a list: the body, and the next page in `Link`. */
export const pagedJsonResponse = <T extends z.ZodType>(schema: T, description: string) => ({
  ...jsonResponse(schema, description),
  headers: { Link: responseHeaders.Link },
});
