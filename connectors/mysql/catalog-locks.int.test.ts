/**
 * Reading captured tables' definitions must not wait for metadata locks on tables of other databases. Found on a
 * live deployment: a DROP DATABASE of an unrelated database, waiting for a transaction left open there, held
 * exclusive locks on some of its tables, and the definition read that the binlog decoder makes after a DDL (here a
 * RENAME TABLE) waited behind it: the source's capture stopped without a word (ready, no error, lag growing) for as
 * long as the other database's lock lasted (lock_wait_timeout: a year by default). A start's listing of the tables
 * waited the same way.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import { listTables, readDefinitions } from "./catalog.ts";
import { adminConnection, dropDatabase, randomName } from "./int-test-support.ts";
import { sqlOf } from "./sql-connection.ts";

const captured = randomName("locks_cap");
const other = randomName("locks_other");
let admin: Connection;

before(async () => {
  admin = await adminConnection(captured);
  await admin.query("CREATE TABLE items (id INT PRIMARY KEY, note TEXT, UNIQUE KEY (note))");
  await admin.query("CREATE VIEW items_view AS SELECT id FROM items");
  await admin.query(`CREATE DATABASE \`${other}\``);
  for (const table of ["a", "z"]) await admin.query(`CREATE TABLE \`${other}\`.${table} (id INT PRIMARY KEY)`);
  for (const table of ["a", "z"]) await admin.query(`CREATE TABLE \`${captured}\`.${table} (id INT PRIMARY KEY)`);
});

after(async () => {
  await dropDatabase(admin, captured);
  await dropDatabase(admin, other);
  await admin.end();
});

// Same database: found by review of the first fix, whose per-database read still opened every table of the captured database.
for (const where of ["another database", "the captured database, not captured"]) {
  const locked = where === "another database" ? other : captured;
  test(`a captured table's definition is read, and the captured tables listed, while tables of ${where} are locked exclusively`, async () => {
    const holder = await adminConnection();
    const dropper = await adminConnection();
    const reader = await adminConnection();
    let dropping: Promise<unknown> | null = null;
    try {
      // The open transaction holds `z`; DROP TABLE takes its exclusive locks in name order: it holds `a`'s and waits for `z`'s.
      await holder.query("BEGIN");
      await holder.query(`SELECT * FROM \`${locked}\`.z`);
      dropping = dropper.query(`DROP TABLE \`${locked}\`.a, \`${locked}\`.z`).catch(() => undefined);
      await waitForLockWait(reader, locked);

      // Bounded by the server, not by a clock here: a read that waits for the lock is interrupted after 5 s.
      await reader.query("SET SESSION max_statement_time = 5");
      const definitions = await readDefinitions(sqlOf(reader), [{ database: captured, table: "items" }]);
      const items = definitions.get(`${captured}.items`);
      assert.deepEqual(items?.columns.map((c) => c.name), ["id", "note"]);
      assert.deepEqual(items?.key, ["id"]);
      assert.equal(items?.hiddenColumns, 1, "MariaDB's hidden hash column of the long UNIQUE key is still found");
      // What a start lists: the captured tables, not the views.
      const listed = await listTables(sqlOf(reader), (database, table) => database === captured && table.startsWith("items"));
      assert.deepEqual(listed.map((t) => t.table), ["items"]);
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      await dropping;
      for (const c of [holder, dropper, reader]) await c.end().catch(() => undefined);
    }
  });
}

/** Until the DROP TABLE waits for its metadata lock (it holds the other table's lock by then). */
async function waitForLockWait(connection: Connection, database: string): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const [rows] = await connection.query(`SELECT 1 FROM information_schema.PROCESSLIST WHERE STATE = 'Waiting for table metadata lock' AND INFO LIKE ?`, [`DROP TABLE \`${database}\`%`]);
    if ((rows as unknown[]).length > 0) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error("the DROP TABLE never waited for its lock");
}
