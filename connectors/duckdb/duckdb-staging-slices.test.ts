/**
 * The DuckDB sink stages a batch's rows in slices, with a turn of the event loop between them:
 * converting and appending rows is synchronous JavaScript on the sink's thread, and the query
 * endpoint's reads (each step a turn of that thread's event loop) wait for the whole stretch.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DuckDBAppender } from "@duckdb/node-api";
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
    assert.ok(mostWithoutTurn < total / 4, `${mostWithoutTurn} of ${total} rows appended without a turn of the event loop`);
    const [count] = await sink.query(`SELECT count(*)::INTEGER AS n FROM main."public_${events.schema.table}"`);
    assert.deepEqual(count, { n: total });
  } finally {
    writing = false;
    await turns;
    DuckDBAppender.prototype.endRow = endRow;
    await sink.close();
  }
});
