/**
 * Putting a configured table into the publication (ALTER PUBLICATION ... ADD TABLE) takes a SHARE UPDATE EXCLUSIVE lock
 * on the table, so it waits behind a long transaction holding a conflicting lock (a VACUUM, CREATE INDEX CONCURRENTLY,
 * an ALTER TABLE left open) until the catalog connection's lock_timeout. One table locked (possibly for hours) must not
 * keep the others out: the lockable ones are added, the locked one is warned, naming the session holding the lock, and
 * handed back for a later try (RepublishTries), where the start used to fail as a whole. The limit is 1 s here, 30 s by default.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { pino } from "pino";
import { listTables } from "./catalog.ts";
import { clientConfig } from "./connection-settings.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, pump, stopPumps, waitFor } from "../common/online-snapshot-test-support.ts";
import type { PostgresSource } from "./source.ts";
import { captureNames, ensurePublication } from "./slot-setup.ts";

const schema = randomName("publock");
let admin: pg.Client;
const publications: string[] = [];
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id int PRIMARY KEY); CREATE TABLE ${schema}.other (id int PRIMARY KEY); CREATE TABLE ${schema}.third (id int PRIMARY KEY)`);
});

after(async () => {
  for (const c of configs) await cleanUp(admin, c);
  for (const p of publications) await admin.query(`DROP PUBLICATION IF EXISTS "${p}"`);
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.end();
});

test("a table the ALTER PUBLICATION cannot lock behind a long transaction is left out, warned naming the blocker and handed back for a later try; the other missing tables are added; it is added once the lock is gone", { timeout: 60_000 }, async () => {
  const config = sourceConfig({ tables: [`${schema}.*`] });
  const names = captureNames(config);
  publications.push(names.publication);
  await admin.query(`CREATE PUBLICATION "${names.publication}" FOR TABLE ${schema}.other`);
  const catalog = new pg.Client(clientConfig(config, "catalog", { catalogLockTimeoutMs: 1000 }));
  await catalog.connect();
  const holder = await adminClient();
  const lines: { level: number; msg: string; tables?: string[] }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  try {
    const tables = await listTables(catalog, (s) => s === schema);
    const blocker = (holder as unknown as { processID: number }).processID;
    await holder.query(`SET application_name = 'nightly-maintenance'`);
    await holder.query("BEGIN");
    await holder.query(`LOCK TABLE ${schema}.items IN SHARE UPDATE EXCLUSIVE MODE`);
    const locked: string[] = [];
    const added = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => false, false, (ts) => locked.push(...ts.map((t) => t.table)));
    assert.deepEqual(added.map((t) => t.table), ["third"], "the lockable table is added");
    assert.deepEqual(locked, ["items"], "the locked one is handed back");
    const published = await admin.query<{ tablename: string }>("SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", [names.publication]);
    assert.deepEqual(published.rows.map((r) => r.tablename), ["other", "third"]);
    const warning = lines.find((l) => l.level === 40 && l.tables?.includes(`${schema}.items`));
    assert.ok(warning, JSON.stringify(lines));
    assert.match(warning.msg, new RegExp(`pid ${blocker}\\b.*nightly-maintenance.*ShareUpdateExclusiveLock`));
    assert.match(warning.msg, /tried again later/);
    assert.doesNotMatch(warning.msg, /owner|administrator/, "a lock is no matter of ownership");
    await holder.query("ROLLBACK");
    const again = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => false, false, () => assert.fail("nothing is locked now"));
    assert.deepEqual(again.map((t) => t.table), ["items"]);
  } finally {
    await holder.query("ROLLBACK").catch(() => undefined);
    await holder.end();
    await catalog.end();
  }
});

test("a source starting while one table is locked captures the others at once, and the locked one once the lock is gone, with its rows (RepublishTries)", { timeout: 60_000 }, async () => {
  const other = `${schema}_start`;
  await admin.query(`CREATE SCHEMA ${other}; CREATE TABLE ${other}.free (id int PRIMARY KEY); CREATE TABLE ${other}.busy (id int PRIMARY KEY); INSERT INTO ${other}.free VALUES (1), (2); INSERT INTO ${other}.busy VALUES (7), (8)`);
  const config = sourceConfig({ tables: [`${other}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 500 });
  configs.push(config);
  const names = captureNames(config);
  publications.push(names.publication);
  // A publication Sluice owns that lacks both tables (a table added to the config since): the start's ALTER PUBLICATION.
  await admin.query(`CREATE PUBLICATION "${names.publication}"`);
  const holder = await adminClient();
  const opened: PostgresSource[] = [];
  const pumps: Pump[] = [];
  const stopCheckpoints = checkpointing();
  try {
    await holder.query("BEGIN");
    await holder.query(`LOCK TABLE ${other}.busy IN SHARE UPDATE EXCLUSIVE MODE`);
    const source = newSource(config, { catalogLockTimeoutMs: 500, republishRetryMs: 1000, tableDiscoveryMs: 200 });
    opened.push(source);
    await source.connect(null, AbortSignal.timeout(30_000));
    const free = new Fold("free");
    const busy = new Fold("busy");
    const state = pump(source, [free, busy]);
    pumps.push(state);
    await waitFor("the free table's rows", () => free.visible().size === 2, 20_000);
    await admin.query(`INSERT INTO ${other}.free VALUES (3)`);
    await waitFor("the free table's change", () => free.visible().size === 3, 20_000);
    assert.equal(busy.visible().size, 0, "the locked table is not captured yet");
    await holder.query("ROLLBACK");
    await waitFor("the locked table's rows once the lock is gone", () => busy.visible().size === 2, 30_000);
    await admin.query(`INSERT INTO ${other}.busy VALUES (9)`);
    await waitFor("the locked table's changes", () => busy.visible().size === 3, 20_000);
  } finally {
    await holder.query("ROLLBACK").catch(() => undefined);
    await holder.end();
    await stopCheckpoints();
    await stopPumps(pumps, opened);
    await admin.query(`DROP SCHEMA ${other} CASCADE`);
  }
});
