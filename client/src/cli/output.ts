/**
 * How commands print results: aligned tables with a header on a terminal, tab-separated lines
 * without a header otherwise (for `cut`/`awk`), and JSON with `--json`. Only this module knows
 * the three shapes.
 */
import type { CliIo } from "./io.js";

/** Rows under named columns. JSON output uses the column names as keys. */
export interface Table {
  readonly columns: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

/** Spaces between table columns on a terminal. */
const columnGap = 2;

/** Writes one line to stdout. */
export function writeLine(io: CliIo, text: string): void {
  io.stdout.write(`${text}\n`);
}

/** Writes one line to stderr (notes that must not mix with data on stdout). */
export function writeNote(io: CliIo, text: string): void {
  io.stderr.write(`${text}\n`);
}

/** JSON text of `value`; bigints become numbers when exact, else strings. */
export function toJson(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    (_key, item: unknown) => {
      if (typeof item !== "bigint") return item;
      return item <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(item) : item.toString();
    },
    indent,
  );
}

/** Writes `value` as JSON, indented on a terminal and compact otherwise. */
export function writeJson(io: CliIo, value: unknown): void {
  writeLine(io, toJson(value, io.stdout.isTTY === true ? 2 : undefined));
}

/**
 * Writes a table: aligned with an upper-case header on a terminal (`empty` when there are no
 * rows), tab-separated lines otherwise.
 */
export function writeTable(io: CliIo, table: Table, empty: string): void {
  if (io.stdout.isTTY !== true) {
    for (const row of table.rows) writeLine(io, row.join("\t"));
    return;
  }
  if (table.rows.length === 0) {
    writeNote(io, empty);
    return;
  }
  const header = table.columns.map((column) => column.toUpperCase());
  const widths = header.map((title, i) =>
    Math.max(title.length, ...table.rows.map((row) => (row[i] ?? "").length)),
  );
  const format = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (i === cells.length - 1 ? cell : cell.padEnd(widths[i]! + columnGap)))
      .join("")
      .trimEnd();
  writeLine(io, format(header));
  for (const row of table.rows) writeLine(io, format(row));
}

/** Writes a table as a JSON array of objects keyed by column name, or as `writeTable` does. */
export function writeTableOrJson(
  io: CliIo,
  options: { json: boolean; table: Table; objects: readonly unknown[]; empty: string },
): void {
  if (options.json) writeJson(io, options.objects);
  else writeTable(io, options.table, options.empty);
}
