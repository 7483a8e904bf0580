/** docs/sinks.md's edge-value table is the type matrix that type-matrix.int.test.ts checks: it may not go stale. */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { CASES } from "./cases.ts";
import { SINKS_DOC, withCurrentTable } from "./doc.ts";

const AVRO_TYPES_DOC = join(dirname(fileURLToPath(import.meta.url)), "../../docs/avro-types.md");

test("docs/sinks.md shows the type matrix as it is (run `npm run docs:types` after changing test/type-matrix/cases.ts)", () => {
  const doc = readFileSync(SINKS_DOC, "utf8");
  assert.equal(doc, withCurrentTable(doc), "docs/sinks.md is stale: run `npm run docs:types`");
});

/** The table rows of one `## <heading>` section of docs/avro-types.md. */
function section(doc: string, heading: string): string {
  const start = doc.indexOf(`\n## ${heading}\n`);
  assert.ok(start >= 0, `docs/avro-types.md has no "## ${heading}" section`);
  const end = doc.indexOf("\n## ", start + 1);
  return doc.slice(start, end < 0 ? undefined : end).split("\n").filter((line) => line.startsWith("| ")).join("\n");
}

/** The ways docs/avro-types.md may name a type of the matrix: as written, or its name with a placeholder for its arguments. */
function spellings(type: string): string[] {
  const withoutUnsigned = type.replace(/ unsigned$/, "");
  const base = withoutUnsigned.replace(/\(.*\)/, "").replace(/\[\]+$/, "");
  if (/\[\]$/.test(type)) return ["T[]"];
  return [type, withoutUnsigned, base, `${base}(p)`, `${base}(n)`, `${base}(p,s)`, `${base}(fsp)`, `${base}('a','b')`, `${base}('x','y')`].map((name) => `\`${name}\``);
}

test("docs/avro-types.md lists every type of the type matrix in its PostgreSQL or MySQL table", () => {
  const doc = readFileSync(AVRO_TYPES_DOC, "utf8");
  const tables = { postgres: section(doc, "PostgreSQL"), mariadb: section(doc, "MySQL and MariaDB") };
  const missing = CASES.filter((c) => {
    const table = tables[c.source];
    if (c.source === "postgres" && /range$/.test(c.type)) return !table.includes("ranges");
    // The test's own enum, domain and composite types.
    if (c.type.startsWith("{schema}.")) return !["enums", "a domain", "composite types"].every((name) => table.includes(name));
    return !spellings(c.type).some((name) => table.includes(name));
  }).map((c) => `${c.source} ${c.type}`);
  assert.deepEqual([...new Set(missing)], [], "types of the matrix that docs/avro-types.md does not map");
});
