/**
 * A catalog read (table metadata, on the source's catalog connection) that meets a metadata lock gives up after the
 * catalog session's limit instead of waiting for lock_wait_timeout (a year by default): a retriable error naming the
 * table, which capture retries as an outage, and which succeeds once the lock is gone. The lock here is the one a
 * DROP TABLE waiting behind an open transaction holds: it has taken the exclusive lock on the tables before the one
 * the transaction holds. The catalog limit is 1 s here (catalogTimeoutMs), 30 s by default.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import { SluiceError } from "../errors.ts";
import { readDefinitions } from "./catalog.ts";
import { catalogSessionSql, connectionOptions } from "./connection-settings.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import { CatalogWaitError, toSluiceError } from "./mysql-errors.ts";
import { closeQuietly, openConnection, sqlOf } from "./sql-connection.ts";

const database = randomName("catlock");
const t = (table: string) => `\`${database}\`.\`${table}\``;
let admin: Connection;

before(async () => {
  admin = await adminConnection(database);
  // `items` sorts before `z`: DROP TABLE items, z holds items' exclusive lock while it waits for z's.
  await admin.query(`CREATE TABLE ${t("items")} (id INT PRIMARY KEY, note VARCHAR(20))`);
  await admin.query(`CREATE TABLE ${t("z")} (id INT PRIMARY KEY)`);
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

interface HeldLock {
  /** Ends the DROP (killed while it waits: nothing is dropped) and the transaction. */
  release(): Promise<void>;
}

/** Another session's exclusive metadata lock on `items`: a DROP TABLE items, z that waits for an open transaction on z. */
async function lockItems(): Promise<HeldLock> {
  const holder = await adminConnection(database);
  const dropper = await adminConnection(database);
  await holder.query("BEGIN");
  await holder.query(`SELECT * FROM ${t("z")}`);
  const dropping = dropper.query(`DROP TABLE ${t("items")}, ${t("z")}`).then(
    () => assert.fail("the DROP TABLE ran: it was to be killed while waiting"),
    () => undefined,
  );
  for (let attempt = 0; ; attempt++) {
    const [rows] = await admin.query(`SELECT 1 FROM information_schema.PROCESSLIST WHERE ID = ? AND STATE = 'Waiting for table metadata lock'`, [dropper.threadId]);
    if ((rows as unknown[]).length > 0) break;
    if (attempt === 100) throw new Error("the DROP TABLE never waited for its lock");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    async release() {
      await admin.query(`KILL QUERY ${dropper.threadId}`);
      await dropping;
      await holder.query("ROLLBACK");
      for (const c of [holder, dropper]) await c.end().catch(() => undefined);
    },
  };
}

test("a start whose catalog read meets a metadata lock on a captured table fails retriable, naming the table, and succeeds when tried again once the lock is gone", { timeout: 60_000 }, async () => {
  const config = sourceConfig({ tables: [`${database}.items`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 1000 } });
  const lock = await lockItems();
  let released = false;
  const failures: SluiceError[] = [];
  const source = newSource(config, { catalogTimeoutMs: 1000 });
  try {
    // As capture does after an outage: connect again after a pause; the lock goes after the first failure.
    for (;;) {
      try {
        await source.connect(null, AbortSignal.timeout(30_000));
        break;
      } catch (error) {
        assert.ok(error instanceof SluiceError, String(error));
        failures.push(error);
        if (!error.retriable || failures.length > 3) throw error;
        if (!released) await lock.release();
        released = true;
        await new Promise((resolve) => setTimeout(resolve, 200));
      }
    }
    assert.equal(failures.length, 1);
    const [failure] = failures;
    assert.equal(failure!.code, "MYSQL_CATALOG_TIMEOUT");
    assert.ok(failure!.message.includes(`${database}.items`), failure!.message);
    assert.match(failure!.message, /metadata lock/);
    await admin.query(`INSERT INTO ${t("items")} VALUES (1, 'after')`);
    const collected = await readUntil(source, (c) => c.events.some((e) => e.source.table === "items"));
    assert.deepEqual(collected.events.find((e) => e.source.table === "items")?.after, { id: 1, note: "after" });
  } finally {
    if (!released) await lock.release();
    await source.close();
  }
});

test("a definition read on the catalog session fails while the table is locked, instead of leaving the table out as dropped", { timeout: 60_000 }, async () => {
  const catalog = await openConnection(connectionOptions(sourceConfig({ tables: [`${database}.items`] }), "catalog"));
  const lock = await lockItems();
  try {
    await catalog.query(catalogSessionSql("mariadb", 1000));
    const error = await readDefinitions(sqlOf(catalog), [{ database, table: "items" }]).then(
      (read) => assert.fail(`read without an error: ${JSON.stringify([...read.keys()])}`),
      (e: unknown) => e,
    );
    assert.ok(error instanceof CatalogWaitError, String(error));
    const sluiceError = toSluiceError(error, "re-read after a DDL", { source: "s" });
    assert.equal(sluiceError.retriable, true);
    assert.match(sluiceError.message, new RegExp(`reading the definition of ${database}\\.items: the server gave up`));
  } finally {
    await lock.release();
  }
  try {
    const read = await readDefinitions(sqlOf(catalog), [{ database, table: "items" }]);
    assert.deepEqual(read.get(`${database}.items`)?.columns.map((c) => c.name), ["id", "note"]);
  } finally {
    await closeQuietly(catalog);
  }
});
