/**
 * A chaos run: a random workload on PostgreSQL (workload.ts) while the daemon is killed with
 * SIGKILL at random moments and restarted at once, then every sink compared with PostgreSQL row by
 * row and value by value (verdict.ts). Meanwhile the sinks are sampled for rows that go backwards:
 * ClickHouse and Elasticsearch continuously while the daemon runs, DuckDB (whose file the daemon
 * holds) each time the daemon lies dead.
 *
 * Kill moments, drawn from the seed: during the initial snapshot (the first kills), a random time
 * after a start, a random time after every sink reported ready (applying), and right after a big
 * transaction commits.
 */
import { existsSync } from "node:fs";
import { join } from "node:path";
import type pg from "pg";
import type { CanonicalTable, TableDef } from "../e2e/helpers.ts";
import {
  deleteElasticIndices,
  deleteElasticOffsets,
  deleteKafkaDeployment,
  dropClickHouseDatabase,
  dropPostgres,
  expectedEsIds,
  expectedFor,
  killAllDaemons,
  currentLsn,
  pgClient,
  pgSourceConfig,
  randomName,
  readClickHouse,
  readDuckDb,
  readElasticsearch,
  readPostgres,
  removeDir,
  Rng,
  sleep,
  SluiceDaemon,
  tempDir,
  waitCapturedThenApplied,
  waitFor,
} from "../e2e/helpers.ts";
import { clickhouse, elasticsearch, kafka } from "../services/ports.ts";
import type { Verdict } from "./verdict.ts";
import { BackwardsWatch, emptyVerdict, judge, sampleClickHouse, sampleDuckDb, sampleElasticsearch } from "./verdict.ts";
import type { ChaosCounts } from "./workload.ts";
import { ChaosWorkload } from "./workload.ts";

export const CONFIGURATIONS = ["embedded-duckdb", "kafka-clickhouse-es"] as const;
export type Configuration = (typeof CONFIGURATIONS)[number];

/**
 * A restarted daemon removes its killed predecessor's members from its Kafka groups (same machine,
 * connectors/kafka/gone-members.ts); one it could not tell would keep its partitions for its
 * session: the broker's least (6 s) rather than the default 30 s.
 */
const DAEMON_ENV = { SLUICE_KAFKA_SESSION_MS: "6000" };

/** A server taken away while the daemon runs (outage.ts makes these for private instances). */
export interface OutageStep {
  readonly service: string;
  /** How long it stays away after stop() (0: restarted at once). */
  readonly seconds: number;
  /** PostgreSQL: the writer pauses and reconnects around it. */
  readonly isPostgres: boolean;
  stop(): Promise<void>;
  start(): Promise<void>;
}

export interface KillOptions {
  readonly configuration: Configuration;
  readonly kills: number;
  /** Instead of kills: these outages, one after the other, with normal running between them. */
  readonly outages?: readonly OutageStep[];
  readonly seed: number;
  /** Rows of the items table before the daemon first starts (what the first kills interrupt). */
  readonly preloadItems: number;
  /** The largest big transaction, in rows. */
  readonly maxBigRows: number;
  /** How many of the first kills land during the initial snapshot. */
  readonly snapshotKills: number;
  /** No more kills after this time (ms since the epoch), or once this says stop; the figures say how many were made. */
  readonly deadline?: number;
  readonly stopRequested?: () => boolean;
  /** The writer's longest pause between transactions (default 12 ms), and the least time between two big transactions it starts by chance (default 4 s). */
  readonly paceMs?: number;
  readonly bigEveryMs?: number;
  /** Partitions of each Kafka topic (default 3). */
  readonly partitions?: number;
  readonly log: (line: string) => void;
}

export interface SinkFigures extends Verdict {
  readonly sink: string;
  readonly samples: number;
  readonly backwards: number;
  /** Of those: a lower rev than shown before; a row back after it was gone. */
  readonly olderRev: number;
  readonly cameBack: number;
}

