import type { IncomingMessage, ServerResponse } from "node:http";
import { hostname } from "node:os";
import { getHeapStatistics } from "node:v8";
import { AggregatorRegistry } from "prom-client";
import { dataPaths } from "../config/file-paths.ts";
import { applyKeyCacheSize, plannedKeyCacheSize } from "../config/key-cache.ts";
import { applyMemoryPlan, captureBatchBytes, planMemory, STANDALONE_READ_AHEAD_BYTES } from "../config/memory.ts";
import type { MemoryPlan } from "../config/memory.ts";
import type { SluiceConfig, SourceConfig } from "../config/schema.ts";
import type { Source, TableSnapshotProgress, TopicLog } from "../connectors/contracts.ts";
import { formatPosition } from "../connectors/common/position-text.ts";
import { SluiceError } from "../connectors/errors.ts";
import { lostTopicPolicyOf, openTopicLog } from "../connectors/topics/open.ts";
import { createRegistryHandler, TransactionMetadataEncoder } from "../schema-registry/index.ts";
import { AccessPolicy } from "./admin-auth.ts";
import type { ApiTokens } from "./admin-auth.ts";
import { retry } from "../runtime/backoff.ts";
import { durationFromEnv } from "../runtime/env-duration.ts";
import { CapturePipeline } from "./capture.ts";
import { captureEncoder, createSource, dataTopicPrefix, dataTopicSpec, internalTopicSpec, messageDeadLetterTopicSpec, openRegistry, parkingTopic, preloadSources, sinkGroupName, sinkTopics, sourceDeadLetterTopicSpec, sourceStateDir } from "./components.ts";
import { declareDeadLetterTopics } from "./dead-letter-topics.ts";
import { reportUncompactedTopics } from "./topic-policy.ts";
import { haltedHandler } from "./halted-admin.ts";
import { withOutbox } from "./outbox-router.ts";
import { dataCheckDeadLetterTopic, DataChecks, withDataChecks } from "./governance/data-checks.ts";
import { snapshotHandler } from "./snapshot-admin.ts";
import { RecreatedTopics } from "./recreated-topics.ts";
import { etaSeconds, progressEntries } from "./snapshot-progress.ts";
import { sinkRebuildEntry } from "./interrupted-rebuilds.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";
import { REBUILD_UNKNOWN_TABLE } from "./rebuild-tables.ts";
import { REBUILD_RUNNING } from "./rebuild-abandon.ts";
import { REBUILD_SINK_SHARED } from "./rebuild-sharing.ts";
import type { SnapshotTarget } from "./snapshot-admin.ts";
import type { OnlineSnapshotting } from "../connectors/common/incremental-snapshot-state.ts";
import type { ReleasableCapture } from "./halted-admin.ts";
import type { CaptureSkipThrough, HaltAction } from "./halted.ts";
import { personalTables, sharedKeyStore } from "./governance/personal-data.ts";
import { ParkedPersonalData, warnTransformsUnsealed } from "./governance/parked-personal.ts";
import { HttpServer, methodsAllowed, sendJson } from "./http-server.ts";
import type { MethodsAllowed } from "./http-server.ts";
import { sharedRun } from "./shared-run.ts";
import { optionalFlag, optionalNameList, readJsonObject } from "./request-body.ts";
import type { BodyReader } from "./request-body.ts";
import { readTlsCredentials } from "./http-tls.ts";
import type { Logger } from "../runtime/logger.ts";
import { cgroupMemoryLimit, type CgroupMemoryLimit } from "../runtime/cgroup-memory.ts";
import { observeCommitStages, SluiceMetrics } from "./metrics.ts";
import { DEFAULT_QUERY_CONCURRENCY, queryHandler } from "./sink-query.ts";
import { apiAddress, sinkNotHere } from "./sink-elsewhere.ts";
import { SinkThread } from "./sink-thread.ts";
import { releaseHeapFlags, reportMemoryPlan } from "./memory-report.ts";
import { SLUICE_VERSION } from "./version.ts";
import { CaptureLeadership } from "./capture-leadership.ts";
import type { CaptureRole } from "./capture-leadership.ts";
import { runTermCaptures } from "./term-captures.ts";
import { announcedHalts, InstanceDirectory } from "./instances.ts";
import { settingsNeedingRestart } from "./config-changes.ts";
import type { InstanceReport } from "./instances.ts";
import { captureWriter, everything } from "./roles.ts";
import type { RunSelection } from "./roles.ts";
import { reloadingOnMiss } from "./registry-refresh.ts";
import { captureLeaseGroup, outboxMessageDeadLetterTopic } from "../connectors/topics/names.ts";
import { watchSourceSecretFiles } from "./source-secret-files.ts";
import { reportKafkaAuthentications } from "./kafka-auth-report.ts";
import { kafkaCredentialsAccepted } from "../connectors/kafka/kafka-auth.ts";
import type { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import type { LocalRegistry, SchemaRegistry } from "../schema-registry/index.ts";
import type { RegistrySetup } from "./components.ts";
import { startTerm } from "./term-start.ts";
import { CoalescedRead, within } from "./coalesced-read.ts";
import type { CompletedRead } from "./coalesced-read.ts";
import { PUBLICATION_INCOMPLETE, sourceWarnings } from "../connectors/common/source-warnings.ts";

/** Kafka's session timeout of a capture lease: how long a dead or frozen leader keeps it before a standby takes over. */
const leaseSessionMs = (): number => durationFromEnv("SLUICE_CAPTURE_LEASE_SESSION_MS", 10_000, { min: 1_000, max: 3_600_000 });
/** How often each process announces itself to the deployment (/status shows every process). */
const ANNOUNCE_INTERVAL_MS = 5_000;

function isKafkaLog(log: TopicLog | null): log is KafkaTopicLog {
  return log?.kind === "kafka";
}

export function splitHostPort(listen: string): { host: string; port: number } {
  const colon = listen.lastIndexOf(":");
  return { host: listen.slice(0, colon).replace(/^\[(.*)\]$/, "$1"), port: Number(listen.slice(colon + 1)) };
}

/** PostgreSQL sources report their replication slot's lag. */
interface SlotMetricsSource {
  slotMetrics(): Promise<{ lagBytes: number; retainedBytes: number } | null>;
}

/**
 * Longest wait for anything /status and /metrics ask another party (a sink's lag from the topic log, a sink thread's
 * metrics and heap, a slot's lag from the database): an unreachable server or a busy thread leaves that figure out
 * ("unknown") instead of holding the scrape, and the operator's view, until it answers.
 */
const LAG_QUERY_MS = 2_000;

/** `work`'s result, or `fallback` when it fails or takes longer than LAG_QUERY_MS. */
async function withinQueryDeadline<T>(work: Promise<T>, fallback: T): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<T>((resolve) => (timer = setTimeout(() => resolve(fallback), LAG_QUERY_MS)));
  try {
    return await Promise.race([work.catch(() => fallback), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Longest /status waits for a sink's lag read after it was asked. Past it the answer gives lagRecords null and the
 * last lag read (lastLag, with its age) instead: an operator or a probe gets an answer in about this time however
 * busy the topic log is (a Kafka lag is a group offsets fetch and two ListOffsets a topic, answered only when the
 * main thread turns its event loop).
 */
const STATUS_LAG_WAIT_MS = 750;

/** A lag read earlier, for an answer that could not wait for a new one. */
function lastRead(read: CompletedRead<number> | null, now: number): { records: number; ageSeconds: number } | null {
  return read === null ? null : { records: read.value, ageSeconds: Math.max(0, (now - read.startedAt) / 1000) };
}

/** A value read after this call when it comes within STATUS_LAG_WAIT_MS, else the last one read (null: none yet). */
async function freshOrLast<T>(read: CoalescedRead<T>): Promise<T | null> {
  return (await within(read.fresh(), STATUS_LAG_WAIT_MS, null)) ?? read.last()?.value ?? null;
}

/** A topic log may say what it waits for (Kafka: the broker error of its last failed request). */
function logWaitingFor(log: TopicLog): string | null {
  return (log as Partial<{ waitingFor(): string | null }>).waitingFor?.() ?? null;
}

/** The tokens of the HTTP API a config gives. */
export function apiTokens(config: SluiceConfig): ApiTokens {
  const registry = config.schema_registry.kind === "builtin" ? config.schema_registry.token : undefined;
  return { admin: config.http.admin_token, read: config.http.read_token, registry };
}

/** The builtin registry's URL path on the HTTP server, or undefined when the registry is remote. */
function registryPath(config: SluiceConfig): string | undefined {
  return config.schema_registry.kind === "builtin" ? config.schema_registry.path : undefined;
}

function lagSeconds(now: number, thenMs: number | null): number | null {
  return thenMs === null ? null : Math.max(0, (now - thenMs) / 1000);
}

/** /status: since when a sink's server refuses its credentials (the sink waiting it out), or null. */
function credentialsRefusedEntry(sinceMs: number | null, now: number): { since: string; seconds: number } | null {
  return sinceMs === null ? null : { since: new Date(sinceMs).toISOString(), seconds: Math.max(0, Math.round((now - sinceMs) / 1000)) };
}

interface RunningCapture {
  readonly name: string;
  readonly source: Source;
  readonly pipeline: CapturePipeline;
  done: Promise<void>;
}

interface RunningSink {
  readonly name: string;
  readonly thread: SinkThread;
  readonly group: string;
  readonly topics: () => Promise<string[]>;
  done: Promise<void>;
}

/**
 * The running process: owns the HTTP server, the topic log, the registry, the capture pipelines
 * and the sink runners, and starts and stops them in order. Capture (its in-flight batch stored
 * and acknowledged) and the sinks (their batch applied) stop together, then the log closes; a
 * stop that does not finish within shutdown.timeout abandons the rest (see stop()).
 */
export class Daemon {
  readonly http: HttpServer;
  private readonly access: AccessPolicy;
  readonly metrics = new SluiceMetrics();
  private readonly config: SluiceConfig;
  /** The config as read at start, before the memory plan sized its parts: what a config read again at SIGHUP is compared with. */
  private readonly configAsRead: SluiceConfig;
  /** personal_data.key_cache_size as the memory budget sized it, null when it did not (config/key-cache.ts). */
  private readonly plannedKeyCache: number | null;
  /** How this process splits its memory budget between its threads and components. */
  readonly memory: MemoryPlan;
  /** The container's memory limit (cgroup) the plan was made under; without `memory` in the config the budget is sized from it. */
  private readonly containerLimit: CgroupMemoryLimit | null;
  private readonly logger: Logger;
  private readonly writeLogLine: (line: string) => void;
  private readonly captureStop = new AbortController();
  private log: TopicLog | null = null;
  /** Why the topic log could not be opened yet (the embedded log's disk full at the first start), for /readyz. */
  private logOpenWaiting: string | null = null;
  /** The built-in registry the HTTP API serves: the one opened at start, then each capture term's (which registers the capture's schemas). */
  private servedRegistry: LocalRegistry | null = null;
  /** Whether the served registry is the one this process's capture registers into: then it is current and never reloaded. */
  private servedIsCaptures = false;
  private servedReload: Promise<void> | null = null;
  private servedReloadedAt = 0;
  private captures: RunningCapture[] = [];
  /** Sources that connected in this process, across capture terms: a login refused afterwards is waited out (daemon/capture.ts). */
  private readonly connectedSources = new Set<string>();
  private sinks: RunningSink[] = [];
  private readonly sinkLags = new Map<string, CoalescedRead<number>>();
  private readonly slotLags = new Map<string, CoalescedRead<{ lagBytes: number; retainedBytes: number }>>();
  /** What this process runs of the config (`sluice run --role/--source/--sink`; default everything). */
  private readonly selection: RunSelection;
  /** sluice run --accept-lost-topics: internal topics deleted while Sluice was stopped are created again, their loss accepted (connectors/kafka/lost-internal-topics.ts). */
  private readonly acceptLostTopics: boolean;
  /** This process in the deployment: host and process id. */
  readonly instanceId = `${hostname()}:${process.pid}`;
  private readonly startedAt = new Date().toISOString();
  private readonly releasableSources = new Map<string, ReleasableCapture>();
  /** Data checks per captured source (governance), for /status. */
  private readonly dataChecks = new Map<string, DataChecks>();
  /** Data topics created again after a deletion while capture wrote: their tables' snapshots asked for, and warned in /status. */
  private readonly recreatedTopics: RecreatedTopics;
  /** With Kafka: capture runs under the capture lease (leader or standby). */
  private leadership: CaptureLeadership | null = null;
  /** Parking topics being created while the start waits for the capture lease, by name: whether the creation succeeded. */
  private readonly parkingCreated = new Map<string, Promise<boolean>>();
  /** A term's sources, made when its lease is granted and preparing (Source.prepare) while the term fences and takes the slots; createCaptures takes them. */
  private readonly termSources = new Map<string, Source>();
  /** A term's registry, read from the journal once the term has fenced the former leader, while it takes the slots (term-start.ts); lead takes it. */
  private termRegistry: Promise<RegistrySetup> | null = null;
  private leading: Promise<void> = Promise.resolve();
  /** Whether the leadership runs its terms (its candidacy starts earlier, as soon as the topic log is open). */
  private leadershipRunning = false;
  private instances: InstanceDirectory | null = null;
  /** This process's admin API as the instance reports give it, for a request for a sink that runs elsewhere. */
  private apiAddress: string | undefined;
  private started = false;
  private fatal: ((error: unknown) => void) | null = null;
  /** Called as snapshots progress, e.g. for a live display on a terminal. */
  onSnapshotProgress: ((source: string, progress: readonly TableSnapshotProgress[]) => void) | null = null;
  /** Set by `sluice run` on a terminal: a sink's rebuild progress as it changes. */
  onRebuildProgress: ((progress: RebuildProgress) => void) | null = null;
  /** Rejects with the first error that stops a component for good (e.g. a missing replication slot). */
  readonly failed: Promise<never>;

  /** `writeLogLine` takes the JSON log lines of the sink threads (default: standard output). */
  constructor(config: SluiceConfig, logger: Logger, options: { writeLogLine?: (line: string) => void; selection?: RunSelection; acceptLostTopics?: boolean } = {}) {
    this.selection = options.selection ?? everything(config);
    this.acceptLostTopics = options.acceptLostTopics ?? false;
    // Every component below reads its share of the memory budget from the config (config/memory.ts).
    this.containerLimit = cgroupMemoryLimit();
    this.memory = planMemory(config, this.selection, undefined, this.containerLimit?.bytes ?? null);
    this.plannedKeyCache = plannedKeyCacheSize(config, this.memory, this.selection);
    this.config = applyKeyCacheSize(applyMemoryPlan(config, this.memory), this.memory, this.selection);
    this.configAsRead = config;
    this.logger = logger;
    watchSourceSecretFiles(logger, this.metrics);
    reportKafkaAuthentications(logger, this.metrics);
    this.writeLogLine = options.writeLogLine ?? ((line) => process.stdout.write(line));
    this.failed = new Promise<never>((_resolve, reject) => (this.fatal = reject));
    this.recreatedTopics = new RecreatedTopics({
      deployment: config.name,
      sources: config.sources.map((s) => s.name),
      snapshots: (source) => {
        const target = this.snapshotTarget(source);
        if (target === undefined) return `source "${source}" is not captured by this process now`;
        return "unsupported" in target ? target.unsupported : target.snapshots;
      },
      logger,
    });
    this.failed.catch(() => undefined);
    this.access = new AccessPolicy({
      // /readyz/leader is a probe (a Service reaching the capture leader) like /readyz, and tells nothing more.
      publicPaths: ["/healthz", "/readyz", "/readyz/leader", ...(config.metrics.enabled ? [config.metrics.path] : [])],
      registryPrefix: registryPath(config),
      tokens: apiTokens(config),
      hostNames: [config.http.listen, ...(config.http.public_listen ? [config.http.public_listen] : [])].map((listen) => splitHostPort(listen).host),
    });
    this.http = new HttpServer(logger, {
      maxBodyBytes: config.http.max_body_bytes,
      access: this.access,
      connections: { maxConnections: config.http.max_connections, headersTimeoutMs: config.http.headers_timeout, requestTimeoutMs: config.http.request_timeout },
    });
    this.http.route("GET", "/healthz", (_req, res) => sendJson(res, 200, { status: "ok", version: SLUICE_VERSION }));
    this.http.route("GET", "/readyz", (_req, res) => {
      const status = this.readiness();
      sendJson(res, status.ready ? 200 : 503, status);
    });
    // 200 only on the process leading the capture (ready, holding the capture lease): e.g. for a Service that must reach the leader.
    this.http.route("GET", "/readyz/leader", (_req, res) => {
      const status = this.readiness();
      sendJson(res, status.ready && status.capture === "leader" ? 200 : 503, status);
    });
    // Error texts in the status (halts, waits) never carry a secret of the config.
    this.http.route("GET", "/status", async (_req, res) => sendJson(res, 200, await this.status(), { redactSecrets: true }));
    if (config.metrics.enabled) {
      // Open to anyone who reaches the daemon: requests that come while the metrics are gathered share that gathering and its bytes.
      const gather = sharedRun(async () => {
        await this.refreshGauges();
        const { contentType, body } = await this.renderMetrics();
        return { contentType, body: Buffer.from(body) };
      });
      this.http.route("GET", config.metrics.path, async (_req, res) => {
        const { contentType, body } = await gather();
        res.writeHead(200, { "content-type": contentType, "content-length": body.length });
        res.end(body);
      });
    }
  }

  /** Starts every stage; resolves with the HTTP address once the daemon is serving. */
  async start(): Promise<{ host: string; port: number }> {
    reportMemoryPlan(this.memory, this.logger.child({ component: "memory" }), undefined, this.containerLimit);
    const keyCacheSize = this.plannedKeyCache;
    if (keyCacheSize !== null) this.logger.child({ component: "memory" }).info({ keyCacheSize }, `subject key cache: ${keyCacheSize} keys per key store, from the memory budget (personal_data.key_cache_size sets it)`);
    releaseHeapFlags();
    this.metrics.memoryBudget.set(this.memory.budgetBytes);
    const { host, port } = splitHostPort(this.config.http.listen);
    const tls = readTlsCredentials(this.config);
    const address = await this.http.listen(host, port, { tls });
    let publicAddress: string | undefined;
    if (this.config.http.public_listen) {
      const open = splitHostPort(this.config.http.public_listen);
      const bound = await this.http.listen(open.host, open.port, { publicOnly: true });
      publicAddress = `${bound.address}:${bound.port}`;
    }
    this.logAccess(`${address.address}:${address.port}`, publicAddress, tls !== undefined);
    this.apiAddress = apiAddress(address, tls !== undefined);
    const capturing = this.selection.sources.length > 0;
    // Standby capture and sink-only processes register no transactional id until they write, so they never fence the leading capture.
    const writer = capturing ? captureWriter(this.config, this.selection) : `instance.${this.instanceId.replace(/[^A-Za-z0-9._-]/g, "_")}`;
    const readerLimits = this.memory.mainReader;
    this.log = await openTopicLog(this.config.topics, this.config.name, this.logger, this.captureStop.signal, writer, {
      lazyProducer: this.config.topics.kind === "kafka",
      lostTopics: lostTopicPolicyOf(this.config, this.acceptLostTopics),
      ...(readerLimits ? { readerLimits } : {}),
      onWaiting: (why) => (this.logOpenWaiting = why),
    });
    // A data topic deleted while capture wrote and created again: its table is read again (recreated-topics.ts).
    this.log.onTopicRecreated?.((topic) => void this.recreatedTopics.recreated(topic));
    // The capture lease's group join overlaps the rest of the start: a broker makes a group with no
    // members wait group.initial.rebalance.delay.ms (3 s by default) before it assigns the lease.
    if (capturing && isKafkaLog(this.log)) {
      this.leadership = this.captureLeadership(this.log);
      this.leadership.join();
      // Meanwhile, what the first term needs on its way to the first record: the sources' modules and their parking topics.
      const captured = this.config.sources.filter((s) => this.selection.sources.includes(s.name));
      preloadSources(captured);
      const log = this.log;
      for (const source of captured) {
        const parking = parkingTopic(this.config, source);
        // A failure here is met again, and waited out, where capture creates it.
        this.parkingCreated.set(parking, log.createTopic(internalTopicSpec(parking, this.config)).then(() => true, () => false));
      }
    }
    const { registry, local } = await openRegistry(this.config, this.log);
    const uncompacted = reportUncompactedTopics(this.log, this.config, registry, this.logger).catch((error: unknown) => {
      this.logger.warn({ err: error instanceof SluiceError ? error.toLog() : String(error) }, "could not check the data topics' cleanup policy; checking again at the next start");
      return [];
    });
    // The embedded log switches such a topic to compaction in place, before capture writes to it; with Kafka the check
    // only warns (topicNames and two requests per data topic), so capture does not wait for it.
    if (!isKafkaLog(this.log)) await uncompacted;
    if (local) {
      const settings = this.config.schema_registry;
      const prefix = settings.kind === "builtin" ? settings.path : "/registry";
      // Its token is checked by the HTTP server's access policy, with the API's own tokens.
      this.servedRegistry = local;
      this.http.mount(prefix, createRegistryHandler({ registry: () => this.servedRegistry ?? local, refresh: () => this.reloadServedRegistry(), prefix }));
    }
    await this.startParts(registry);
    this.instances = new InstanceDirectory({
      log: isKafkaLog(this.log) ? this.log : null,
      deployment: this.config.name,
      id: this.instanceId,
      report: () => this.instanceReport(),
      intervalMs: ANNOUNCE_INTERVAL_MS,
      logger: this.logger.child({ component: "instances" }),
    });
    this.instances.start();
    this.started = true;
    this.logger.info(
      { deployment: this.config.name, instance: this.instanceId, roles: this.selection.roles, http: `${address.address}:${address.port}`, topics: this.config.topics.kind, sources: this.selection.sources, sinks: this.selection.sinks, data_paths: this.dataPaths() },
      "sluice started",
    );
    // Started (ready) meanwhile: the check only warns.
    await uncompacted;
    return { host: address.address, port: address.port };
  }

  /** The data files this process opens, absolute: a relative one is from the working directory, not the config file's folder (config/file-paths.ts). */
  private dataPaths(): Record<string, string> {
    const used = dataPaths(this.config).filter((p) => p.sink === undefined || this.selection.sinks.includes(p.sink));
    return Object.fromEntries(used.map((p) => [p.key, p.resolved]));
  }

  private capturedSources(): SourceConfig[] {
    return this.config.sources.filter((s) => this.selection.sources.includes(s.name));
  }

  private newSource(sourceConfig: SourceConfig): Promise<Source> {
    return createSource(sourceConfig, this.logger.child({ source: sourceConfig.name }), {
      stateDir: sourceStateDir(this.config),
      schemaHistoryJournal: this.log?.schemaHistoryJournal,
      maxRecordBytes: this.config.topics.max_record_bytes,
      onSnapshotProgress: (progress) => {
        this.onSnapshotProgress?.(sourceConfig.name, progress);
        for (const table of progress) {
          this.metrics.snapshotRowsDone.set({ source: sourceConfig.name, table: table.table }, table.rowsDone);
          // A finished table's total is what was read, whatever the planner estimated.
          const total = table.state === "done" ? table.rowsDone : table.rowsEstimated;
          if (total !== null) this.metrics.snapshotRowsTotal.set({ source: sourceConfig.name, table: table.table }, total);
          this.metrics.snapshotRowsPerSecond.set({ source: sourceConfig.name, table: table.table }, table.state === "running" ? table.rowsPerSecond : 0);
          const eta = etaSeconds(table);
          if (eta !== null || table.state === "done") this.metrics.snapshotEtaSeconds.set({ source: sourceConfig.name, table: table.table }, eta ?? 0);
        }
      },
    });
  }

  /** Closes the term's sources createCaptures did not take (a term that ended before it ran). */
  private async closeTermSources(): Promise<void> {
    const left = [...this.termSources.values()];
    this.termSources.clear();
    await Promise.allSettled(left.map((source) => source.close()));
  }

  /** Creates the pipelines of the sources this process captures (this.captures), ready to run. */
  private async createCaptures(registry: SchemaRegistry): Promise<void> {
    if (!this.log) throw new TypeError("the topic log is opened before capture starts");
    this.captures = [];
    for (const sourceConfig of this.capturedSources()) {
      const logger = this.logger.child({ source: sourceConfig.name });
      // A prepared source stays among the term's sources until every capture is made: a failure meanwhile (e.g. the master
      // key unreadable) closes it there (closeTermSources). Taken out before, it kept its catalog connection open, and
      // the process ran on after "sluice stopped".
      const source = this.termSources.get(sourceConfig.name) ?? (await this.newSource(sourceConfig));
      const parking = parkingTopic(this.config, sourceConfig);
      const topicLog = this.log;
      // Created (or found) while the start waited for the lease: the first term does not ask again. Later terms do.
      const created = await this.parkingCreated.get(parking);
      this.parkingCreated.delete(parking);
      if (created !== true) await this.untilAvailable("creating the parking topic", () => topicLog.createTopic(internalTopicSpec(parking, this.config)));
      const transactionTopic = sourceConfig.transaction_metadata ? `${dataTopicPrefix(this.config.name, sourceConfig.name)}.transaction` : undefined;
      if (transactionTopic) await this.untilAvailable("creating the transaction topic", () => topicLog.createTopic(dataTopicSpec(this.config, transactionTopic, { keyed: false })));
      const transactionEncoder = transactionTopic ? await this.untilAvailable("registering the transaction topic's schemas", () => TransactionMetadataEncoder.register(registry, transactionTopic)) : undefined;
      this.dataChecks.get(sourceConfig.name)?.close();
      // Every checked row counts: the labelled counter is looked up once per table, not per row.
      const rowsChecked = new Map<string, { inc(rows: number): void }>();
      const checks = new DataChecks(sourceConfig.name, sourceConfig.governance, logger, {
        onRowsChecked: (table, rows) => {
          let counter = rowsChecked.get(table);
          if (!counter) {
            counter = this.metrics.dataCheckRows.labels({ source: sourceConfig.name, table });
            rowsChecked.set(table, counter);
          }
          counter.inc(rows);
        },
        onFailure: (table, check) => this.metrics.dataCheckFailures.inc({ source: sourceConfig.name, table, check }),
      });
      this.dataChecks.set(sourceConfig.name, checks);
      const checksTopic = dataCheckDeadLetterTopic(this.config.name, sourceConfig.name);
      const messagesTopic = outboxMessageDeadLetterTopic(this.config.name, sourceConfig.name);
      const deadLetterSpec = (topic: string) => (topic === messagesTopic ? messageDeadLetterTopicSpec(topic, this.config, sourceConfig) : sourceDeadLetterTopicSpec(topic, this.config, sourceConfig));
      await this.untilAvailable("declaring the source's dead-letter topics", () => declareDeadLetterTopics(topicLog, sourceConfig, [checksTopic, messagesTopic], deadLetterSpec));
      // Personal values of parked and dead-lettered changes: sealed with their subject's key, as in the data topics. Wired whenever
      // personal_data is set, personal tables or not: changes parked sealed before a table's personal config was removed are still opened.
      const parkedSealer = this.config.personal_data ? new ParkedPersonalData(sourceConfig, sharedKeyStore(this.config, this.log)) : undefined;
      if (!parkedSealer) warnTransformsUnsealed(sourceConfig, logger);
      const encoder = captureEncoder(this.config, sourceConfig, registry, this.log, (table) => this.metrics.schemaVersionsRegistered.inc({ source: sourceConfig.name, table }), logger);
      const checked = withDataChecks(
        checks,
        withOutbox(this.config, sourceConfig, encoder, this.log, registry, logger, {
          topic: checksTopic,
          messageTopic: messagesTopic,
          create: (topic) => this.untilAvailable("creating the source's dead-letter topic", () => topicLog.createTopic(deadLetterSpec(topic))),
          sealer: parkedSealer,
          onDeadLetter: (table, reason) => this.metrics.outboxDeadLettered.inc({ source: sourceConfig.name, table, reason }),
        }),
        checksTopic,
        () => this.untilAvailable("creating the data-check dead-letter topic", () => topicLog.createTopic(sourceDeadLetterTopicSpec(checksTopic, this.config, sourceConfig))),
        parkedSealer,
      );
      const pipeline = new CapturePipeline({
        source,
        log: this.log,
        // Personal data: the subjects' keys of a batch are created before its events are encoded.
        encoder: encoder.prepare ? { encode: (event) => checked.encode(event), encodeNow: (event) => checked.encodeNow?.(event), startBatch: () => checked.startBatch(), prepare: encoder.prepare } : checked,
        logger,
        parkingTopic: parking,
        ...(transactionTopic ? { transactionTopic, transactionEncoder } : {}),
        reconnect: { initialMs: 500, maxMs: 30_000 },
        maxRecordBytes: this.config.topics.max_record_bytes,
        // The plan's two capture batches of this source (config/memory.ts captureBatchBytes): what a third batch in flight must fit beside.
        inFlightBytes: 2 * captureBatchBytes(sourceConfig.max_buffer_bytes ?? STANDALONE_READ_AHEAD_BYTES),
        personalColumns: new Map([...personalTables(sourceConfig)].map(([table, personal]) => [table, personal.columns])),
        ...(parkedSealer ? { parkedSealer } : {}),
        connectedSources: this.connectedSources,
        takeover: this.leadership?.takingOver() ?? false,
        stats: {
          onBatch: (batch, _records, seconds, times) => {
            for (const { table, op, count } of batch.counts) this.metrics.changesCaptured.inc({ source: sourceConfig.name, table, op }, count);
            this.metrics.publishLatency.observe({ source: sourceConfig.name }, seconds);
            observeCommitStages(this.metrics.captureLatency, { source: sourceConfig.name }, batch.commitTimesMs, { captured: times.capturedMs, durable: times.durableMs });
            if (batch.lastCommitMs !== null) this.metrics.lastAckedCommitTime.set({ source: sourceConfig.name }, batch.lastCommitMs / 1000);
          },
          onHalt: (table, error) => {
            if (error.code.startsWith("SCHEMA_")) this.metrics.schemaChangesRejected.inc({ source: sourceConfig.name, table });
            this.metrics.captureHalts.inc({ source: sourceConfig.name, table, code: error.code });
            this.metrics.tablesHalted.set({ source: sourceConfig.name, sink: "", table }, 1);
          },
          onRelease: (table) => this.metrics.tablesHalted.set({ source: sourceConfig.name, sink: "", table }, 0),
        },
      });
      this.captures.push({ name: sourceConfig.name, source, pipeline, done: Promise.resolve() });
    }
    for (const c of this.captures) this.termSources.delete(c.name);
    this.releasableSources.clear();
    for (const c of this.captures) {
      this.releasableSources.set(c.name, { release: (table: string, action: HaltAction, execute: boolean, through?: CaptureSkipThrough | null) => c.pipeline.release(table, action, execute, this.captureStop.signal, through ?? null) });
    }
  }

  /**
   * Capture under the capture lease (a Kafka topic log): the process holding it captures, the others
   * stand by. Made as soon as the log is open, so the lease's group join overlaps the rest of the start.
   */
  private captureLeadership(log: KafkaTopicLog): CaptureLeadership {
    return new CaptureLeadership({
      logger: this.logger.child({ component: "capture-lease" }),
      newLease: (onChange) => log.captureLease({ group: captureLeaseGroup(this.config.name, captureWriter(this.config, this.selection) ?? "all"), holder: this.instanceId, sessionTimeoutMs: leaseSessionMs(), onChange }),
      beforeLead: async (signal) => {
        // Imported here: it loads the PostgreSQL client, which a process without a PostgreSQL source does not need.
        const { SlotTakeover } = await import("./slot-takeover.ts");
        try {
          const { registry } = await startTerm(
            {
              takeover: SlotTakeover.begin(this.config, this.selection, this.logger),
              // The sources connect and read their catalogs (reading only) meanwhile: what their connect needs before the checkpoint.
              prepareSources: async () => {
                for (const sourceConfig of this.capturedSources()) {
                  const source = await this.newSource(sourceConfig);
                  this.termSources.set(sourceConfig.name, source);
                  source.prepare?.();
                }
              },
              // Fence a former leader before anything is read (it may wake up and commit before it learns it lost the lease), then take its slot.
              fence: () => log.claimWriter(),
              // With what a former leader registered.
              readRegistry: () => openRegistry(this.config, log),
            },
            signal,
          );
          this.termRegistry = registry;
        } catch (error) {
          await this.closeTermSources();
          throw error;
        }
      },
      lead: async (signal) => {
        try {
          const reading = this.termRegistry ?? openRegistry(this.config, log);
          this.termRegistry = null;
          const opened = await reading;
          // Served over HTTP too: consumers look up the ids this term's capture registers (and their own registrations get ids after them).
          if (opened.local) [this.servedRegistry, this.servedIsCaptures] = [opened.local, true];
          await this.createCaptures(opened.registry);
        } catch (error) {
          await this.closeTermSources();
          throw error;
        }
        try {
          // A term's captures end together: one failing (e.g. fenced) ends the others.
          await runTermCaptures(this.captures.map((c) => (stop: AbortSignal) => c.pipeline.run(stop)), signal);
        } finally {
          await this.closeTermSources();
          this.captures = [];
          this.releasableSources.clear();
          this.servedIsCaptures = false;
          // A standby checks nothing (freshness included) until it leads again.
          for (const checks of this.dataChecks.values()) checks.close();
          this.dataChecks.clear();
        }
      },
    });
  }

  /** Starts the sinks this process runs and, beside them, capture (at once, or under the capture lease); mounts the HTTP handlers. */
  private async startParts(registry: SchemaRegistry): Promise<void> {
    // Schemas the capture registers after this process started (a capture elsewhere, or a former leader) are read again on demand.
    const sinkRegistry = this.config.schema_registry.kind === "builtin" ? reloadingOnMiss(registry, async () => (await openRegistry(this.config, this.log)).registry) : registry;
    const sinkConfigs = this.config.sinks.filter((s) => this.selection.sinks.includes(s.name));
    // The sink threads start (each loads its modules, opens its own topic log and its target) while capture starts below: neither waits for the other.
    const sinkStarts = sinkConfigs.map((sinkConfig) => {
      const { reader, heap } = this.memory.sinks[sinkConfig.name]!;
      return SinkThread.start({
        data: { config: this.config, sink: sinkConfig.name, owner: this.instanceId, kafkaAccepted: this.config.topics.kind === "kafka" && kafkaCredentialsAccepted(this.config.topics.sasl), ...(reader ? { reader } : {}) },
        registry: sinkRegistry,
        writeLogLine: this.writeLogLine,
        heap,
        onRebuildProgress: (progress) => this.onRebuildProgress?.(progress),
      });
    });
    for (const starting of sinkStarts) starting.catch(() => undefined);
    // Filled once the sink threads have started: the handlers look a sink up per request.
    const queryable = new Map<string, SinkThread>();
    const releasableSinks = new Map<string, SinkThread>();
    const elsewhere = (name: string) => this.sinkElsewhere(name);
    this.http.mount("/sinks", queryHandler(queryable, DEFAULT_QUERY_CONCURRENCY, elsewhere));
    this.http.mount("/sinks", (req, res, body) => this.handleRebuild(req, res, body));
    this.http.mount("/sinks", (req, res, body) => this.handleErase(req, res, body));
    const releasable = haltedHandler(releasableSinks, this.releasableSources, elsewhere);
    this.http.mount("/sinks", releasable);
    this.http.mount("/sources", releasable);
    this.http.mount("/sources", snapshotHandler((name) => this.snapshotTarget(name), () => this.captures.map((c) => c.name)));
    // Even when capture fails to start, the sink threads are settled and kept, so the stop that follows ends them.
    let sinkFailure: PromiseRejectedResult | undefined;
    try {
      if (this.leadership) {
        this.leadershipRunning = true;
        this.leading = this.supervise(`source ${this.selection.sources.join(", ")}`, this.leadership.run(this.captureStop.signal));
      } else {
        await this.createCaptures(registry);
        this.servedIsCaptures = this.selection.sources.length > 0 && registry === this.servedRegistry;
        for (const capture of this.captures) capture.done = this.supervise(`source ${capture.name}`, capture.pipeline.run(this.captureStop.signal));
      }
    } finally {
      const outcomes = await Promise.allSettled(sinkStarts);
      // Every sink thread settles before a failed one fails the start, so the stop that follows ends them all.
      for (const [index, outcome] of outcomes.entries()) {
        if (outcome.status === "rejected") continue;
        const sinkConfig = sinkConfigs[index]!;
        const thread = outcome.value;
        const topicLog = this.log!;
        this.sinks.push({
          name: sinkConfig.name,
          thread,
          group: sinkGroupName(this.config, sinkConfig),
          topics: async () => sinkTopics(this.config, sinkConfig, await topicLog.topicNames()),
          done: Promise.resolve(),
        });
        if (thread.queryable) queryable.set(sinkConfig.name, thread);
        releasableSinks.set(sinkConfig.name, thread);
      }
      sinkFailure = outcomes.find((o) => o.status === "rejected");
      if (!sinkFailure) for (const sink of this.sinks) sink.done = this.supervise(`sink ${sink.name}`, sink.thread.finished);
    }
    if (sinkFailure) throw sinkFailure.reason;
  }

  /**
   * A registry read missed in a process whose capture does not register into the served registry
   * (sinks only, a standby, a capture elsewhere): reads the journal again, at most once a second.
   */
  private async reloadServedRegistry(): Promise<void> {
    if (this.servedIsCaptures || !this.log) return;
    if (this.servedReload === null && Date.now() - this.servedReloadedAt < 1_000) return;
    const log = this.log;
    this.servedReload ??= openRegistry(this.config, log)
      .then((opened) => {
        if (opened.local && !this.servedIsCaptures) this.servedRegistry = opened.local;
        this.servedReloadedAt = Date.now();
      })
      .finally(() => (this.servedReload = null));
    await this.servedReload;
  }

  /** One line at start: who may call what, and where. */
  private logAccess(address: string, publicAddress: string | undefined, tls: boolean): void {
    const scheme = tls ? "https" : "http";
    const where = { admin: `${scheme}://${address}`, public: publicAddress ? `http://${publicAddress}` : `${scheme}://${address}` };
    const tokens = { admin: this.config.http.admin_token !== undefined, read: this.config.http.read_token !== undefined };
    if (this.access.loopbackOnly) {
      this.logger.warn(
        { ...where, tokens },
        `admin API without a token (no http.admin_token): /status, queries, rebuild, halted-table release and registry writes answer only clients on the loopback interface${tokens.read ? " (http.read_token grants the read-only ones)" : ""}; /healthz, /readyz and metrics are open`,
      );
    } else {
      this.logger.info({ ...where, tokens }, `admin API needs a bearer token${tokens.read ? " (http.admin_token, or http.read_token for read-only endpoints)" : " (http.admin_token)"}; /healthz, /readyz and metrics are open`);
    }
  }

  /**
   * Takes the tokens and certificate of a config read again (SIGHUP): requests from then on need
   * the new tokens, new connections get the new certificate. Other settings need a restart.
   */
  reloadCredentials(config: SluiceConfig): void {
    const tls = readTlsCredentials(config);
    const serving = this.config.http.tls !== undefined;
    if (tls && serving) this.http.setTlsCredentials(tls);
    this.access.setTokens(apiTokens(config));
    this.logger.info({ tokens: { admin: config.http.admin_token !== undefined, read: config.http.read_token !== undefined }, tls: serving }, "reloaded the HTTP API's tokens and certificate");
    const needRestart = settingsNeedingRestart(this.configAsRead, config);
    if (needRestart.length > 0) {
      this.logger.warn({ changed: needRestart }, `SIGHUP takes only the HTTP API's tokens and certificate; these changes of the config are not applied until the daemon is restarted: ${needRestart.join(", ")}`);
    }
    // The listeners are made at start: HTTPS turned on or off takes a restart.
    if ((tls !== undefined) !== serving) {
      this.logger.warn({ tls: serving }, `http.tls was ${serving ? "removed" : "added"} in the config: the HTTP API stays ${serving ? "HTTPS" : "plain HTTP"} until the daemon is restarted`);
    }
  }

  /** Retries a start-up step while the topic log is unavailable (e.g. Kafka restarting), until it succeeds or the daemon stops. */
  private untilAvailable<T>(what: string, operation: () => Promise<T>): Promise<T> {
    return retry(operation, {
      initialMs: 500,
      maxMs: 30_000,
      signal: this.captureStop.signal,
      onRetry: (error, attempt, delayMs) => this.logger.warn({ err: error instanceof SluiceError ? error.toLog() : String(error), attempt, delayMs }, `${what} failed; retrying`),
    });
  }

  /**
   * POST /sinks/<name>/rebuild {tables?}: a zero-downtime rebuild of a running sink (or of some of its tables); answers when swapped in.
   * POST /sinks/<name>/rebuild/abandon {tables?, execute?}: drops what an interrupted rebuild left (a dry run unless execute).
   */
  private async handleRebuild(req: IncomingMessage, res: ServerResponse, request: BodyReader): Promise<boolean | MethodsAllowed> {
    const match = /^\/sinks\/([^/]+)\/rebuild(\/abandon)?$/.exec((req.url ?? "").split("?")[0]!);
    if (!match) return false;
    if (req.method !== "POST") return methodsAllowed("POST");
    if (match[2] !== undefined) return this.handleAbandonRebuild(match[1]!, res, request);
    const name = decodeURIComponent(match[1]!);
    const running = this.sinks.find((s) => s.name === name);
    if (!running?.thread.rebuildable) {
      sendJson(res, 404, { error: (await this.sinkElsewhere(name)) ?? `no rebuildable sink "${name}"` });
      return true;
    }
    const body = await readJsonObject(request, '{"tables": ["schema.table", ...]}, or no body for every table', ["tables"]);
    const tables = optionalNameList(body, "tables", "schema.table names or topics");
    try {
      sendJson(res, 200, await running.thread.rebuild(tables ?? []));
    } catch (error) {
      const refused = error instanceof SluiceError && error.code === REBUILD_UNKNOWN_TABLE;
      const shared = error instanceof SluiceError && (error.code === REBUILD_SINK_SHARED || error.code === REBUILD_RUNNING);
      sendJson(res, refused ? 400 : shared ? 409 : 500, { error: error instanceof Error ? error.message : String(error) });
    }
    return true;
  }

  private async handleAbandonRebuild(encodedName: string, res: ServerResponse, request: BodyReader): Promise<boolean> {
    const name = decodeURIComponent(encodedName);
    const running = this.sinks.find((s) => s.name === name);
    if (!running?.thread.rebuildable) {
      sendJson(res, 404, { error: (await this.sinkElsewhere(name)) ?? `no rebuildable sink "${name}"` });
      return true;
    }
    const body = await readJsonObject(request, '{"tables": ["schema.table", ...], "execute": true}, or no body for a dry run of every table', ["tables", "execute"]);
    const tables = optionalNameList(body, "tables", "schema.table names");
    const execute = optionalFlag(body, "execute");
    try {
      sendJson(res, 200, await running.thread.abandonRebuild(tables ?? [], execute));
    } catch (error) {
      const refused = error instanceof SluiceError && (error.code === REBUILD_RUNNING || error.code === REBUILD_SINK_SHARED);
      sendJson(res, refused ? 409 : 500, { error: error instanceof Error ? error.message : String(error) });
    }
    return true;
  }

  /** POST /sinks/<name>/erase {source, subject}: `sluice forget` on a running sink; answers once the sink holds no personal value of the subject. */
  private async handleErase(req: IncomingMessage, res: ServerResponse, request: BodyReader): Promise<boolean | MethodsAllowed> {
    const match = /^\/sinks\/([^/]+)\/erase$/.exec((req.url ?? "").split("?")[0]!);
    if (!match) return false;
    if (req.method !== "POST") return methodsAllowed("POST");
    const name = decodeURIComponent(match[1]!);
    const running = this.sinks.find((s) => s.name === name);
    if (!running) {
      sendJson(res, 404, { error: (await this.sinkElsewhere(name)) ?? `sink "${name}" does not run in this process` });
      return true;
    }
    const expected = '{"source": "...", "subject": "..."}';
    const body = await readJsonObject(request, expected, ["source", "subject"]);
    const { source, subject } = body;
    if (typeof source !== "string" || typeof subject !== "string") {
      sendJson(res, 400, { error: `expected ${expected}` });
      return true;
    }
    // An unknown source erased nothing and answered 200 {rows: 0}, as if the subject had been forgotten.
    if (!this.config.sources.some((s) => s.name === source)) {
      sendJson(res, 400, { error: `source "${source}" is not one of this deployment's sources (${this.config.sources.map((s) => s.name).join(", ")})` });
      return true;
    }
    try {
      sendJson(res, 200, { rows: await running.thread.erase(source, subject) });
    } catch (error) {
      sendJson(res, 500, { error: error instanceof Error ? error.message : String(error) });
    }
    return true;
  }

  /** For a request naming a sink this process does not run: why, and where it runs (sink-elsewhere.ts); null when it runs here. */
  private async sinkElsewhere(name: string): Promise<string | null> {
    const placement = { configured: this.config.sinks.map((s) => s.name), here: this.selection.sinks, roles: this.selection.roles };
    if (placement.here.includes(name)) return null;
    return sinkNotHere(name, placement, (await this.instances?.instances().catch(() => [])) ?? []);
  }

  private supervise(what: string, running: Promise<void>): Promise<void> {
    return running.catch((error: unknown) => {
      const detail = error instanceof SluiceError ? error.toLog() : { message: String(error) };
      this.logger.error({ component: what, err: detail }, `${what} stopped: ${error instanceof Error ? error.message : String(error)}`);
      this.fatal?.(error);
    });
  }

  /** Ready when the log, every source and every sink are; `waiting` says what each component that is not ready waits for. */
  readiness(): { ready: boolean; log: boolean; capture: CaptureRole | null; sources: Record<string, boolean>; sinks: Record<string, boolean>; waiting: Record<string, string> } {
    const capture = this.captureRole();
    // A standby is ready: it captures nothing until it leads.
    const sources = capture === "standby" ? Object.fromEntries(this.selection.sources.map((name) => [name, true])) : Object.fromEntries(this.captures.map((c) => [c.name, c.pipeline.ready()]));
    const sinks = Object.fromEntries(this.sinks.map((s) => [s.name, s.thread.ready()]));
    const log = this.log?.ready() ?? false;
    const ready = this.started && log && Object.values(sources).every(Boolean) && Object.values(sinks).every(Boolean);
    const waiting: Record<string, string> = {};
    if (!log) waiting["topics"] = this.log ? (logWaitingFor(this.log) ?? `the ${this.config.topics.kind} topic log is not available`) : (this.logOpenWaiting ?? "the topic log is not open yet");
    for (const capture of this.captures) if (!sources[capture.name]) waiting[`source ${capture.name}`] = capture.pipeline.waitingFor() ?? "connecting";
    for (const sink of this.sinks) if (!sinks[sink.name]) waiting[`sink ${sink.name}`] = sink.thread.waitingFor() ?? "starting";
    return { ready, log, capture, sources, sinks, waiting };
  }

  /** Leader or standby when capture runs under the lease (Kafka); null when this process captures nothing or captures alone (embedded log). */
  private captureRole(): CaptureRole | null {
    // The lease is joined early in the start, but the process stands by (or leads) only once it runs the terms.
    if (!this.leadership || !this.leadershipRunning) return null;
    // Between terms (the lease just granted, captures not created yet) it still counts as standby.
    return this.leadership.role() === "leader" && this.captures.length > 0 ? "leader" : "standby";
  }

  /** What this process announces to the deployment. */
  private async instanceReport(): Promise<InstanceReport> {
    const now = Date.now();
    const role = this.captureRole();
    // The last lags read, not new reads: /status asks this report, and must not wait for a second read of each lag.
    const lags = this.sinks.map((s) => this.sinkLag(s).last()?.value ?? null);
    return {
      id: this.instanceId,
      host: hostname(),
      pid: process.pid,
      version: SLUICE_VERSION,
      roles: this.selection.roles,
      startedAt: this.startedAt,
      at: now,
      ...(this.apiAddress === undefined ? {} : { api: this.apiAddress }),
      sources: this.selection.sources.map((name) => {
        const running = this.captures.find((c) => c.name === name);
        const checkpoint = running?.pipeline.checkpoint();
        return {
          name,
          state: role ?? "capturing",
          ready: role === "standby" ? true : (running?.pipeline.ready() ?? false),
          position: running && checkpoint ? formatPosition(running.source.kind, checkpoint.position) : null,
          lagSeconds: running ? lagSeconds(now, running.pipeline.lastAckedCommitTime()) : null,
          ...announcedHalts((running?.pipeline.haltedTables() ?? []).map((h) => ({ table: h.table }))),
        };
      }),
      sinks: this.sinks.map((s, i) => ({
        name: s.name,
        ready: s.thread.ready(),
        partitions: s.thread.partitions(),
        lagRecords: lags[i] ?? null,
        ...announcedHalts(s.thread.haltedTables().map((h) => ({ table: h.table, at: `${h.topic}:${h.partition}:${h.recordOffset}` }))),
      })),
    };
  }

  /** Online snapshots of a source this process captures (sluice snapshot). */
  private snapshotTarget(name: string): SnapshotTarget | undefined {
    const running = this.captures.find((c) => c.name === name);
    if (running === undefined) return undefined;
    const snapshots = (running.source as { snapshots?: OnlineSnapshotting }).snapshots;
    const config = this.config.sources.find((s) => s.name === name);
    const server = config === undefined ? {} : { server: `${config.host}:${config.port}` };
    if (snapshots !== undefined) return { snapshots, waiting: () => (running.pipeline.ready() ? null : (running.pipeline.waitingFor() ?? null)), ...server };
    return { unsupported: `source "${name}" (${running.source.kind}) does not take online snapshots yet` };
  }

  /** Records each sink has yet to apply, or null when the topic log cannot say now. */
  private sinkLag(sink: RunningSink): CoalescedRead<number> {
    let read = this.sinkLags.get(sink.name);
    if (read === undefined) {
      // An unreachable Kafka answers only after the client's retries: no reader waits for it past the deadline.
      read = new CoalescedRead(async () => {
        const log = this.log;
        if (!log) return null;
        return withinQueryDeadline((async () => Number((await log.groupLag(sink.group, await sink.topics())).reduce((sum, p) => sum + p.lag, 0n)))(), null);
      });
      this.sinkLags.set(sink.name, read);
    }
    return read;
  }

  /** A PostgreSQL source's slot lag, read by one query at a time (the metrics gauges show the last one read). */
  private slotLag(capture: RunningCapture): CoalescedRead<{ lagBytes: number; retainedBytes: number }> {
    let read = this.slotLags.get(capture.name);
    if (read === undefined) {
      read = new CoalescedRead(() => withinQueryDeadline((capture.source as Partial<SlotMetricsSource>).slotMetrics?.() ?? Promise.resolve(null), null));
      this.slotLags.set(capture.name, read);
    }
    return read;
  }

  async status(): Promise<Record<string, unknown>> {
    const now = Date.now();
    const readiness = this.readiness();
    const standby = readiness.capture === "standby" ? this.selection.sources.filter((name) => !this.captures.some((c) => c.name === name)) : [];
    // The sources' positions before the sinks' lags: an answer showing a source past a position and a sink's lag at 0
    // then means the sink applied everything captured up to that position (read the other way round, capture could
    // store a batch between the two reads, and the answer would show its position with a lag measured before it).
    const sources = this.captures.map((c) => {
      const checkpoint = c.pipeline.checkpoint();
      return {
        name: c.name,
        kind: c.source.kind,
        ready: c.pipeline.ready(),
        waiting: c.pipeline.ready() ? null : (c.pipeline.waitingFor() ?? "connecting"),
        position: checkpoint ? { commit: checkpoint.position.commit.toString(), change: checkpoint.position.change.toString(), text: formatPosition(c.source.kind, checkpoint.position) } : null,
        lagSeconds: lagSeconds(now, c.pipeline.lastAckedCommitTime()),
        halted: c.pipeline.haltedTables(),
        dataChecks: this.dataChecks.get(c.name)?.failures() ?? [],
        warnings: [...sourceWarnings(c.source), ...this.recreatedTopics.warnings(c.name)],
        snapshots: progressEntries((c.source as { snapshotProgress?: () => readonly TableSnapshotProgress[] }).snapshotProgress?.() ?? []),
        ...(readiness.capture ? { state: readiness.capture } : {}),
      };
    }).concat(
      standby.map((name) => ({
        name,
        kind: this.config.sources.find((s) => s.name === name)!.kind,
        ready: true,
        waiting: null,
        position: null,
        lagSeconds: null,
        halted: [],
        dataChecks: [],
        warnings: [],
        snapshots: [],
        state: "standby" as const,
      })),
    );
    const lags = await Promise.all(this.sinks.map((s) => within(this.sinkLag(s).fresh(), STATUS_LAG_WAIT_MS, null)));
    return {
      deployment: this.config.name,
      version: SLUICE_VERSION,
      instance: { id: this.instanceId, roles: this.selection.roles, capture: readiness.capture, sources: this.selection.sources, sinks: this.selection.sinks },
      instances: (await this.instances?.instances(now)) ?? [],
      ready: readiness.ready,
      topics: { kind: this.config.topics.kind, ready: this.log?.ready() ?? false, waiting: this.log && !this.log.ready() ? (logWaitingFor(this.log) ?? null) : null },
      sources,
      sinks: this.sinks.map((s, i) => {
        const applied = s.thread.lastAppliedCommitTime();
        return {
          name: s.name,
          ready: s.thread.ready(),
          waiting: s.thread.waitingFor(),
          lagRecords: lags[i],
          lastLag: lags[i] === null ? lastRead(this.sinkLag(s).last(), now) : null,
          freshnessSeconds: lagSeconds(now, applied),
          credentialsRefused: credentialsRefusedEntry(s.thread.credentialsRefusedSince(), now),
          halted: s.thread.haltedTables(),
          partitions: s.thread.partitions(),
          rebuild: sinkRebuildEntry(s.name, s.thread.rebuildProgress(), s.thread.interruptedRebuild(), now),
        };
      }),
    };
  }

  private async refreshGauges(): Promise<void> {
    const now = Date.now();
    const main = getHeapStatistics();
    this.metrics.threadHeapUsed.set({ thread: "main" }, main.used_heap_size);
    this.metrics.threadHeapLimit.set({ thread: "main" }, main.heap_size_limit);
    const heaps = await Promise.all(this.sinks.map((s) => withinQueryDeadline(s.thread.heapStatistics(), null)));
    for (const [i, sink] of this.sinks.entries()) {
      const heap = heaps[i];
      if (!heap) continue;
      this.metrics.threadHeapUsed.set({ thread: `sink ${sink.name}` }, heap.used);
      this.metrics.threadHeapLimit.set({ thread: `sink ${sink.name}` }, heap.limit);
    }
    // Lags read for this scrape, all at once, waited for as long as /status waits; past that the last one read (the
    // read goes on for the next scrape): the topic log or the slot-lag query can take seconds on a busy deployment.
    const [slots, lags] = await Promise.all([
      Promise.all(this.captures.map((c) => freshOrLast(this.slotLag(c)))),
      Promise.all(this.sinks.map((s) => freshOrLast(this.sinkLag(s)))),
    ]);
    this.captures.forEach((capture, i) => {
      const slot = slots[i];
      if (!slot) return;
      this.metrics.slotLagBytes.set({ source: capture.name }, slot.lagBytes);
      this.metrics.slotRetainedBytes.set({ source: capture.name }, slot.retainedBytes);
    });
    for (const [i, sink] of this.sinks.entries()) {
      const lag = lags[i];
      if (lag !== null && lag !== undefined) this.metrics.sinkLagRecords.set({ sink: sink.name }, lag);
      const freshness = lagSeconds(now, sink.thread.lastAppliedCommitTime());
      if (freshness !== null) this.metrics.sinkFreshness.set({ sink: sink.name }, freshness);
    }
    for (const capture of this.captures) {
      if (capture.source.kind === "postgres") this.metrics.publicationIncomplete.set({ source: capture.name }, sourceWarnings(capture.source).some((w) => w.code === PUBLICATION_INCOMPLETE) ? 1 : 0);
      const lag = lagSeconds(now, capture.pipeline.lastAckedCommitTime());
      if (lag !== null) this.metrics.sourceLag.set({ source: capture.name }, lag);
    }
  }

  /** This thread's metrics merged with every sink thread's. */
  private async renderMetrics(): Promise<{ contentType: string; body: string }> {
    const snapshots = await Promise.all(this.sinks.map((s) => withinQueryDeadline(s.thread.metrics(), [])));
    if (snapshots.length === 0) return this.metrics.render();
    // Threads export disjoint series (each its own sink label; process metrics only here), so summing is a union;
    // prom-client's own aggregators would drop or average some process metrics (they assume one copy per worker).
    const union = [await this.metrics.registry.getMetricsAsJSON(), ...snapshots].map((metrics) => metrics.map((metric) => ({ ...metric, aggregator: "sum" as const })));
    const merged = AggregatorRegistry.aggregate(union);
    return { contentType: this.metrics.registry.contentType, body: await merged.metrics() };
  }

  /**
   * Stops capture (storing and acknowledging what is in flight) and the sinks (each finishing its
   * batch), then the log, then the HTTP server, within `timeoutMs`. What has not stopped by then
   * (e.g. a produce waiting for an unreachable Kafka) is abandoned: sink threads are ended and
   * connections dropped. That loses nothing: a source position is acknowledged only once its records are durable and a sink's
   * offsets are stored only with or after its batch, so the next start reads abandoned work again.
   * Resolves with the components abandoned (none after a complete stop).
   */
  async stop(reason: string, timeoutMs = Number.POSITIVE_INFINITY): Promise<{ abandoned: string[] }> {
    this.logger.info({ reason }, "sluice stopping");
    this.started = false;
    const pending = new Set([...(this.leadership ? ["capture"] : this.captures.map((c) => `source ${c.name}`)), ...this.sinks.map((s) => `sink ${s.name}`), ...(this.log ? ["topic log"] : []), "http server"]);
    const step = async (name: string, work: () => Promise<unknown>) => {
      await work().catch((error: unknown) => this.logger.warn({ component: name, err: error instanceof SluiceError ? error.toLog() : String(error) }, `stopping ${name} failed`));
      pending.delete(name);
    };
    const graceful = (async () => {
      this.captureStop.abort(new Error(`stopping: ${reason}`));
      // Sinks stop at the same time: a capture waiting for an unreachable Kafka must not keep them from finishing their batch.
      const leadership = this.leadership;
      // A candidacy the start made but never ran (the start failed first) leaves the lease's group too.
      const captures = leadership ? [step("capture", () => this.leading.then(() => leadership.close()))] : this.captures.map((c) => step(`source ${c.name}`, () => c.done));
      await Promise.all([...captures, ...this.sinks.map((s) => step(`sink ${s.name}`, () => s.thread.stop().then(() => s.done)))]);
      await this.instances?.close();
      const log = this.log;
      if (log) await step("topic log", () => log.close());
      await step("http server", () => this.http.close());
    })();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<"expired">((resolve) => {
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => resolve("expired"), Math.max(0, timeoutMs));
    });
    const outcome = await Promise.race([graceful.then(() => "stopped" as const), expired]);
    clearTimeout(timer);
    if (outcome === "stopped") {
      this.logger.info("sluice stopped");
      return { abandoned: [] };
    }
    const abandoned = [...pending];
    this.logger.warn(
      { timeoutMs, abandoned },
      `graceful shutdown timed out after ${timeoutMs} ms: abandoning ${abandoned.join(", ")}; nothing is lost (positions and offsets are stored only after the data is durable), the next start reads unacknowledged work again`,
    );
    await Promise.all(this.sinks.map((s) => s.thread.terminate()));
    this.http.dropConnections();
    return { abandoned };
  }
}
