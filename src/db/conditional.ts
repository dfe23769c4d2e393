import { getTableColumns, is, SQL, sql } from "drizzle-orm";
import type { SQLiteTable } from "drizzle-orm/sqlite-core";
import type { Database } from "./database";

/** A row to insert from a SELECT: each column a value, or an SQL expression over `from`. */
export type SelectedValues<T extends SQLiteTable> = {
  [K in keyof T["$inferInsert"]]?: T["$inferInsert"][K] | SQL;
};

/**
 * `INSERT INTO table SELECT <values> <from>`: the insert of one row per row `from` (the FROM
 * and WHERE clauses, or just a WHERE) yields. Values may be SQL over those rows.
 */
export function insertSelect<T extends SQLiteTable>(
  db: Database,
  table: T,
  values: SelectedValues<T>,
  from: SQL,
) {
  const given = values as Record<string, unknown>;
  // drizzle inserts a SELECT into every column, in table order; absent ones get NULL
  // (for the `seq` primary key that means "next number").
  const params = Object.entries(getTableColumns(table)).map(([name, column]) => {
    const value = given[name];
    if (value === undefined) return sql`null`;
    return is(value, SQL) ? value : sql.param(value, column);
  });
  return db.insert(table).select(sql`select ${sql.join(params, sql`, `)} ${from}`);
}

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
  return insertSelect(db, table, values as SelectedValues<T>, sql`where ${condition}`);
}

/** Condition for `insertWhere`: the previous statement in the batch changed one row. */
export const previousChangedOneRow = sql`changes() = 1`;
