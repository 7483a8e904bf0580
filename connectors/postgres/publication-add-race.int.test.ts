/**
 * Sluice adds a table to its publication by name (ALTER PUBLICATION ... ADD TABLE), after listing it: a new table, one
 * a lock kept out, one put back after it was taken out. A table dropped and created again under its name in between
 * had the new table added, with a backfill request named for the old one: the read that follows (17d2b42) was all that
 * caught it. The same transaction now pins each name to the relation listed first; the new table is left to the catalog
 * look, which takes it up as a new table (emptied first, then read).
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { pino } from "pino";
import { listTables } from "./catalog.ts";
import type { TableRef } from "./catalog.ts";
import { clientConfig } from "./connection-settings.ts";
import { adminClient, randomName, sourceConfig } from "./int-test-support.ts";
import { captureNames, ensurePublication } from "./slot-setup.ts";

const schema = randomName("pgpart_addrace");
let admin: pg.Client;
const publications: string[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.kept (id int PRIMARY KEY); CREATE TABLE ${schema}.listed (id int PRIMARY KEY);
    CREATE TABLE ${schema}.vanished (id int PRIMARY KEY); CREATE TABLE ${schema}.other (id int PRIMARY KEY)`);
  await admin.query(`CREATE SCHEMA ${schema}_alone; CREATE TABLE ${schema}_alone.listed (id int PRIMARY KEY); CREATE TABLE ${schema}_alone.other (id int PRIMARY KEY)`);
  await admin.query(`CREATE SCHEMA ${schema}_ren; CREATE TABLE ${schema}_ren.moved (id int PRIMARY KEY); CREATE TABLE ${schema}_ren.swapped (id int PRIMARY KEY);
    CREATE TABLE ${schema}_ren.swapped_new (id int PRIMARY KEY); CREATE TABLE ${schema}_ren.kept (id int PRIMARY KEY); CREATE TABLE ${schema}_ren.other (id int PRIMARY KEY)`);
});

after(async () => {
  for (const p of publications) await admin.query(`DROP PUBLICATION IF EXISTS "${p}"`);
  await admin.query(`DROP SCHEMA ${schema} CASCADE; DROP SCHEMA ${schema}_alone CASCADE; DROP SCHEMA ${schema}_ren CASCADE`);
  await admin.end();
});

test("a table dropped (and one dropped and created again) between the listing and the ALTER PUBLICATION is not added by its name; the others are", { timeout: 60_000 }, async () => {
  const config = sourceConfig({ tables: [`${schema}.*`] });
  const names = captureNames(config);
  publications.push(names.publication);
  await admin.query(`CREATE PUBLICATION "${names.publication}" FOR TABLE ${schema}.other`);
  const catalog = new pg.Client(clientConfig(config, "catalog"));
  await catalog.connect();
  const lines: { level: number; msg: string; table?: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  try {
    const tables = (await listTables(catalog, (s) => s === schema)).filter((t) => t.table !== "other");
    // Between the listing and the ALTER: one table dropped and created again under its name, one dropped for good.
    await admin.query(`DROP TABLE ${schema}.listed; CREATE TABLE ${schema}.listed (id int PRIMARY KEY, created_again boolean)`);
    await admin.query(`DROP TABLE ${schema}.vanished`);
    const added = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => false, true);
    assert.deepEqual(added.map((t) => t.table), ["kept"]);
    const published = await admin.query<{ tablename: string }>("SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", [names.publication]);
    assert.deepEqual(published.rows.map((r) => r.tablename), ["kept", "other"], "the table created again is not in the publication: the catalog look takes it up as new");
    const told = lines.filter((l) => l.msg.includes("the table listed was dropped meanwhile")).map((l) => l.table);
    assert.deepEqual(told.sort(), [`${schema}.listed`, `${schema}.vanished`]);
    assert.ok(!lines.some((l) => l.level >= 40), `nothing warned: ${JSON.stringify(lines)}`);
  } finally {
    await catalog.end();
  }
});

test("a table dropped and created again under its name between the listing and the ALTER PUBLICATION, alone: the table created again is not added", { timeout: 60_000 }, async () => {
  const alone = `${schema}_alone`;
  const config = sourceConfig({ tables: [`${alone}.*`] });
  const names = captureNames(config);
  publications.push(names.publication);
  await admin.query(`CREATE PUBLICATION "${names.publication}" FOR TABLE ${alone}.other`);
  const catalog = new pg.Client(clientConfig(config, "catalog"));
  await catalog.connect();
  const lines: { level: number; msg: string; table?: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  try {
    const tables = (await listTables(catalog, (s) => s === alone)).filter((t) => t.table !== "other");
    await admin.query(`DROP TABLE ${alone}.listed; CREATE TABLE ${alone}.listed (id int PRIMARY KEY, created_again boolean)`);
    const handedBack: TableRef[] = [];
    const added = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => false, true, (t) => handedBack.push(...t));
    assert.deepEqual(added, []);
    assert.deepEqual(handedBack, [], "the relation listed is gone: nothing to try again");
    const published = await admin.query<{ tablename: string }>("SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", [names.publication]);
    assert.deepEqual(published.rows.map((r) => r.tablename), ["other"], "the table created again is not in the publication");
    assert.deepEqual(lines.filter((l) => l.msg.includes("the table listed was dropped meanwhile")).map((l) => l.table), [`${alone}.listed`]);
  } finally {
    await catalog.end();
  }
});

test("a table renamed between the listing and the ALTER PUBLICATION (or swapped with another, as online schema change tools do) is handed back to be tried under its name, not told as dropped", { timeout: 60_000 }, async () => {
  const ren = `${schema}_ren`;
  const config = sourceConfig({ tables: [`${ren}.*`] });
  const names = captureNames(config);
  publications.push(names.publication);
  await admin.query(`CREATE PUBLICATION "${names.publication}" FOR TABLE ${ren}.other`);
  const catalog = new pg.Client(clientConfig(config, "catalog"));
  await catalog.connect();
  const lines: { level: number; msg: string; table?: string; now?: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  try {
    const tables = (await listTables(catalog, (s) => s === ren)).filter((t) => t.table === "moved" || t.table === "swapped" || t.table === "kept");
    // Between the listing and the ALTER: one renamed (the LOCK meets no table: 42P01), one swapped (the name now names another: SLR01).
    await admin.query(`ALTER TABLE ${ren}.moved RENAME TO moved_away`);
    await admin.query(`ALTER TABLE ${ren}.swapped RENAME TO swapped_old; ALTER TABLE ${ren}.swapped_new RENAME TO swapped`);
    const handedBack: [string, string][] = [];
    const added = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => false, true, (t, why) => {
      for (const table of t) handedBack.push([table.table, why]);
    });
    assert.deepEqual(added.map((t) => t.table), ["kept"]);
    assert.deepEqual(handedBack.sort(), [["moved", "renamed"], ["swapped", "renamed"]], "both still there under other names: tried again at the next look");
    assert.deepEqual(lines.filter((l) => l.msg.includes("dropped meanwhile")), [], "not told as dropped");
    const told = lines.filter((l) => l.msg.includes("was renamed meanwhile")).map((l) => [l.table, l.now]);
    assert.deepEqual(told.sort(), [[`${ren}.moved`, `${ren}.moved_away`], [`${ren}.swapped`, `${ren}.swapped_old`]]);
    const published = await admin.query<{ tablename: string }>("SELECT tablename FROM pg_publication_tables WHERE pubname = $1 ORDER BY 1", [names.publication]);
    assert.deepEqual(published.rows.map((r) => r.tablename), ["kept", "other"]);
  } finally {
    await catalog.end();
  }
});
