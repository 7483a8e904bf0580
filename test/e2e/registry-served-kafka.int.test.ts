/**
 * The daemon's built-in registry, served over HTTP, knows the schemas of the records its capture
 * writes, also on Kafka, where each capture term opens the registry afresh from the journal (to
 * include what a former leader registered). Found by Flink's `debezium-avro-confluent` format
 * (flink-debezium.int.test.ts): the served registry was the one loaded at start, so every schema id
 * in the topics answered 404 and a Confluent deserializer could read nothing. A standby (or a
 * sinks-only process) serves what it loaded at start and reads the journal again on a miss.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { kafka, mariadb } from "../services/ports.ts";
import { deleteKafkaDeployment, killAllDaemons, mysqlSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const database = randomName("served_reg");
const source = randomName("src");
const deployment = randomName("dep");
const dir = tempDir("served_reg");
let admin: Connection;

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`CREATE TABLE \`${database}\`.items (id INT PRIMARY KEY, name VARCHAR(20) NOT NULL)`);
  await admin.query(`INSERT INTO \`${database}\`.items VALUES (1, 'a')`);
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  await deleteKafkaDeployment(deployment).catch(() => undefined);
  removeDir(dir);
});

test("on Kafka, GET /registry answers the subjects and schema ids the capture registered, on the leader and on a standby", { timeout: 300_000 }, async () => {
  const config = {
    name: deployment,
    sources: [mysqlSourceConfig(source, [`${database}.*`])],
    topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, transactions: true },
  };
  const daemon = await SluiceDaemon.start(dir, config);
  await waitFor("the snapshot", async () => (await daemon.metric("sluice_changes_captured_total", { table: `${database}.items`, op: "r" })) >= 1, { daemon, timeoutMs: 180_000 });
  // A second process of the same deployment stands by; it loaded the registry before `later` existed.
  const standby = await SluiceDaemon.start(dir, config, "standby");
  await waitFor("the second process to stand by", async () => standby.hasStarted && ((await standby.status()) as unknown as { instance: { capture: string } }).instance.capture === "standby", { daemon: standby, timeoutMs: 120_000 });
  // A table added while running registers its schemas then, in the same term.
  await admin.query(`CREATE TABLE \`${database}\`.later (id INT PRIMARY KEY)`);
  await admin.query(`INSERT INTO \`${database}\`.later VALUES (1)`);
  await waitFor("the new table's insert", async () => (await daemon.metric("sluice_changes_captured_total", { table: `${database}.later`, op: "c" })) >= 1, { daemon, timeoutMs: 180_000 });

  const get = async (process: SluiceDaemon, path: string) => {
    const response = await process.get(`/registry${path}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  };
  const subjects = (await get(daemon, "/subjects")).body as unknown as string[];
  const ids = new Map<string, unknown>();
  for (const table of ["items", "later"]) {
    const subject = `${deployment}.${source}.${database}.${table}-value`;
    assert.ok(subjects.includes(subject), `${subject} is served (served: ${JSON.stringify(subjects)})`);
    const latest = await get(daemon, `/subjects/${subject}/versions/latest`);
    assert.equal(latest.status, 200);
    ids.set(subject, latest.body.id);
    const byId = await get(daemon, `/schemas/ids/${String(latest.body.id)}`);
    assert.equal(byId.status, 200, `schema ${String(latest.body.id)} of ${subject}`);
    assert.equal(byId.body.schema, latest.body.schema);
  }
  // The standby: a schema id first (what a deserializer asks), then the subject.
  const later = `${deployment}.${source}.${database}.later-value`;
  const byId = await get(standby, `/schemas/ids/${String(ids.get(later))}`);
  assert.equal(byId.status, 200, `the standby serves schema ${String(ids.get(later))}, registered after it started`);
  const latest = await get(standby, `/subjects/${later}/versions/latest`);
  assert.deepEqual([latest.status, latest.body.id], [200, ids.get(later)]);
  assert.equal((await get(standby, "/schemas/ids/999999")).status, 404, "an id nobody registered is still 404");
  await standby.stop();
  await daemon.stop();
});
