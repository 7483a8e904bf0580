/**
 * The "Edge values per sink" table of docs/sinks.md, generated from the type matrix (cases.ts),
 * which type-matrix.int.test.ts checks against the real sinks. `npm run docs:types` rewrites the
 * section; doc.test.ts fails when it is stale.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { CASES, SINKS } from "./cases.ts";

export const SINKS_DOC = join(dirname(fileURLToPath(import.meta.url)), "../../docs/sinks.md");
const BEGIN = "<!-- type-matrix:begin (generated from test/type-matrix/cases.ts by `npm run docs:types`; do not edit by hand) -->";
const END = "<!-- type-matrix:end -->";

function cell(text: string): string {
  const shown = text.length > 48 ? `${text.slice(0, 45)}…` : text;
  return `\`${shown.replace(/\|/g, "\\|").replace(/`/g, "'")}\``;
}

export function matrixTable(): string {
  const header = "| source | type | value | DuckDB | ClickHouse 18.16 | Elasticsearch (`_source`) |";
  const rule = "| --- | --- | --- | --- | --- | --- |";
  const rows = CASES.map((c) => {
    const value = c.label === undefined ? cell(c.literal) : c.label.replace(/\|/g, "\\|");
    const stored = SINKS.map((sink) => (c.expect[sink] === "= source" || c.expect[sink] === "rejected" ? c.expect[sink] : cell(c.expect[sink])));
    return `| ${c.source === "postgres" ? "PostgreSQL" : "MariaDB"} | \`${c.type}\` | ${value} | ${stored.join(" | ")} |`;
  });
  return [BEGIN, header, rule, ...rows, END].join("\n");
}

/** docs/sinks.md with the generated section replaced; throws when the markers are missing. */
export function withCurrentTable(doc: string): string {
  const start = doc.indexOf(BEGIN);
  const end = doc.indexOf(END);
  if (start < 0 || end < start) throw new Error(`docs/sinks.md has no type-matrix section (${BEGIN} … ${END})`);
  return `${doc.slice(0, start)}${matrixTable()}${doc.slice(end + END.length)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const doc = readFileSync(SINKS_DOC, "utf8");
  const current = withCurrentTable(doc);
  if (process.argv.includes("--write")) writeFileSync(SINKS_DOC, current);
  else process.stdout.write(matrixTable() + "\n");
}
