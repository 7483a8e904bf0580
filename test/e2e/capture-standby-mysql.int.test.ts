/**
 * End to end (issue 17, item 3) with MariaDB: two processes capture one MariaDB source over Kafka;
 * the leader is killed with -9 under a workload (inserts, updates, deletes; once, SLUICE_E2E_FAILOVERS=10
 * for the long run), then frozen (SIGSTOP) before a burst of changes, so its binlog connection's
 * socket fills up; the standby takes over each time (MariaDB drops the former leader's binlog
 * connection when the new one connects with the same server_id; a frozen one's dump thread the new
 * leader ends itself), the woken former leader stands by, and a sink process's ClickHouse table
 * equals MariaDB's.
 */
import assert from "node:assert/strict";
import { randomInt } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { clickhouse, kafka, mariadb } from "../services/ports.ts";
import { clickhouseQuery, deleteKafkaDeployment, dropClickHouseDatabase, killAllDaemons, mysqlSourceConfig, randomName, removeDir, sleep, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const database = randomName("e2e_standbym");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_ch");
const dir = tempDir("standby-mysql");
const config = {
  name: deployment,
  sources: [
    mysqlSourceConfig(source, [`${database}.*`]),
  ],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 2, transactions: true, retention: { max_age: 0 } },
  sinks: [{ kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_rows: 200, max_wait: "100ms" } }],
};
const LEASE_ENV = { SLUICE_CAPTURE_LEASE_SESSION_MS: "6000" };
// Each failover waits out the lease session (6 s); the freeze below is one more, to a standby started after a kill.
const FAILOVERS = Number(process.env["SLUICE_E2E_FAILOVERS"] ?? 1);
let admin: Connection;
let captures = 0;

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`CREATE TABLE \`${database}\`.items (id BIGINT PRIMARY KEY, note VARCHAR(100), n INT)`);
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  await dropClickHouseDatabase(chDatabase);
  removeDir(dir);
});

type Role = "leader" | "standby" | null;
async function role(daemon: SluiceDaemon): Promise<Role> {
  return ((await daemon.status()) as unknown as { instance: { capture: Role } }).instance.capture;
}
async function position(daemon: SluiceDaemon): Promise<string> {
  return JSON.stringify((await daemon.status()).sources[0]?.position ?? null);
}
function startCapture(): Promise<SluiceDaemon> {
  return SluiceDaemon.start(dir, config, `capture${++captures}`, { args: ["--role", "capture"], env: LEASE_ENV });
}

test(`MariaDB capture standby: kill -9 the leader ${FAILOVERS} times and freeze it once under a workload; ClickHouse equals MariaDB`, { timeout: 300_000 + FAILOVERS * 40_000 }, async (t) => {
  let leader = await startCapture();
  await waitFor("the first process to lead", async () => (await role(leader)) === "leader", { daemon: leader, timeoutMs: 90_000 });
  let standby = await startCapture();
  await waitFor("the second to stand by", async () => (await role(standby)) === "standby", { daemon: standby, timeoutMs: 90_000 });
  const sink = await SluiceDaemon.start(dir, config, "sink", { args: ["--role", "sinks"] });

  let running = true;
  let next = 1;
  const writer = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password, database });
  const writing = (async () => {
    while (running) {
      const id = next++;
      await writer.query("INSERT INTO items VALUES (?, ?, ?)", [id, `row ${id}`, id % 7]);
      if (id % 3 === 0) await writer.query("UPDATE items SET n = n + 1, note = CONCAT(note, '+') WHERE id = ?", [id - 1]);
      if (id % 5 === 0) await writer.query("DELETE FROM items WHERE id = ?", [id - 2]);
      await sleep(5);
    }
  })();
  try {
    for (let round = 1; round <= FAILOVERS; round++) {
      await sleep(randomInt(1_000, 4_000));
      const before = await position(leader);
      const killedAt = Date.now();
      await leader.kill();
      const next = standby;
      await waitFor("the standby to lead and publish", async () => (await role(next)) === "leader" && (await position(next)) !== before && (await position(next)) !== "null", { daemon: next, timeoutMs: 90_000, intervalMs: 100 });
      t.diagnostic(`failover ${round}: ${Date.now() - killedAt} ms`);
      leader = next;
      standby = await startCapture();
      await waitFor("the new standby", async () => (await role(standby)) === "standby", { daemon: standby, timeoutMs: 90_000 });
    }
    // Frozen, then a burst (~12 MB of row images), so its binlog connection has much to send and its dump thread
    // blocks writing: the standby takes over (ending that thread, which MariaDB would otherwise let block the new
    // dump until its net_write_timeout, 60 s); woken up, the former leader is fenced and stands by.
    await sleep(randomInt(500, 2_000));
    const before = await position(leader);
    const frozenAt = Date.now();
    leader.child.kill("SIGSTOP");
    const frozen = leader;
    const successor = standby;
    const burst = next;
    next += 40_000;
    await writer.query(`INSERT INTO items SELECT seq, CONCAT('burst ', MD5(seq), MD5(seq + 1)), seq % 7 FROM seq_${burst}_to_${burst + 39_999}`);
    await writer.query("UPDATE items SET n = n + 1 WHERE id BETWEEN ? AND ?", [burst, burst + 39_999]);
    try {
      await waitFor("the standby to lead and publish", async () => (await role(successor)) === "leader" && (await position(successor)) !== before && (await position(successor)) !== "null", {
        daemon: successor,
        timeoutMs: 90_000,
        intervalMs: 100,
      });
      t.diagnostic(`failover after SIGSTOP: ${Date.now() - frozenAt} ms`);
      const ended = readFileSync(successor.logFile, "utf8").includes("ended the binlog dump thread this stream replaces");
      t.diagnostic(`the frozen leader's dump thread ${ended ? "was blocked writing and ended by the new leader" : "ended by itself"}`);
    } finally {
      frozen.child.kill("SIGCONT");
    }
    leader = successor;
    standby = frozen;
    await waitFor("the woken former leader to stand by", async () => (await role(frozen)) === "standby", { daemon: frozen, timeoutMs: 90_000 });
  } finally {
    running = false;
    await writing;
    await writer.end();
  }
  const mariadbRows = async () => {
    const [result] = await admin.query(`SELECT id, note, n FROM \`${database}\`.items ORDER BY id`);
    return (result as { id: number; note: string; n: number }[]).map((r) => `${r.id}\t${r.note}\t${r.n}`).join("\n");
  };
  const clickhouseRows = async () => (await clickhouseQuery(`SELECT id, note, n FROM \`${chDatabase}\`.\`${database}_items\` ORDER BY id FORMAT TabSeparated`)).toString().trim();
  const expected = await mariadbRows();
  assert.ok(expected.length > 0);
  let last = "";
  await waitFor("ClickHouse to equal MariaDB", async () => (last = await clickhouseRows()) === expected, { daemon: sink, timeoutMs: 120_000, lastSeen: () => `${last.split("\n").length} rows vs ${expected.split("\n").length}` });
  for (const daemon of [sink, leader, standby]) await daemon.stop();
});
