/**
 * The snapshot meets the stream exactly, under concurrent writes: events folded by key equal the
 * tables row by row afterwards — with MariaDB's lock-free consistent snapshots on parallel workers
 * (each at its own binlog position) and with a brief global read lock.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import type { ColumnValue } from "../contracts.ts";
import { adminConnection, dropDatabase, fold, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";
import type { SnapshotLocking } from "./snapshot-start.ts";
import type { TableSnapshotProgress } from "./snapshot-reader.ts";

const ROWS = 20_000;
const MARKER = 10_000_000;

describe("MySQL source: snapshot under concurrent writes", () => {
  const database = randomName("s_snap");
  let admin: Connection;
  let writer: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("SET SESSION max_recursive_iterations = 1000000");
    writer = await adminConnection(database);
  });

  after(async () => {
    await writer.end();
    await dropDatabase(admin, database);
    await admin.end();
  });

  for (const locking of ["consistent-snapshot-status", "global-read-lock"] as const satisfies readonly SnapshotLocking[]) {
    it(`folds to exactly the tables' rows (${locking})`, async () => {
      for (const table of ["a", "b", "c"]) {
        await admin.query(`DROP TABLE IF EXISTS ${table}`);
        await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, v INT NOT NULL, s VARCHAR(20))`);
        await admin.query(`INSERT INTO ${table} WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS}) SELECT i, i, CONCAT('r', i) FROM n`);
      }
      const progress: (readonly TableSnapshotProgress[])[] = [];
      const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "initial", parallelism: 2, chunk_rows: 500 }, max_buffer_bytes: 256 * 1024 }), {
        snapshotLocking: locking,
        maxBatchEvents: 500,
        onSnapshotProgress: (p) => progress.push(p),
      });
      let writing = true;
      let nextId = ROWS + 1;
      const writes = (async () => {
        let i = 0;
        while (writing) {
          const table = ["a", "b", "c"][i++ % 3]!;
          const id = 1 + Math.floor(Math.random() * ROWS);
          await writer.query("START TRANSACTION");
          await writer.query(`UPDATE ${table} SET v = v + 1, s = CONCAT('u', v) WHERE id = ?`, [id]);
          await writer.query(`DELETE FROM ${table} WHERE id = ?`, [1 + Math.floor(Math.random() * ROWS)]);
          await writer.query(`INSERT INTO ${table} VALUES (?, ?, 'new')`, [nextId, nextId++]);
          await writer.query("COMMIT");
        }
      })();
      await source.connect(null, AbortSignal.timeout(60_000));
      try {
        const collected = await readUntil(source, snapshotFinished, { timeoutMs: 120_000 });
        if (process.env["SLUICE_TEST_LOG"] === "debug") console.log(collected.batches.at(-1)!.checkpoint.position.resume);
        writing = false;
        await writes;
        await admin.query(`INSERT INTO a VALUES (${MARKER}, 0, 'marker')`);
        await readUntil(source, (c) => c.events.some((e) => e.key["id"] === MARKER), { timeoutMs: 60_000, into: collected });
        for (const table of ["a", "b", "c"]) {
          const events = collected.events.filter((e) => e.source.table === table);
          const folded = fold(events, (row) => String(row["id"]));
          const [rows] = (await admin.query(`SELECT id, v, s FROM ${table} ORDER BY id`)) as unknown as [Record<string, ColumnValue>[]];
          assert.equal(folded.size, rows.length, `${table}: as many rows as the table`);
          for (const row of rows) assert.deepEqual(folded.get(String(row["id"])), { ...row }, `${table} row ${String(row["id"])}`);
          const reads = events.filter((e) => e.op === "r");
          assert.ok(reads.length >= ROWS - 200, `${table}: the snapshot read the table`);
        }
        const last = progress.at(-1)!;
        assert.deepEqual(last.map((p) => p.state), ["done", "done", "done"]);
        assert.ok(last.every((p) => p.rowsDone >= ROWS - 200 && p.rowsEstimated !== null));
      } finally {
        writing = false;
        await writes;
        await source.close();
      }
    });
  }
});
