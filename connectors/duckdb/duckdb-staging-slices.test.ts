/**
 * The DuckDB sink's writes and the sink thread's event loop: converting and appending rows is
 * synchronous JavaScript on the sink's thread, done in slices with a turn of the event loop
 * between them, and each DuckDB call is a turn too (which a loaded machine makes long), so a
 * write makes as few as it can; the query endpoint's reads wait for each stretch.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DuckDBAppender, DuckDBConnection } from "@duckdb/node-api";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { DuckDbSink } from "./duckdb-sink.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-duckdb-slices-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("a big batch's rows are appended in slices: the sink's thread turns its event loop while staging them", async () => {
  const sink = new DuckDbSink(testSinkConfig("duckdb", { name: "slices", path: join(dir, "slices.duckdb") }), { logger: testLogger() });
  await sink.open(AbortSignal.timeout(30_000));
  const endRow = DuckDBAppender.prototype.endRow;
  let appended = 0;
  let sinceTurn = 0;
  let mostWithoutTurn = 0;
  DuckDBAppender.prototype.endRow = function (this: DuckDBAppender) {
    appended++;
    mostWithoutTurn = Math.max(mostWithoutTurn, ++sinceTurn);
    endRow.call(this);
  };
  let writing = true;
  const turns = (async () => {
    while (writing) {
      await new Promise((resolve) => setImmediate(resolve));
      sinceTurn = 0;
    }
  })();
  try {
    const events = new Events(tableSchema(randomTableName("slices"), [["id", "bigint"], ["v", "text"]]));
    const total = 3_000;
    const changes = Array.from({ length: total }, (_, i) => events.insert(BigInt(i + 1), { id: BigInt(i), v: `row ${i}` }));
    const result = await sink.write(changes, AbortSignal.timeout(60_000));
    assert.deepEqual(result.failures, []);
    assert.equal(appended, total, "every row staged");
    assert.ok(mostWithoutTurn <= 64, `${mostWithoutTurn} of ${total} rows appended without a turn of the event loop`);
    const [count] = await sink.query(`SELECT count(*)::INTEGER AS n FROM main."public_${events.schema.table}"`);
    assert.deepEqual(count, { n: total });
  } finally {
    writing = false;
    await turns;
    DuckDBAppender.prototype.endRow = endRow;
    await sink.close();
  }
});

test("a write makes one DuckDB call per table for what follows the staging (upserts and the staging table's drop), not one per statement", async () => {
  const sink = new DuckDbSink(testSinkConfig("duckdb", { name: "calls", path: join(dir, "calls.duckdb") }), { logger: testLogger() });
  await sink.open(AbortSignal.timeout(30_000));
  const rows = new Events(tableSchema(randomTableName("calls_rows"), [["id", "bigint"], ["v", "text"]]));
  const markers = new Events(tableSchema(randomTableName("calls_markers"), [["id", "bigint"]]));
  const batch = (first: number) => [
    ...Array.from({ length: 10 }, (_, i) => rows.insert(BigInt(first + i), { id: BigInt(first + i), v: `row ${i}` })),
    markers.insert(BigInt(first + 10), { id: BigInt(first) }),
  ];
  const offsets = (at: number) => [{ topic: rows.topic, partition: 0, offset: BigInt(at) }, { topic: markers.topic, partition: 0, offset: BigInt(at) }];
  // The first write creates the tables; the second is the steady state.
  await sink.write(batch(1), AbortSignal.timeout(30_000), offsets(1));
  const run = DuckDBConnection.prototype.run;
  const calls: string[] = [];
  DuckDBConnection.prototype.run = function (this: DuckDBConnection, ...args: Parameters<DuckDBConnection["run"]>) {
    calls.push(args[0]);
    return run.apply(this, args);
  };
  try {
    const result = await sink.write(batch(100), AbortSignal.timeout(30_000), offsets(2));
    assert.deepEqual(result, { failures: [], offsetsStored: true });
  } finally {
    DuckDBConnection.prototype.run = run;
  }
  try {
    // BEGIN; per table: create the staging table, then upsert and drop it; the offsets; COMMIT.
    assert.equal(calls.length, 2 + 2 * 2 + 1, `DuckDB calls of one write of two tables:\n${calls.map((sql) => sql.slice(0, 80)).join("\n")}`);
    const [count] = await sink.query(`SELECT count(*)::INTEGER AS n FROM main."public_${rows.schema.table}"`);
    assert.deepEqual(count, { n: 20 });
  } finally {
    await sink.close();
  }
});
