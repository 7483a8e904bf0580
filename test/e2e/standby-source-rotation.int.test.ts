/**
 * End to end: a capture standby takes over during a source password rotation half done. Two processes capture one
 * MariaDB source over Kafka (`--role capture`), each with its own password_file. The account's password is changed on
 * the server (the leader's binlog connection, already logged in, goes on); the leader is killed with -9 before the
 * standby's file has the new password. The standby takes the capture lease and its login is refused: it must wait that
 * out (not ready, naming the refusal), not stop as for a config error, and capture once its file has the new password.
 */
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { kafka, mariadb } from "../services/ports.ts";
import { deleteKafkaDeployment, killAllDaemons, mysqlSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const database = randomName("e2e_rotate_standby");
const user = randomName("rot").slice(0, 30);
const source = randomName("src");
const deployment = randomName("dep");
const dir = tempDir("standby-rotation");
const LEASE_ENV = { SLUICE_CAPTURE_LEASE_SESSION_MS: "6000" };
let admin: Connection;

function config(passwordFile: string): Record<string, unknown> {
  const sourceConfig = mysqlSourceConfig(source, [`${database}.*`], { user, password_file: passwordFile });
  delete sourceConfig["password"];
  return { name: deployment, sources: [sourceConfig], topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 1, transactions: true, retention: { max_age: 0 } }, sinks: [] };
}

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`CREATE TABLE \`${database}\`.items (id BIGINT PRIMARY KEY, note VARCHAR(100))`);
  await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'pw-before'`);
  await admin.query(`GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${user}'@'%'`);
  await admin.query(`GRANT SELECT ON \`${database}\`.* TO '${user}'@'%'`);
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
  await admin.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  removeDir(dir);
});

type Role = "leader" | "standby" | null;
async function role(daemon: SluiceDaemon): Promise<Role> {
  return ((await daemon.status()) as unknown as { instance: { capture: Role } }).instance.capture;
}
async function position(daemon: SluiceDaemon): Promise<string> {
  return JSON.stringify((await daemon.status()).sources[0]?.position ?? null);
}

test("a standby taking over while the source's new password is on the server but not yet in its password_file waits the refusal out, then captures", { timeout: 240_000 }, async (t) => {
  const leaderFile = join(dir, "leader-password");
  const standbyFile = join(dir, "standby-password");
  writeFileSync(leaderFile, "pw-before");
  writeFileSync(standbyFile, "pw-before");
  const leader = await SluiceDaemon.start(dir, config(leaderFile), "leader", { args: ["--role", "capture"], env: LEASE_ENV });
  await waitFor("the first process to lead", async () => (await role(leader)) === "leader" && (await leader.status()).ready, { daemon: leader, timeoutMs: 90_000 });
  const standby = await SluiceDaemon.start(dir, config(standbyFile), "standby", { args: ["--role", "capture"], env: LEASE_ENV });
  await waitFor("the second to stand by", async () => (await role(standby)) === "standby", { daemon: standby, timeoutMs: 90_000 });
  await admin.query(`INSERT INTO \`${database}\`.items VALUES (1, 'before the rotation')`);
  await waitFor("the leader to capture it", async () => (await position(leader)) !== "null", { daemon: leader, timeoutMs: 30_000 });

  // The rotation half done: the server has the new password, the standby's file the old one.
  await admin.query(`ALTER USER '${user}'@'%' IDENTIFIED BY 'pw-after'`);
  const before = await position(leader);
  await leader.kill();
  await admin.query(`INSERT INTO \`${database}\`.items VALUES (2, 'during the rotation')`);
  let waiting: unknown = null;
  await waitFor(
    "the standby to lead and wait for the server to accept its credentials",
    async () => {
      const response = await standby.get("/readyz");
      waiting = ((await response.json()) as { waiting?: unknown }).waiting ?? null;
      return (await role(standby)) === "leader" && response.status === 503 && /waiting for the server to accept the source's credentials/.test(JSON.stringify(waiting));
    },
    { daemon: standby, timeoutMs: 60_000, lastSeen: () => waiting },
  );
  t.diagnostic(`waiting: ${JSON.stringify(waiting)}`);
  assert.equal(standby.exitStatus, null, `the standby keeps running\n${standby.logTail()}`);
  assert.equal(standby.fatalLine, null, `no component stopped:\n${standby.fatalLine}`);

  writeFileSync(standbyFile, "pw-after");
  await waitFor("the new leader to capture from the checkpoint", async () => (await standby.status()).ready && (await position(standby)) !== before, { daemon: standby, timeoutMs: 60_000 });
  await standby.stop();
});
