/**
 * The PostgreSQL source's decoding alone (no Avro, no topic log): not the capture path's limit.
 * Its ratio to pg_recvlogical is no capacity figure: Sluice decodes into nothing here while
 * pg_recvlogical writes every message out, and the transactions are tiny (2 changes). The
 * headline figure, the whole capture path against pg_recvlogical on the same backlog, is
 * bench/capture-drain.ts.
 *
 * PostgreSQL source throughput against the real server of test/services/:
 *  - catch-up streaming: a pgbench-style writer (update an account, insert a history row, per
 *    transaction; batched for speed) leaves a backlog behind two pgoutput slots; Sluice decodes
 *    one slot into ChangeEvents (acking every batch), pg_recvlogical (PostgreSQL's own client,
 *    no decoding: raw pgoutput bytes to /dev/null) reads the other over the same WAL range;
 *  - the initial snapshot of the accounts table.
 * Prints changes/s, rows/s and Sluice's peak RSS.
 *
 *   node bench/postgres-stream.ts [transactions, default 50000] [accounts, default 200000]
 */
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import pg from "pg";
import { pino } from "pino";
import { postgres } from "../test/services/ports.ts";
import type { PostgresSourceConfig } from "../config/schema.ts";
import { PostgresSource } from "../connectors/postgres/source.ts";
import { isSnapshotIncomplete } from "../connectors/postgres/positions.ts";
import { formatLsn, parseLsn } from "../connectors/postgres/lsn.ts";

const TRANSACTIONS = Number(process.argv[2] ?? 50_000);
const ACCOUNTS = Number(process.argv[3] ?? 200_000);
const PG_RECVLOGICAL = `${process.env["SLUICE_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"}/pg_recvlogical`;
const id = randomBytes(4).toString("hex");
const schema = `bench_${id}`;
const publication = `bench_pub_${id}`;
const slots = { warmUp: `bench_warm_${id}`, sluice: `bench_sluice_${id}`, recvlogical: `bench_recv_${id}`, snapshot: `bench_snap_${id}` };

const admin = new pg.Client(postgres);
await admin.connect();
const logger = pino({ level: process.env["SLUICE_BENCH_LOG"] ?? "warn" }, pino.destination(2));

let peakRss = 0;
const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 50);

function config(slot: string, mode: "initial" | "never"): PostgresSourceConfig {
  return {
    kind: "postgres",
    name: `bench_${id}`,
    host: postgres.host,
    port: postgres.port,
    user: postgres.user,
    password: postgres.password,
    database: postgres.database,
    tables: [`${schema}.*`],
    tls: { mode: "disable" },
    snapshot: { mode, parallelism: 2, chunk_rows: 10_000 },
    decimal_mode: "precise",
    envelope: "debezium",
    time_precision_mode: "adaptive",
    hstore_handling_mode: "json",
    interval_handling_mode: "numeric",
    skipped_operations: ["t"],
    max_buffer_bytes: Number(process.env["SLUICE_BENCH_BUFFER_MIB"] ?? 64) * 2 ** 20,
    heartbeat_interval: 10_000,
    wal_receiver_timeout: 60_000,
    slot,
    publication,
    create_slot: true,
    create_publication: false,
    key_columns: {},
    transaction_metadata: false,
  };
}

