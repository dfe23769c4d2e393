import { invalidField } from "./errors";

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

// Cursors wrap the row's `seq`, a monotonically increasing row number: rows added while a
// client pages never shift the rows it has not seen yet.
export function encodeCursor(seq: number): string {
  return btoa(`s:${seq}`).replace(/=+$/, "");
}

export function decodeCursor(cursor: string | undefined): number | null {
  if (cursor === undefined) return null;
  let decoded = "";
  try {
    decoded = atob(cursor);
  } catch {
    // fall through to the error below
  }
  const match = /^s:(\d{1,15})$/.exec(decoded);
  if (!match) throw invalidField("query.cursor", "is not a cursor this API issued", cursor);
  return Number(match[1]);
}

/** Rows are fetched with limit + 1 to learn whether a next page exists. */
export function toPage<T extends { seq: number }>(rows: T[], limit: number): Page<T> {
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items,
    nextCursor: rows.length > limit && last ? encodeCursor(last.seq) : null,
  };
}
