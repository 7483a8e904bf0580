/**
 * End to end (issue 6): a row ClickHouse cannot hold, under `on_error: halt` and under
 * `on_error: dead-letter`.
 *
 * The poison: `NaN` in a `numeric(10,2)` column. PostgreSQL allows it; Avro carries it (as null +
 * `sluice.special` record header); ClickHouse's `Decimal(10, 2)` cannot hold it, and the sink rejects the row
 * rather than change it. Two ClickHouse sinks read the same topics, one per policy:
 *   - halt: /status names the halted table with the error; the other table keeps flowing; the
 *     poison row never shows;
 *   - dead-letter: the dead-letter topic holds exactly the poison record, with the reason in a
 *     header and its origin; every other row of both tables applies.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse } from "../services/ports.ts";
import type { TableDef } from "./helpers.ts";
import {
  createTableSql,
  dropClickHouseDatabase,
  dropPostgres,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readClickHouse,
  readEmbeddedTopics,
  readPostgres,
  removeDir,
  SluiceDaemon,
  tempDir,
  waitEqual,
  waitFor,
  waitSourcesPast,
} from "./helpers.ts";

const schema = randomName("e2e_poison");
const source = randomName("src");
const deployment = randomName("dep");
const haltDb = randomName("e2e_halt");
const dlqDb = randomName("e2e_dlq");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("poison");
const logPath = join(dir, "log.db");
const money: TableDef = {
  schema,
  name: "money",
  key: ["id"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "amount", sql: "numeric(10,2)", kind: "decimal" },
    { name: "note", sql: "text", kind: "text" },
  ],
};
const plain: TableDef = {
  schema,
  name: "plain",
  key: ["id"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "v", sql: "text", kind: "text" },
  ],
};
const POISON_ID = 1000;
let client: pg.Client;

const chSink = (name: string, database: string, onError: "halt" | "dead-letter") => ({
  kind: "clickhouse",
  name,
  url: clickhouse.url,
  user: clickhouse.username,
  password: clickhouse.password,
  database,
  on_error: onError,
  batch: { max_wait: "50ms" },
  retry: { initial: "50ms", max: "1s" },
});

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(money));
  await client.query(createTableSql(plain));
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await dropClickHouseDatabase(haltDb);
  await dropClickHouseDatabase(dlqDb);
  removeDir(dir);
});

async function insertRows(table: TableDef, from: number, count: number): Promise<void> {
  for (let id = from; id < from + count; id++) {
    if (table === money) await client.query(`INSERT INTO "${schema}".money VALUES ($1, $2, $3)`, [id, `${id}.${String(id % 100).padStart(2, "0")}`, `row ${id}`]);
    else await client.query(`INSERT INTO "${schema}".plain VALUES ($1, $2)`, [id, `v${id}`]);
  }
}

const withoutPoison = async (table: TableDef) => {
  const rows = await readPostgres(client, table);
  if (table === money) rows.delete(JSON.stringify([String(POISON_ID)]));
  return rows;
};

test("a poison row: halt stops only its table (named in /status with the error); dead-letter parks it with the reason", { timeout: 120_000 }, async (t) => {
  await insertRows(money, 1, 20);
  await insertRows(plain, 1, 20);
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: logPath },
    sinks: [chSink("halting", haltDb, "halt"), chSink("parking", dlqDb, "dead-letter")],
  });
  for (const db of [haltDb, dlqDb]) {
    for (const table of [money, plain]) {
      await waitEqual(`${db}.${schema}_${table.name} (before the poison)`, () => readPostgres(client, table), () => readClickHouse(db, `${schema}_${table.name}`, table), { daemon, timeoutMs: 60_000 });
    }
  }

  // The poison row, in a transaction of its own, then more rows in both tables.
  await client.query(`INSERT INTO "${schema}".money VALUES ($1, 'NaN', 'poison')`, [POISON_ID]);
  await insertRows(money, 21, 10);
  await insertRows(plain, 21, 10);
  await client.query(`UPDATE "${schema}".plain SET v = 'changed after the poison' WHERE id <= 5`);
  await waitSourcesPast(daemon, client);

  // halt: the table is named with the error; the poison row never shows; the other table flows on.
  const halted = await waitFor(
    "the halting sink to report money as halted in /status",
    async () => (await daemon.status()).sinks.find((s) => s.name === "halting")?.halted.find((h) => h.table === `${schema}.money`),
    { daemon, timeoutMs: 30_000 },
  );
  t.diagnostic(`halted: ${JSON.stringify(halted)}`);
  assert.match(halted.error, /amount/, "the error names the column");
  assert.match(halted.error, /NaN/i, "the error names the value's problem");
  assert.equal(halted.topic, `${deployment}.${source}.${schema}.money`);
  await waitEqual(`${haltDb}.${schema}_plain (after the poison, other table)`, () => readPostgres(client, plain), () => readClickHouse(haltDb, `${schema}_plain`, plain), { daemon, timeoutMs: 30_000 });
  // The halted table stays as the source was before the poison row: neither it nor anything after
  // it shows (see also bug-reproductions.int.test.ts, for changes sharing the poison's batch).
  const haltedMoney = await readClickHouse(haltDb, `${schema}_money`, money);
  assert.ok(!haltedMoney.has(JSON.stringify([String(POISON_ID)])), "the poison row is not visible in the halting sink");
  const visibleIds = [...haltedMoney.values()].map((r) => Number(r["id"])).sort((a, b) => a - b);
  assert.deepEqual(visibleIds, Array.from({ length: 20 }, (_, i) => i + 1), "the halting sink shows money as it was before the poison row");
  assert.ok(await daemon.metric("sluice_tables_halted", { sink: "halting" }) >= 1, "sluice_tables_halted reports the halted table");
  const parkingStatus = (await daemon.status()).sinks.find((s) => s.name === "parking")!;
  assert.deepEqual(parkingStatus.halted, [], "the dead-letter sink halts nothing");

  // dead-letter: every other row applied, in both tables.
  for (const table of [money, plain]) {
    await waitEqual(`${dlqDb}.${schema}_${table.name} (dead-letter sink, all but the poison row)`, () => withoutPoison(table), () => readClickHouse(dlqDb, `${schema}_${table.name}`, table), { daemon, timeoutMs: 30_000 });
  }
  assert.ok(await daemon.metric("sluice_sink_dead_lettered_total", { sink: "parking" }) >= 1, "sluice_sink_dead_lettered_total counts it");
  await daemon.stop();

  // The dead-letter topic holds the poison record and nothing else, with the reason attached.
  const dlq = await readEmbeddedTopics(logPath, [`${deployment}.dlq.parking`], { decode: true });
  assert.equal(dlq.length, 1, `one dead-lettered record, got ${dlq.length}`);
  const record = dlq[0]!;
  t.diagnostic(`dead letter headers: ${JSON.stringify(record.headers)}`);
  assert.match(record.headers["sluice.error"] ?? "", /amount/, "the reason header names the column");
  assert.equal(record.headers["sluice.sink"], "parking");
  assert.match(record.headers["sluice.origin"] ?? "", new RegExp(`^${deployment}\\.${source}\\.${schema}\\.money:0:\\d+$`));
  assert.equal(String(record.event?.after?.["id"]), String(POISON_ID), "the dead letter is the poison row itself (its original record)");
  assert.equal(record.event?.after?.["amount"], "NaN");
});
