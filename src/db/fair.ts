import { type SQL, sql } from "drizzle-orm";
import type { SQLiteColumn, SQLiteTable } from "drizzle-orm/sqlite-core";

/**
 * The ids of at most `limit` rows matching `where`, taken round-robin across organizations:
 * every organization's most overdue row first, then every organization's second, and so on.
 * One tenant's backlog thus takes one place per round, never the whole batch, so another
 * tenant's due row waits at most one run whatever the backlog's size. For `inArray(id, …)`.
 */
export function fairBatch(
  table: SQLiteTable,
  columns: {
    id: SQLiteColumn;
    organizationId: SQLiteColumn;
    dueAt: SQLiteColumn;
    seq: SQLiteColumn;
  },
  where: SQL | undefined,
  limit: number,
): SQL {
  const { id, organizationId, dueAt, seq } = columns;
  return sql`(select fair.id from (
    select ${id} as id, ${dueAt} as due_at, ${seq} as seq,
      row_number() over (partition by ${organizationId} order by ${dueAt}, ${seq}) as turn
    from ${table} where ${where ?? sql`1`}
  ) as fair order by fair.turn, fair.due_at, fair.seq limit ${limit})`;
}
