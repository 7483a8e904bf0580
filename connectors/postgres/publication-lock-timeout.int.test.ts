/**
 * At start, putting a configured table into the publication (ALTER PUBLICATION ... ADD TABLE, or CREATE PUBLICATION)
 * takes a SHARE UPDATE EXCLUSIVE lock on the table, so it waits behind a long transaction holding a conflicting lock (a
 * VACUUM, CREATE INDEX CONCURRENTLY, an ALTER TABLE left open) until the catalog connection's lock_timeout. That was
 * warned and the table left out of the publication until the next restart, its changes not captured. Now the start
 * fails retriable (PG_LOCK_TIMEOUT, waited out as an outage), naming the table and the session holding the lock.
 * The limit is 1 s here, 30 s by default.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { pino } from "pino";
import { SluiceError } from "../errors.ts";
import { listTables } from "./catalog.ts";
import { clientConfig } from "./connection-settings.ts";
import { adminClient, randomName, sourceConfig } from "./int-test-support.ts";
import { captureNames, ensurePublication } from "./slot-setup.ts";

const schema = randomName("publock");
let admin: pg.Client;
const publications: string[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id int PRIMARY KEY); CREATE TABLE ${schema}.other (id int PRIMARY KEY)`);
});

after(async () => {
  for (const p of publications) await admin.query(`DROP PUBLICATION IF EXISTS "${p}"`);
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
});

test("a table the start cannot add to the publication behind a long transaction's lock fails the start retriable, naming the table and the blocker; added once the lock is gone", { timeout: 60_000 }, async () => {
  const config = sourceConfig({ tables: [`${schema}.*`] });
  const names = captureNames(config);
  publications.push(names.publication);
  await admin.query(`CREATE PUBLICATION "${names.publication}" FOR TABLE ${schema}.other`);
  const catalog = new pg.Client(clientConfig(config, "catalog", { catalogLockTimeoutMs: 1000 }));
  await catalog.connect();
  const holder = await adminClient();
  const logger = pino({ level: "silent" });
  try {
    const tables = await listTables(catalog, (s) => s === schema);
    const blocker = (holder as unknown as { processID: number }).processID;
    await holder.query(`SET application_name = 'nightly-maintenance'`);
    await holder.query("BEGIN");
    await holder.query(`LOCK TABLE ${schema}.items IN SHARE UPDATE EXCLUSIVE MODE`);
    const error = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => false, false, "retry").then(
      (added) => assert.fail(`returned ${JSON.stringify(added)} while the table could not be added`),
      (e: unknown) => e,
    );
    assert.ok(error instanceof SluiceError, String(error));
    assert.equal(error.code, "PG_LOCK_TIMEOUT");
    assert.equal(error.retriable, true);
    assert.match(error.message, new RegExp(`${schema}\\.items`));
    assert.match(error.message, new RegExp(`pid ${blocker}\\b.*nightly-maintenance.*ShareUpdateExclusiveLock`));
    await holder.query("ROLLBACK");
    const added = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => false, false, "retry");
    assert.deepEqual(added.map((t) => t.table), ["items"]);
  } finally {
    await holder.query("ROLLBACK").catch(() => undefined);
    await holder.end();
    await catalog.end();
  }
});
