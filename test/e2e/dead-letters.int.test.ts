/**
 * End to end: `sluice dead-letters` reads both kinds of dead-letter topics beside a running daemon
 * (PostgreSQL → embedded log → ClickHouse). A row failing a not_null check with action dead-letter
 * goes to <deployment>.dlq.<source>; a row ClickHouse cannot hold (NaN in a Decimal) goes to the
 * sink's <deployment>.dlq.<sink>. The command names each one's table, key and reason (check and
 * column; the sink's error and origin), never a value unless --values.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse } from "../services/ports.ts";
import { dropClickHouseDatabase, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_dlq_cmd");
const source = randomName("src");
const deployment = randomName("dep");
const database = randomName("e2e_dlq_cmd");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("dead-letters");
/** Values the command must not print without --values. */
const CHECKED_NOTE = "note-of-the-checked-row";
const POISON_NOTE = "note-of-the-poison-row";

let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".orders (id int PRIMARY KEY, email text, note text, amount numeric(10,2))`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end();
  await dropClickHouseDatabase(database).catch(() => undefined);
  removeDir(dir);
});

test("sluice dead-letters lists a source's data-check dead letters and a sink's, without values unless --values", { timeout: 120_000 }, async (t) => {
  const daemon = await startReady(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`], { governance: { tables: { [`${schema}.orders`]: { checks: [{ check: "not_null", column: "email", action: "dead-letter" }] } } } })],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, on_error: "dead-letter", batch: { max_wait: "50ms" }, retry: { initial: "50ms", max: "1s" } }],
  }, "run");
  const config = daemon.configFile;

  const none = await runSluice(["dead-letters", "-c", config, "--source", source]);
  assert.equal(none.code, 0, none.stderr);
  assert.match(none.stdout, new RegExp(`no dead letters \\(its dead-letter topic ${deployment}\\.dlq\\.${source} does not exist yet`));

  await client.query(`INSERT INTO "${schema}".orders VALUES (1, 'a@example.com', 'fine', 1.00)`);
  await client.query(`INSERT INTO "${schema}".orders VALUES (2, NULL, $1, 2.00)`, [CHECKED_NOTE]);
  await client.query(`INSERT INTO "${schema}".orders VALUES (3, 'c@example.com', $1, 'NaN')`, [POISON_NOTE]);
  await waitFor("the checked row dead-lettered at capture and the poison row by the sink", async () => {
    const checked = await daemon.metric("sluice_data_check_failures_total", { source, check: "not_null" });
    const poison = await daemon.metric("sluice_sink_dead_lettered_total", { sink: "warehouse" });
    return (checked >= 1 && poison >= 1) || undefined;
  }, { daemon, timeoutMs: 60_000 });

  // While the daemon runs: the source's dead letter, by table, key, check and column, not its values.
  const checked = await runSluice(["dead-letters", "-c", config, "--source", source]);
  assert.equal(checked.code, 0, checked.stderr);
  assert.match(checked.stdout, new RegExp(`^source "${source}": dead-letter topic ${deployment}\\.dlq\\.${source} \\(offsets 0 to 0\\); values not shown`));
  assert.match(checked.stdout, new RegExp(`\\noffset 0  \\S+Z  ${schema}\\.orders  op c  key \\{"id":2\\}\\n  check not_null, column email\\n  reason: data check not_null of column email: the value is null\\n`));
  assert.match(checked.stdout, /1 dead letter, to the end of the topic\n$/);
  assert.ok(!checked.stdout.includes(CHECKED_NOTE), "a value printed without --values");
  const checkedValues = await runSluice(["dead-letters", "-c", config, "--source", source, "--values"]);
  assert.equal(checkedValues.code, 0, checkedValues.stderr);
  assert.match(checkedValues.stdout, new RegExp(`\\n  after: \\{"id":2,"email":null,"note":"${CHECKED_NOTE}","amount":"2\\.00"\\}\\n`));

  // The sink's: decoded through the built-in registry, with the target's error and where it came from.
  const poison = await runSluice(["dead-letters", "-c", config, "--sink", "warehouse", "--table", `${schema}.orders`]);
  assert.equal(poison.code, 0, poison.stderr);
  assert.match(poison.stdout, new RegExp(`\\noffset 0  \\S+Z  ${schema}\\.orders  op c  key \\{"id":3\\}\\n  reason: .*amount`));
  assert.match(poison.stdout, new RegExp(`\\n  from ${deployment}\\.${source}\\.${schema}\\.orders:0:\\d+\\n`));
  assert.ok(!poison.stdout.includes(POISON_NOTE), "a value printed without --values");
  t.diagnostic(`source's:\n${checkedValues.stdout}sink's:\n${poison.stdout}`);
  const poisonValues = await runSluice(["dead-letters", "-c", config, "--sink", "warehouse", "--values"]);
  assert.match(poisonValues.stdout, new RegExp(`\\n  after: \\{"id":3,"email":"c@example\\.com","note":"${POISON_NOTE}","amount":"NaN"\\}\\n`));

  const unknown = await runSluice(["dead-letters", "-c", config, "--sink", "nope"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /no sink "nope" in the config; sinks: warehouse/);
  await daemon.stop();
});
