import { and, asc, desc, eq, gt, lt, type SQL } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Core } from "./context";
import { fromBase64Url, seal, toBase64Url, unseal } from "./crypto";
import { invalid } from "./errors";

/** A page request: `limit` rows after the opaque `cursor`. */
export interface PageRequest {
  limit: number;
  cursor?: string | undefined;
}

export interface Page<T> {
  items: T[];
  /** Opaque cursor of the next page; null on the last page. */
  nextCursor: string | null;
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 100;

/**
 * The list a cursor belongs to: its kind, organization and filter. A cursor opens only on the
 * list it came from, so replaying it elsewhere is a 400, not a silently empty page.
 */
export interface ListIdentity {
  kind: string;
  organizationId: string;
  filter?: string | null | undefined;
}

const listContext = (list: ListIdentity) =>
  `cursor:${list.kind}:${list.organizationId}:${list.filter ?? ""}`;

// Cursors carry the last row's `seq`, a monotonically increasing row number, so rows added
// while a client pages never shift the rows it has not seen yet. The number is sealed
// (AES-GCM under ENCRYPTION_KEY, the list as additional data): it is global across tenants,
// and in clear it would tell every client how many rows the service holds.
async function encodeCursor(core: Core, list: ListIdentity, seq: number): Promise<string> {
  return toBase64Url(await seal(core.env.ENCRYPTION_KEY, String(seq), listContext(list)));
}

/** The `seq` a cursor points after, or null without one; 400 for any other string. */
export async function openCursor(
  core: Core,
  list: ListIdentity,
  cursor: string | undefined,
): Promise<number | null> {
  if (cursor === undefined) return null;
  let seq = Number.NaN;
  try {
    const bytes = fromBase64Url(cursor);
    if (bytes.length > 12 && bytes.length <= 64) {
      const text = await unseal(core.env.ENCRYPTION_KEY, bytes, listContext(list));
      if (/^\d{1,15}$/.test(text)) seq = Number(text);
    }
  } catch {
    // not ours, altered, or from another list: the error below
  }
  if (Number.isNaN(seq)) {
    throw invalid("cursor", "is not a cursor this API issued for this list", cursor);
  }
  return seq;
}

/** Rows are fetched with limit + 1 to learn whether a next page exists. */
async function toPage<T extends { seq: number }>(
  core: Core,
  list: ListIdentity,
  rows: T[],
  limit: number,
): Promise<Page<T>> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items,
    nextCursor: rows.length > limit && last ? await encodeCursor(core, list, last.seq) : null,
  };
}

/** A table lists page over: rows numbered by `seq`, each owned by one organization. */
export type ListedTable = SQLiteTable & { seq: SQLiteColumn; organizationId: SQLiteColumn };

/**
 * One page of a tenant's rows: always within `list.organizationId`, narrowed by `where`, in
 * `seq` order (oldest or newest first), after the cursor. The one way lists read storage.
 */
export async function listPage<T extends ListedTable>(
  core: Core,
  table: T,
  list: ListIdentity,
  where: SQL | undefined,
  page: PageRequest,
  order: "oldest" | "newest",
): Promise<Page<T["$inferSelect"]>> {
  const after = await openCursor(core, list, page.cursor);
  const beyond =
    after === null ? undefined : order === "oldest" ? gt(table.seq, after) : lt(table.seq, after);
  const rows = (await core.db
    .select()
    .from(table as SQLiteTable)
    .where(and(eq(table.organizationId, list.organizationId), where, beyond))
    .orderBy(order === "oldest" ? asc(table.seq) : desc(table.seq))
    .limit(page.limit + 1)) as (T["$inferSelect"] & { seq: number })[];
  return toPage(core, list, rows, page.limit);
}
