// CSV as RFC 4180 has it (CRLF lines; a field with a comma, quote or line break is quoted, its
// quotes doubled), safe to open in a spreadsheet: a text field that starts like a formula
// (`=`, `+`, `-`, `@`, or a tab or carriage return, OWASP's list) gets a `'` in front, so
// Excel, Sheets and LibreOffice show it as text instead of running it.

const FORMULA_START = /^[=+\-@\t\r]/;
const NEEDS_QUOTES = /[",\r\n]/;

/** One field: numbers as they are, text neutralised and quoted where it must be. */
export function csvField(value: string | number | null): string {
  if (value === null) return "";
  if (typeof value === "number") return String(value);
  const text = FORMULA_START.test(value) ? `'${value}` : value;
  return NEEDS_QUOTES.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/** A header line and the records, every line ended by CRLF. */
export const toCsv = (header: string[], records: (string | number | null)[][]): string =>
  [header, ...records].map((fields) => `${fields.map(csvField).join(",")}\r\n`).join("");
