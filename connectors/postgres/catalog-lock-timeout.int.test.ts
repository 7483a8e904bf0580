/**
 * The catalog connection's lock_timeout (parity with the MySQL source's catalog limit): reading a table's columns opens
 * the table (pg_get_expr of a column default), so it queues behind an ALTER TABLE that waits for a long transaction.
 * Without a lock_timeout it waited as long as that transaction lasted, capture silent; now it fails after the limit
 * with a retriable error naming the table, and reads the table once the lock is gone. The limit is 1 s here, 30 s by default.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { SluiceError } from "../errors.ts";
import { attributes } from "./catalog.ts";
import { clientConfig } from "./connection-settings.ts";
import { adminClient, randomName, sourceConfig } from "./int-test-support.ts";
import { toSluiceError } from "./pg-errors.ts";

const schema = randomName("catlock");
let admin: pg.Client;

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id int PRIMARY KEY, note text DEFAULT 'none')`);
});

after(async () => {
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
});

test("a catalog connection has a lock_timeout: 30 s by default", async () => {
  const catalog = new pg.Client(clientConfig(sourceConfig({ tables: [`${schema}.*`] }), "catalog"));
  await catalog.connect();
  try {
    assert.equal((await catalog.query<{ lock_timeout: string }>("SHOW lock_timeout")).rows[0]?.lock_timeout, "30s");
  } finally {
    await catalog.end();
  }
});

test("reading a table's columns behind an ALTER TABLE that waits for a transaction fails retriable, naming the table, and succeeds once the lock is gone", { timeout: 60_000 }, async () => {
  const config = sourceConfig({ tables: [`${schema}.*`] });
  const catalog = new pg.Client(clientConfig(config, "catalog", { catalogLockTimeoutMs: 1000 }));
  await catalog.connect();
  const relid = Number((await admin.query<{ id: string }>(`SELECT '${schema}.items'::regclass::oid::int8 AS id`)).rows[0]!.id);
  const holder = await adminClient();
  const alterer = await adminClient();
  let altering: Promise<unknown> | null = null;
  try {
    await holder.query("BEGIN");
    await holder.query(`SELECT * FROM ${schema}.items`);
    altering = alterer.query(`ALTER TABLE ${schema}.items ADD COLUMN extra int`);
    for (let attempt = 0; ; attempt++) {
      const waiting = await admin.query("SELECT 1 FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'", [(alterer as unknown as { processID: number }).processID]);
      if (waiting.rowCount! > 0) break;
      if (attempt === 100) throw new Error("the ALTER TABLE never waited for its lock");
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const error = await attributes(catalog, relid).then(
      () => assert.fail("the columns were read while the ALTER TABLE waited"),
      (e: unknown) => toSluiceError(e, "a relation message", { source: config.name }),
    );
    assert.ok(error instanceof SluiceError);
    assert.equal(error.retriable, true);
    assert.equal(error.code, "PG_LOCK_TIMEOUT");
    assert.match(error.message, new RegExp(`reading the columns of ${schema}\\.items: canceling statement due to lock timeout`));
  } finally {
    await holder.query("ROLLBACK");
    await altering;
    await holder.end();
    await alterer.end();
  }
  try {
    assert.deepEqual((await attributes(catalog, relid)).map((a) => a.name), ["id", "note", "extra"]);
  } finally {
    await catalog.end();
  }
});
