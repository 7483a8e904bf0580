/**
 * A start that fails after capture took up its prepared sources exits (code 1) instead of running on. Found on a live
 * deployment: with Kafka, a PostgreSQL source with personal columns and personal_data.master_key_file not readable,
 * "sluice run" logged "sluice failed to start" and "sluice stopped" and then ran on for good (an orchestrator saw it
 * alive, nothing restarted it): the source, prepared while the capture lease was taken, held its catalog connection.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { kafka, postgres } from "../services/ports.ts";
import { deleteKafkaDeployment, killAllDaemons, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir } from "./helpers.ts";

const dir = tempDir("sluice-start-failure-");
const schema = randomName("startfail");
const deployment = randomName("dep");
const admin = new pg.Client(postgres);

before(async () => {
  await admin.connect();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".customers (id int PRIMARY KEY, email text)`);
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  for (const { slot_name } of (await admin.query<{ slot_name: string }>("SELECT slot_name FROM pg_replication_slots WHERE slot_name LIKE $1 AND NOT active", [`%${schema}%`])).rows) {
    await admin.query("SELECT pg_drop_replication_slot($1)", [slot_name]);
  }
  await admin.end();
  await deleteKafkaDeployment(deployment);
  removeDir(dir);
});

test("with Kafka, a master key file that cannot be read ends the start with exit code 1, the prepared source closed", { timeout: 120_000 }, async () => {
  const source = pgSourceConfig("pg", [`${schema}.*`], {
    slot: `slot_${schema}`,
    publication: `pub_${schema}`,
    governance: { tables: { [`${schema}.customers`]: { personal: { subject: "id", columns: ["email"] } } } },
  });
  const daemon = await SluiceDaemon.start(
    dir,
    {
      name: deployment,
      sources: [source],
      personal_data: { master_key_file: join(dir, "no-such-master-key") },
      topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 1 },
      // The sink thread fails its start on the key first ("sluice failed to start"), capture on it after taking up its source.
      sinks: [{ name: "wh", kind: "duckdb", path: join(dir, "wh.duckdb"), tables: ["*.*"] }],
    },
    "start-failure",
    { expectStopped: true },
  );
  // Bounded here only so that a run that goes on fails the test instead of hanging it.
  const exit = await Promise.race([daemon.exited, new Promise<null>((resolve) => setTimeout(() => resolve(null), 60_000).unref())]);
  assert.notEqual(exit, null, `the daemon ran on after its start failed:\n${daemon.logTail()}`);
  assert.equal(exit?.code, 1, daemon.logTail());
  assert.match(daemon.logTail(), /cannot read the master key file/);
  assert.doesNotMatch(daemon.logTail(), /still held the process open/, "nothing of the start was left open");
});
