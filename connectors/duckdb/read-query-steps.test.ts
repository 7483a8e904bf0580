/**
 * The query endpoint's reads on the sink's kept connection: each DuckDB call is a turn of the sink
 * thread's event loop, which a busy sink's batches hold, so a read makes as few as it can. The
 * check that the text is a plain SELECT (json_serialize_sql of it) runs a statement prepared once
 * per connection, not parsed and prepared again for every query.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DuckDBConnection } from "@duckdb/node-api";
import { SluiceError } from "../errors.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { DuckDbSink } from "./duckdb-sink.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-duckdb-read-steps-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a query on the kept connection parses the user's text only: the SELECT check's statement is prepared once", async () => {
  const sink = new DuckDbSink(testSinkConfig("duckdb", { name: "steps", path: join(dir, "steps.duckdb") }), { logger: testLogger() });
  await sink.open(AbortSignal.timeout(30_000));
  const extract = DuckDBConnection.prototype.extractStatements;
  const parsed: string[] = [];
  DuckDBConnection.prototype.extractStatements = function (this: DuckDBConnection, sql: string) {
    parsed.push(sql);
    return extract.call(this, sql);
  };
  try {
    assert.deepEqual((await sink.readQuery("SELECT 1 AS one")).rows, [{ one: 1 }]);
    parsed.length = 0;
    assert.deepEqual((await sink.readQuery("SELECT 2 AS two")).rows, [{ two: 2 }]);
    assert.deepEqual(parsed, ["SELECT 2 AS two"], "statements parsed for the second query");
    // The check still runs on every query.
    await assert.rejects(sink.readQuery("SELECT * FROM checkpoint()"), (error: unknown) => error instanceof SluiceError && error.code === "QUERY_NOT_READ_ONLY");
    assert.deepEqual((await sink.readQuery("SELECT 'it''s' AS text")).rows, [{ text: "it's" }]);
  } finally {
    DuckDBConnection.prototype.extractStatements = extract;
    await sink.close();
  }
});

test("a DATE infinity is answered as infinity, not as DuckDB's last day (sluice query showed PostgreSQL's date 'infinity' as 5881580-07-11)", async () => {
  const sink = new DuckDbSink(testSinkConfig("duckdb", { name: "dates", path: join(dir, "dates.duckdb") }), { logger: testLogger() });
  await sink.open(AbortSignal.timeout(30_000));
  try {
    const { rows } = await sink.readQuery("SELECT 'infinity'::DATE AS up, '-infinity'::DATE AS down, ['infinity'::DATE, DATE '2024-01-02'] AS list, DATE '5881580-07-10' AS last");
    assert.deepEqual(rows, [{ up: "infinity", down: "-infinity", list: ["infinity", "2024-01-02"], last: "5881580-07-10" }]);
  } finally {
    await sink.close();
  }
});
