import type { DrizzleD1Database } from "drizzle-orm/d1";
import type * as schema from "./schema";

/** The drizzle database over Keygate's schema (every repository function takes one). */
export type Database = DrizzleD1Database<typeof schema>;
