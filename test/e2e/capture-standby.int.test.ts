/**
 * End to end (issue 17, item 3): a standby for capture. Two processes run capture for the same
 * PostgreSQL source over Kafka (`--role capture`); one leads (holds the capture lease), the other
 * stands by, ready (/readyz 200, /readyz/leader 503). Under a running workload:
 *
 *   - the leader is killed with -9 at random moments (once; SLUICE_E2E_FAILOVERS=20 for the long
 *     run), the standby takes over each time from the last durable checkpoint, and the killed process
 *     comes back as the new standby; the failover time (kill → the new leader publishing) is printed;
 *   - the leader is frozen (SIGSTOP) right after a burst of changes, so its walsender's socket fills
 *     up and, once ended, the walsender blocks writing to it (a network cut does the same): the
 *     standby takes over once the leader's session times out, ending that walsender until it exits;
 *     woken up (SIGCONT), the former leader is fenced (the new leader registered the capture's
 *     transactional id) and stands by, never publishing again;
 *
 * then a sink process's ClickHouse tables equal PostgreSQL row by row, and no change is in the
 * topics twice (read committed): two leaders never published at once, and nothing was doubled.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import type pg from "pg";
import type { StoredRecord } from "../../connectors/contracts.ts";
import { openTopicLogForCommand } from "../../connectors/topics/open.ts";
import { loadConfigFile } from "../../config/load.ts";
import { openRegistry, recordDecoder } from "../../daemon/components.ts";
import { createLogger } from "../../runtime/logger.ts";
import { clickhouse, kafka } from "../services/ports.ts";
import type { TableDef } from "./helpers.ts";
import {
  clickhouseFloatEquality,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  dropPostgres,
  expectedFor,
  killAllDaemons,
  pgClient,
  pgSourceConfig,
  randomName,
  readClickHouse,
  readPostgres,
  removeDir,
  Rng,
  sleep,
  SluiceDaemon,
  tempDir,
  waitCaughtUp,
  waitEqual,
  waitFor,
  Workload,
} from "./helpers.ts";
import { createSchema, ENUM_LABELS, eventsTable, ordersTable, workloadTables } from "./tables.ts";

const schema = randomName("e2e_standby");
const source = randomName("src");
const deployment = randomName("dep");
const chDatabase = randomName("e2e_ch");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("standby");
const tables: TableDef[] = [ordersTable(schema), eventsTable(schema)];
// Each failover waits out the lease session (6 s): two in the suite, the second to a standby started after the first.
const FAILOVERS = Number(process.env["SLUICE_E2E_FAILOVERS"] ?? 1);
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 2, transactions: true, retention: { max_age: 0 } },
  sinks: [{ kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_rows: 200, max_wait: "100ms" } }],
};
// The broker's smallest session timeout: a dead or frozen leader keeps the lease this long.
const LEASE_ENV = { SLUICE_CAPTURE_LEASE_SESSION_MS: "6000" };

let client: pg.Client;
let writer: pg.Client;
const rng = new Rng();
let captureCount = 0;

before(async () => {
  client = await pgClient();
  writer = await pgClient();
  await createSchema(client, schema, tables);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  await writer.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  await dropClickHouseDatabase(chDatabase);
  removeDir(dir);
});

interface CaptureStatus {
  instance: { capture: "leader" | "standby" | null };
  sources: { name: string; position: { commit: string; change: string } | null; state?: string }[];
}

async function captureStatus(daemon: SluiceDaemon): Promise<CaptureStatus> {
  return (await daemon.status()) as unknown as CaptureStatus;
}

function startCapture(): Promise<SluiceDaemon> {
  return SluiceDaemon.start(dir, config, `capture${++captureCount}`, { args: ["--role", "capture"], env: LEASE_ENV });
}

/** Waits until `daemon` leads and has published past `after` (a commit position); returns when that was seen. */
async function waitLeadingPast(daemon: SluiceDaemon, after: bigint, timeoutMs = 90_000): Promise<number> {
  let seen: CaptureStatus | null = null;
  await waitFor(
    "the standby to lead and publish",
    async () => {
      seen = await captureStatus(daemon);
      const position = seen.sources[0]?.position;
      return seen.instance.capture === "leader" && position !== null && position !== undefined && BigInt(position.commit) > after;
    },
    { daemon, timeoutMs, intervalMs: 100, lastSeen: () => seen },
  );
  return Date.now();
}

async function leaderPosition(daemon: SluiceDaemon): Promise<bigint> {
  const position = (await captureStatus(daemon)).sources[0]?.position;
  return position ? BigInt(position.commit) : 0n;
}

