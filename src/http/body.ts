import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type FieldError, fieldsProblem, Problem } from "./problem";
import type { AppEnv } from "./router";

export const MAX_BODY_BYTES = 64 * 1024;
const JSON_MEDIA = /^application\/([\w.-]+\+)?json$/i;

const hasNoBody = (method: string) => method === "GET" || method === "HEAD" || method === "OPTIONS";

/**
 * The leak doors take up to 1 000 reports in one body (GitHub sends a URL with each match):
 * 1 MiB there.
 */
export const MAX_LEAK_BODY_BYTES = 1024 * 1024;
const LARGE_BODY_PATHS = new Set(["/v1/leaks", "/v1/leaks/github"]);

/** At most 64 KiB (1 MiB on the leak doors), declared or streamed (413). */
const limitTo = (maxSize: number) =>
  bodyLimit({
    maxSize,
    onError: () => {
      throw new Problem("payload-too-large", `Request bodies are limited to ${maxSize} bytes.`);
    },
  });
const limit = limitTo(MAX_BODY_BYTES);
const largeLimit = limitTo(MAX_LEAK_BODY_BYTES);

/**
 * JSON only (415), well-formed (400). An empty body reads as `{}` so that routes whose fields
 * are all optional accept a bare POST, and required fields are named in a 400.
 */
const jsonOnly: MiddlewareHandler<AppEnv> = async (c, next) => {
  // Read as bytes first, so a route that checks a signature over the raw body (GitHub's) gets
  // exactly the bytes sent; the text is decoded from them.
  await c.req.arrayBuffer();
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
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Problem("validation", "The request body is not valid JSON.", {
      errors: [{ location: "body", message: "is not valid JSON", value: null }],
    });
  }
  // JSON may escape half a surrogate pair ("\ud800"); text is stored as UTF-8, where that
  // is no character at all (it would come back as U+FFFD). Refused here, for every field.
  const illFormed = illFormedText(parsed, "body");
  if (illFormed.length > 0) throw fieldsProblem(illFormed);
  return next();
};

/** Every request with a body passes here before any route sees it. */
export const bodyGuard: MiddlewareHandler<AppEnv> = async (c, next) => {
  if (hasNoBody(c.req.method)) return next();
  await (LARGE_BODY_PATHS.has(c.req.path) ? largeLimit : limit)(c, async () => {
    await jsonOnly(c, next);
  });
};

const ILL_FORMED_REPORTED = 20;
/** Half a surrogate pair: a high one not followed by a low one, or a low one on its own. */
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
const isWellFormed = (text: string) => text.search(LONE_SURROGATE) === -1;
const toWellFormed = (text: string) => text.replace(LONE_SURROGATE, "\uFFFD");

interface Visit {
  value: unknown;
  key: string;
  parent: Visit | null;
}

const locationOf = (visit: Visit) => {
  const path: string[] = [];
  for (let at: Visit | null = visit; at !== null; at = at.parent) path.push(at.key);
  return path.reverse().join(".");
};

/**
 * Each string (or member name) in `value` holding a lone surrogate, by its location. A loop,
 * not recursion: a body nested thousands deep must get its 400, not a stack overflow.
 */
function illFormedText(value: unknown, root: string): FieldError[] {
  const found: FieldError[] = [];
  const report = (visit: Visit, text: string) =>
    found.push({
      location: locationOf(visit),
      message: "must be well-formed Unicode text (it holds a lone surrogate)",
      value: toWellFormed(text),
    });
  const stack: Visit[] = [{ value, key: root, parent: null }];
  while (stack.length > 0 && found.length < ILL_FORMED_REPORTED) {
    const visit = stack.pop() as Visit;
    const current = visit.value;
    if (typeof current === "string") {
      if (!isWellFormed(current)) report(visit, current);
    } else if (Array.isArray(current)) {
      for (let i = current.length - 1; i >= 0; i--) {
        stack.push({ value: current[i], key: String(i), parent: visit });
      }
    } else if (current !== null && typeof current === "object") {
      for (const [key, item] of Object.entries(current).reverse()) {
        const child = { value: item, key: toWellFormed(key), parent: visit };
        if (isWellFormed(key)) stack.push(child);
        else report(child, key);
      }
    }
  }
  return found;
}
