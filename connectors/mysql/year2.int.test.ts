/**
 * MariaDB's YEAR(2) (deprecated, still created): SELECT prints two digits ("24") while the binlog
 * logs the stored year (2024), and the normalized column type is "year" for both widths. The
 * exported snapshot, the online snapshot and the binlog must give the same 4-digit year.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import type { ChangeEvent } from "../contracts.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const database = randomName("year2");
const table = `\`${database}\`.\`t\``;
// The server's own readings: 0 and '00' are 2000 in YEAR(2), the 4-character string '0000' and an
// out-of-range 150 (non-strict) store the zero year; 1901 and 2155 print as "01" and "55".
const Y2 = ["0", "'00'", "69", "70", "99", "2024", "1901", "2155", "'0000'", "150", "NULL"];
const Y2_EXPECTED = [2000, 2000, 2069, 1970, 1999, 2024, 1901, 2155, 0, 0, null];
const Y4 = ["'0000'", "0", "'00'", "69", "70", "99", "2024", "1901", "2155", "150", "NULL"];
const Y4_EXPECTED = [0, 0, 2000, 2069, 1970, 1999, 2024, 1901, 2155, 0, null];

const rows = (firstId: number) => Y2.map((y2, i) => `(${firstId + i}, ${y2}, ${Y4[i]})`).join(", ");
const years = (events: readonly ChangeEvent[]) => events.filter((e) => e.source.table === "t" && e.op !== "t").map((e) => [e.after!["y2"], e.after!["y4"]]);
const EXPECTED = Y2_EXPECTED.map((y2, i) => [y2, Y4_EXPECTED[i]]);

describe("MySQL source: YEAR(2) columns", () => {
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("SET SESSION sql_mode = ''");
    await admin.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, y2 YEAR(2), y4 YEAR)`);
    await admin.query(`INSERT INTO ${table} VALUES ${rows(1)}`);
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("information_schema still reports year(2)", async () => {
    const [columns] = await admin.query("SELECT COLUMN_TYPE FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 't' AND COLUMN_NAME = 'y2'", [database]);
    assert.deepEqual(columns, [{ COLUMN_TYPE: "year(2)" }]);
  });

  it("gives the same 4-digit years from the exported snapshot, the online snapshot and the binlog", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.t`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 4 } }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished, { timeoutMs: 60_000 });
      assert.deepEqual(years(snapshot.events), EXPECTED, "exported snapshot");

      await admin.query(`INSERT INTO ${table} VALUES ${rows(101)}`);
      const stream = await readUntil(source, (c) => years(c.events).length >= Y2.length, { timeoutMs: 60_000 });
      assert.deepEqual(years(stream.events), EXPECTED, "binlog");

      await source.snapshots.request(`${database}.t`, "id < 100", "test");
      const online = await readUntil(source, (c) => c.events.filter((e) => e.op === "r").length >= Y2.length, { timeoutMs: 60_000 });
      assert.deepEqual(years(online.events.filter((e) => e.op === "r")), EXPECTED, "online snapshot");
    } finally {
      await source.close();
    }
  });
});
