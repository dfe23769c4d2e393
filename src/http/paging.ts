import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, type Page } from "../core/pagination";

export const PageQuerySchema = z.object({
  // Decimal digits only: Number() would also take "0x10", "1e1" and " 10".
  limit: z
    .string()
    .optional()
    .transform((value, ctx) => {
      if (value === undefined) return DEFAULT_PAGE_SIZE;
      const size = /^[0-9]{1,3}$/.test(value) ? Number(value) : Number.NaN;
      if (size >= 1 && size <= MAX_PAGE_SIZE) return size;
      ctx.addIssue({
        code: "custom",
        message: `must be a whole number from 1 to ${MAX_PAGE_SIZE}, in decimal digits`,
      });
      return z.NEVER;
    })
    .openapi({
      type: "integer",
      minimum: 1,
      maximum: MAX_PAGE_SIZE,
      default: DEFAULT_PAGE_SIZE,
      description: `Page size, 1–${MAX_PAGE_SIZE} in decimal digits.`,
    }),
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
