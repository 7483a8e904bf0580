/**
 * An enum label renamed while capture streams (real PostgreSQL): ALTER TYPE ... RENAME VALUE changes every row holding
 * the label with no change in the WAL and no Relation message, so the targets kept the old label in every row not
 * changed since, silently. The catalog look tells it, and the tables using the type (as a column, an array, through a
 * domain) are read again.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import { pino } from "pino";
import type { ChangeEvent } from "../contracts.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const schema = randomName("s_enum");
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } });
let admin: pg.Client;

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"; SET search_path = "${schema}"`);
  await admin.query(`CREATE TYPE mood AS ENUM ('sad', 'ok'); CREATE DOMAIN mood_d AS mood`);
  await admin.query(`CREATE TABLE plain (id int PRIMARY KEY, m mood, ms mood[])`);
  await admin.query(`CREATE TABLE wrapped (id int PRIMARY KEY, m mood_d)`);
  await admin.query(`CREATE TABLE other (id int PRIMARY KEY, t text)`);
  // No key: it cannot be read again online. Listed first, so it is asked for before the others.
  await admin.query(`CREATE TABLE a_nokey (id int, m mood); ALTER TABLE a_nokey REPLICA IDENTITY FULL; INSERT INTO a_nokey VALUES (1, 'sad')`);
  await admin.query(`INSERT INTO plain VALUES (1, 'sad', '{sad,ok}'), (2, 'ok', '{ok}'); INSERT INTO wrapped VALUES (1, 'sad'); INSERT INTO other VALUES (1, 'sad')`);
  await admin.query("RESET search_path");
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

test("a renamed enum label reads again the tables whose columns use it: rows not changed since hold the new label; a table with no key among them is warned, naming it and what to do, and the others are still read", { timeout: 60_000 }, async () => {
  const lines: { level: number; msg: string; table?: string }[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string; table?: string }) });
  const source = newSource(config, { tableDiscoveryMs: 100, logger });
  await source.connect(null, AbortSignal.timeout(30_000));
  const stopCheckpoints = checkpointing(300);
  try {
    const initial = await readUntil(source, snapshotFinished);
    assert.equal(initial.events.filter((e) => e.op === "r").length, 5);
    // Let a look record the labels (the first look only records).
    await readUntil(source, () => false, { timeoutMs: 1_000 }).catch(() => undefined);
    await admin.query(`ALTER TYPE "${schema}".mood RENAME VALUE 'sad' TO 'blue'`);
    const readAgain = (events: readonly ChangeEvent[], table: string, id: number) => events.find((e) => e.op === "r" && e.schema.table === table && e.after?.["id"] === id);
    const { events } = await readUntil(source, (c) => readAgain(c.events, "plain", 1) !== undefined && readAgain(c.events, "plain", 2) !== undefined && readAgain(c.events, "wrapped", 1) !== undefined, { timeoutMs: 20_000 });
    assert.equal(readAgain(events, "plain", 1)!.after!["m"], "blue");
    assert.deepEqual(readAgain(events, "plain", 1)!.after!["ms"], ["blue", "ok"]);
    assert.equal(readAgain(events, "wrapped", 1)!.after!["m"], "blue");
    assert.equal(readAgain(events, "other", 1), undefined, "a table using no enum is not read again");
    const noKey = lines.find((line) => line.table === `${schema}.a_nokey` && line.msg.startsWith("enum labels"));
    assert.ok(noKey, `a warning names the table with no key: ${JSON.stringify(lines)}`);
    assert.match(noKey.msg, /sad -> blue/);
    assert.match(noKey.msg, /no primary key or replica identity index/);
    assert.match(noKey.msg, new RegExp(`sluice snapshot --table ${schema}\\.a_nokey --execute`));
  } finally {
    await stopCheckpoints();
    await source.close();
  }
});
