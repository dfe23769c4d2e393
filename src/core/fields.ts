// Field shapes the core's own inputs share with the wire (scopes, ids): one definition, read
// by the HTTP schemas (src/http/fields.ts) and by the RPC door's option parsing alike.
import { z } from "@hono/zod-openapi";

export const ScopeSchema = z
  .string()
  .regex(/^[A-Za-z0-9:._*-]{1,100}$/, "must be 1–100 characters of letters, digits and : . _ * -");
export const ScopesSchema = z
  .array(ScopeSchema)
  .max(50)
  .openapi({ example: ["keys:read", "deploy"] });
export const IdSchema = z.string().min(1).max(64);
