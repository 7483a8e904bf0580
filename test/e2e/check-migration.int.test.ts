/**
 * End to end (issue 19): `sluice schema check-migration` against a running pipeline. For
 * PostgreSQL and MariaDB tables, each migration is checked first (the CLI, --json, reading the
 * daemon's registry), then applied; a row written after it either reaches DuckDB (the change was
 * accepted, capture continued) or its table halts in capture (the registry refused the change).
 * The verdict must say which, for every table.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import type pg from "pg";
import { mariadb } from "../services/ports.ts";
import { dropPostgres, killAllDaemons, mysqlSourceConfig, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_mig");
const database = randomName("e2e_mig");
const pgSource = randomName("pgsrc");
const mySource = randomName("mysrc");
const deployment = randomName("dep");
const names = { slot: `sluice_${pgSource}`, publication: `sluice_${pgSource}`, schema };
const dir = tempDir("migration");

interface Case {
  readonly table: string;
  readonly migration: string;
  /** Written after the migration. */
  readonly insert: string;
  readonly expected: "compatible" | "incompatible";
}

const PG_CASES: readonly Case[] = [
  { table: "add_default", migration: `ALTER TABLE "${schema}".add_default ADD COLUMN flag integer NOT NULL DEFAULT 0;`, insert: `INSERT INTO "${schema}".add_default VALUES (4, 4, 4, 7)`, expected: "compatible" },
  { table: "add_nullable", migration: `ALTER TABLE "${schema}".add_nullable ADD COLUMN note text;`, insert: `INSERT INTO "${schema}".add_nullable VALUES (4, 4, 4, 'n')`, expected: "compatible" },
  { table: "widen", migration: `ALTER TABLE "${schema}".widen ALTER COLUMN qty TYPE bigint;`, insert: `INSERT INTO "${schema}".widen VALUES (4, 4, 4)`, expected: "compatible" },
  { table: "narrow", migration: `ALTER TABLE "${schema}".narrow ALTER COLUMN big TYPE integer;`, insert: `INSERT INTO "${schema}".narrow VALUES (4, 4, 4)`, expected: "incompatible" },
  { table: "to_text", migration: `ALTER TABLE "${schema}".to_text ALTER COLUMN qty TYPE text USING qty::text;`, insert: `INSERT INTO "${schema}".to_text VALUES (4, 'four', 4)`, expected: "incompatible" },
];

const MY_CASES: readonly Case[] = [
  { table: "add_default", migration: `ALTER TABLE \`${database}\`.add_default ADD COLUMN flag INT NOT NULL DEFAULT 0;`, insert: `INSERT INTO \`${database}\`.add_default VALUES (4, 4, 4, 7)`, expected: "compatible" },
  { table: "add_nullable", migration: `ALTER TABLE \`${database}\`.add_nullable ADD COLUMN note TEXT;`, insert: `INSERT INTO \`${database}\`.add_nullable VALUES (4, 4, 4, 'n')`, expected: "compatible" },
  { table: "widen", migration: `ALTER TABLE \`${database}\`.widen MODIFY qty BIGINT NOT NULL;`, insert: `INSERT INTO \`${database}\`.widen VALUES (4, 4, 4)`, expected: "compatible" },
  { table: "narrow", migration: `ALTER TABLE \`${database}\`.narrow MODIFY big INT NOT NULL;`, insert: `INSERT INTO \`${database}\`.narrow VALUES (4, 4, 4)`, expected: "incompatible" },
];

let client: pg.Client;
let admin: Connection;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  for (const { table } of PG_CASES) {
    await client.query(`CREATE TABLE "${schema}".${table} (id integer PRIMARY KEY, qty integer NOT NULL, big bigint NOT NULL)`);
    await client.query(`INSERT INTO "${schema}".${table} SELECT g, g, g FROM generate_series(1, 3) g`);
  }
  for (const { table } of MY_CASES) {
    await admin.query(`CREATE TABLE \`${database}\`.${table} (id INT PRIMARY KEY, qty INT NOT NULL, big BIGINT NOT NULL)`);
    await admin.query(`INSERT INTO \`${database}\`.${table} VALUES (1, 1, 1), (2, 2, 2), (3, 3, 3)`);
  }
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  removeDir(dir);
});

