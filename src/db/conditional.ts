import { getTableColumns, type SQL, sql } from "drizzle-orm";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Database } from "./database";

/**
 * `INSERT INTO table SELECT <values> WHERE <condition>`: an insert that happens only if the
 * condition holds when the statement runs. Inside a `db.batch`, `previousChangedOneRow`
 * makes a row depend on the statement before it having changed exactly one row — how a
 * write and the records that go with it (audit, outbox) succeed or fail together.
 */
export function insertWhere<T extends SQLiteTable>(
  db: Database,
  table: T,
  values: T["$inferInsert"],
  condition: SQL,
) {
  const given = values as Record<string, unknown>;
  // drizzle inserts a SELECT into every column, in table order; absent ones get NULL
  // (for the `seq` primary key that means "next number").
  const params = Object.entries(getTableColumns(table)).map(([name, column]) =>
    given[name] === undefined ? sql`null` : sql.param(given[name], column),
  );
  return db.insert(table).select(sql`select ${sql.join(params, sql`, `)} where ${condition}`);
}

/** Condition for `insertWhere`: the previous statement in the batch changed one row. */
export const previousChangedOneRow = sql`changes() = 1`;