async function walLsn(): Promise<bigint> {
  return parseLsn((await admin.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn")).rows[0]!.lsn);
}

async function setUp(): Promise<void> {
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`CREATE TABLE ${schema}.accounts (aid int PRIMARY KEY, bid int NOT NULL, abalance int NOT NULL, filler char(84))`);
  await admin.query(`CREATE TABLE ${schema}.history (hid bigserial PRIMARY KEY, tid int, bid int, aid int, delta int, mtime timestamptz, filler char(22))`);
  await admin.query(`INSERT INTO ${schema}.accounts SELECT i, 1 + i / 100000, 0, '' FROM generate_series(1, ${ACCOUNTS}) i`);
  await admin.query(`ANALYZE ${schema}.accounts`);
  await admin.query(`CREATE PUBLICATION ${publication} FOR TABLE ${schema}.accounts, ${schema}.history`);
  for (const slot of [slots.warmUp, slots.sluice, slots.recvlogical]) await admin.query("SELECT pg_create_logical_replication_slot($1, 'pgoutput')", [slot]);
}

/** pgbench's TPC-B-like writes: per transaction one account update and one history insert; 100 transactions per round trip. */
async function write(): Promise<{ changes: number; seconds: number }> {
  const started = performance.now();
  const perCall = 100;
  for (let done = 0; done < TRANSACTIONS; done += perCall) {
    await admin.query(`
      DO $$ DECLARE a int; d int; BEGIN
        FOR i IN 1..${Math.min(perCall, TRANSACTIONS - done)} LOOP
          a := 1 + floor(random() * ${ACCOUNTS})::int; d := floor(random() * 10000)::int - 5000;
          UPDATE ${schema}.accounts SET abalance = abalance + d WHERE aid = a;
          INSERT INTO ${schema}.history (tid, bid, aid, delta, mtime) VALUES (1 + a % 10, 1 + a / 100000, a, d, now());
          COMMIT;
        END LOOP; END $$`);
  }
  return { changes: TRANSACTIONS * 2, seconds: (performance.now() - started) / 1000 };
}

async function sluiceCatchUp(changes: number): Promise<{ seconds: number; events: number }> {
  const source = new PostgresSource(config(slots.sluice, "never"), { logger });
  const started = performance.now();
  await source.connect(null, AbortSignal.timeout(60_000));
  let events = 0;
  const signal = AbortSignal.timeout(600_000);
  while (events < changes) {
    const batch = await source.read(signal);
    events += batch.events.length;
    await batch.ack();
  }
  const seconds = (performance.now() - started) / 1000;
  await source.close();
  return { seconds, events };
}

async function recvlogicalCatchUp(slot: string, endLsn: bigint): Promise<number> {
  const started = performance.now();
  await new Promise<void>((resolve, reject) => {
    const child = spawn(
      PG_RECVLOGICAL,
      [
        "-h", postgres.host, "-p", String(postgres.port), "-U", postgres.user, "-d", postgres.database,
        "-S", slot, "--start", "--no-loop", "-f", "/dev/null", `--endpos=${formatLsn(endLsn)}`,
        "-o", "proto_version=1", "-o", `publication_names=${publication}`,
      ],
      { env: { ...process.env, PGPASSWORD: postgres.password }, stdio: ["ignore", "ignore", "inherit"] },
    );
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve() : reject(new Error(`pg_recvlogical exited with ${code}`))));
  });
  return (performance.now() - started) / 1000;
}

async function snapshot(): Promise<{ seconds: number; rows: number }> {
  const source = new PostgresSource({ ...config(slots.snapshot, "initial"), tables: [`${schema}.accounts`] }, { logger });
  const started = performance.now();
  await source.connect(null, AbortSignal.timeout(60_000));
  let rows = 0;
  const signal = AbortSignal.timeout(600_000);
  for (;;) {
    const batch = await source.read(signal);
    rows += batch.events.length;
    await batch.ack();
    if (!isSnapshotIncomplete(batch.checkpoint.position)) break;
  }
  const seconds = (performance.now() - started) / 1000;
  await source.close();
  return { seconds, rows };
}

async function cleanUp(): Promise<void> {
  for (const slot of Object.values(slots)) {
    await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot]).catch(() => undefined);
  }
  await admin.query(`DROP PUBLICATION IF EXISTS ${publication}`);
  await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
}

try {
  await setUp();
  const written = await write();
  const endLsn = await walLsn();
  const backlogBytes = Number(endLsn - parseLsn((await admin.query<{ lsn: string }>("SELECT confirmed_flush_lsn::text AS lsn FROM pg_replication_slots WHERE slot_name = $1", [slots.sluice])).rows[0]!.lsn));
  // A first read warms the WAL into the page cache, so neither measured reader pays for the disk.
  await recvlogicalCatchUp(slots.warmUp, endLsn);
  const recvSeconds = await recvlogicalCatchUp(slots.recvlogical, endLsn);
  const baselineRss = process.memoryUsage().rss;
  peakRss = baselineRss;
  const sluice = await sluiceCatchUp(written.changes);
  const streamRss = peakRss;
  const snap = await snapshot();

  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  console.log(`PostgreSQL source benchmark (${TRANSACTIONS} transactions, ${written.changes} changes, ${mib(backlogBytes)} MiB of WAL; ${ACCOUNTS} accounts)`);
  console.log(`  process RSS before reading  ${mib(baselineRss)} MiB`);
  console.log(`  writer                      ${(written.changes / written.seconds).toFixed(0).padStart(9)} changes/s`);
  console.log(`  pg_recvlogical (raw bytes)  ${(written.changes / recvSeconds).toFixed(0).padStart(9)} changes/s   ${recvSeconds.toFixed(2)} s`);
  console.log(`  sluice (decode only)        ${(sluice.events / sluice.seconds).toFixed(0).padStart(9)} changes/s   ${sluice.seconds.toFixed(2)} s   peak RSS ${mib(streamRss)} MiB`);
  console.log(`  sluice snapshot             ${(snap.rows / snap.seconds).toFixed(0).padStart(9)} rows/s      ${snap.seconds.toFixed(2)} s   peak RSS ${mib(peakRss)} MiB`);
} finally {
  clearInterval(rssTimer);
  await cleanUp();
  await admin.end();
}
