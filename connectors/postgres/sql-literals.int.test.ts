/**
 * Sluice builds some SQL text with names in string literals (the ALTER PUBLICATION's check that each name is still the
 * table listed, the stream's messages). With standard_conforming_strings off (a server, database or role setting) a
 * plain '...' takes a backslash as an escape: a table name ending a string early ran the rest of it as SQL, as the
 * capture role. The sessions now set it on, and the literals read the same under either setting.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { pino } from "pino";
import { listTables } from "./catalog.ts";
import { clientConfig, quoteIdent } from "./connection-settings.ts";
import { adminClient, randomName, sourceConfig } from "./int-test-support.ts";
import { captureNames, ensurePublication, sameTablesStatement } from "./slot-setup.ts";

const schema = randomName("pgfix_lit");
const role = randomName("pgfix_scs");
const password = randomName("pw");
/** Closes the DO block's string under standard_conforming_strings off and runs `SELECT 1/0` (the reviewer's). */
const crafted = String.raw`\'||chr(34))IS NULL THEN END IF;END;--\';SELECT 1/0--`;
/** The same with a dollar-quote tag and both kinds of quote, against a body quoted by any one of them. */
const tagged = String.raw`$sluice$'"\\' $$ x`;
let admin: pg.Client;
const publications: string[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA ${schema}`);
  for (const name of [crafted, tagged]) await admin.query(`CREATE TABLE ${schema}.${quoteIdent(name)} (id int PRIMARY KEY)`);
  await admin.query(`CREATE TABLE ${schema}.other (id int PRIMARY KEY)`);
  await admin.query(`CREATE ROLE "${role}" LOGIN PASSWORD '${password}'`);
  await admin.query(`ALTER ROLE "${role}" SET standard_conforming_strings = off`);
  await admin.query(`GRANT USAGE ON SCHEMA ${schema} TO "${role}"`);
  await admin.query(`GRANT CREATE ON DATABASE "${(await admin.query<{ db: string }>("SELECT current_database() AS db")).rows[0]!.db}" TO "${role}"`);
});

after(async () => {
  for (const p of publications) await admin.query(`DROP PUBLICATION IF EXISTS "${p}"`);
  await admin.query(`DROP SCHEMA ${schema} CASCADE`);
  await admin.query(`DROP OWNED BY "${role}"`).catch(() => undefined);
  await admin.query(`DROP ROLE IF EXISTS "${role}"`);
  await admin.end();
});

test("a table name built to close a string early is only a name to the ALTER PUBLICATION's check, with standard_conforming_strings off in the session", async () => {
  const tables = await listTables(admin, (s) => s === schema);
  await admin.query("SET standard_conforming_strings = off");
  try {
    for (const name of [crafted, tagged]) {
      const table = tables.find((t) => t.table === name)!;
      // Checks the name resolves to the relid listed and runs nothing else: no division by zero.
      await admin.query(sameTablesStatement([table]));
      const other = { ...table, relid: tables.find((t) => t.table === "other")!.relid };
      await assert.rejects(admin.query(sameTablesStatement([other])), (error: { code?: string }) => error.code === "SLR01", "another relid is told as replaced");
    }
  } finally {
    await admin.query("SET standard_conforming_strings = on");
  }
});

test("a capture role whose setting is standard_conforming_strings off: its sessions have it on, and such a table is added to the publication as any other", async () => {
  for (const name of [crafted, tagged, "other"]) await admin.query(`ALTER TABLE ${schema}.${quoteIdent(name)} OWNER TO "${role}"`);
  const config = sourceConfig({ tables: [`${schema}.*`], user: role, password });
  const names = captureNames(config);
  publications.push(names.publication);
  await admin.query(`CREATE PUBLICATION "${names.publication}" FOR TABLE ${schema}.other`);
  await admin.query(`ALTER PUBLICATION "${names.publication}" OWNER TO "${role}"`);
  const catalog = new pg.Client(clientConfig(config, "catalog"));
  await catalog.connect();
  const lines: { level: number; msg: string }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  try {
    assert.equal((await catalog.query<{ standard_conforming_strings: string }>("SHOW standard_conforming_strings")).rows[0]!.standard_conforming_strings, "on");
    const tables = (await listTables(catalog, (s) => s === schema)).filter((t) => t.table !== "other");
    const added = await ensurePublication(catalog, config, names, tables, 150000, logger, { source: config.name }, () => true, true);
    assert.deepEqual(added.map((t) => t.table).sort(), [crafted, tagged].sort(), `both added: ${JSON.stringify(lines)}`);
    assert.ok(!lines.some((l) => l.level >= 40), `nothing warned: ${JSON.stringify(lines)}`);
  } finally {
    await catalog.end();
  }
});
