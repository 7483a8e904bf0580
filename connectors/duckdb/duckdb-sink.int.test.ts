/** The DuckDB sink against a real DuckDB file: the shared conformance suite, then DuckDB specifics. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { Writable } from "node:stream";
import { after, describe, test } from "node:test";
import { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import type { TableSchema } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { sinkConformanceSuite, TARGET_TEMPLATE } from "../sinks/conformance.ts";
import type { VisibleRow } from "../sinks/conformance.ts";
import { renderTarget } from "../sinks/naming.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { duckdbFloor } from "../../config/memory.ts";
import { createLogger } from "../../runtime/logger.ts";
import { DuckDbSink } from "./duckdb-sink.ts";
import { ident } from "./sql.ts";
import { mountExt4 } from "../../test/mounts.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-duckdb-"));
const path = join(dir, "warehouse.duckdb");
after(() => rmSync(dir, { recursive: true, force: true }));

const createSink = (name: string, onError: "halt" | "dead-letter" = "halt") =>
  new DuckDbSink(testSinkConfig("duckdb", { name, path, target: TARGET_TEMPLATE, on_error: onError }), { logger: testLogger() });

async function query(sql: string): Promise<Record<string, unknown>[]> {
  const instance = await DuckDBInstance.fromCache(path);
  const connection = await instance.connect();
  try {
    return (await connection.runAndReadAll(sql)).getRowObjectsJson();
  } finally {
    connection.closeSync();
  }
}

async function visibleRows(target: string, _schema: TableSchema): Promise<VisibleRow[]> {
  const rows = await query(`SELECT * FROM main.${ident(target)}`);
  return rows.map((row) => Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v === null ? null : typeof v === "object" ? JSON.stringify(v) : String(v)])));
}

sinkConformanceSuite({
  kind: "duckdb",
  createSink,
  haltsAtFirstFailure: true,
  visibleRows,
  cleanup: async () => undefined,
});

describe("DuckDB sink specifics", () => {
  const signal = () => AbortSignal.timeout(30_000);

  test("at the memory budget's floor for 16 MiB records (one thread), a record that wide commits, and DuckDB's allocator hands memory back at an eighth of the limit", async () => {
    const limit = duckdbFloor(16 * 2 ** 20);
    const own = join(dir, "floor-memory.duckdb");
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("floor")}`, path: own, target: TARGET_TEMPLATE, memory_limit: limit, threads: 1 }), { logger: testLogger() });
    await sink.open(signal());
    try {
      const [settings] = await sink.query("SELECT current_setting('allocator_flush_threshold') AS flush, current_setting('allocator_bulk_deallocation_flush_threshold') AS bulk");
      assert.deepEqual(settings, { flush: `${limit / 2 ** 20 / 8}.0 MiB`, bulk: `${limit / 2 ** 20 / 8}.0 MiB` });
      const schema = tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]);
      const events = new Events(schema);
      let offset = 0n;
      const write = (rows: number, width: number) => {
        const batch = Array.from({ length: rows }, (_, i) => events.insert(BigInt(++offset), { id: Number(offset), v: `${i}${"x".repeat(width)}` }));
        return sink.write(batch, signal(), [{ topic: events.topic, partition: 0, offset }]);
      };
      for (let i = 0; i < 3; i++) {
        await write(5_000, 200);
        await write(1, 16 * 2 ** 20 - 64);
      }
      const [row] = await sink.query(`SELECT count(*)::INT AS n, max(length(v))::INT AS widest FROM main.${ident(renderTarget(TARGET_TEMPLATE, schema))}`);
      assert.deepEqual(row, { n: 15_003, widest: 16 * 2 ** 20 - 63 });
    } finally {
      await sink.close();
    }
  });

  test("a table dropped by hand while the sink was stopped halts that table (SINK_CATALOG_MISMATCH, saying to rebuild it), not a write failure that stops the daemon; the sink's other tables go on, and the rebuild fills it again", async () => {
    // Found on a live deployment: `sluice run` exited with "DuckDB write failed: Catalog Error: Table with name ... does not exist", at every start.
    const own = join(dir, "dropped-by-hand.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("dropped")}`, path: own, target: TARGET_TEMPLATE });
    const gone = new Events(tableSchema(randomTableName("gone"), [["id", "integer"], ["v", "text"]]));
    const kept = new Events(tableSchema(randomTableName("kept"), [["id", "integer"], ["v", "text"]]));
    const first = new DuckDbSink(config, { logger: testLogger() });
    await first.open(signal());
    try {
      assert.deepEqual((await first.write([gone.insert(1n, { id: 1, v: "a" }), kept.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    } finally {
      await first.close();
    }
    const instance = await DuckDBInstance.fromCache(own);
    const connection = await instance.connect();
    const [physical] = (await connection.runAndReadAll(`SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_name LIKE '${renderTarget(TARGET_TEMPLATE, gone.schema)}__v%'`)).getRowObjectsJson();
    await connection.run(`DROP TABLE ${ident(String(physical!["s"]))}.${ident(String(physical!["t"]))}`);
    connection.closeSync();

    const sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    try {
      await assert.rejects(sink.write([gone.insert(3n, { id: 3, v: "c" }), kept.insert(4n, { id: 4, v: "d" })], signal()), (error: SluiceError) => {
        assert.equal(error.code, "SINK_CATALOG_MISMATCH", error.message);
        assert.match(error.message, new RegExp(`dropped by hand.*--rebuild --table ${gone.schema.schema}\\.${gone.schema.table} --execute`), "names the table as replay --table takes it");
        return true;
      });
      assert.deepEqual((await sink.write([kept.insert(4n, { id: 4, v: "d" })], signal())).failures, [], "the sink's other tables go on");
      // What the halt says to do: rebuild it from its topic (no live rows to compare with), then its writes go on.
      await sink.prepareRebuild(gone.schema, signal());
      assert.deepEqual((await sink.writeRebuild([gone.insert(1n, { id: 1, v: "a" }), gone.insert(3n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual(await sink.rebuildRowCounts(gone.schema, signal()), { live: null, shadow: 2 });
      await sink.swap(gone.schema, signal());
      assert.deepEqual((await sink.write([gone.insert(5n, { id: 5, v: "e" })], signal())).failures, []);
      assert.deepEqual((await sink.readQuery(`SELECT id FROM main.${ident(renderTarget(TARGET_TEMPLATE, gone.schema))} ORDER BY id`)).rows, [{ id: 1 }, { id: 3 }, { id: 5 }]);
    } finally {
      await sink.close();
    }
  });

  test("a column dropped by hand from a sink table while the daemon was stopped halts that table (SINK_CATALOG_MISMATCH naming the column and the rebuild), not a write failure that stops the daemon; the sink's other tables go on", async () => {
    // Found on a live deployment: ALTER TABLE _sluice.<target>__v1 DROP COLUMN n, then `sluice run` exited at the table's
    // next update with "DuckDB write failed: Binder Error: Referenced update column n not found in table!".
    const own = join(dir, "column-dropped-by-hand.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("column")}`, path: own, target: TARGET_TEMPLATE });
    const altered = new Events(tableSchema(randomTableName("altered"), [["id", "integer"], ["v", "text"], ["n", "integer"]]));
    const kept = new Events(tableSchema(randomTableName("kept"), [["id", "integer"], ["v", "text"]]));
    const first = new DuckDbSink(config, { logger: testLogger() });
    await first.open(signal());
    try {
      assert.deepEqual((await first.write([altered.insert(1n, { id: 1, v: "a", n: 1 }), altered.insert(2n, { id: 6, v: "f", n: 6 }), kept.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    } finally {
      await first.close();
    }
    const instance = await DuckDBInstance.fromCache(own);
    const connection = await instance.connect();
    const [physical] = (await connection.runAndReadAll(`SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_name LIKE '${renderTarget(TARGET_TEMPLATE, altered.schema)}__v%'`)).getRowObjectsJson();
    const physicalName = `${ident(String(physical!["s"]))}.${ident(String(physical!["t"]))}`;
    await connection.run(`ALTER TABLE ${physicalName} DROP COLUMN n`);
    await connection.run(`DELETE FROM ${physicalName} WHERE id = 6`);
    connection.closeSync();

    const sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    try {
      for (const change of [altered.update(3n, { id: 1, v: "a2", n: 2 }, { id: 1, v: "a", n: 1 }), altered.insert(4n, { id: 5, v: "e", n: 5 })]) {
        await assert.rejects(sink.write([change], signal()), (error: SluiceError) => {
          assert.equal(error.code, "SINK_CATALOG_MISMATCH", error.message);
          assert.match(error.message, new RegExp(`has no column n .*by hand.*--rebuild --table ${altered.schema.schema}\\.${altered.schema.table} --execute`));
          return true;
        });
      }
      assert.deepEqual((await sink.write([kept.insert(5n, { id: 4, v: "d" })], signal())).failures, [], "the sink's other tables go on");
      // What the halt says to do: rebuild it. The damaged live table is not compared with (rows were deleted by hand too).
      await sink.prepareRebuild(altered.schema, signal());
      const history = [altered.insert(1n, { id: 1, v: "a", n: 1 }), altered.insert(2n, { id: 6, v: "f", n: 6 }), altered.update(3n, { id: 1, v: "a2", n: 2 }, { id: 1, v: "a", n: 1 })];
      assert.deepEqual((await sink.writeRebuild(history, signal())).failures, []);
      assert.deepEqual(await sink.rebuildRowCounts(altered.schema, signal()), { live: null, shadow: 2 });
      await sink.swap(altered.schema, signal());
      assert.deepEqual((await sink.write([altered.insert(4n, { id: 5, v: "e", n: 5 })], signal())).failures, []);
      const rows = (await sink.readQuery(`SELECT id, v, n FROM main.${ident(renderTarget(TARGET_TEMPLATE, altered.schema))} ORDER BY id`)).rows;
      assert.deepEqual(rows, [{ id: 1, v: "a2", n: 2 }, { id: 5, v: "e", n: 5 }, { id: 6, v: "f", n: 6 }]);
    } finally {
      await sink.close();
    }
  });

  test("an upsert that fails naming a column every generation of the table still has raises that error (a fault of the statement), not a halt blaming a hand edit", async () => {
    const own = join(dir, "column-error-not-by-hand.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("statement")}`, path: own, target: TARGET_TEMPLATE });
    const events = new Events(tableSchema(randomTableName("statement"), [["id", "integer"], ["v", "text"]]));
    const sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    const run = DuckDBConnection.prototype.run;
    const fault = 'Binder Error: Values list "excluded" does not have a column named "_sluice_version"';
    try {
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      // The sink's upsert as a bug of its own would make it: nothing was edited by hand.
      DuckDBConnection.prototype.run = function (this: DuckDBConnection, ...args: Parameters<typeof run>) {
        if (String(args[0]).includes("ON CONFLICT")) return Promise.reject(new Error(fault));
        return run.apply(this, args);
      };
      await assert.rejects(sink.write([events.update(2n, { id: 1, v: "b" }, { id: 1, v: "a" })], signal()), (error: Error) => {
        assert.notEqual((error as SluiceError).code, "SINK_CATALOG_MISMATCH", error.message);
        assert.doesNotMatch(error.message, /by hand/);
        assert.match(error.message, /Values list "excluded"/);
        return true;
      });
    } finally {
      DuckDBConnection.prototype.run = run;
      await sink.close();
    }
  });

  test("a view dropped by hand while the sink was stopped is made again at open (with a warning), not left gone while the sink reports ready; a table made in its place is left alone", async () => {
    // Found on a live deployment: DROP VIEW main.<target>, then `sluice run`: ready, writing, and every query of the table
    // answered "Table with name ... does not exist" until its next schema change.
    const own = join(dir, "view-dropped-by-hand.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("view")}`, path: own, target: TARGET_TEMPLATE });
    const dropped = new Events(tableSchema(randomTableName("dropped"), [["id", "integer"], ["v", "text"]]));
    const replaced = new Events(tableSchema(randomTableName("replaced"), [["id", "integer"], ["v", "text"]]));
    const first = new DuckDbSink(config, { logger: testLogger() });
    await first.open(signal());
    try {
      assert.deepEqual((await first.write([dropped.insert(1n, { id: 1, v: "a" }), replaced.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    } finally {
      await first.close();
    }
    const instance = await DuckDBInstance.fromCache(own);
    const connection = await instance.connect();
    await connection.run(`DROP VIEW main.${ident(renderTarget(TARGET_TEMPLATE, dropped.schema))}`);
    await connection.run(`DROP VIEW main.${ident(renderTarget(TARGET_TEMPLATE, replaced.schema))}`);
    await connection.run(`CREATE TABLE main.${ident(renderTarget(TARGET_TEMPLATE, replaced.schema))} AS SELECT 42 AS mine`);
    connection.closeSync();

    const sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    try {
      assert.deepEqual((await sink.write([dropped.insert(3n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual((await sink.readQuery(`SELECT id, v FROM main.${ident(renderTarget(TARGET_TEMPLATE, dropped.schema))} ORDER BY id`)).rows, [{ id: 1, v: "a" }, { id: 3, v: "c" }]);
      assert.deepEqual((await sink.readQuery(`SELECT mine FROM main.${ident(renderTarget(TARGET_TEMPLATE, replaced.schema))}`)).rows, [{ mine: 42 }]);
    } finally {
      await sink.close();
    }
  });

  test("a view that cannot be made again at open (its table also lost _sluice_deleted or _sluice_version by hand) is warned about and the sink opens; that table halts at its next write, the others go on, and the rebuild makes the view", async () => {
    // Before: CREATE VIEW ... EXCLUDE (_sluice_version, _sluice_deleted) threw in open(), so the daemon exited at every start.
    const own = join(dir, "view-not-restored.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("noview")}`, path: own, target: TARGET_TEMPLATE });
    const damaged = new Events(tableSchema(randomTableName("damaged"), [["id", "integer"], ["v", "text"]]));
    const unversioned = new Events(tableSchema(randomTableName("unversioned"), [["id", "integer"], ["v", "text"]]));
    const kept = new Events(tableSchema(randomTableName("kept"), [["id", "integer"], ["v", "text"]]));
    const first = new DuckDbSink(config, { logger: testLogger() });
    await first.open(signal());
    try {
      const rows = [damaged.insert(1n, { id: 1, v: "a" }), unversioned.insert(1n, { id: 1, v: "a" }), kept.insert(2n, { id: 2, v: "b" })];
      assert.deepEqual((await first.write(rows, signal())).failures, []);
    } finally {
      await first.close();
    }
    const target = renderTarget(TARGET_TEMPLATE, damaged.schema);
    const instance = await DuckDBInstance.fromCache(own);
    const connection = await instance.connect();
    await connection.run(`DROP VIEW main.${ident(target)}`);
    await connection.run(`ALTER TABLE _sluice.${ident(`${target}__v1`)} DROP COLUMN _sluice_deleted`);
    const unversionedTarget = renderTarget(TARGET_TEMPLATE, unversioned.schema);
    await connection.run(`DROP VIEW main.${ident(unversionedTarget)}`);
    await connection.run(`ALTER TABLE _sluice.${ident(`${unversionedTarget}__v1`)} DROP COLUMN _sluice_version`);
    connection.closeSync();

    const lines: string[] = [];
    const logger = createLogger("warn", new Writable({
        write: (chunk, _encoding, done) => {
          lines.push(String(chunk));
          done();
        },
      }) as never);
    const sink = new DuckDbSink(config, { logger });
    await sink.open(signal());
    try {
      const warnings = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line["code"] === "SINK_VIEW_NOT_RESTORED");
      assert.equal(warnings.length, 2, lines.join(""));
      assert.match(String(warnings.find((warning) => warning["target"] === target)?.["msg"]), new RegExp(`view main\.${target} is missing .*over _sluice\.${target}__v1: .*_sluice_deleted.*--rebuild --table ${damaged.schema.schema}\.${damaged.schema.table} --execute`));
      assert.deepEqual((await sink.write([kept.insert(3n, { id: 3, v: "c" })], signal())).failures, [], "the sink's other tables go on");
      await assert.rejects(sink.write([damaged.update(4n, { id: 1, v: "a2" }, { id: 1, v: "a" })], signal()), (error: SluiceError) => {
        assert.equal(error.code, "SINK_CATALOG_MISMATCH", error.message);
        assert.match(error.message, new RegExp(`_sluice\.${target}__v1 .*has no column _sluice_deleted any more`));
        return true;
      });
      await assert.rejects(sink.write([unversioned.update(5n, { id: 1, v: "a2" }, { id: 1, v: "a" })], signal()), (error: SluiceError) => {
        assert.equal(error.code, "SINK_CATALOG_MISMATCH", error.message);
        assert.match(error.message, new RegExp(`_sluice\\.${unversionedTarget}__v1 .*has no column _sluice_version any more`));
        return true;
      });
      await sink.prepareRebuild(damaged.schema, signal());
      assert.deepEqual((await sink.writeRebuild([damaged.insert(1n, { id: 1, v: "a" }), damaged.update(4n, { id: 1, v: "a2" }, { id: 1, v: "a" })], signal())).failures, []);
      assert.deepEqual(await sink.rebuildRowCounts(damaged.schema, signal()), { live: null, shadow: 1 });
      await sink.swap(damaged.schema, signal());
      assert.deepEqual((await sink.readQuery(`SELECT id, v FROM main.${ident(target)}`)).rows, [{ id: 1, v: "a2" }]);
    } finally {
      await sink.close();
    }
  });

  test("a column dropped by hand during a rebuild halts naming the generation that lost it (live or shadow), and a dropped column whose name has a space is recognised", async () => {
    const own = join(dir, "column-dropped-in-rebuild.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("gen")}`, path: own, target: TARGET_TEMPLATE });
    const liveLost = new Events(tableSchema(randomTableName("livelost"), [["id", "integer"], ["n", "integer"]]));
    const shadowLost = new Events(tableSchema(randomTableName("shadowlost"), [["id", "integer"], ["n", "integer"]]));
    const spaced = new Events(tableSchema(randomTableName("spaced"), [["id", "integer"], ["my col", "integer"]]));
    const first = new DuckDbSink(config, { logger: testLogger() });
    await first.open(signal());
    try {
      const rows = [liveLost.insert(1n, { id: 1, n: 1 }), shadowLost.insert(2n, { id: 1, n: 1 }), spaced.insert(3n, { id: 1, "my col": 1 })];
      assert.deepEqual((await first.write(rows, signal())).failures, []);
      await first.prepareRebuild(liveLost.schema, signal());
      await first.prepareRebuild(shadowLost.schema, signal());
    } finally {
      await first.close();
    }
    const instance = await DuckDBInstance.fromCache(own);
    const connection = await instance.connect();
    const physicalOf = async (events: Events, role: string) => {
      const reader = await connection.runAndReadAll(`SELECT physical FROM _sluice.tables WHERE target = '${renderTarget(TARGET_TEMPLATE, events.schema)}' AND role = '${role}'`);
      return String(reader.getRowObjectsJson()[0]!["physical"]);
    };
    const lostFromLive = await physicalOf(liveLost, "live");
    const lostFromShadow = await physicalOf(shadowLost, "shadow");
    const lostSpaced = await physicalOf(spaced, "live");
    await connection.run(`ALTER TABLE _sluice.${ident(lostFromLive)} DROP COLUMN n`);
    await connection.run(`ALTER TABLE _sluice.${ident(lostFromShadow)} DROP COLUMN n`);
    await connection.run(`ALTER TABLE _sluice.${ident(lostSpaced)} DROP COLUMN "my col"`);
    connection.closeSync();

    const sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    try {
      const cases = [
        { change: liveLost.update(4n, { id: 1, n: 2 }, { id: 1, n: 1 }), physical: lostFromLive, role: "live", column: "n" },
        { change: shadowLost.update(5n, { id: 1, n: 2 }, { id: 1, n: 1 }), physical: lostFromShadow, role: "shadow", column: "n" },
        { change: spaced.update(6n, { id: 1, "my col": 2 }, { id: 1, "my col": 1 }), physical: lostSpaced, role: "live", column: "my col" },
      ];
      for (const { change, physical, role, column } of cases) {
        await assert.rejects(sink.write([change], signal()), (error: SluiceError) => {
          assert.equal(error.code, "SINK_CATALOG_MISMATCH", error.message);
          assert.ok(error.message.includes(`_sluice.${physical} (${role} generation`), error.message);
          assert.ok(error.message.includes(`has no column ${column} any more`), error.message);
          return true;
        });
      }
    } finally {
      await sink.close();
    }
  });

  test("a table halted as no longer listed in the catalog writes again once its stray table is dropped while the sink runs, without a restart", async () => {
    const own = join(dir, "catalog-row-deleted-stray-dropped.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("stray")}`, path: own, target: TARGET_TEMPLATE });
    const lost = new Events(tableSchema(randomTableName("lost"), [["id", "integer"], ["v", "text"]]));
    const first = new DuckDbSink(config, { logger: testLogger() });
    await first.open(signal());
    try {
      assert.deepEqual((await first.write([lost.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    } finally {
      await first.close();
    }
    const target = renderTarget(TARGET_TEMPLATE, lost.schema);
    const byHand = async (sql: string) => {
      const connection = await (await DuckDBInstance.fromCache(own)).connect();
      try {
        await connection.run(sql);
      } finally {
        connection.closeSync();
      }
    };
    await byHand(`DELETE FROM _sluice.tables WHERE target = '${target}'`);

    const sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    try {
      await assert.rejects(sink.write([lost.insert(2n, { id: 2, v: "b" })], signal()), (error: SluiceError) => error.code === "SINK_CATALOG_MISMATCH");
      await byHand(`DROP TABLE _sluice.${ident(`${target}__v1`)}`);
      assert.deepEqual((await sink.write([lost.insert(3n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual((await sink.readQuery(`SELECT id FROM main.${ident(target)} ORDER BY id`)).rows, [{ id: 3 }]);
    } finally {
      await sink.close();
    }
  });

  test("a table whose catalog row was deleted by hand halts (SINK_CATALOG_MISMATCH naming the rebuild), not a write failure that stops the daemon; the rebuild makes a new generation beside it", async () => {
    // Found on a live deployment: DELETE FROM _sluice.tables, then `sluice run` exited at the table's next change with
    // "DuckDB write failed: Catalog Error: Table with name "..__v1" already exists!", at every start.
    const own = join(dir, "catalog-row-deleted.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("catalog")}`, path: own, target: TARGET_TEMPLATE });
    const lost = new Events(tableSchema(randomTableName("lost"), [["id", "integer"], ["v", "text"]]));
    const kept = new Events(tableSchema(randomTableName("kept"), [["id", "integer"], ["v", "text"]]));
    const first = new DuckDbSink(config, { logger: testLogger() });
    await first.open(signal());
    try {
      assert.deepEqual((await first.write([lost.insert(1n, { id: 1, v: "a" }), kept.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    } finally {
      await first.close();
    }
    const target = renderTarget(TARGET_TEMPLATE, lost.schema);
    const instance = await DuckDBInstance.fromCache(own);
    const connection = await instance.connect();
    await connection.run(`DELETE FROM _sluice.tables WHERE target = '${target}'`);
    connection.closeSync();

    const sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    try {
      await assert.rejects(sink.write([lost.insert(3n, { id: 3, v: "c" })], signal()), (error: SluiceError) => {
        assert.equal(error.code, "SINK_CATALOG_MISMATCH", error.message);
        assert.match(error.message, new RegExp(`_sluice\\.${target}__v1 .*no longer listed.*--rebuild --table ${lost.schema.schema}\\.${lost.schema.table} --execute`));
        return true;
      });
      assert.deepEqual((await sink.write([kept.insert(4n, { id: 4, v: "d" })], signal())).failures, [], "the sink's other tables go on");
      await sink.prepareRebuild(lost.schema, signal());
      assert.deepEqual((await sink.writeRebuild([lost.insert(1n, { id: 1, v: "a" }), lost.insert(3n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual(await sink.rebuildRowCounts(lost.schema, signal()), { live: null, shadow: 2 });
      await sink.swap(lost.schema, signal());
      assert.deepEqual((await sink.write([lost.insert(5n, { id: 5, v: "e" })], signal())).failures, []);
      assert.deepEqual((await sink.readQuery(`SELECT id FROM main.${ident(target)} ORDER BY id`)).rows, [{ id: 1 }, { id: 3 }, { id: 5 }]);
      assert.deepEqual(await sink.query(`SELECT physical FROM _sluice.tables WHERE target = '${target}'`), [{ physical: `${target}__v2` }]);
    } finally {
      await sink.close();
    }
  });

  test("a change beyond DuckDB's memory_limit halts its table (SINK_TARGET_BLOCKED) after a few fresh opens, not a write failure that stops the daemon", async () => {
    const own = join(dir, "small-memory.duckdb");
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("oom")}`, path: own, target: TARGET_TEMPLATE, memory_limit: 8 * 2 ** 20, threads: 1 }), { logger: testLogger() });
    await sink.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      // A write that runs out is applied again in halves: down to one change, which alone does not fit.
      const wide = "x".repeat(12 * 2 ** 20);
      const batch = Array.from({ length: 2 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, v: `${i}${wide}` }));
      const { failures } = await sink.write(batch, signal(), [{ topic: events.topic, partition: 0, offset: 2n }]);
      assert.deepEqual(failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]], String(failures[0]?.error));
      // The database was opened again after running out (as a restart would): the sink and its query endpoint go on, its limits kept.
      assert.deepEqual((await sink.write([events.insert(3n, { id: 3, v: "small" })], signal(), [{ topic: events.topic, partition: 0, offset: 3n }])).failures, []);
      assert.deepEqual((await sink.readQuery(`SELECT id, v FROM main.${ident(renderTarget(TARGET_TEMPLATE, events.schema))}`)).rows, [{ id: 3, v: "small" }]);
      assert.deepEqual(await sink.query("SELECT current_setting('memory_limit') AS m, current_setting('lock_configuration') AS locked"), [{ m: "8.0 MiB", locked: true }]);
    } finally {
      await sink.close();
    }
  });

  test("one change of a wide table that does not fit memory_limit even alone halts only its table after a bounded number of tries, naming memory_limit and memory; the sink's other tables go on, and with a raised limit it applies", { timeout: 120_000 }, async () => {
    const own = join(dir, "too-wide.duckdb");
    const name = `d_${randomTableName("wide")}`;
    const open = async (limit: number) => {
      const sink = new DuckDbSink(testSinkConfig("duckdb", { name, path: own, target: TARGET_TEMPLATE, memory_limit: limit, threads: 1 }), { logger: testLogger() });
      await sink.open(signal());
      return sink;
    };
    // 150 columns: DuckDB holds a 256 KiB block per column a commit writes, ~37 MiB, beyond 24 MiB.
    const wide = new Events(tableSchema(randomTableName(), [["id", "integer"], ...Array.from({ length: 150 }, (_, i) => [`c${i}`, "text"] as [string, string])]));
    const narrow = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const row = { id: 1, ...Object.fromEntries(Array.from({ length: 150 }, (_, i) => [`c${i}`, `v${i}`])) };
    const count = async (sink: DuckDbSink, events: Events) => (await sink.query(`SELECT count(*)::INT AS n FROM main.${ident(renderTarget(TARGET_TEMPLATE, events.schema))}`))[0];
    let sink = await open(24 * 2 ** 20);
    try {
      // Before: SINK_OUT_OF_MEMORY thrown at every try, which the runner retried for ever, stalling the narrow table too.
      const { failures } = await sink.write([narrow.insert(1n, { id: 1, v: "a" }), wide.insert(2n, row), wide.insert(3n, { ...row, id: 2 }), narrow.insert(4n, { id: 2, v: "b" })], signal());
      assert.deepEqual(failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[1, false, "SINK_TARGET_BLOCKED"]], String(failures[0]?.error));
      const message = failures[0]!.error.message;
      assert.match(message, new RegExp(`${wide.schema.table}.*memory_limit \\(24 MiB\\)`));
      assert.match(message, /`memory`/);
      assert.match(message, /and restart: memory_limit is read at start/);
      assert.deepEqual(await count(sink, narrow), { n: 2 });
    } finally {
      await sink.close();
    }
    // A restart with the limit raised: the halted change is written again and applies.
    sink = await open(96 * 2 ** 20);
    try {
      assert.deepEqual((await sink.write([wide.insert(2n, row), wide.insert(3n, { ...row, id: 2 })], signal())).failures, []);
      assert.deepEqual(await count(sink, wide), { n: 2 });
    } finally {
      await sink.close();
    }
  });

  test("a commit that runs out of memory_limit ('Failed to commit: failed to pin block', a wide table's blocks at checkpoint) is the retriable SINK_OUT_OF_MEMORY too, not a write failure that stops the sink", async () => {
    const own = join(dir, "pin-block.duckdb");
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("pin")}`, path: own, target: TARGET_TEMPLATE, memory_limit: 24 * 2 ** 20, threads: 1 }), { logger: testLogger() });
    await sink.open(signal());
    try {
      // 40 columns: DuckDB keeps a 256 KiB block per column of the rows a commit checkpoints; some values of 640 kB.
      const types = ["bytea", "text", "integer[]"];
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ...Array.from({ length: 40 }, (_, i) => [`c${i}`, types[i % 3]!] as [string, string])]));
      const value = (column: number, row: number) => (column % 3 === 0 ? new Uint8Array(row % 10 === 0 ? 640_000 : 100) : column % 3 === 1 ? "x".repeat(row % 10 === 1 ? 120_000 : 10) : [1, 2, 3]);
      const batch = Array.from({ length: 200 }, (_, row) => events.insert(BigInt(row + 1), { id: row + 1, [`c${row % 40}`]: value(row % 40, row) }));
      const error = await sink.write(batch, signal()).then(() => null, (e: unknown) => e);
      if (error !== null) {
        assert.ok(error instanceof SluiceError, String(error));
        assert.equal(error.code, "SINK_OUT_OF_MEMORY", error.message);
        assert.equal(error.retriable, true);
      }
    } finally {
      await sink.close();
    }
  });

  test("a commit that finds no room for its WAL (disk full, a file size limit: here this process's RLIMIT_FSIZE) is retriable and applies once there is room, not a write failure that stops the daemon", async () => {
    const own = join(dir, "no-room.duckdb");
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("room")}`, path: own, target: TARGET_TEMPLATE }), { logger: testLogger() });
    await sink.open(signal());
    const setFileSizeLimit = (limit: string) => execFileSync("prlimit", ["--pid", String(process.pid), `--fsize=${limit}:`]);
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      // The WAL may grow to the database file's size: less than this batch (node ignores SIGXFSZ, so writes fail with EFBIG).
      const batch = Array.from({ length: 40 }, (_, i) => events.insert(BigInt(i + 2), { id: i + 2, v: randomBytes(64 * 1024).toString("hex") }));
      setFileSizeLimit(String(Math.max(statSync(own).size, 1 << 20)));
      let error: unknown;
      try {
        error = await sink.write(batch, signal()).then(() => null, (e: unknown) => e);
      } finally {
        setFileSizeLimit("unlimited");
      }
      assert.ok(error instanceof SluiceError, `expected the commit to fail for the file size limit, got ${String(error)}`);
      assert.equal(error.retriable, true, error.message);
      assert.match(error.message, /File too large/);
      assert.ok(error.message.includes(own), "names the file");
      assert.deepEqual((await sink.write(batch, signal())).failures, []);
      const instance = await DuckDBInstance.fromCache(own);
      const connection = await instance.connect();
      const rows = (await connection.runAndReadAll(`SELECT count(*) AS n FROM ${ident(renderTarget(TARGET_TEMPLATE, events.schema))}`)).getRowObjectsJson();
      connection.closeSync();
      assert.equal(Number(rows[0]!["n"]), 41);
    } finally {
      await sink.close();
    }
  });

  test("the file system under the DuckDB file turned read-only (ext4 after a disk error): the write fails naming the file, the cause and what to do", async (t) => {
    const failingExt4 = mountExt4({ remountReadOnlyOnError: true });
    if (typeof failingExt4 === "string") return t.skip(failingExt4);
    const { mount, trigger } = failingExt4;
    const own = join(mount, "read-only.duckdb");
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("rofs")}`, path: own, target: TARGET_TEMPLATE }), { logger: testLogger() });
    try {
      await sink.open(signal());
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      writeFileSync(trigger, "1");
      const error = await sink.write([events.insert(2n, { id: 2, v: "b" })], signal()).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof SluiceError, `expected the write to fail, got ${String(error)}`);
      assert.equal(error.code, "SINK_READ_ONLY", error.message);
      assert.ok(error.message.startsWith(`DuckDB cannot write ${own}: its file system turned read-only`), error.message);
      assert.match(error.message, /repair it and mount it writable again, then start Sluice again/);
    } finally {
      await sink.close().catch(() => undefined);
      failingExt4.unmount();
    }
  });

  test("a sink opened on a DuckDB file whose file system turned read-only (a restart before the repair): the open fails as SINK_READ_ONLY naming the file, retried, and opens once the file system is writable again", async (t) => {
    const failingExt4 = mountExt4({ remountReadOnlyOnError: true });
    if (typeof failingExt4 === "string") return t.skip(failingExt4);
    const { mount, trigger } = failingExt4;
    const own = join(mount, "read-only-open.duckdb");
    const config = testSinkConfig("duckdb", { name: `d_${randomTableName("roopen")}`, path: own, target: TARGET_TEMPLATE });
    const sink = new DuckDbSink(config, { logger: testLogger() });
    const restarted = new DuckDbSink(config, { logger: testLogger() });
    try {
      await sink.open(signal());
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      writeFileSync(trigger, "1");
      await assert.rejects(sink.write([events.insert(2n, { id: 2, v: "b" })], signal()), (e: unknown) => e instanceof SluiceError && e.code === "SINK_READ_ONLY");
      await sink.close().catch(() => undefined);
      const error = await restarted.open(signal()).then(() => null, (e: unknown) => e);
      assert.ok(error instanceof SluiceError, `expected the open to fail, got ${String(error)}`);
      assert.equal(error.code, "SINK_READ_ONLY", error.message);
      assert.equal(error.retriable, true, "waited out: nothing stays open meanwhile");
      assert.ok(error.message.startsWith(`DuckDB cannot open ${own}: its file system is read-only`), error.message);
      assert.match(error.message, /repair it and mount it writable again: the sink retries the open meanwhile/);
      // The repair: unmounted (nothing of the sink holds the file) and mounted writable again.
      execFileSync("umount", [mount]);
      execFileSync("mount", ["-o", "loop", join(dirname(mount), "fs.img"), mount], { stdio: "ignore" });
      await restarted.open(signal());
      assert.deepEqual((await restarted.write([events.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    } finally {
      await restarted.close().catch(() => undefined);
      await sink.close().catch(() => undefined);
      failingExt4.unmount();
    }
  });

  test("an empty file at the path (left by a first open that found the disk full) is created anew, not refused for ever as no DuckDB database; a non-empty foreign file is still refused", async () => {
    const own = join(dir, "left-empty.duckdb");
    writeFileSync(own, "");
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("empty")}`, path: own, target: TARGET_TEMPLATE }), { logger: testLogger() });
    await sink.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    } finally {
      await sink.close();
    }
    const foreign = join(dir, "foreign.duckdb");
    writeFileSync(foreign, "not a database");
    const other = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("foreign")}`, path: foreign, target: TARGET_TEMPLATE }), { logger: testLogger() });
    await assert.rejects(other.open(signal()), /not a valid DuckDB database file/);
    assert.equal(statSync(foreign).size, "not a database".length, "left as it was");
  });

  test("a file holding only the start of DuckDB's header (left by a first open with a few KB free) is created anew, not refused for ever; a short file of another program is still refused", async () => {
    const whole = join(dir, "header-source.duckdb");
    const instance = await DuckDBInstance.create(whole);
    const connection = await instance.connect();
    await connection.run("CHECKPOINT");
    connection.closeSync();
    instance.closeSync();
    const own = join(dir, "header-only.duckdb");
    writeFileSync(own, readFileSync(whole).subarray(0, 4096));
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("header")}`, path: own, target: TARGET_TEMPLATE }), { logger: testLogger() });
    await sink.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    } finally {
      await sink.close();
    }
    const foreign = join(dir, "foreign-page.duckdb");
    writeFileSync(foreign, Buffer.alloc(4096, "x"));
    const other = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("foreignpage")}`, path: foreign, target: TARGET_TEMPLATE }), { logger: testLogger() });
    await assert.rejects(other.open(signal()), /not a valid DuckDB database file|Could not read enough bytes/);
    assert.equal(statSync(foreign).size, 4096, "left as it was");
  });

  test("the query endpoint's connection is kept between queries: each sees the writes committed before it, and it answers after a refused, a failed and a timed-out query", async () => {
    const own = join(dir, "kept-reader.duckdb");
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("reader")}`, path: own, target: TARGET_TEMPLATE, query: { max_rows: 1_000_000, max_bytes: 16 * 2 ** 20, timeout: 300 } }), {
      logger: testLogger(),
    });
    await sink.open(signal());
    try {
      const schema = tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]);
      const target = renderTarget(TARGET_TEMPLATE, schema);
      const events = new Events(schema);
      const count = async () => (await sink.readQuery(`SELECT count(*)::INTEGER AS n FROM main.${ident(target)}`)).rows[0]!["n"];
      await sink.write([events.insert(1n, { id: 1, v: "a" })], signal());
      assert.equal(await count(), 1);
      // The last query's transaction is ended before the next query, not left open: it sees this write.
      await sink.write([events.insert(2n, { id: 2, v: "b" })], signal());
      assert.equal(await count(), 2);
      await assert.rejects(sink.readQuery(`DELETE FROM main.${ident(target)}`), (e: unknown) => e instanceof SluiceError && e.code === "QUERY_NOT_READ_ONLY");
      await assert.rejects(sink.readQuery("SELECT * FROM no_such_table"), (e: unknown) => e instanceof SluiceError && e.code === "QUERY_FAILED");
      await assert.rejects(sink.readQuery("SELECT count(*) FROM range(10000000000) a, range(10) b"), (e: unknown) => e instanceof SluiceError && e.code === "QUERY_TIMEOUT");
      await sink.write([events.insert(3n, { id: 3, v: "c" })], signal());
      const [third, fourth] = await Promise.all([count(), sink.readQuery(`SELECT v FROM main.${ident(target)} ORDER BY id`)]);
      assert.equal(third, 3);
      assert.deepEqual(fourth.rows, [{ v: "a" }, { v: "b" }, { v: "c" }]);
    } finally {
      await sink.close();
    }
    await assert.rejects(sink.readQuery("SELECT 1"), (e: unknown) => e instanceof SluiceError && e.code === "SINK_NOT_OPEN");
  });

  test("a query while the sink cannot open its file says why (the open's error), not only that the sink is not open", async () => {
    // Found on a live deployment: with an analyst's process holding the file, `sluice query` answered only
    // "the DuckDB sink is not open" while the daemon retried the open with DuckDB's lock error.
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("unopened")}`, path: "/dev/null/warehouse.duckdb", target: TARGET_TEMPLATE }), { logger: testLogger() });
    await assert.rejects(sink.open(signal()), (e: unknown) => e instanceof SluiceError && e.code === "SINK_OPEN_FAILED");
    await assert.rejects(sink.readQuery("SELECT 1"), (e: unknown) => {
      assert.ok(e instanceof SluiceError && e.code === "SINK_NOT_OPEN", String(e));
      assert.match(e.message, /^the DuckDB sink is not open: it cannot open \/dev\/null\/warehouse\.duckdb and retries \(.*mkdir '\/dev\/null'\)/);
      return true;
    });
  });

  test("a query after an open that failed and is not retried (the sink stopped) says so, not that the sink retries", async () => {
    const sink = new DuckDbSink(testSinkConfig("duckdb", { name: `d_${randomTableName("stopped")}`, path: "/dev/null/warehouse.duckdb", target: TARGET_TEMPLATE }), { logger: testLogger() });
    const stop = new AbortController();
    await assert.rejects(sink.open(stop.signal), (e: unknown) => e instanceof SluiceError && e.code === "SINK_OPEN_FAILED");
    stop.abort();
    await assert.rejects(sink.readQuery("SELECT 1"), (e: unknown) => {
      assert.ok(e instanceof SluiceError && e.code === "SINK_NOT_OPEN", String(e));
      assert.match(e.message, /^the DuckDB sink is not open: its last open of \/dev\/null\/warehouse\.duckdb failed and is not retried \(.*mkdir '\/dev\/null'\)/);
      assert.doesNotMatch(e.message, /and retries/);
      return true;
    });
  });

  test("data, schema changes and offsets commit in one transaction: a failing write leaves none of them", async () => {
    const sink = createSink(`d_${randomTableName("atomic")}`);
    await sink.open(signal());
    try {
      const a = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      const b = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "integer"]]));
      await sink.write([a.insert(1n, { id: 1, v: "x" }), b.insert(1n, { id: 1, v: 1 })], signal(), [{ topic: a.topic, partition: 0, offset: 2n }]);
      const bytesV = new Events(tableSchema(b.schema.table, [["id", "integer"], ["v", "bytea"]]));
      const extra = new Events(tableSchema(a.schema.table, [["id", "integer"], ["v", "text"], ["added", "text"]]));
      // table a gets a row and a new column, then table b's change is unsupported: all of it rolls back
      await assert.rejects(
        () => sink.write([extra.insert(2n, { id: 2, v: "y", added: "z" }), bytesV.insert(2n, { id: 2, v: new Uint8Array([1]) })], signal(), [{ topic: a.topic, partition: 0, offset: 4n }]),
        (error: unknown) => error instanceof SluiceError && error.code === "SINK_SCHEMA_UNSUPPORTED",
      );
      const targetA = renderTarget(TARGET_TEMPLATE, a.schema);
      assert.deepEqual(await visibleRows(targetA, a.schema), [{ id: "1", v: "x" }]);
      assert.deepEqual(await sink.committedOffsets(), [{ topic: a.topic, partition: 0, offset: 2n, topicId: null }]);
      // and the sink keeps working afterwards
      await sink.write([extra.insert(3n, { id: 3, v: "w", added: "q" })], signal());
      assert.deepEqual((await visibleRows(targetA, a.schema)).map((r) => r["added"]).sort(), [null, "q"]);
    } finally {
      await sink.close();
    }
  });

  test("tables whose targets differ only in case are one name to DuckDB: the second is refused naming both (also after a reopen), the first keeps its rows; hostile quotes in names are quoted", async () => {
    const name = `d_${randomTableName("case")}`;
    const base = randomTableName("Q\"`';--");
    const upper = new Events(tableSchema(`${base}_Up`, [["id", "integer"], ["we\"ird`'--;", "text"]]));
    const lower = new Events(tableSchema(`${base}_up`, [["id", "integer"], ["v", "text"]]));
    const refused = (error: unknown) => {
      assert.ok(error instanceof SluiceError && error.code === "SINK_SCHEMA_UNSUPPORTED", String(error));
      assert.equal(error.context["table"], `src.public.${base}_up`);
      assert.ok(error.message.includes(`src.public.${base}_Up`) || error.message.includes("holds already"), error.message);
      return true;
    };
    let sink = createSink(name);
    await sink.open(signal());
    try {
      await sink.write([upper.insert(1n, { id: 1, "we\"ird`'--;": "up" })], signal());
      await assert.rejects(() => sink.write([lower.insert(2n, { id: 2, v: "down" })], signal()), refused);
      await sink.close();
      sink = createSink(name);
      await sink.open(signal());
      await assert.rejects(() => sink.write([lower.insert(3n, { id: 3, v: "down" })], signal()), refused);
      await sink.write([upper.insert(4n, { id: 4, "we\"ird`'--;": "up again" })], signal());
      assert.deepEqual(await visibleRows(renderTarget(TARGET_TEMPLATE, upper.schema), upper.schema), [
        { id: "1", "we\"ird`'--;": "up" },
        { id: "4", "we\"ird`'--;": "up again" },
      ]);
    } finally {
      await sink.close();
    }
  });

  test("columns whose names differ only in case (A and a, or _SLUICE_VERSION beside Sluice's own) are refused naming the column, not a failed write that stops the daemon", async () => {
    const sink = createSink(`d_${randomTableName("cols")}`);
    await sink.open(signal());
    const refused = (column: string) => (error: unknown) =>
      error instanceof SluiceError && error.code === "SINK_SCHEMA_UNSUPPORTED" && error.context["column"] === column && /ignore case/.test(error.message);
    try {
      const both = new Events(tableSchema(randomTableName(), [["id", "integer"], ["A", "text"], ["a", "text"]]));
      await assert.rejects(() => sink.write([both.insert(1n, { id: 1, A: "upper", a: "lower" })], signal()), refused("a"));
      const table = randomTableName();
      const plain = new Events(tableSchema(table, [["id", "integer"], ["v", "text"]]));
      await sink.write([plain.insert(2n, { id: 1, v: "x" })], signal());
      const added = new Events(tableSchema(table, [["id", "integer"], ["v", "text"], ["_SLUICE_VERSION", "text"]]));
      await assert.rejects(() => sink.write([added.insert(3n, { id: 2, v: "y", _SLUICE_VERSION: "z" })], signal()), refused("_SLUICE_VERSION"));
      assert.deepEqual(await visibleRows(renderTarget(TARGET_TEMPLATE, plain.schema), plain.schema), [{ id: "1", v: "x" }]);
    } finally {
      await sink.close();
    }
  });

  test("a target is its first table's after a restart too: another table rendered to the same name, writing first then, is refused", async () => {
    const name = `d_${randomTableName("owner")}`;
    const base = randomTableName();
    const first = new Events(tableSchema(`${base}_x`, [["id", "integer"], ["v", "text"]]));
    const second = new Events(tableSchema("x", [["id", "integer"], ["v", "text"]], ["id"], { schema: `public_${base}` }));
    assert.equal(renderTarget(TARGET_TEMPLATE, first.schema), renderTarget(TARGET_TEMPLATE, second.schema));
    let sink = createSink(name);
    await sink.open(signal());
    try {
      await sink.write([first.insert(1n, { id: 1, v: "first" })], signal());
      await sink.close();
      sink = createSink(name);
      await sink.open(signal());
      await assert.rejects(
        () => sink.write([second.insert(2n, { id: 1, v: "second" })], signal()),
        (error: unknown) => error instanceof SluiceError && error.code === "SINK_SCHEMA_UNSUPPORTED" && error.message.includes(`is the target of table src.public.${base}_x`),
      );
      assert.deepEqual(await visibleRows(renderTarget(TARGET_TEMPLATE, first.schema), first.schema), [{ id: "1", v: "first" }]);
    } finally {
      await sink.close();
    }
  });

  test("users query a view of current rows; the versioned table keeps tombstones", async () => {
    const sink = createSink(`d_${randomTableName("view")}`);
    await sink.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      await sink.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" }), events.delete(3n, { id: 2 })], signal());
      const target = renderTarget(TARGET_TEMPLATE, events.schema);
      assert.deepEqual(await query(`SELECT * FROM main.${ident(target)}`), [{ id: 1, v: "a" }]);
      const versioned = await query(`SELECT id, v, _sluice_version::VARCHAR AS version, _sluice_deleted AS deleted FROM _sluice.${ident(`${target}__v1`)} ORDER BY id`);
      assert.deepEqual(versioned, [
        { id: 1, v: "a", version: "1", deleted: false },
        { id: 2, v: null, version: "3", deleted: true },
      ]);
    } finally {
      await sink.close();
    }
  });

  test("edge values: ±infinity dates and timestamps are DuckDB's infinities, -0.0 keeps its sign inside lists", async () => {
    const sink = createSink(`d_${randomTableName("edges")}`);
    await sink.open(signal());
    try {
      const schema = tableSchema(randomTableName(), [
        ["id", "integer"],
        ["ts", "timestamp without time zone"],
        ["tstz", "timestamp with time zone"],
        ["day", "date"],
        ["floats", "double precision[]"],
        ["reals", "real[]"],
        ["bc", "date"],
      ]);
      const events = new Events(schema);
      const [tsMax, tsMin, dayMax, dayMin] = [9_223_372_036_854_775_807n, -9_223_372_036_854_775_808n, 2_147_483_647, -2_147_483_648];
      await sink.write(
        [
          // BC and far-future dates (PostgreSQL's range) fit DuckDB's DATE too.
          events.insert(1n, { id: 1, ts: tsMax, tstz: tsMax, day: dayMax, floats: [-0, 0, -1.5, null], reals: [-0, null], bc: -735_000 }),
          events.insert(2n, { id: 2, ts: tsMin, tstz: tsMin, day: dayMin, floats: [-0], reals: [-0], bc: 2_100_000_000 }),
        ],
        signal(),
      );
      const target = renderTarget(TARGET_TEMPLATE, schema);
      // Every query of the table works (an invalid timestamp made each one fail) and reads the infinities back.
      const rows = await query(
        `SELECT id, ts::VARCHAR AS ts, tstz::VARCHAR AS tstz, day::VARCHAR AS day, list_transform(floats, x -> x::VARCHAR) AS floats, list_transform(reals, x -> x::VARCHAR) AS reals, bc::VARCHAR AS bc FROM main.${ident(target)} ORDER BY id`,
      );
      assert.deepEqual(rows, [
        { id: 1, ts: "infinity", tstz: "infinity", day: "infinity", floats: ["-0.0", "0.0", "-1.5", null], reals: ["-0.0", null], bc: "0044-08-22 (BC)" },
        { id: 2, ts: "-infinity", tstz: "-infinity", day: "-infinity", floats: ["-0.0"], reals: ["-0.0"], bc: "5751574-09-19" },
      ]);
      // A rebuild keeps them too: live writes mirrored into the shadow, and the replay into it.
      await sink.prepareRebuild(schema, signal());
      await sink.write([events.update(3n, { id: 1, ts: tsMax, tstz: tsMax, day: dayMax, floats: [-0, 1], reals: [-0], bc: -735_000 })], signal());
      await sink.writeRebuild([events.insert(2n, { id: 2, ts: tsMin, tstz: tsMin, day: dayMin, floats: [-0], reals: [-0], bc: 2_100_000_000 })], signal());
      await sink.swap(schema, signal());
      const rebuilt = await query(`SELECT id, ts::VARCHAR AS ts, list_transform(floats, x -> x::VARCHAR) AS floats FROM main.${ident(target)} ORDER BY id`);
      assert.deepEqual(rebuilt, [
        { id: 1, ts: "infinity", floats: ["-0.0", "1.0"] },
        { id: 2, ts: "-infinity", floats: ["-0.0"] },
      ]);
    } finally {
      await sink.close();
    }
  });

  test("exact types: decimals, big integers, timestamps, dates, uuids, json, bytes, arrays; a widened key column", async () => {
    const sink = createSink(`d_${randomTableName("types")}`);
    await sink.open(signal());
    try {
      const schema = tableSchema(randomTableName(), [
        ["id", "integer"],
        ["d", "numeric(38,10)"],
        ["n", "numeric"],
        ["ts", "timestamp with time zone"],
        ["day", "date"],
        ["uid", "uuid"],
        ["doc", "jsonb"],
        ["raw", "bytea"],
        ["tags", "integer[]"],
      ]);
      const events = new Events(schema);
      await sink.write(
        [
          events.insert(1n, {
            id: 1,
            d: "1234567890123456789012345678.0123456789",
            n: "NaN",
            ts: -1234567890123456n,
            day: -3650,
            uid: "6F1C8E36-6B4E-4D2E-9E3E-0C1C8D8C8C8C",
            doc: '{"a": [1, 2.50]}',
            raw: new Uint8Array([0, 1, 255]),
            tags: [1, null, 3],
          }),
        ],
        signal(),
      );
      const target = renderTarget(TARGET_TEMPLATE, schema);
      const [row] = await query(
        `SELECT d::VARCHAR AS d, n, ts::VARCHAR AS ts, day::VARCHAR AS day, uid::VARCHAR AS uid, doc::VARCHAR AS doc, hex(raw) AS raw, tags FROM main.${ident(target)}`,
      );
      assert.deepEqual(row, {
        d: "1234567890123456789012345678.0123456789",
        n: "NaN",
        ts: "1930-11-18 00:28:29.876544+00",
        day: "1960-01-04",
        uid: "6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c",
        doc: '{"a": [1, 2.50]}',
        raw: "0001FF",
        tags: [1, null, 3],
      });
      // key column integer → bigint: DuckDB cannot alter a primary-key column, so the table is copied into the next generation
      const wider = new Events(tableSchema(schema.table, [["id", "bigint"], ["d", "numeric(38,10)"]]));
      await sink.write([wider.insert(2n, { id: 5_000_000_000n, d: "1" })], signal());
      const ids = await query(`SELECT id::VARCHAR AS id FROM main.${ident(target)} ORDER BY id`);
      assert.deepEqual(ids, [{ id: "1" }, { id: "5000000000" }]);
      const tables = await query(`SELECT table_name FROM information_schema.tables WHERE table_schema = '_sluice' AND table_name LIKE '${target}__v%'`);
      assert.deepEqual(tables, [{ table_name: `${target}__v2` }]);
    } finally {
      await sink.close();
    }
  });
});
