/**
 * End to end: a table a sink refuses record after record (no primary key: SINK_SCHEMA_UNSUPPORTED)
 * is moved past all of them with one `sluice halted skip --all-pending`, instead of one skip per
 * record. PostgreSQL → the embedded log → DuckDB, through the CLI against the running daemon. Every
 * refused record must be in the dead-letter topic (counted by sluice_sink_dead_lettered_total),
 * none applied, and the other table flows throughout.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_skip_range");
const source = randomName("src");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("skip-range");
const KEYLESS_ROWS = 40;

let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".keyless (v int, note text)`);
  await client.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, v text)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client?.end();
  removeDir(dir);
});

test("one 'sluice halted skip --all-pending' dead-letters every refused record of a keyless table; a dry run first says how many records the range holds", { timeout: 180_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, {
    name: randomName("dep"),
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "duck", path: join(dir, "wh.duckdb"), batch: { max_wait: "100ms" } }],
  });
  const table = `${schema}.keyless`;
  await client.query(`INSERT INTO "${schema}".keyless SELECT g, 'n' || g FROM generate_series(1, ${KEYLESS_ROWS}) g`);
  await client.query(`INSERT INTO "${schema}".items VALUES (1, 'a')`);
  const halted = async () => ((await daemon.status()).sinks[0]?.halted ?? []).filter((h) => h.table === table);
  await waitFor("the keyless table to halt", async () => (await halted()).length > 0, { daemon, timeoutMs: 90_000, allowStopped: true });
  // Every keyless change is in the topic by now (it was captured with the items row, which follows it).
  await waitFor("the items row in the log", async () => (await daemon.metric("sluice_changes_captured_total", { table: `${schema}.items` })) >= 1, { daemon, timeoutMs: 60_000 });

  const dry = await runSluice(["halted", "-c", daemon.configFile, "skip", "--sink", "duck", "--table", table, "--all-pending"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /Dry run, nothing changed: would send the record at .* every later record of .*keyless the sink refuses, partition \d+ through offset \d+ \(at most \d+ record/, dry.stdout);
  const said = [...dry.stdout.matchAll(/at most (\d+) record/g)].map((m) => Number(m[1]));
  assert.ok(said[0]! >= KEYLESS_ROWS, `the range holds every keyless record: ${dry.stdout}`);
  assert.equal(await daemon.metric("sluice_sink_dead_lettered_total", { sink: "duck" }), 0, "a dry run dead-letters nothing");

  const done = await runSluice(["halted", "-c", daemon.configFile, "skip", "--sink", "duck", "--table", table, "--all-pending", "--execute"]);
  assert.equal(done.code, 0, done.stderr);
  let seen: unknown = null;
  await waitFor(
    "every keyless record in the dead-letter topic",
    async () => {
      const dead = await daemon.metric("sluice_sink_dead_lettered_total", { sink: "duck" });
      const still = await halted();
      seen = { dead, halted: still };
      // The initial snapshot's end (a reset in the control topic) halts the table too, past the data topic's range.
      return dead >= KEYLESS_ROWS && still.every((h) => h.topic.endsWith(".sluice.control"));
    },
    { daemon, timeoutMs: 60_000, allowStopped: true, lastSeen: () => seen },
  );
  if ((await halted()).length > 0) {
    const control = await runSluice(["halted", "-c", daemon.configFile, "skip", "--sink", "duck", "--table", table, "--execute"]);
    assert.equal(control.code, 0, control.stderr);
    await waitFor("the table released", async () => (await halted()).length === 0, { daemon, timeoutMs: 60_000, allowStopped: true });
  }
  const dead = await daemon.metric("sluice_sink_dead_lettered_total", { sink: "duck" });
  assert.ok(dead === KEYLESS_ROWS || dead === KEYLESS_ROWS + 1, `each refused record once (and the control topic's reset, skipped alone): ${dead}`);
  await daemon.stop();
});
