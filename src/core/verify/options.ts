import { z } from "@hono/zod-openapi";
import { IdSchema, ScopesSchema } from "../fields";

/**
 * What a verification may ask besides the key: the one contract of HTTP verify (by wire
 * names, src/routes/verify.ts) and RPC `verify` (these names), so both refuse the same input.
 */
export const VerifyOptionsSchema = z.object({
  requiredScopes: ScopesSchema.optional(),
  projectId: IdSchema.optional(),
});

export type VerifyOptions = z.infer<typeof VerifyOptionsSchema>;
