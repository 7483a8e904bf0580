/**
 * End to end (issue 6): an incompatible schema change. `ALTER COLUMN n TYPE text` on an `integer`
 * column makes the table's new Avro schema unreadable for data written before (int → string is
 * no Avro promotion), which the registry refuses under BACKWARD. Capture must then halt that
 * table — /status names the table, the column and the rule — while the other table keeps flowing,
 * the source position keeps advancing, and every change of the halted table is parked in
 * `<deployment>.sluice.halted.<source>`: nothing lost.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { deserializeEvent } from "../../daemon/event-json.ts";
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

const schema = randomName("e2e_ddl");
const source = randomName("src");
const deployment = randomName("dep");
const database = randomName("e2e_ddl");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("ddl");
const logPath = join(dir, "log.db");
const a: TableDef = {
  schema,
  name: "a",
  key: ["id"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "n", sql: "integer", kind: "int4" },
    { name: "note", sql: "text", kind: "text" },
  ],
};
const b: TableDef = {
  schema,
  name: "b",
  key: ["id"],
  columns: [
    { name: "id", sql: "integer", kind: "int4" },
    { name: "v", sql: "text", kind: "text" },
  ],
};
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(createTableSql(a));
  await client.query(createTableSql(b));
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await dropClickHouseDatabase(database);
  removeDir(dir);
});

test("an incompatible type change halts that table in capture, names table, column and rule, parks its changes; the other table flows on", { timeout: 120_000 }, async (t) => {
  await client.query(`INSERT INTO "${schema}".a SELECT g, g * 10, 'before' FROM generate_series(1, 10) g`);
  await client.query(`INSERT INTO "${schema}".b SELECT g, 'v' || g FROM generate_series(1, 10) g`);
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: logPath },
    schema_registry: { kind: "builtin", compatibility: "BACKWARD" },
    sinks: [{ kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, batch: { max_wait: "50ms" } }],
  });
  const before = await readPostgres(client, a);
  await waitEqual("ClickHouse a", before, () => readClickHouse(database, `${schema}_a`, a), { daemon, timeoutMs: 60_000 });
  await waitEqual("ClickHouse b", () => readPostgres(client, b), () => readClickHouse(database, `${schema}_b`, b), { daemon, timeoutMs: 60_000 });

  // The incompatible change, then changes to both tables.
  await client.query(`ALTER TABLE "${schema}".a ALTER COLUMN n TYPE text USING n::text`);
  await client.query(`INSERT INTO "${schema}".a SELECT g, 'x' || g, 'after' FROM generate_series(100, 104) g`);
  await client.query(`UPDATE "${schema}".a SET note = 'updated after' WHERE id = 1`);
  await client.query(`DELETE FROM "${schema}".a WHERE id = 2`);
  await client.query(`INSERT INTO "${schema}".b SELECT g, 'v' || g FROM generate_series(11, 20) g`);
  await client.query(`UPDATE "${schema}".b SET v = 'changed' WHERE id <= 3`);

  const halted = await waitFor("/status to show table a halted in capture", async () => (await daemon.status()).sources[0]?.halted.find((h) => h.table.endsWith(`${schema}.a`)), { daemon, timeoutMs: 30_000 });
  t.diagnostic(`halted: ${JSON.stringify(halted)}`);
  assert.equal(halted.code, "SCHEMA_INCOMPATIBLE");
  assert.match(halted.error, /`n`|"n"|column n\b/, "the error names the column");
  assert.match(halted.error, /BACKWARD/, "the error names the compatibility rule");
  assert.ok(await daemon.metric("sluice_schema_changes_rejected_total") >= 1, "sluice_schema_changes_rejected_total counts the rejection");

  // The other table keeps flowing and the position keeps advancing; a stays as it was.
  await waitEqual("ClickHouse b (after the halt)", () => readPostgres(client, b), () => readClickHouse(database, `${schema}_b`, b), { daemon, timeoutMs: 30_000 });
  await waitSourcesPast(daemon, client);
  await waitEqual("ClickHouse a (unchanged since the halt)", before, () => readClickHouse(database, `${schema}_a`, a), { daemon, timeoutMs: 5_000 });
  await daemon.stop();

  // Nothing lost: every change of a after the ALTER is parked, in order, and nothing else.
  const parked = await readEmbeddedTopics(logPath, [`${deployment}.sluice.halted.${source}`]);
  const events = parked.map((r) => deserializeEvent(r.value!.toString("utf8")));
  const summary = events.map((e) => `${e.op}:${String((e.after ?? e.before)?.["id"] ?? e.key["id"])}`);
  t.diagnostic(`parked: ${summary.join(" ")}; reason header: ${parked[0]?.headers["sluice.reason"]?.slice(0, 200)}`);
  // The type change can have rewritten every row's value (USING): the source reads the table again, and its reads are
  // parked too, with the read's closing reset (a truncate below the read's version) when it finished before the stop.
  assert.deepEqual(
    summary.filter((s) => !s.startsWith("r:") && s !== "t:undefined"),
    ["c:100", "c:101", "c:102", "c:103", "c:104", "u:1", "d:2"],
  );
  if (summary.includes("t:undefined")) assert.equal(summary.at(-1), "t:undefined", "the read's closing reset comes after its reads");
  assert.ok(events.every((e) => e.schema.table === "a"), "only table a is parked");
  assert.equal(events.find((e) => e.op === "c")!.after?.["n"], "x100", "parked events carry the new type's values");
  assert.match(parked[0]!.headers["sluice.reason"] ?? "", /BACKWARD/);
});