export interface KillFigures {
  readonly configuration: Configuration;
  readonly seed: number;
  readonly kills: number;
  readonly killKinds: Record<string, number>;
  readonly seconds: number;
  readonly rowsCompared: number;
  readonly lost: number;
  readonly extra: number;
  readonly stale: number;
  readonly wrong: number;
  readonly backwards: number;
  /** Daemon exits nobody asked for, and components that stopped for good. */
  readonly unexpectedExits: string[];
  readonly sinks: SinkFigures[];
  readonly workload: ChaosCounts;
  readonly examples: string[];
  /** The temporary directory with every run's config and log, kept when something differed. */
  readonly dir: string | null;
}

type KillKind = "snapshot" | "random" | "applying" | "big-commit";

interface PlannedKill {
  readonly kind: KillKind;
  readonly delayMs: number;
  readonly restartDelayMs: number;
}

const EVERY_LATER_KIND = ["applying", "big-commit", "random"] as const satisfies readonly KillKind[];

function plan(options: KillOptions): PlannedKill[] {
  const rng = new Rng((options.seed ^ 0x5bd1e995) >>> 0);
  return Array.from({ length: options.kills }, (_v, i) => {
    // After the snapshot's kills, one of each other kind first, so that a short run still meets every kind.
    const firstOfEach = EVERY_LATER_KIND[i - options.snapshotKills];
    const kind: KillKind = i < options.snapshotKills ? "snapshot" : (firstOfEach ?? rng.pick(["random", "random", "applying", "applying", "big-commit"] as const));
    const delayMs = kind === "snapshot" ? rng.int(0, 800) : kind === "random" ? rng.int(0, 6_000) : kind === "applying" ? rng.int(0, 2_500) : rng.int(0, 250);
    return { kind, delayMs, restartDelayMs: rng.int(0, 800) };
  });
}

/**
 * Caught up: every snapshot of the source done (a snapshot resumed after a kill goes on online,
 * after the stream has caught up), then the source's acknowledged position past PostgreSQL's WAL
 * position (taken after that, so it is past the snapshot's last chunk) and every sink ready with 0
 * records left. (An empty /status, as while the daemon starts, is not caught up.)
 */
async function waitCaughtUpAll(daemon: SluiceDaemon, client: pg.Client, sinks: number, timeoutMs: number): Promise<void> {
  let seen: unknown = null;
  await waitFor(
    "every snapshot of the source to be done",
    async () => {
      const status = await daemon.status();
      seen = status;
      return status.sources.length === 1 && status.sources.every((s) => s.ready && (s.snapshots ?? []).every((p) => p.state === "done"));
    },
    { daemon, timeoutMs, intervalMs: 300, lastSeen: () => seen },
  );
  const lsn = await currentLsn(client);
  // The lags from a /status asked after the one showing the position: one answer's lags may predate its position (helpers.ts).
  await waitCapturedThenApplied(
    daemon,
    `the source to capture past LSN ${lsn} and then ${sinks} sinks to be ready with lagRecords 0`,
    (status) => status.sources.length === 1 && status.sources.every((s) => s.position !== null && BigInt(s.position.commit) >= lsn),
    (status) => status.sinks.length === sinks && status.sinks.every((s) => s.ready && s.lagRecords === 0),
    timeoutMs,
  );
}

