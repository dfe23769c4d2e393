import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type Page } from "../core/pagination";

export const PageQuerySchema = z.object({
  limit: z.coerce
    .number()
    .int()
    .min(1)
    .max(MAX_PAGE_SIZE)
    .default(DEFAULT_PAGE_SIZE)
    .openapi({ description: "Page size, 1–100." }),
  cursor: z
    .string()
    .max(200)
    .optional()
    .openapi({ description: 'Opaque cursor from the previous page\'s `Link: rel="next"`.' }),
});

/** The next page goes in a Link header, so the seeds' body shapes stay unchanged. */
export function setNextLink(c: Context, page: Page<unknown>): void {
  if (page.nextCursor === null) return;
  // Absolute, as GitHub sends it: a client can fetch it as it is.
  const url = new URL(c.req.url);
  url.searchParams.set("cursor", page.nextCursor);
  c.header("Link", `<${url.href}>; rel="next"`);
}
