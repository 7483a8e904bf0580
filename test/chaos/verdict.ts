/**
 * What the chaos program checks in a sink: the final state against PostgreSQL (every row, value
 * by value, classified as lost / extra / stale / wrong), and samples taken during the run for rows
 * that go backwards (a lower `rev` than a sample before showed, or a deleted row that comes back).
 */
import type { CanonicalTable, TableDef, ValueEquality } from "../e2e/helpers.ts";
import { clickhouseQuery, elasticCanonical, esRequest } from "../e2e/helpers.ts";
import { parseTsv, unescapeField } from "../../connectors/clickhouse/tsv.ts";

export interface Verdict {
  compared: number;
  lost: number;
  extra: number;
  stale: number;
  wrong: number;
  /** A few examples of each difference, for the report. */
  examples: string[];
}

export function emptyVerdict(): Verdict {
  return { compared: 0, lost: 0, extra: 0, stale: 0, wrong: 0, examples: [] };
}

const MAX_EXAMPLES = 8;

function shortValue(value: string | null | undefined): string {
  if (value === undefined) return "(absent)";
  if (value === null) return "NULL";
  return value.length > 60 ? `${JSON.stringify(value.slice(0, 40))}…(${value.length} chars)` : JSON.stringify(value);
}

/**
 * Compares a sink's visible rows with PostgreSQL's (both canonical): lost = a source row the sink
 * lacks; extra = a sink row the source lacks; stale = an older `rev` than the source's; wrong =
 * the same (or a newer) `rev` with a different value in some column.
 */
export function judge(label: string, expected: CanonicalTable, actual: CanonicalTable, into: Verdict, same: ValueEquality = (_c, a, b) => a === b): void {
  const note = (text: string) => {
    if (into.examples.length < MAX_EXAMPLES) into.examples.push(`${label}: ${text}`);
  };
  for (const [key, row] of expected) {
    into.compared++;
    const other = actual.get(key);
    if (!other) {
      into.lost++;
      note(`lost ${key} (rev ${row["rev"]})`);
      continue;
    }
    if (BigInt(other["rev"] ?? "-1") < BigInt(row["rev"] ?? "0")) {
      into.stale++;
      note(`stale ${key}: rev ${other["rev"]} in the sink, ${row["rev"]} in PostgreSQL`);
      continue;
    }
    const differing = Object.keys(row).filter((column) => !same(column, row[column] ?? null, other[column]));
    if (differing.length > 0) {
      into.wrong++;
      note(`wrong ${key} (rev ${row["rev"]}): ${differing.map((c) => `${c} expected ${shortValue(row[c])} got ${shortValue(other[c])}`).join("; ")}`);
    }
  }
  for (const [key, row] of actual) {
    if (expected.has(key)) continue;
    into.extra++;
    note(`extra ${key} (rev ${row["rev"]})`);
  }
}

/** Key → rev of every visible row, as one sample. */
export type RevSample = Map<string, bigint>;

export function keyText(def: TableDef, values: readonly (string | null)[]): string {
  return JSON.stringify(def.key.map((_k, i) => values[i] ?? null));
}

/** Tracks every key a sink ever showed: a lower `rev` than seen before, or a deleted key coming back, is a step backwards. */
export class BackwardsWatch {
  readonly label: string;
  samples = 0;
  /** Rows showing a lower rev than a sample before showed. */
  olderRev = 0;
  /** Rows that were gone (deleted, or hidden) in a sample and are back in a later one. */
  cameBack = 0;
  readonly examples: string[] = [];
  readonly #seen = new Map<string, { rev: bigint; present: boolean; goneAt: string }>();

  constructor(label: string) {
    this.label = label;
  }

  get backwards(): number {
    return this.olderRev + this.cameBack;
  }

  observe(sample: RevSample, when: string): void {
    this.samples++;
    for (const [key, rev] of sample) {
      const before = this.#seen.get(key);
      if (before && (rev < before.rev || !before.present)) {
        if (rev < before.rev) this.olderRev++;
        else this.cameBack++;
        if (this.examples.length < MAX_EXAMPLES) {
          this.examples.push(before.present ? `${this.label} ${when}: ${key} went from rev ${before.rev} back to ${rev}` : `${this.label} ${when}: ${key} came back (rev ${rev}) after it was gone (${before.goneAt}; last seen rev ${before.rev})`);
        }
      }
      this.#seen.set(key, { rev: before && before.rev > rev ? before.rev : rev, present: true, goneAt: "" });
    }
    for (const [key, state] of this.#seen) {
      if (state.present && !sample.has(key)) {
        state.present = false;
        state.goneAt = `gone in ${when}`;
      }
    }
  }
}

export async function sampleClickHouse(database: string, view: string, def: TableDef): Promise<RevSample> {
  const columns = [...def.key, "rev"].map((c) => `\`${c}\``).join(", ");
  const data = await clickhouseQuery(`SELECT ${columns} FROM \`${database}\`.\`${view}\` FORMAT TabSeparated`);
  const out: RevSample = new Map();
  for (const fields of parseTsv(data)) {
    const values = fields.map((f) => unescapeField(f).toString("utf8"));
    out.set(keyText(def, values.slice(0, def.key.length)), BigInt(values[def.key.length]!));
  }
  return out;
}

/** What searches of the alias see now (no refresh forced: the state users see). */
export async function sampleElasticsearch(alias: string, def: TableDef): Promise<RevSample> {
  const out: RevSample = new Map();
  const fields = [...def.key, "rev"];
  let page = await esRequest("POST", `/${alias}/_search?scroll=1m`, { size: 10_000, sort: ["_doc"], _source: fields, query: { match_all: {} } });
  if (page.status === 404) return out; // the index is not there yet
  if (page.status !== 200) throw new Error(`search ${alias}: ${page.text.slice(0, 300)}`);
  for (;;) {
    const body = page.json as { _scroll_id?: string; hits: { hits: { _source: Record<string, unknown> }[] } };
    for (const hit of body.hits.hits) {
      const key = def.key.map((k) => elasticCanonical(def.columns.find((c) => c.name === k)!, hit._source[k]));
      out.set(keyText(def, key), BigInt(String(hit._source["rev"])));
    }
    if (body.hits.hits.length === 0 || !body._scroll_id) {
      if (body._scroll_id) await esRequest("DELETE", "/_search/scroll", { scroll_id: body._scroll_id });
      return out;
    }
    page = await esRequest("POST", "/_search/scroll", { scroll: "1m", scroll_id: body._scroll_id });
    if (page.status !== 200) throw new Error(`scroll ${alias}: ${page.text.slice(0, 300)}`);
  }
}

/** The DuckDB views read-only (the daemon must not hold the file): one sample per table; absent views give empty samples. */
export async function sampleDuckDb(path: string, tables: readonly { def: TableDef; target: string }[]): Promise<RevSample[]> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(path, { access_mode: "READ_ONLY" });
  const connection = await instance.connect();
  try {
    const out: RevSample[] = [];
    for (const { def, target } of tables) {
      const sample: RevSample = new Map();
      const exists = (await connection.runAndReadAll(`SELECT 1 FROM duckdb_views() WHERE view_name = '${target}'`)).getRows().length > 0;
      if (exists) {
        const columns = [...def.key, "rev"].map((c) => `"${c}"::VARCHAR`).join(", ");
        for (const row of (await connection.runAndReadAll(`SELECT ${columns} FROM main."${target}"`)).getRows()) {
          sample.set(keyText(def, row.slice(0, def.key.length).map((v) => (v === null ? null : String(v)))), BigInt(String(row[def.key.length])));
        }
      }
      out.push(sample);
    }
    return out;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}
