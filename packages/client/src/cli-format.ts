// How the `keygate` CLI prints answers for people: aligned tables, and one record as
// `field  value` lines with nested values spelled out (never `[object Object]`).

export type Row = Record<string, unknown>;

const isPlain = (value: unknown): value is Row =>
  typeof value === "object" && value !== null && !Array.isArray(value);

/** One table cell: `-` for null, a list of scalars as `a,b`, anything nested as JSON. */
export function cell(value: unknown): string {
  if (value === null || value === undefined) return "-";
  if (Array.isArray(value)) {
    if (value.length === 0) return "-";
    return value.some((item) => typeof item === "object" && item !== null)
      ? JSON.stringify(value)
      : value.join(",");
  }
  return isPlain(value) ? JSON.stringify(value) : String(value);
}

/** Aligned columns, a header line, `-` for null. */
export function table(rows: Row[], columns: string[]): string {
  const cells = rows.map((row) => columns.map((column) => cell(row[column])));
  const widths = columns.map((column, i) =>
    Math.max(column.length, ...cells.map((line) => (line[i] as string).length)),
  );
  const line = (values: string[]) =>
    values
      .map((value, i) => value.padEnd(widths[i] as number))
      .join("  ")
      .trimEnd();
  return [line(columns.map((c) => c.toUpperCase())), ...cells.map(line)].join("\n");
}

/**
 * Nested objects and lists of objects as dotted fields, e.g. `environments.0.name  live`,
 * `meta.plan  pro`; lists of scalars stay one field (`scopes  read,deploy`).
 */
function flatten(row: Row, prefix = ""): Row {
  const out: Row = {};
  for (const [field, value] of Object.entries(row)) {
    const path = `${prefix}${field}`;
    const nested = isPlain(value)
      ? value
      : Array.isArray(value) && value.some((item) => typeof item === "object" && item !== null)
        ? Object.fromEntries(value.map((item, i) => [String(i), item]))
        : undefined;
    if (nested && Object.keys(nested).length > 0) {
      for (const [inner, item] of Object.entries(nested)) {
        if (isPlain(item) || Array.isArray(item)) {
          Object.assign(out, flatten({ [inner]: item }, `${path}.`));
        } else out[`${path}.${inner}`] = item;
      }
    } else out[path] = value;
  }
  return out;
}

/** One record as `field  value` lines. */
export const record = (row: Row) =>
  table(
    Object.entries(flatten(row)).map(([field, value]) => ({ field, value })),
    ["field", "value"],
  )
    .split("\n")
    .slice(1)
    .join("\n");
