/**
 * Issue 14, items 3-4 on MariaDB: `sluice snapshot` against a running daemon whose source is
 * MariaDB. The source starts with snapshot.mode never, so the sink holds only what is streamed;
 * `sluice snapshot --table T` is a dry run that changes nothing, --execute reads the table online
 * (watermarks in Sluice's table in the source database) and the sink then equals the source; a
 * keyless table is refused with what to do; a kill -9 during the snapshot and a restart go on to
 * the same end state; progress shows in `sluice status` and the metrics.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { mariadb } from "../services/ports.ts";
import { binlogAt, binlogFileIndex } from "../../connectors/mysql/positions.ts";
import type { SluiceDaemon } from "./helpers.ts";
import { killAllDaemons, mysqlSourceConfig, randomName, removeDir, runSluice, startReady, tempDir, waitCapturedThenApplied, waitFor } from "./helpers.ts";

const database = randomName("e2e_onlinem");
const source = randomName("src");
const dir = tempDir("online-snapshot-mysql");
const ROWS = 30_000;
const config = {
  name: randomName("dep"),
  sources: [mysqlSourceConfig(source, [`${database}.*`], { snapshot: { mode: "never", chunk_rows: 300 } })],
  topics: { kind: "embedded", path: join(dir, "log", "sluice.db"), partitions: 2 },
  sinks: [{ kind: "duckdb", name: "local", path: join(dir, "local.duckdb"), batch: { max_wait: "100ms" } }],
};
const items = `\`${database}\`.items`;
let admin: Connection;
let daemon: SluiceDaemon | null = null;

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`USE \`${database}\``); // the seq_1_to_N sequence tables need a current database
  await admin.query("SET SESSION group_concat_max_len = 100000000");
  await admin.query(`CREATE TABLE ${items} (id INT PRIMARY KEY, note VARCHAR(100))`);
  await admin.query(`INSERT INTO ${items} SELECT seq, CONCAT('row ', seq) FROM seq_1_to_${ROWS}`);
  await admin.query(`ANALYZE TABLE ${items}`);
  await admin.query(`CREATE TABLE \`${database}\`.loose (a INT, b VARCHAR(10))`);
});

after(async () => {
  await killAllDaemons();
  await admin.query(`DROP DATABASE IF EXISTS \`${database}\``);
  await admin.end();
  removeDir(dir);
});

async function sinkQuery<T>(sql: string): Promise<T> {
  const response = await fetch(`${daemon!.url}/sinks/local/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(30_000) });
  const body = (await response.json()) as { rows?: T[]; error?: string };
  if (!response.ok) throw new Error(body.error ?? response.statusText);
  return body.rows![0]!;
}

const sinkCount = async (): Promise<number> => Number((await sinkQuery<{ n: unknown }>(`SELECT count(*) AS n FROM main."${database}_items"`)).n);

/** Count and digest of (id, note) in key order: the sink's query answers are capped, a digest compares every row. */
async function sinkDigest(): Promise<string> {
  const row = await sinkQuery<{ n: unknown; digest: unknown }>(`SELECT count(*) AS n, md5(coalesce(string_agg(id::VARCHAR || ':' || note, ',' ORDER BY id), '')) AS digest FROM main."${database}_items"`);
  return `${Number(row.n)} rows, ${String(row.digest)}`;
}

async function sourceDigest(): Promise<string> {
  const [rows] = await admin.query(`SELECT COUNT(*) AS n, MD5(COALESCE(GROUP_CONCAT(CONCAT(id, ':', note) ORDER BY id SEPARATOR ','), '')) AS digest FROM ${items}`);
  const row = (rows as { n: number; digest: string }[])[0]!;
  return `${Number(row.n)} rows, ${row.digest}`;
}

/** Waits until the source's acknowledged position passed the binlog position now and the sink has applied everything. */
async function waitCaughtUp(): Promise<void> {
  const [rows] = await admin.query("SHOW MASTER STATUS");
  const status = (rows as { File: string; Position: number | string }[])[0]!;
  const at = binlogAt(binlogFileIndex(status.File), Number(status.Position));
  await waitCapturedThenApplied(
    daemon!,
    `the source to capture past ${status.File}:${status.Position} and then the sink to have lagRecords 0`,
    (seen) => seen.sources.every((s) => s.position !== null && BigInt(s.position.commit) >= at),
    (seen) => seen.sinks.every((s) => s.lagRecords === 0),
    120_000,
  );
}

const snapshotsDone = async () => (await runSluice(["snapshot", "-c", daemon!.configFile, "list"])).stdout.includes("no online snapshot queued or running");

test("sluice snapshot on MariaDB: a dry run first, then the table read online while capture goes on, a kill -9 in the middle resumed; the sink ends equal to the source", async () => {
  daemon = await startReady(dir, config, "sluice");
  await waitFor("a streamed change in the sink", async () => {
    await admin.query(`UPDATE ${items} SET note = 'streamed' WHERE id = 1`);
    return (await sinkCount().catch(() => 0)) === 1;
  }, { daemon, timeoutMs: 60_000 });

  const dry = await runSluice(["snapshot", "-c", daemon.configFile, "--table", `${database}.items`]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /about \d+ rows in about \d+ chunk\(s\) of 300, by key \(id; primary key\)/);
  assert.match(dry.stdout, /Dry run, nothing queued/);
  assert.ok(await snapshotsDone(), "the dry run queued nothing");

  const keyless = await runSluice(["snapshot", "-c", daemon.configFile, "--table", `${database}.loose`, "--execute"]);
  assert.equal(keyless.code, 2);
  assert.match(keyless.stderr, /has no primary key.*add a primary key/);

  const run = await runSluice(["snapshot", "-c", daemon.configFile, "--table", `${database}.items`, "--execute"]);
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /Queued as /);
  // Changes while the snapshot runs.
  await admin.query(`UPDATE ${items} SET note = 'during' WHERE id % 97 = 0`);
  await admin.query(`DELETE FROM ${items} WHERE id % 101 = 0`);
  const rowsDone = () => daemon!.metric("sluice_snapshot_rows_done", { table: `${database}.items` });
  const done = await waitFor("some chunks read", async () => {
    const n = await rowsDone();
    return n >= 900 && n;
  }, { daemon, timeoutMs: 120_000, intervalMs: 10 });
  await daemon.kill();
  assert.ok(done < ROWS, `the kill landed inside the snapshot (${done} of ${ROWS} rows read)`);

  daemon = await startReady(dir, config, "sluice");
  await admin.query(`INSERT INTO ${items} VALUES (${ROWS + 1}, 'after restart')`);
  await waitFor("the snapshot to finish after the restart", snapshotsDone, { daemon, timeoutMs: 180_000, intervalMs: 500 });
  await waitCaughtUp();
  const expected = await sourceDigest();
  let seen = "";
  await waitFor("the sink to equal the source", async () => (seen = await sinkDigest()) === expected, { daemon, timeoutMs: 120_000, intervalMs: 1_000, lastSeen: () => `sink ${seen}, source ${expected}` });

  const status = await runSluice(["status", "-c", daemon.configFile]);
  assert.equal(status.code, 0, status.stderr);
  assert.match(status.stdout, new RegExp(`SNAPSHOT OF.*\\n${source}\\s+${database}\\.items\\s+done\\s+\\d+`), "sluice status lists the finished snapshot");
  assert.ok((await daemon.metric("sluice_snapshot_rows_done", { table: `${database}.items` })) > 0, "the metrics count the rows read");
});
