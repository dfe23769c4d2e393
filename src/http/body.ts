import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { Problem } from "./problem";
import type { AppEnv } from "./router";

export const MAX_BODY_BYTES = 64 * 1024;
const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i;

const hasNoBody = (method: string) => method === "GET" || method === "HEAD" || method === "OPTIONS";

/** At most 64 KiB, declared or streamed (413). */
const limit = bodyLimit({
  maxSize: MAX_BODY_BYTES,
  onError: () => {
    throw new Problem(
      "payload-too-large",
      `Request bodies are limited to ${MAX_BODY_BYTES} bytes.`,
    );
  },
});

/**
 * JSON only (415), well-formed (400). An empty body reads as `{}` so that routes whose fields
 * are all optional accept a bare POST, and required fields are named in a 400.
 */
const jsonOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  const text = await c.req.text();
  if (text.trim() === "") {
    // A bare POST (no body, or whitespace, with or without a content type) means "no
    // fields": the route's validator sees a JSON `{}`.
    const headers = new Headers(c.req.raw.headers);
    headers.set("content-type", "application/json");
    headers.delete("content-length");
    c.req.raw = new Request(c.req.raw.url, { method: c.req.method, headers, body: "{}" });
    c.req.bodyCache = {};
    return next();
  }
  const mediaType = (c.req.header("content-type") ?? "").split(";")[0]?.trim() ?? "";
  if (!JSON_MEDIA.test(mediaType)) {
    throw new Problem(
      "unsupported-media-type",
      `Request bodies must be application/json, not "${mediaType || "(none)"}".`,
    );
  }
  try {
    JSON.parse(text);
  } catch {
    throw new Problem("validation", "The request body is not valid JSON.", {
      errors: [{ location: "body", message: "is not valid JSON", value: null }],
    });
  }
  return next();
};

/** Every request with a body passes here before any route sees it. */
export const bodyGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (hasNoBody(c.req.method)) return next();
  await limit(c, async () => {
    await jsonOnly(c, next);
  });
};
