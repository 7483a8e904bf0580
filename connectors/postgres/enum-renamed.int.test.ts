/**
 * An enum label renamed while capture streams (real PostgreSQL): ALTER TYPE ... RENAME VALUE changes every row holding
 * the label with no change in the WAL and no Relation message, so the targets kept the old label in every row not
 * changed since, silently. The catalog look tells it, and the tables using the type (as a column, an array, through a
 * domain) are read again.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
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
  await admin.query(`INSERT INTO plain VALUES (1, 'sad', '{sad,ok}'), (2, 'ok', '{ok}'); INSERT INTO wrapped VALUES (1, 'sad'); INSERT INTO other VALUES (1, 'sad')`);
  await admin.query("RESET search_path");
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

test("a renamed enum label reads again the tables whose columns use it: rows not changed since hold the new label", { timeout: 60_000 }, async () => {
  const source = newSource(config, { tableDiscoveryMs: 100 });
  await source.connect(null, AbortSignal.timeout(30_000));
  const stopCheckpoints = checkpointing(300);
  try {
    const initial = await readUntil(source, snapshotFinished);
    assert.equal(initial.events.filter((e) => e.op === "r").length, 4);
    // Let a look record the labels (the first look only records).
    await readUntil(source, () => false, { timeoutMs: 1_000 }).catch(() => undefined);
    await admin.query(`ALTER TYPE "${schema}".mood RENAME VALUE 'sad' TO 'blue'`);
    const readAgain = (events: readonly ChangeEvent[], table: string, id: number) => events.find((e) => e.op === "r" && e.schema.table === table && e.after?.["id"] === id);
    const { events } = await readUntil(source, (c) => readAgain(c.events, "plain", 1) !== undefined && readAgain(c.events, "plain", 2) !== undefined && readAgain(c.events, "wrapped", 1) !== undefined, { timeoutMs: 20_000 });
    assert.equal(readAgain(events, "plain", 1)!.after!["m"], "blue");
    assert.deepEqual(readAgain(events, "plain", 1)!.after!["ms"], ["blue", "ok"]);
    assert.equal(readAgain(events, "wrapped", 1)!.after!["m"], "blue");
    assert.equal(readAgain(events, "other", 1), undefined, "a table using no enum is not read again");
  } finally {
    await stopCheckpoints();
    await source.close();
  }
});