async function rows(daemon: SluiceDaemon, target: string): Promise<number> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: `SELECT count(*) AS n FROM "${target}"`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return -1;
  return Number(((await response.json()) as { rows: { n: unknown }[] }).rows[0]?.n);
}

interface Verdicts {
  readonly exitCode: number;
  readonly tables: ReadonlyMap<string, string>;
}

async function check(daemon: SluiceDaemon, source: string, cases: readonly Case[]): Promise<Verdicts> {
  const files = cases.map(({ table, migration }) => {
    const file = join(dir, `${source}-${table}.sql`);
    writeFileSync(file, `-- migration for ${table}\n${migration}\n`);
    return file;
  });
  const result = await runSluice(["schema", "-c", daemon.configFile, "check-migration", "--source", source, "--json", ...files]);
  assert.ok(result.code === 0 || result.code === 1, `check-migration exit ${result.code}: ${result.stderr}${result.stdout.slice(0, 2000)}`);
  const report = JSON.parse(result.stdout) as { exitCode: number; tables: { table: string; verdict: string }[] };
  return { exitCode: result.code, tables: new Map(report.tables.map((t) => [t.table.split(".").pop()!, t.verdict])) };
}

test("check-migration's verdicts match what capture does when the migrations are applied: halt when incompatible, continue when compatible", { timeout: 240_000 }, async (t) => {
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [
      pgSourceConfig(pgSource, [`${schema}.*`]),
      mysqlSourceConfig(mySource, [`${database}.*`]),
    ],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    schema_registry: { kind: "builtin", compatibility: "BACKWARD" },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
  });
  const all = [...PG_CASES.map((c) => ({ ...c, target: `${schema}_${c.table}`, source: pgSource })), ...MY_CASES.map((c) => ({ ...c, target: `${database}_${c.table}`, source: mySource }))];
  for (const c of all) await waitFor(`the snapshot of ${c.target} in DuckDB`, async () => (await rows(daemon, c.target)) === 3, { daemon, timeoutMs: 90_000 });

  const pgVerdicts = await check(daemon, pgSource, PG_CASES);
  const myVerdicts = await check(daemon, mySource, MY_CASES);
  t.diagnostic(`verdicts: postgres ${JSON.stringify([...pgVerdicts.tables])}, mysql ${JSON.stringify([...myVerdicts.tables])}`);
  assert.equal(pgVerdicts.exitCode, 1);
  assert.equal(myVerdicts.exitCode, 1);

  for (const c of PG_CASES) {
    await client.query(c.migration);
    await client.query(c.insert);
  }
  for (const c of MY_CASES) {
    await admin.query(c.migration);
    await admin.query(c.insert);
  }

  for (const c of all) {
    const verdict = (c.source === pgSource ? pgVerdicts : myVerdicts).tables.get(c.table);
    assert.equal(verdict, c.expected, `${c.source} ${c.table}: the verdict`);
    if (verdict === "compatible") {
      await waitFor(`${c.target}: the row written after the migration in DuckDB (capture continued)`, async () => (await rows(daemon, c.target)) === 4, { daemon, timeoutMs: 60_000 });
    } else {
      const halted = await waitFor(`${c.target}: halted in capture`, async () => (await daemon.status()).sources.find((s) => s.name === c.source)?.halted.find((h) => h.table.endsWith(`.${c.table}`)), { daemon, timeoutMs: 60_000 });
      assert.equal(halted.code, "SCHEMA_INCOMPATIBLE");
    }
  }
  // No compatible table halted, and the halted ones wrote nothing after the migration.
  for (const c of all) if (c.expected === "incompatible") assert.equal(await rows(daemon, c.target), 3, `${c.target} halted: no row after the migration`);
  for (const source of [pgSource, mySource]) {
    const status = (await daemon.status()).sources.find((s) => s.name === source);
    const compatibleHalted = status?.halted.filter((h) => all.some((c) => c.source === source && c.expected === "compatible" && h.table.endsWith(`.${c.table}`)));
    assert.deepEqual(compatibleHalted, [], `${source}: no compatible table halted`);
  }
  await daemon.stop();
});