async function waitStandby(daemon: SluiceDaemon, timeoutMs = 90_000): Promise<void> {
  await waitFor("the process to stand by", async () => (await captureStatus(daemon)).instance.capture === "standby", { daemon, timeoutMs, intervalMs: 200 });
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

test(`capture standby: kill -9 the leader ${FAILOVERS} times and freeze it once; the standby takes over each time; nothing lost, nothing published twice`, { timeout: 300_000 + FAILOVERS * 40_000 }, async (t) => {
  t.diagnostic(`seed ${rng.seed}`);
  const workload = new Workload(writer, workloadTables(tables), rng, { negativeZero: false, enumLabels: ENUM_LABELS });
  let leader = await startCapture();
  await waitFor("the first process to lead", async () => (await captureStatus(leader)).instance.capture === "leader", { daemon: leader, timeoutMs: 90_000 });
  let standby = await startCapture();
  await waitStandby(standby);
  // Both are ready; only the leader answers /readyz/leader.
  assert.equal((await standby.get("/readyz")).status, 200);
  assert.equal((await standby.get("/readyz/leader")).status, 503);
  assert.equal((await leader.get("/readyz/leader")).status, 200);
  const standbyStatus = await captureStatus(standby);
  assert.equal(standbyStatus.sources[0]?.state, "standby");
  const sink = await SluiceDaemon.start(dir, config, "sink", { args: ["--role", "sinks"] });

  let running = true;
  const writing = (async () => {
    while (running) {
      await workload.transaction();
      // The long run paces its workload: each failover replays the WAL since the slot's restart point on a shared 2-core machine.
      await sleep(FAILOVERS > 3 ? 25 : 5);
    }
  })();
  const failovers: number[] = [];
  try {
    for (let round = 1; round <= FAILOVERS; round++) {
      await sleep(rng.int(500, 4_000));
      const before = await leaderPosition(leader);
      const killedAt = Date.now();
      await leader.kill();
      const tookOver = await waitLeadingPast(standby, before);
      failovers.push(tookOver - killedAt);
      t.diagnostic(`failover ${round}: ${tookOver - killedAt} ms`);
      leader = standby;
      standby = await startCapture();
      await waitStandby(standby);
    }
    t.diagnostic(`failover after kill -9 (lease session 6 s): p50 ${percentile(failovers, 50)} ms, max ${Math.max(...failovers)} ms over ${failovers.length}`);

    // A frozen leader: the standby takes over; woken up, the former leader is fenced and stands by.
    // A burst first (~20 MB of changes), so the frozen leader's walsender still has much to send: its socket fills up, and
    // ended, it blocks writing to it, holding the slot until it is ended again (a network cut does the same).
    await sleep(rng.int(500, 2_000));
    const before = await leaderPosition(leader);
    // On its own connection: the workload's transactions are going on on writer's.
    await client.query(
      `INSERT INTO "${schema}".events (eid, payload, n, day, score) SELECT gen_random_uuid(), jsonb_build_object('pad', repeat(md5(g::text), 32)), g, DATE '2020-01-01' + g % 1000, g / 8.0 FROM generate_series(1, 20000) g`,
    );
    const frozenAt = Date.now();
    leader.child.kill("SIGSTOP");
    try {
      await sleep(3_000);
      const walsender = await client.query<{ wait_event: string | null }>("SELECT wait_event FROM pg_stat_activity WHERE backend_type = 'walsender' AND application_name = $1", [`sluice:${source}:replication`]);
      t.diagnostic(`the frozen leader's walsender 3 s after SIGSTOP waits for: ${walsender.rows.map((r) => r.wait_event).join(", ") || "(none)"}`);
      const tookOver = await waitLeadingPast(standby, before);
      t.diagnostic(`failover after SIGSTOP: ${tookOver - frozenAt} ms`);
    } finally {
      leader.child.kill("SIGCONT");
    }
    const former = leader;
    leader = standby;
    standby = former;
    await waitStandby(standby);
    // Still one leader, still publishing.
    await waitLeadingPast(leader, await leaderPosition(leader));
    assert.equal((await captureStatus(standby)).instance.capture, "standby");
  } finally {
    running = false;
    await writing;
  }
  t.diagnostic(`workload: ${JSON.stringify(workload.counts)}`);

  const catchUp = { timeoutMs: 120_000 + FAILOVERS * 20_000 };
  await waitCaughtUp(leader, client, catchUp);
  await waitCaughtUp(sink, client, catchUp);
  for (const def of tables) {
    await waitEqual(`ClickHouse ${def.name}`, async () => expectedFor("clickhouse", def, await readPostgres(client, def)), () => readClickHouse(chDatabase, `${schema}_${def.name}`, def), {
      daemon: sink,
      timeoutMs: 60_000,
      same: clickhouseFloatEquality(def),
    });
  }

  // Read committed, every change is in its topic once: no two leaders published at once, no batch was published twice.
  const loaded = loadConfigFile(leader.configFile);
  const log = await openTopicLogForCommand(loaded.topics, loaded.name, createLogger("warn"), "read-only");
  try {
    const decoder = recordDecoder((await openRegistry(loaded, log)).registry);
    const topics = (await log.topicNames()).filter((name) => name.startsWith(`${deployment}.${source}.`));
    assert.equal(topics.length, tables.length, topics.join(", "));
    let changes = 0;
    for (const topic of topics) {
      const seen = new Map<string, string>();
      for (const record of await (log as unknown as { readWholeTopic(topic: string): Promise<StoredRecord[]> }).readWholeTopic(topic)) {
        if (record.value === null) continue;
        const event = await decoder.decode(record);
        if (!event || event.source.snapshot || event.op === "t") continue;
        // A key update is a delete of the old key and a create of the new one at one position: the key and op tell them apart.
        const id = `${event.source.position.commit}/${event.source.position.change} ${event.op} ${Buffer.from(record.key ?? new Uint8Array()).toString("hex")}`;
        const where = `${record.partition}:${record.offset}`;
        assert.equal(seen.get(id), undefined, `change ${id} of ${topic} published twice: at ${seen.get(id)} and ${where}`);
        seen.set(id, where);
        changes++;
      }
    }
    t.diagnostic(`${changes} changes in the topics, each once`);
    assert.ok(changes > 0);
  } finally {
    await log.close();
  }
  for (const daemon of [sink, leader, standby]) await daemon.stop();
});
