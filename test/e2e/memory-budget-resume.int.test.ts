/**
 * The memory budget through a resumed snapshot of wide rows (issue 16 item 4): a capture process
 * with `memory` near its least (so its main heap is about the smallest the plan gives) publishing
 * to Kafka is killed (-9) in the middle of the initial snapshot of a table of 16-32 KiB rows, and
 * restarted: the interrupted table goes on online after its last stored key, and that must fit the
 * main heap too (the chaos run's main thread ran out of heap there).
 */
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import type pg from "pg";
import { loadConfigText } from "../../config/load.ts";
import { MemoryBudgetError, planMemory } from "../../config/memory.ts";
import { kafka } from "../services/ports.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_memr");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("memory-budget-resume");
const ROWS = 4_000;
const base = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`], { snapshot: { mode: "initial", parallelism: 1 } })],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 3, transactions: true, retention: { max_age: 0 } },
  sinks: [],
};
/** The least budget the plan accepts for this capture process: its main heap gets about its floor. */
function leastBudget(): number {
  try {
    planMemory(loadConfigText("capture.yaml", JSON.stringify({ ...base, memory: "64MiB" }), { env: {} }), { sources: [source], sinks: [] });
  } catch (error) {
    if (error instanceof MemoryBudgetError) return error.neededBytes;
    throw error;
  }
  throw new Error("64MiB was accepted as a budget");
}
const config = { ...base, memory: leastBudget() };
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".wide (id int PRIMARY KEY, n int, payload text)`);
  // 16-32 KiB of text a row (~95 MiB in all, many times the main heap); compressible, so cheap for the server to keep.
  await client.query(`INSERT INTO "${schema}".wide SELECT g, g % 97, repeat(md5(g::text), 512 + g % 8 * 64) FROM generate_series(1, ${ROWS}) g`);
  await client.query(`ANALYZE "${schema}".wide`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end().catch(() => undefined);
  await deleteKafkaDeployment(deployment).catch(() => undefined);
  removeDir(dir);
});

test("capture at about its least budget resumes an interrupted snapshot of wide rows without running out of heap", { timeout: 300_000 }, async (t) => {
  const plan = planMemory(loadConfigText("capture.yaml", JSON.stringify(config), { env: {} }), { sources: [source], sinks: [] });
  t.diagnostic(`budget ${config.memory / 2 ** 20} MiB: main heap ${plan.main.oldMb}+${plan.main.youngMb} MiB, read-ahead ${plan.sources[source]!.readAheadBytes / 2 ** 20} MiB`);
  const table = `${schema}.wide`;
  let daemon = await SluiceDaemon.start(dir, config, "run1", { args: ["--role", "capture"] });
  const seen = await waitFor(
    "snapshot rows in Kafka",
    async () => {
      const published = await daemon.metric("sluice_changes_captured_total", { table, op: "r" });
      return published >= 300 && published;
    },
    { daemon, timeoutMs: 120_000, intervalMs: 20 },
  );
  await daemon.kill();
  t.diagnostic(`killed with ${seen} of ${ROWS} rows published`);
  assert.ok(seen < ROWS, "the kill landed inside the snapshot");

  daemon = await SluiceDaemon.start(dir, config, "run2", { args: ["--role", "capture"] });
  const running = daemon;
  const done = await waitFor(
    "the resumed snapshot to finish",
    async () => {
      const status = (await (await running.get("/status")).json()) as { sources: { ready: boolean; snapshots?: { table: string; state: string; rowsDone: number }[] }[] };
      return status.sources[0]?.ready === true && status.sources[0].snapshots?.find((p) => p.table === table && p.state === "done");
    },
    { daemon, timeoutMs: 240_000, intervalMs: 250 },
  );
  const resumed = await daemon.metric("sluice_changes_captured_total", { table, op: "r" });
  t.diagnostic(`the resumed run published ${resumed} rows`);
  assert.ok(resumed > 0 && resumed < ROWS, `the resumed run read the rows after the stored ones (${resumed})`);
  // The stored progress plus the rows read after it.
  assert.equal(done.rowsDone, ROWS, "the snapshot counts every row of the table");
  await daemon.stop();
  assert.doesNotMatch(readFileSync(daemon.logFile, "utf8"), /heap limit|out of memory/i);
});