/** Resolves once the daemon's initial snapshot has read rows (or after `timeoutMs`). */
async function snapshotStarted(daemon: SluiceDaemon, timeoutMs: number): Promise<boolean> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline && !daemon.exitStatus; ) {
    if ((await daemon.metric("sluice_snapshot_rows_done").catch(() => 0)) > 0) return true;
    await sleep(50);
  }
  return false;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<never>((_r, reject) => (timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runKills(options: KillOptions): Promise<KillFigures> {
  const started = Date.now();
  const { configuration, log } = options;
  const schema = randomName("chaos");
  const source = randomName("src");
  const deployment = randomName("chaos");
  const chDatabase = randomName("chaos_ch");
  const dir = tempDir("chaos");
  const duckPath = join(dir, "warehouse.duckdb");
  const sinkNames = configuration === "embedded-duckdb" ? { duck: randomName("duck") } : { ch: randomName("ch"), es: randomName("es") };
  const pgNames = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
  const config = {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    ...(configuration === "embedded-duckdb"
      ? {
          topics: { kind: "embedded", path: join(dir, "log.db") },
          sinks: [{ kind: "duckdb", name: sinkNames.duck, path: duckPath, batch: { max_rows: 2_000, max_wait: "50ms" } }],
        }
      : {
          topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: options.partitions ?? 3, transactions: true, retention: { max_age: 0 } },
          sinks: [
            { kind: "clickhouse", name: sinkNames.ch, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_rows: 1_000, max_wait: "100ms" } },
            { kind: "elasticsearch", name: sinkNames.es, nodes: [elasticsearch.url], batch: { max_rows: 1_000, max_wait: "100ms" } },
          ],
        }),
  };
  log(`${configuration}: seed ${options.seed}, ${options.kills} kills, schema ${schema}, deployment ${deployment}, dir ${dir}`);

  const rng = new Rng(options.seed);
  let client: pg.Client | null = null;
  let writerClient: pg.Client | null = null;
  let workload: ChaosWorkload | null = null;
  let daemon: SluiceDaemon | null = null;
  let sampling = false;
  let sampler: Promise<void> = Promise.resolve();
  const unexpectedExits: string[] = [];
  const killKinds: Record<string, number> = {};
  let keepDir = false;
  try {
    client = await pgClient();
    writerClient = await pgClient();
    workload = new ChaosWorkload(writerClient, schema, rng, {
      maxBigRows: options.maxBigRows,
      itemsCap: Math.max(options.preloadItems * 2, options.maxBigRows * 2),
      paceMs: options.paceMs ?? 12,
      bigEveryMs: options.bigEveryMs ?? 4_000,
    });
    await workload.create();
    await workload.preload(options.preloadItems, Math.ceil(options.preloadItems / 10));
    const tables = workload.tables;
    const target = (def: TableDef) => `${schema}_${def.name}`;

    // Backwards watches: one per sink and table.
    const watches = new Map<string, BackwardsWatch>();
    const watch = (sink: string, def: TableDef) => {
      const name = `${sink} ${target(def)}`;
      if (!watches.has(name)) watches.set(name, new BackwardsWatch(name));
      return watches.get(name)!;
    };
    const sampleDuck = async (when: string) => {
      // A daemon killed before its sink created the DuckDB file leaves nothing to sample (read-only cannot open it).
      if (!existsSync(duckPath)) return;
      const samples = await sampleDuckDb(duckPath, tables.map((def) => ({ def, target: target(def) })));
      for (const [i, def] of tables.entries()) watch("duckdb", def).observe(samples[i]!, when);
    };
    let sampleErrors = 0;
    const sampleError = (sink: string) => (error: unknown) => {
      if (sampleErrors++ < 3) log(`a ${sink} sample failed: ${error instanceof Error ? error.message.slice(0, 300) : String(error)}`);
      return null;
    };
    const sampleServers = async (when: string) => {
      // A failed sample is skipped (an empty one would look like every row deleted).
      for (const def of tables) {
        const ch = await sampleClickHouse(chDatabase, target(def), def).catch(sampleError("ClickHouse"));
        if (ch) watch("clickhouse", def).observe(ch, when);
        const es = await sampleElasticsearch(target(def), def).catch(sampleError("Elasticsearch"));
        if (es) watch("elasticsearch", def).observe(es, when);
      }
    };
    if (configuration === "kafka-clickhouse-es") {
      sampling = true;
      sampler = (async () => {
        for (let n = 0; sampling; n++) {
          await sampleServers(`sample ${n} at ${new Date().toISOString().slice(11, 23)}`);
          await sleep(300);
        }
      })();
    }

    const checkAlive = (running: SluiceDaemon, when: string) => {
      if (running.exitStatus) unexpectedExits.push(`${when}: exited ${JSON.stringify(running.exitStatus)}; log ${running.logFile}`);
      else if (running.fatalLine) unexpectedExits.push(`${when}: a component stopped: ${running.fatalLine.slice(0, 400)}; log ${running.logFile}`);
    };

    workload.start();
    daemon = await SluiceDaemon.start(dir, config, "run0", { env: DAEMON_ENV });
    for (const outage of options.outages ?? []) {
      const running: SluiceDaemon = daemon;
      await sleep(15_000);
      checkAlive(running, `before the ${outage.service} outage`);
      if (outage.isPostgres) {
        await workload.stop();
        await client.end().catch(() => undefined);
        await workload.client.end().catch(() => undefined);
      }
      log(`${outage.service}: stopping for ${outage.seconds} s (${workload.counts.transactions} transactions so far)`);
      await outage.stop();
      for (const until = Date.now() + outage.seconds * 1_000; Date.now() < until; ) {
        await sleep(1_000);
        checkAlive(running, `during the ${outage.service} outage`);
      }
      await outage.start();
      log(`${outage.service}: back`);
      if (outage.isPostgres) {
        client = await pgClient();
        workload.client = writerClient = await pgClient();
        workload.start();
      }
      killKinds[`${outage.service} outage`] = 1;
    }
    if (options.outages) await sleep(15_000); // writes after the last one too
    for (const [i, kill] of (options.outages ? [] : plan(options)).entries()) {
      if ((options.deadline !== undefined && Date.now() > options.deadline) || options.stopRequested?.()) {
        log(`stopping after ${i} kills (deadline or signal)`);
        break;
      }
      const running: SluiceDaemon = daemon;
      let kind = kill.kind;
      const label = `kill ${i + 1}/${options.kills} (${kill.kind})`;
      if (kill.kind === "applying") {
        const deadline = Date.now() + 120_000;
        for (;;) {
          const status = await running.status().catch(() => null);
          if (status && status.sinks.every((s) => s.ready) && status.sources.every((s) => s.ready)) break;
          if (running.exitStatus || Date.now() > deadline) break;
          await sleep(200);
        }
      } else if (kill.kind === "snapshot") {
        // A snapshot that finished before the last kill is not run again: then this one is a random kill.
        if (!(await snapshotStarted(running, 8_000))) {
          log(`${label}: no snapshot rows read within 8 s (no snapshot running); a random kill instead`);
          kind = "random";
        }
      } else if (kill.kind === "big-commit") {
        await withTimeout(workload.bigCommit(), 300_000, "a big transaction to commit");
      }
      await sleep(kill.delayMs);
      checkAlive(running, label);
      const status = await running.status().catch(() => null);
      await running.kill();
      killKinds[kind] = (killKinds[kind] ?? 0) + 1;
      const sinks = status?.sinks.map((s) => `${s.name.replace(/_.*/, "")} ${s.ready ? "ready" : "not ready"} lag ${s.lagRecords}`).join(", ");
      log(`${label}: killed at position ${status?.sources[0]?.position?.commit ?? "-"} (${sinks ?? "no status"}), ${workload.counts.transactions} transactions so far`);
      if (configuration === "embedded-duckdb") await sampleDuck(`after ${label} at ${new Date().toISOString().slice(11, 23)}`);
      await sleep(kill.restartDelayMs);
      daemon = await SluiceDaemon.start(dir, config, `run${i + 1}`, { env: DAEMON_ENV });
    }

    await workload.stop();
    log(`workload: ${JSON.stringify(workload.counts)}`);
    const last: SluiceDaemon = daemon;
    await waitCaughtUpAll(last, client, config.sinks.length, 1_800_000);
    checkAlive(last, "catching up");

    const verdicts = new Map<string, Verdict>();
    const expectedRows = new Map<string, CanonicalTable>();
    for (const def of tables) expectedRows.set(def.name, await readPostgres(client, def));
    const sinkFigures: SinkFigures[] = [];
    if (configuration === "embedded-duckdb") {
      await last.stop();
      daemon = null;
      await sampleDuck("at the end");
      const read = await readDuckDb(duckPath, tables.map((def) => ({ def, target: target(def) })));
      const verdict = emptyVerdict();
      for (const [i, def] of tables.entries()) judge(`duckdb ${def.name}`, expectedFor("duckdb", def, expectedRows.get(def.name)!), read[i]!.rows, verdict);
      verdicts.set("duckdb", verdict);
    } else {
      // Caught up (every offset committed); the last restart's sinks may still be re-applying a redelivered batch: a few tries.
      for (let attempt = 1; ; attempt++) {
        const ch = emptyVerdict();
        const es = emptyVerdict();
        for (const def of tables) {
          const rows = expectedRows.get(def.name)!;
          judge(`clickhouse ${def.name}`, expectedFor("clickhouse", def, rows), await readClickHouse(chDatabase, target(def), def), ch);
          judge(`elasticsearch ${def.name}`, expectedEsIds(def, expectedFor("elasticsearch", def, rows)), await readElasticsearch(target(def), def), es);
        }
        verdicts.set("clickhouse", ch);
        verdicts.set("elasticsearch", es);
        const clean = [ch, es].every((v) => v.lost + v.extra + v.stale + v.wrong === 0);
        if (clean || attempt >= 6) break;
        await sleep(5_000);
      }
      sampling = false;
      await sampler;
      await sampleServers("at the end");
      checkAlive(last, "at the end");
      await last.stop();
      daemon = null;
    }
    for (const [sink, verdict] of verdicts) {
      const sinkWatches = [...watches.values()].filter((w) => w.label.startsWith(`${sink} `));
      sinkFigures.push({
        sink,
        ...verdict,
        samples: sinkWatches.reduce((n, w) => Math.max(n, w.samples), 0),
        backwards: sinkWatches.reduce((n, w) => n + w.backwards, 0),
        olderRev: sinkWatches.reduce((n, w) => n + w.olderRev, 0),
        cameBack: sinkWatches.reduce((n, w) => n + w.cameBack, 0),
        examples: [...verdict.examples, ...sinkWatches.flatMap((w) => w.examples)],
      });
    }
    if (sampleErrors > 0) log(`${sampleErrors} samples failed (a target not created yet, or a server busy)`);
    const sum = (f: (s: SinkFigures) => number) => sinkFigures.reduce((n, s) => n + f(s), 0);
    const figures: KillFigures = {
      configuration,
      seed: options.seed,
      kills: Object.entries(killKinds).reduce((a, [kind, n]) => a + (kind.endsWith(" outage") ? 0 : n), 0),
      killKinds,
      seconds: Math.round((Date.now() - started) / 1000),
      rowsCompared: sum((s) => s.compared),
      lost: sum((s) => s.lost),
      extra: sum((s) => s.extra),
      stale: sum((s) => s.stale),
      wrong: sum((s) => s.wrong),
      backwards: sum((s) => s.backwards),
      unexpectedExits,
      sinks: sinkFigures,
      workload: { ...workload.counts },
      examples: sinkFigures.flatMap((s) => s.examples),
      dir: null,
    };
    keepDir = figures.lost + figures.extra + figures.stale + figures.wrong + figures.backwards + unexpectedExits.length > 0;
    return keepDir ? { ...figures, dir } : figures;
  } catch (error) {
    keepDir = true;
    throw new Error(`${configuration} (seed ${options.seed}): ${error instanceof Error ? error.message : String(error)}\n(run directory kept: ${dir})`, { cause: error });
  } finally {
    sampling = false;
    await sampler.catch(() => undefined);
    await workload?.stop().catch(() => undefined);
    await killAllDaemons();
    await writerClient?.end().catch(() => undefined);
    if (client) {
      await dropPostgres(client, pgNames).catch((error: unknown) => log(`PostgreSQL cleanup failed: ${String(error)}`));
      await client.end().catch(() => undefined);
    }
    if (configuration === "kafka-clickhouse-es") {
      await deleteKafkaDeployment(deployment).catch((error: unknown) => log(`Kafka cleanup failed: ${String(error)}`));
      await dropClickHouseDatabase(chDatabase).catch(() => undefined);
      await deleteElasticIndices(`${schema}_`).catch(() => undefined);
      await deleteElasticOffsets(Object.values(sinkNames)).catch(() => undefined);
    }
    if (!keepDir) removeDir(dir);
  }
}
