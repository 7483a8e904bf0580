/**
 * Shared helpers for the end-to-end tests: the real daemon as a child process (`sluice run` on a
 * free port with a temporary config), bounded waits on its /status with the log tail in every
 * failure, a seeded random workload on PostgreSQL, and readers that turn a table's rows in
 * PostgreSQL, DuckDB, ClickHouse and Elasticsearch into one canonical text form so they can be
 * compared value by value (see CANONICAL FORMS below).
 *
 * Every test file creates its own random names (schema, source → slot `sluice_<source>`,
 * publication, deployment → topics and consumer groups, ClickHouse database, Elasticsearch targets)
 * and removes them at the end (replication slots above all: a forgotten slot pins WAL for ever).
 */
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { createHash, randomBytes, randomInt } from "node:crypto";
import { createWriteStream, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import type { WriteStream } from "node:fs";
import { connect, createServer } from "node:net";
import type { Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import type { ChangeEvent } from "../../connectors/contracts.ts";
import { parseTsv, unescapeField } from "../../connectors/clickhouse/tsv.ts";
import { decodeJson } from "../../connectors/elasticsearch/json.ts";
import { clickhouse, elasticsearch, mariadb, postgres } from "../services/ports.ts";
import { recordTestName } from "../services/test-names.ts";

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
const SLUICE = join(REPO, "daemon/sluice.js");

// ---------------------------------------------------------------------------------------------
// names, temp dirs, ports

/** A name no other run uses, recorded in the ledger of test names (test/services/test-names.ts) for the sweep. */
export function randomName(prefix: string): string {
  return recordTestName(`${prefix}_${randomBytes(5).toString("hex")}`);
}

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `sluice-e2e-${prefix}-`));
}

export function removeDir(dir: string): void {
  if (process.env["SLUICE_E2E_KEEP"]) return;
  rmSync(dir, { recursive: true, force: true });
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * A TCP proxy on a fixed loopback port in front of a real server, to take the server "down"
 * for one client without touching the server other tests share: `down()` stops listening and
 * cuts every connection (clients see connection refused), `up()` listens on the same port again.
 */
export class TcpProxy {
  readonly port: number;
  readonly target: { host: string; port: number };
  #server: Server | null = null;
  readonly #sockets = new Set<Socket>();
  connections = 0;

  private constructor(port: number, target: { host: string; port: number }) {
    this.port = port;
    this.target = target;
  }

  static async start(target: { host: string; port: number }): Promise<TcpProxy> {
    const proxy = new TcpProxy(await freePort(), target);
    await proxy.up();
    return proxy;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async up(): Promise<void> {
    if (this.#server) return;
    const server = createServer((client) => {
      this.connections++;
      const upstream = connect(this.target.port, this.target.host);
      for (const socket of [client, upstream]) {
        this.#sockets.add(socket);
        socket.on("close", () => this.#sockets.delete(socket));
        socket.on("error", () => undefined);
      }
      client.pipe(upstream);
      upstream.pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolveListen, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolveListen());
    });
    this.#server = server;
  }

  async down(): Promise<void> {
    const server = this.#server;
    this.#server = null;
    if (!server) return;
    const closed = new Promise<void>((r) => server.close(() => r()));
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }
}

// ---------------------------------------------------------------------------------------------
// seeded randomness: every test prints its seed; SLUICE_E2E_SEED=<n> replays a run's workload

export class Rng {
  readonly seed: number;
  #state: number;
  constructor(seed?: number) {
    const fromEnv = process.env["SLUICE_E2E_SEED"];
    this.seed = seed ?? (fromEnv ? Number(fromEnv) : randomBytes(4).readUInt32LE(0));
    this.#state = this.seed >>> 0 || 1;
  }
  /** [0, 1), mulberry32. */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }
  chance(p: number): boolean {
    return this.next() < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.next() * items.length)]!;
  }
  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }
  bigint64(): bigint {
    return BigInt.asIntN(64, (BigInt(this.int(0, 0xffffffff)) << 32n) | BigInt(this.int(0, 0xffffffff)));
  }
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/** An admin connection that returns every value as the server's text (no parsing in node-postgres). */
export async function pgClient(): Promise<pg.Client> {
  const client = new pg.Client({ ...postgres, types: { getTypeParser: () => (text: string) => text } });
  client.on("error", () => undefined);
  await client.connect();
  await client.query("SET TIME ZONE 'UTC'");
  return client;
}

export function lsnToBigInt(lsn: string): bigint {
  const [hi, lo] = lsn.split("/");
  return (BigInt(`0x${hi}`) << 32n) | BigInt(`0x${lo}`);
}

export async function currentLsn(client: pg.Client): Promise<bigint> {
  const result = await client.query<{ lsn: string }>("SELECT pg_current_wal_lsn()::text AS lsn");
  return lsnToBigInt(result.rows[0]!.lsn);
}

/** A postgres source of the test database (heartbeats every second, so positions pass quiet stretches quickly). */
export function pgSourceConfig(name: string, tablePatterns: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: "postgres",
    name,
    host: postgres.host,
    port: postgres.port,
    user: postgres.user,
    password: postgres.password,
    database: postgres.database,
    tables: tablePatterns,
    heartbeat_interval: "1s",
    ...extra,
  };
}

/** A MariaDB source on the test server with a server id of its own (replicas of one server need distinct ids). */
export function mysqlSourceConfig(name: string, tablePatterns: string[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    kind: "mysql",
    name,
    host: mariadb.host,
    port: mariadb.port,
    user: mariadb.user,
    password: mariadb.password,
    server_id: randomInt(10_000, 2 ** 31),
    tables: tablePatterns,
    heartbeat_interval: "1s",
    ...extra,
  };
}

/** Drops the slot (waiting up to 20 s for its walsender to let go, then terminating it), the publication and the schema. */
export async function dropPostgres(client: pg.Client, names: { slot: string; publication: string; schema?: string }): Promise<void> {
  for (let attempt = 0; attempt < 100; attempt++) {
    const row = (await client.query<{ active: string; pid: string | null }>("SELECT active::text, active_pid::text AS pid FROM pg_replication_slots WHERE slot_name = $1", [names.slot])).rows[0];
    if (row === undefined) break;
    if (row.active === "true") {
      if (attempt > 40 && row.pid) await client.query("SELECT pg_terminate_backend($1::int)", [row.pid]).catch(() => undefined);
      await sleep(200);
      continue;
    }
    await client.query("SELECT pg_drop_replication_slot($1)", [names.slot]).catch(() => undefined);
  }
  await client.query(`DROP PUBLICATION IF EXISTS "${names.publication}"`);
  if (names.schema) await client.query(`DROP SCHEMA IF EXISTS "${names.schema}" CASCADE`);
  const left = await client.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", [names.slot]);
  assert.equal(left.rowCount, 0, `replication slot ${names.slot} could not be dropped`);
}

// ---------------------------------------------------------------------------------------------
// the daemon as a child process

export interface SourceStatus {
  name: string;
  ready: boolean;
  position: { commit: string; change: string } | null;
  lagSeconds: number | null;
  halted: { table: string; error: string; code: string; since: string }[];
  snapshots?: { table: string; state: "pending" | "running" | "done" }[];
}
export interface SinkStatus {
  name: string;
  ready: boolean;
  lagRecords: number | null;
  freshnessSeconds: number | null;
  halted: { topic: string; table: string; error: string; offset: string }[];
}
export interface Status {
  deployment: string;
  ready: boolean;
  sources: SourceStatus[];
  sinks: SinkStatus[];
}

const LOG_TAIL_LINES = 60;

/** Extra `sluice run` arguments (e.g. `--role sinks`) and environment variables of a daemon. */
export interface DaemonOptions {
  readonly args?: readonly string[];
  readonly env?: Readonly<Record<string, string>>;
  /** Another checkout's daemon/sluice.js (benchmarks comparing two versions); default this one's. */
  readonly entry?: string;
  /** A source or sink is expected to stop for good at start: start resolves once /healthz answers or one has stopped. */
  readonly expectStopped?: boolean;
}

/** `sluice run -c <temp config>` as a child process, its output kept in a file and a ring buffer. */
export class SluiceDaemon {
  readonly configFile: string;
  readonly port: number;
  readonly logFile: string;
  readonly url: string;
  readonly child: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  #tail: string[] = [];
  #fatal: string | null = null;
  #started = false;
  #exit: { code: number | null; signal: NodeJS.Signals | null } | null = null;
  #out: WriteStream;

  private constructor(configFile: string, port: number, logFile: string, options: DaemonOptions = {}) {
    this.configFile = configFile;
    this.port = port;
    this.logFile = logFile;
    this.url = `http://127.0.0.1:${port}`;
    this.#out = createWriteStream(logFile, { flags: "a" });
    this.child = spawn(process.execPath, [options.entry ?? SLUICE, "run", "-c", configFile, ...(options.args ?? [])], {
      cwd: dirname(configFile),
      stdio: ["ignore", "pipe", "pipe"],
      ...(options.env ? { env: { ...process.env, ...options.env } } : {}),
    });
    let partial = "";
    const onData = (chunk: Buffer) => {
      this.#out.write(chunk);
      const lines = (partial + chunk.toString("utf8")).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) {
        this.#tail.push(line.length > 2000 ? `${line.slice(0, 2000)}…` : line);
        // The daemon logs "<component> stopped: …" when a source or sink stops for good (and keeps running).
        if (this.#fatal === null && /"msg":"(source|sink) [^"]* stopped: /.test(line)) this.#fatal = line;
        if (!this.#started && line.includes('"msg":"sluice started"')) this.#started = true;
        // A leak the daemon's exit backstop covered: not a failure, but shown so it can be found (daemon/cli.ts).
        if (line.includes("still held the process open")) process.stderr.write(`# ${configFile}: ${line}\n`);
      }
      if (this.#tail.length > 4 * LOG_TAIL_LINES) this.#tail.splice(0, this.#tail.length - LOG_TAIL_LINES);
    };
    this.child.stdout!.on("data", onData);
    this.child.stderr!.on("data", onData);
    this.exited = new Promise((resolveExit) => {
      this.child.once("exit", (code, signal) => {
        this.#exit = { code, signal };
        this.#out.end();
        resolveExit({ code, signal });
      });
    });
  }

  /** Writes `config` (JSON is YAML) with `http.listen` on a free port into `dir` and starts the daemon; resolves once /healthz answers. */
  static async start(dir: string, config: Record<string, unknown>, label = "sluice", options: DaemonOptions = {}): Promise<SluiceDaemon> {
    const port = await freePort();
    const configFile = join(dir, `${label}.yaml`);
    writeFileSync(configFile, JSON.stringify({ ...config, http: { listen: `127.0.0.1:${port}` } }, null, 2));
    const daemon = new SluiceDaemon(configFile, port, join(dir, `${label}.log`), options);
    RUNNING.add(daemon);
    void daemon.exited.then(() => RUNNING.delete(daemon));
    const answered = async () => (options.expectStopped === true && daemon.fatalLine !== null) || (await daemon.get("/healthz").catch(() => null))?.status === 200 || undefined;
    await waitFor("the daemon to answer /healthz", answered, { daemon, timeoutMs: 60_000, intervalMs: 100, allowStopped: options.expectStopped === true });
    return daemon;
  }

  get exitStatus(): { code: number | null; signal: NodeJS.Signals | null } | null {
    return this.#exit;
  }

  /** The first log line saying a source or sink stopped for good, if any. */
  get fatalLine(): string | null {
    return this.#fatal;
  }

  logTail(lines = LOG_TAIL_LINES): string {
    return this.#tail.slice(-lines).join("\n");
  }

  async get(path: string): Promise<Response> {
    return fetch(`${this.url}${path}`, { signal: AbortSignal.timeout(10_000) });
  }

  /** Whether the daemon logged "sluice started": its sources and sinks are all in /status from then on. */
  get hasStarted(): boolean {
    return this.#started;
  }

  async status(): Promise<Status> {
    const response = await this.get("/status");
    assert.equal(response.status, 200, `GET /status answered ${response.status}`);
    return (await response.json()) as Status;
  }

  async metrics(): Promise<string> {
    return (await this.get("/metrics")).text();
  }

  /** Sum of a metric's samples whose labels contain every given label. */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    return metricValue(await this.metrics(), name, labels);
  }

  /** SIGTERM and wait for the graceful exit; fails (with the log tail) on a non-zero exit or after `timeoutMs`. */
  async stop(timeoutMs = 60_000): Promise<void> {
    if (this.#exit) return;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), timeoutMs);
    const { code, signal } = await this.exited;
    clearTimeout(timer);
    assert.equal(code, 0, `sluice did not stop cleanly on SIGTERM (code ${code}, signal ${signal})\n--- log tail ---\n${this.logTail()}`);
  }

  /** kill -9: no drain, no flush. */
  async kill(): Promise<void> {
    if (this.#exit) return;
    this.child.kill("SIGKILL");
    await this.exited;
  }
}

const RUNNING = new Set<SluiceDaemon>();

/** Kills (-9) every daemon this process started that still runs: for `after` hooks, so a failed test leaves no process behind. */
export async function killAllDaemons(): Promise<void> {
  await Promise.all([...RUNNING].map((daemon) => daemon.kill()));
}

/** Starts the daemon and waits until every source and sink reports ready. */
export async function startReady(dir: string, config: Record<string, unknown>, label: string, options: DaemonOptions = {}): Promise<SluiceDaemon> {
  const daemon = await SluiceDaemon.start(dir, config, label, options);
  await waitFor("every source and sink to be ready", async () => {
    // Until "sluice started", /status lists no sources or sinks and "every one ready" would hold vacuously.
    if (!daemon.hasStarted) return false;
    const status = await daemon.status();
    return status.sources.every((s) => s.ready) && status.sinks.every((s) => s.ready);
  }, { daemon, timeoutMs: 90_000 });
  return daemon;
}

export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)/.exec(line);
    if (!match || match[1] !== name) continue;
    const labelText = match[2] ?? "";
    if (Object.entries(labels).every(([k, v]) => labelText.includes(`${k}="${v}"`))) sum += Number(match[3]);
  }
  return sum;
}

/** Runs a `sluice` CLI command to completion. */
export function runSluice(args: readonly string[], cwd = REPO): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolveRun) => {
    execFile(process.execPath, [SLUICE, ...args], { cwd, maxBuffer: 64 * 2 ** 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === "number" ? error.code : 1) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

export interface WaitOptions {
  readonly timeoutMs: number;
  readonly intervalMs?: number;
  /** Its log tail goes into the failure; its exit or a stopped component fails the wait at once. */
  readonly daemon?: SluiceDaemon;
  /** Accept a stopped component (tests that expect one). */
  readonly allowStopped?: boolean;
  /** What to show of the last attempt when the wait fails (default: the probe's last result). */
  readonly lastSeen?: () => unknown;
}

function show(value: unknown): string {
  const text = typeof value === "string" ? value : JSON.stringify(value, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 1);
  return (text ?? "undefined").slice(0, 4000);
}

/** Snapshot rows (op "r") of `table` ("<schema or database>.<name>") the daemon published since it started. */
export function snapshotRowsPublished(daemon: SluiceDaemon, table: string): Promise<number> {
  return daemon.metric("sluice_changes_captured_total", { table, op: "r" });
}

/**
 * Starts a daemon and SIGKILLs it once it has published `rows` snapshot rows of `namespace.table`;
 * returns what it had published of each of `tables` (names in the same namespace), by name.
 */
export async function killDuringSnapshot(
  dir: string,
  config: Record<string, unknown>,
  label: string,
  of: { readonly namespace: string; readonly table: string; readonly rows: number; readonly tables: readonly string[]; readonly timeoutMs: number },
): Promise<Record<string, number>> {
  const daemon = await SluiceDaemon.start(dir, config, label);
  const published = (name: string) => snapshotRowsPublished(daemon, `${of.namespace}.${name}`);
  await waitFor(`snapshot rows of ${of.table} in the log`, async () => (await published(of.table)) >= of.rows, { daemon, timeoutMs: of.timeoutMs, intervalMs: 20 });
  const counts = Object.fromEntries(await Promise.all(of.tables.map(async (name) => [name, await published(name)] as const)));
  await daemon.kill();
  return counts;
}

/** Waits until every source is connected and no snapshot of `table` ("<schema or database>.<name>") is queued or running (/status). */
export async function waitSnapshotDone(daemon: SluiceDaemon, table: string): Promise<void> {
  await waitFor(
    `the snapshot of ${table} to finish`,
    async () => {
      const status = (await (await daemon.get("/status")).json()) as { sources: { ready: boolean; snapshots?: { table: string; state: string }[] }[] };
      return status.sources.length > 0 && status.sources.every((s) => s.ready && !(s.snapshots ?? []).some((p) => p.table === table && p.state !== "done"));
    },
    { daemon, timeoutMs: 150_000, intervalMs: 200 },
  );
}

/**
 * Polls `probe` until it returns something other than undefined/false/null, at most `timeoutMs`.
 * The failure says what was awaited, the last value seen (or the last error) and the daemon's log tail.
 */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined | null | false>, options: WaitOptions): Promise<T> {
  const deadline = Date.now() + options.timeoutMs;
  let last: unknown = undefined;
  for (;;) {
    const daemon = options.daemon;
    if (daemon?.exitStatus) throw new Error(`sluice exited (${JSON.stringify(daemon.exitStatus)}) while waiting for ${what}\n--- daemon log tail ---\n${daemon.logTail()}`);
    if (daemon?.fatalLine && !options.allowStopped) throw new Error(`a sluice component stopped while waiting for ${what}:\n${daemon.fatalLine}\n--- daemon log tail ---\n${daemon.logTail()}`);
    try {
      const value = await probe();
      if (value !== undefined && value !== null && value !== false) return value;
      last = value;
    } catch (error) {
      last = error instanceof Error ? `error: ${error.message}` : error;
    }
    if (Date.now() >= deadline) {
      const seen = show(options.lastSeen ? options.lastSeen() : last);
      throw new Error(`timed out after ${options.timeoutMs / 1000} s waiting for ${what}; last seen: ${seen}${daemon ? `\n--- daemon log tail ---\n${daemon.logTail()}` : ""}`);
    }
    await sleep(options.intervalMs ?? 250);
  }
}

/**
 * Waits until every source's acknowledged position has passed PostgreSQL's current WAL position
 * (taken now, after the workload: heartbeats carry the checkpoint past it) and the given sinks
 * (default all) have 0 records left to apply. Returns the LSN awaited.
 */
export async function waitCaughtUp(daemon: SluiceDaemon, client: pg.Client, options: { sinks?: readonly string[]; timeoutMs?: number } = {}): Promise<bigint> {
  const lsn = await currentLsn(client);
  await waitCapturedThenApplied(
    daemon,
    `every source to capture past LSN ${lsn} and then sinks ${options.sinks?.join(", ") ?? "(all)"} to have lagRecords 0`,
    (status) => status.sources.every((s) => s.position !== null && BigInt(s.position.commit) >= lsn),
    (status) => status.sinks.filter((s) => options.sinks === undefined || options.sinks.includes(s.name)).every((s) => s.lagRecords === 0),
    options.timeoutMs ?? 120_000,
  );
  return lsn;
}

/**
 * Waits until `captured` holds for a /status answer (the sources' positions are past a point) and
 * then `applied` (the sinks have nothing left to apply) for an answer requested AFTER that one. One
 * answer is no consistent snapshot: the daemon asks Kafka for the sinks' lags before it reads the
 * sources' positions, so when capture makes a batch durable in between, the answer shows it captured
 * with a lag measured before its records were in the topic. kafka-outage.int.test.ts compared DuckDB
 * too early that way: the backlog of the outage, written in one transaction after Kafka came back,
 * showed as captured with lagRecords 0 before the sink had read any of it.
 */
export async function waitCapturedThenApplied(daemon: SluiceDaemon, what: string, captured: (status: Status) => boolean, applied: (status: Status) => boolean, timeoutMs: number): Promise<void> {
  let seen: Status | null = null;
  let capturedSeen = false;
  await waitFor(
    what,
    async () => {
      // Until the daemon logged "sluice started", /status lists no sources or sinks yet, and "every one caught up" would hold vacuously.
      if (!daemon.hasStarted) return false;
      const status = (seen = await daemon.status());
      // Positions only move forward: once past, a later answer's lags cover every record up to them.
      const done = capturedSeen && applied(status);
      capturedSeen ||= captured(status);
      return done;
    },
    { daemon, timeoutMs, intervalMs: 300, lastSeen: () => seen },
  );
}

/** Waits until every source's acknowledged position has passed PostgreSQL's current WAL position (taken now). */
export async function waitSourcesPast(daemon: SluiceDaemon, client: pg.Client, timeoutMs = 120_000, intervalMs = 300): Promise<bigint> {
  const lsn = await currentLsn(client);
  let seen: Status | null = null;
  await waitFor(
    `every source to capture past LSN ${lsn}`,
    async () => daemon.hasStarted && (seen = await daemon.status()).sources.every((s) => s.position !== null && BigInt(s.position.commit) >= lsn),
    { daemon, timeoutMs, intervalMs, lastSeen: () => seen },
  );
  return lsn;
}

// ---------------------------------------------------------------------------------------------
// tables, column kinds and the random workload

/**
 * Column kinds. Each decides how values are generated, how PostgreSQL prints them for the
 * comparison (PG_EXPR) and how each sink's value is put in the same canonical form.
 */
export type Kind =
  | "int2"
  | "int4"
  | "int8"
  | "decimal"
  | "numeric"
  | "float4"
  | "float8"
  | "bool"
  | "text"
  | "bigtext"
  | "bytea"
  | "date"
  | "timestamp"
  | "timestamptz"
  | "uuid"
  | "json"
  | "jsonb"
  | "int[]"
  | "text[]"
  | "enum";

export interface ColumnDef {
  readonly name: string;
  /** The column's SQL type in CREATE TABLE. */
  readonly sql: string;
  readonly kind: Kind;
}

export interface TableDef {
  readonly schema: string;
  readonly name: string;
  readonly columns: readonly ColumnDef[];
  readonly key: readonly string[];
}

export const qualifiedName = (table: TableDef): string => `"${table.schema}"."${table.name}"`;

export function createTableSql(table: TableDef): string {
  const columns = table.columns.map((c) => `"${c.name}" ${c.sql}`).join(", ");
  return `CREATE TABLE ${qualifiedName(table)} (${columns}, PRIMARY KEY (${table.key.map((k) => `"${k}"`).join(", ")}))`;
}

/** What the workload may generate; sinks that cannot hold a value exactly by design get scenarios without it. */
export interface ValueOptions {
  /** -0.0 in floats (Elasticsearch's `_source` JSON writes it as 0). */
  readonly negativeZero: boolean;
  /** Enum labels for "enum" columns. */
  readonly enumLabels?: readonly string[];
}

export type PgParam = string | Buffer | (string | null)[] | null;

const TEXT_PIECES = ["a", "Z", "0", " ", "é", "ß", "中文", "🙂", "'", '"', "\\", ",", "{", "}", "\t", "\n", "NULL", "null", "\u00a0", "ü"];
const BIG_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&()*+,-./:;<=>?@[]^_`{|}~";

function digits(rng: Rng, n: number): string {
  let out = String(rng.int(1, 9));
  for (let i = 1; i < n; i++) out += String(rng.int(0, 9));
  return out;
}

function randomText(rng: Rng, maxPieces = 12): string {
  let out = "";
  const n = rng.int(0, maxPieces);
  for (let i = 0; i < n; i++) out += rng.pick(TEXT_PIECES);
  return out;
}

/** Random printable text that pglz cannot compress by 25 %, so PostgreSQL stores it out of line (TOAST). */
export function bigText(rng: Rng, length = rng.int(9_000, 16_000)): string {
  let out = "";
  for (let i = 0; i < length; i++) out += BIG_ALPHABET[Math.floor(rng.next() * BIG_ALPHABET.length)];
  return out;
}

const MIN_DAY = -25_567; // 1900-01-01
const MAX_DAY = 120_529; // 2299-12-31

function pad(n: number, width: number): string {
  return String(n).padStart(width, "0");
}

export function formatDays(days: number): string {
  const d = new Date(days * 86_400_000);
  return `${pad(d.getUTCFullYear(), 4)}-${pad(d.getUTCMonth() + 1, 2)}-${pad(d.getUTCDate(), 2)}`;
}

export function formatMicros(micros: bigint): string {
  const seconds = micros >= 0n ? micros / 1_000_000n : -((-micros + 999_999n) / 1_000_000n);
  const frac = micros - seconds * 1_000_000n;
  const iso = new Date(Number(seconds) * 1000).toISOString(); // YYYY-MM-DDTHH:MM:SS.000Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)}.${pad(Number(frac), 6)}`;
}

function randomFloat(rng: Rng, options: ValueOptions, single: boolean): string {
  const r = rng.next();
  if (r < 0.04) return "NaN";
  if (r < 0.07) return "Infinity";
  if (r < 0.1) return "-Infinity";
  if (r < 0.13 && options.negativeZero) return "-0";
  if (r < 0.16) return "0";
  const magnitude = 10 ** rng.int(-12, 12);
  const value = (rng.next() - 0.5) * magnitude;
  return String(single ? Math.fround(value) : value);
}

/** A random value of the kind; `sql` is the column type (for numeric(p,s)). */
export function randomValue(kind: Kind, rng: Rng, options: ValueOptions, sql?: string): PgParam {
  switch (kind) {
    case "int2":
      return String(rng.chance(0.1) ? rng.pick([-32768, 32767, 0]) : rng.int(-32768, 32767));
    case "int4":
      return String(rng.chance(0.1) ? rng.pick([-2147483648, 2147483647, 0]) : rng.int(-2147483648, 2147483647));
    case "int8": {
      const special = [9223372036854775807n, -9223372036854775808n, 9007199254740993n, -9007199254740993n, 2n ** 53n, 0n];
      return String(rng.chance(0.25) ? rng.pick(special) : rng.bigint64());
    }
    case "decimal": {
      // numeric(p,s) (default 20,4): up to p-s integer digits and s decimals, sometimes zeros.
      const [p = 20, sc = 4] = (/\((\d+),\s*(\d+)\)/.exec(sql ?? "") ?? []).slice(1).map(Number);
      const whole = rng.chance(0.2) ? "0" : digits(rng, rng.int(1, p - sc));
      const frac = rng.chance(0.2) ? "0".repeat(sc) : Array.from({ length: sc }, () => rng.int(0, 9)).join("");
      return `${rng.chance(0.4) ? "-" : ""}${whole}${sc > 0 ? `.${frac}` : ""}`;
    }
    case "numeric": {
      const r = rng.next();
      if (r < 0.05) return "NaN";
      if (r < 0.08) return "Infinity";
      if (r < 0.11) return "-Infinity";
      // Any scale (trailing zeros kept by PostgreSQL), sometimes beyond 38 digits.
      const whole = rng.chance(0.15) ? "0" : digits(rng, rng.chance(0.15) ? rng.int(39, 60) : rng.int(1, 18));
      const scale = rng.int(0, 12);
      const frac = scale === 0 ? "" : `.${rng.chance(0.3) ? `${pad(rng.int(0, 99), 2)}`.padEnd(scale, "0").slice(0, scale) : Array.from({ length: scale }, () => rng.int(0, 9)).join("")}`;
      return `${rng.chance(0.4) ? "-" : ""}${whole}${frac}`;
    }
    case "float4":
      return randomFloat(rng, options, true);
    case "float8":
      return randomFloat(rng, options, false);
    case "bool":
      return rng.chance(0.5) ? "true" : "false";
    case "text":
    case "enum":
      if (kind === "enum") return rng.pick(options.enumLabels ?? ["a"]);
      return randomText(rng);
    case "bigtext":
      return rng.chance(0.8) ? bigText(rng) : randomText(rng);
    case "bytea":
      return rng.bytes(rng.int(0, 48));
    case "date":
      return formatDays(rng.chance(0.1) ? rng.pick([0, -1, MIN_DAY, MAX_DAY]) : rng.int(MIN_DAY, MAX_DAY));
    case "timestamp":
    case "timestamptz": {
      const micros = rng.chance(0.1)
        ? rng.pick([0n, -1n, 1n])
        : BigInt(rng.int(MIN_DAY, MAX_DAY - 1)) * 86_400_000_000n + BigInt(rng.int(0, 86_399)) * 1_000_000n + BigInt(rng.chance(0.3) ? 0 : rng.int(0, 999_999));
      // timestamptz: given with a zone offset, which PostgreSQL converts to UTC.
      return kind === "timestamp" ? formatMicros(micros) : `${formatMicros(micros + 19_800_000_000n)}+05:30`;
    }
    case "uuid": {
      const hex = rng.bytes(16).toString("hex");
      return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    }
    case "json":
    case "jsonb":
      return randomJson(rng, kind === "json");
    case "int[]":
      if (rng.chance(0.1)) return [];
      return Array.from({ length: rng.int(0, 5) }, () => (rng.chance(0.15) ? null : String(rng.int(-2147483648, 2147483647))));
    case "text[]":
      return Array.from({ length: rng.int(0, 5) }, () => (rng.chance(0.15) ? null : randomText(rng, 4)));
  }
}

function randomJsonValue(rng: Rng, depth: number): string {
  const r = rng.next();
  if (depth > 2 || r < 0.3) {
    return rng.pick([
      () => String(rng.int(-1000, 1000)),
      () => "12345678901234567890",
      () => String(rng.next() * 100),
      () => JSON.stringify(randomText(rng, 4)),
      () => "true",
      () => "null",
    ])();
  }
  if (r < 0.5) return `[${Array.from({ length: rng.int(0, 3) }, () => randomJsonValue(rng, depth + 1)).join(", ")}]`;
  const keys = new Set<string>();
  for (let i = rng.int(0, 4); i > 0; i--) keys.add(rng.pick(["a", "b", "k", "é", "with space", "x y", "_v", "n1"]));
  return `{${[...keys].map((k) => `${JSON.stringify(k)}: ${randomJsonValue(rng, depth + 1)}`).join(", ")}}`;
}

/** JSON text; `json` columns keep it byte for byte (spacing included), `jsonb` normalises it. */
function randomJson(rng: Rng, plain: boolean): string {
  if (rng.chance(0.1)) return randomJsonValue(rng, 3); // a scalar at the top level
  const text = `{"id": ${rng.int(0, 1e6)}, "v": ${randomJsonValue(rng, 0)}}`;
  return plain && rng.chance(0.5) ? text.replace(/: /g, ":  ") : text;
}

/** A column value for an INSERT/UPDATE parameter, cast to the column's type in SQL. */
export function paramCast(column: ColumnDef): string {
  if (column.kind === "enum") return column.sql;
  if (column.kind === "bigtext") return "text";
  return column.sql;
}

// ---------------------------------------------------------------------------------------------
// the workload

export interface WorkloadTable {
  readonly def: TableDef;
  /** Generates the key of a new row (unique for the table). */
  readonly newKey: (rng: Rng) => string[];
}

export interface WorkloadCounts {
  inserts: number;
  updates: number;
  deletes: number;
  keyUpdates: number;
  nulls: number;
  toastUnchanged: number;
  transactions: number;
}

/**
 * A single writer's random workload: inserts, updates (random columns, NULLs, an update that
 * leaves a TOAST column unchanged), deletes and key updates, in transactions of 1–5 statements.
 * It tracks the keys it created, so updates and deletes hit existing rows.
 */
export class Workload {
  readonly rng: Rng;
  readonly client: pg.Client;
  readonly tables: WorkloadTable[];
  readonly options: ValueOptions;
  readonly counts: WorkloadCounts = { inserts: 0, updates: 0, deletes: 0, keyUpdates: 0, nulls: 0, toastUnchanged: 0, transactions: 0 };
  readonly keys = new Map<string, string[][]>();

  constructor(client: pg.Client, tables: readonly WorkloadTable[], rng: Rng, options: ValueOptions) {
    this.client = client;
    this.tables = [...tables];
    this.rng = rng;
    this.options = options;
    for (const table of tables) this.keys.set(table.def.name, []);
  }

  /** After `ALTER TABLE … ADD COLUMN`: later statements write the new column too. */
  addColumn(tableName: string, column: ColumnDef): TableDef {
    const index = this.tables.findIndex((t) => t.def.name === tableName);
    const table = this.tables[index]!;
    const def = { ...table.def, columns: [...table.def.columns, column] };
    this.tables[index] = { ...table, def };
    return def;
  }

  table(name: string): WorkloadTable {
    return this.tables.find((t) => t.def.name === name)!;
  }

  /** A full row of random values (some NULL) for the table's non-key columns. */
  private rowValues(def: TableDef, key: string[]): PgParam[] {
    return def.columns.map((column) => {
      const k = def.key.indexOf(column.name);
      if (k >= 0) return key[k]!;
      if (this.rng.chance(0.12)) {
        this.counts.nulls++;
        return null;
      }
      return randomValue(column.kind, this.rng, this.options, column.sql);
    });
  }

  async insert(table: WorkloadTable): Promise<void> {
    const key = table.newKey(this.rng);
    const def = table.def;
    const values = this.rowValues(def, key);
    const placeholders = def.columns.map((c, i) => `$${i + 1}::${paramCast(c)}`).join(", ");
    await this.client.query(`INSERT INTO ${qualifiedName(def)} (${def.columns.map((c) => `"${c.name}"`).join(", ")}) VALUES (${placeholders})`, values);
    this.keys.get(def.name)!.push(key);
    this.counts.inserts++;
  }

  private whereKey(def: TableDef, offset: number): string {
    return def.key.map((k, i) => `"${k}" = $${offset + i + 1}::${paramCast(def.columns.find((c) => c.name === k)!)}`).join(" AND ");
  }

  private pickKey(def: TableDef): { key: string[]; index: number } | null {
    const keys = this.keys.get(def.name)!;
    if (keys.length === 0) return null;
    const index = this.rng.int(0, keys.length - 1);
    return { key: keys[index]!, index };
  }

  async update(table: WorkloadTable, options: { leaveToast?: boolean } = {}): Promise<void> {
    const def = table.def;
    const picked = this.pickKey(def);
    if (!picked) return this.insert(table);
    const nonKey = def.columns.filter((c) => !def.key.includes(c.name) && !(options.leaveToast && c.kind === "bigtext"));
    const chosen = nonKey.filter(() => this.rng.chance(0.4));
    if (chosen.length === 0) chosen.push(this.rng.pick(nonKey));
    const values = chosen.map((c) => {
      if (this.rng.chance(0.15)) {
        this.counts.nulls++;
        return null;
      }
      return randomValue(c.kind, this.rng, this.options, c.sql);
    });
    const sets = chosen.map((c, i) => `"${c.name}" = $${i + 1}::${paramCast(c)}`).join(", ");
    await this.client.query(`UPDATE ${qualifiedName(def)} SET ${sets} WHERE ${this.whereKey(def, chosen.length)}`, [...values, ...picked.key]);
    if (options.leaveToast) this.counts.toastUnchanged++;
    else this.counts.updates++;
  }

  async remove(table: WorkloadTable): Promise<void> {
    const def = table.def;
    const picked = this.pickKey(def);
    if (!picked) return;
    await this.client.query(`DELETE FROM ${qualifiedName(def)} WHERE ${this.whereKey(def, 0)}`, picked.key);
    this.keys.get(def.name)!.splice(picked.index, 1);
    this.counts.deletes++;
  }

  async updateKey(table: WorkloadTable): Promise<void> {
    const def = table.def;
    const picked = this.pickKey(def);
    if (!picked) return;
    const next = table.newKey(this.rng);
    // Half of the key updates also write the TOAST columns; the other half leave them unchanged,
    // which pgoutput then does not send (see bug-reproductions.int.test.ts for what that broke).
    const toast = this.rng.chance(0.5) ? def.columns.filter((c) => c.kind === "bigtext") : [];
    const sets = [...def.key.map((k) => def.columns.find((c) => c.name === k)!), ...toast].map((c, i) => `"${c.name}" = $${i + 1}::${paramCast(c)}`).join(", ");
    const toastValues = toast.map((c) => randomValue(c.kind, this.rng, this.options, c.sql));
    await this.client.query(`UPDATE ${qualifiedName(def)} SET ${sets} WHERE ${this.whereKey(def, def.key.length + toast.length)}`, [...next, ...toastValues, ...picked.key]);
    this.keys.get(def.name)![picked.index] = next;
    this.counts.keyUpdates++;
  }

  /** One random statement on a random table. */
  async step(): Promise<void> {
    const table = this.rng.pick(this.tables);
    const r = this.rng.next();
    if (r < 0.4) await this.insert(table);
    else if (r < 0.65) await this.update(table);
    else if (r < 0.75) await this.update(table, { leaveToast: true });
    else if (r < 0.9) await this.remove(table);
    else await this.updateKey(table);
  }

  /** One transaction of 1–5 random statements. */
  async transaction(): Promise<void> {
    await this.client.query("BEGIN");
    try {
      for (let i = this.rng.int(1, 5); i > 0; i--) await this.step();
      await this.client.query("COMMIT");
      this.counts.transactions++;
    } catch (error) {
      await this.client.query("ROLLBACK").catch(() => undefined);
      throw error;
    }
  }

  /** Makes sure every statement kind ran at least once (a deterministic prefix of every workload). */
  async everyKind(): Promise<void> {
    for (const table of this.tables) {
      await this.insert(table);
      await this.insert(table);
      await this.update(table);
      await this.update(table, { leaveToast: true });
      await this.updateKey(table);
      await this.remove(table);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// CANONICAL FORMS
//
// Each value becomes a string (or null for SQL NULL) that is equal for equal values whatever
// system printed it:
//   integers      decimal digits (bigint-exact)
//   decimal       numeric(p,s): digits with trailing fractional zeros removed ("12.3400" → "12.34",
//                 "-0.0000" → "0"); the scale is fixed by the column type, so the value is all
//                 that can differ
//   numeric       numeric without scale: the exact text PostgreSQL prints (scale kept: "1.500"),
//                 or NaN / Infinity / -Infinity
//   float4/8      JavaScript's shortest round-trip text of the double (float4: of the single,
//                 via Math.fround) with "-0", "NaN", "Infinity", "-Infinity"
//   bool          "true" / "false"
//   text, enum    the text itself
//   bytea         lower-case hex
//   date          days since 1970-01-01
//   timestamp(tz) microseconds since 1970-01-01 UTC
//   uuid          lower-case 8-4-4-4-12
//   json          the exact text for DuckDB and ClickHouse (they store the text); for
//                 Elasticsearch (whose `_source` is parsed JSON) a structural form: objects with
//                 sorted keys, numbers by their source text
//   arrays        a JSON array of canonical elements (null elements null)

export function canonicalDecimal(text: string): string {
  if (!/^-?\d+(\.\d+)?$/.test(text)) return text;
  let [whole, frac = ""] = text.replace(/^-/, "").split(".") as [string, string?];
  frac = frac.replace(/0+$/, "");
  whole = whole.replace(/^0+(?=\d)/, "");
  const negative = text.startsWith("-") && (whole !== "0" || frac !== "");
  return `${negative ? "-" : ""}${whole}${frac ? `.${frac}` : ""}`;
}

export function canonicalFloat(value: number | string, single: boolean): string {
  let n = typeof value === "number" ? value : value === "nan" ? Number.NaN : value === "inf" ? Number.POSITIVE_INFINITY : value === "-inf" ? Number.NEGATIVE_INFINITY : Number(value);
  if (single) n = Math.fround(n);
  if (Object.is(n, -0)) return "-0";
  return String(n);
}

/** Parses JSON keeping integers beyond 2^53 exact, and prints it with sorted keys. */
export function structuralJson(value: unknown): string {
  if (value === null || typeof value !== "object") return typeof value === "bigint" ? value.toString() : JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(structuralJson).join(",")}]`;
  return `{${Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${structuralJson((value as Record<string, unknown>)[k])}`)
    .join(",")}}`;
}

export type CanonicalRow = Record<string, string | null>;
export type CanonicalTable = Map<string, CanonicalRow>;

function keyOf(def: TableDef, row: CanonicalRow): string {
  return JSON.stringify(def.key.map((k) => row[k]));
}

/** The SQL that makes PostgreSQL print a column in (or close to) its canonical form. */
function pgExpr(column: ColumnDef): string {
  const c = `"${column.name}"`;
  switch (column.kind) {
    case "bytea":
      return `encode(${c}, 'hex')`;
    case "date":
      return `(${c} - DATE '1970-01-01')::text`;
    case "timestamp":
    case "timestamptz":
      // extract(epoch) is an exact numeric since PostgreSQL 14.
      return `(extract(epoch FROM ${c}) * 1000000)::bigint::text`;
    case "int[]":
    case "text[]":
      return `to_json(${c})::text`;
    default:
      return `${c}::text`;
  }
}

function pgCanonical(column: ColumnDef, text: string | null): string | null {
  if (text === null) return null;
  switch (column.kind) {
    case "decimal":
      return canonicalDecimal(text);
    case "float4":
      return canonicalFloat(text, true);
    case "float8":
      return canonicalFloat(text, false);
    case "int[]":
    case "text[]":
      return JSON.stringify(JSON.parse(text));
    default:
      return text;
  }
}

export async function readPostgres(client: pg.Client, def: TableDef): Promise<CanonicalTable> {
  const result = await client.query<Record<string, string | null>>(`SELECT ${def.columns.map((c) => `${pgExpr(c)} AS "${c.name}"`).join(", ")} FROM ${qualifiedName(def)}`);
  const rows: CanonicalTable = new Map();
  for (const raw of result.rows) {
    const row = Object.fromEntries(def.columns.map((c) => [c.name, pgCanonical(c, raw[c.name] ?? null)]));
    rows.set(keyOf(def, row), row);
  }
  return rows;
}

/** PostgreSQL's rows as a sink is documented to hold them (ClickHouse: a NULL array is stored as []). */
export function expectedFor(sink: "duckdb" | "clickhouse" | "elasticsearch", def: TableDef, rows: CanonicalTable, jsonStructural = sink === "elasticsearch"): CanonicalTable {
  const out: CanonicalTable = new Map();
  for (const [key, row] of rows) {
    const copy = { ...row };
    for (const column of def.columns) {
      const value = copy[column.name] ?? null;
      if (sink === "clickhouse" && (column.kind === "int[]" || column.kind === "text[]") && value === null) copy[column.name] = "[]";
      if (jsonStructural && (column.kind === "json" || column.kind === "jsonb") && value !== null) copy[column.name] = structuralJson(decodeJson(value));
    }
    out.set(key, copy);
  }
  return out;
}

// ---- DuckDB (a DuckDBValue from @duckdb/node-api's getRowObjects)

interface DuckValueLike {
  readonly micros?: bigint;
  readonly days?: number;
  readonly bytes?: Uint8Array;
  readonly items?: readonly unknown[];
  toString(): string;
}

export function duckCanonical(column: ColumnDef, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  const v = value as DuckValueLike;
  switch (column.kind) {
    case "int2":
    case "int4":
    case "int8":
      return String(value);
    case "decimal":
      return canonicalDecimal(v.toString()); // DuckDBDecimalValue prints its exact digits
    case "float4":
      return canonicalFloat(value as number, true); // REAL arrives widened to a double
    case "float8":
      return canonicalFloat(value as number, false);
    case "bool":
      return String(value);
    case "bytea":
      return Buffer.from(v.bytes!).toString("hex");
    case "date":
      return String(v.days);
    case "timestamp":
    case "timestamptz":
      return String(v.micros);
    case "uuid":
      return v.toString();
    case "int[]":
    case "text[]":
      return JSON.stringify(v.items);
    default:
      return String(value); // text, numeric (VARCHAR), json (JSON is text), enum
  }
}

/** DuckDB's column type for each kind (what the sink is documented to create). */
export function duckType(column: ColumnDef): string {
  switch (column.kind) {
    case "int2":
      return "SMALLINT";
    case "int4":
      return "INTEGER";
    case "int8":
      return "BIGINT";
    case "decimal":
      return column.sql.toUpperCase().replace(/\s/g, "").replace("NUMERIC", "DECIMAL");
    case "float4":
      return "FLOAT";
    case "float8":
      return "DOUBLE";
    case "bool":
      return "BOOLEAN";
    case "bytea":
      return "BLOB";
    case "date":
      return "DATE";
    case "timestamp":
      return "TIMESTAMP";
    case "timestamptz":
      return "TIMESTAMP WITH TIME ZONE";
    case "uuid":
      return "UUID";
    case "json":
    case "jsonb":
      return "JSON";
    case "int[]":
      return "INTEGER[]";
    case "text[]":
      return "VARCHAR[]";
    default:
      return "VARCHAR";
  }
}

export interface DuckRead {
  readonly rows: CanonicalTable;
  readonly types: Record<string, string>;
}

/** Opens the DuckDB file (the daemon must be stopped), reads the view of each table, closes it. */
export async function readDuckDb(path: string, tables: readonly { def: TableDef; target: string }[]): Promise<DuckRead[]> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(path);
  const connection = await instance.connect();
  try {
    const out: DuckRead[] = [];
    for (const { def, target } of tables) {
      // The view's columns as users see them now (DESCRIBE binds the view afresh, so columns
      // added since its creation show; information_schema keeps the creation-time list).
      const types = Object.fromEntries(
        (await connection.runAndReadAll(`DESCRIBE main."${target}"`)).getRowObjects().map((r) => [String(r["column_name"]), String(r["column_type"])]),
      );
      const reader = await connection.runAndReadAll(`SELECT * FROM main."${target}"`);
      const rows: CanonicalTable = new Map();
      for (const raw of reader.getRowObjects()) {
        const row = Object.fromEntries(def.columns.map((c) => [c.name, duckCanonical(c, raw[c.name])]));
        for (const extra of Object.keys(raw)) if (!def.columns.some((c) => c.name === extra)) row[extra] = raw[extra] === null ? null : String(raw[extra]);
        rows.set(keyOf(def, row), row);
      }
      out.push({ rows, types });
    }
    return out;
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

// ---- ClickHouse (TabSeparated over HTTP, bytes exact)

export async function clickhouseQuery(sql: string): Promise<Buffer> {
  const response = await fetch(`${clickhouse.url}/`, {
    method: "POST",
    headers: { "X-ClickHouse-User": clickhouse.username, "X-ClickHouse-Key": clickhouse.password },
    body: sql,
    signal: AbortSignal.timeout(60_000),
  });
  const body = Buffer.from(await response.arrayBuffer());
  if (!response.ok) throw new Error(`ClickHouse ${response.status}: ${body.toString("utf8").slice(0, 500)} (query: ${sql.slice(0, 200)})`);
  return body;
}

/** Parses a ClickHouse array field as TabSeparated prints it: [1,NULL] or ['a\'b',NULL]. */
export function parseClickHouseArray(field: Buffer): (string | null)[] {
  const text = field.toString("latin1"); // bytes as chars; strings are re-decoded as UTF-8 below
  assert.ok(text.startsWith("[") && text.endsWith("]"), `not a ClickHouse array: ${text.slice(0, 100)}`);
  const items: (string | null)[] = [];
  let i = 1;
  while (i < text.length - 1) {
    if (text[i] === "'") {
      const bytes: number[] = [];
      i++;
      while (text[i] !== "'") {
        if (text[i] === "\\") {
          const next = text[++i]!;
          const map: Record<string, number> = { b: 8, f: 12, r: 13, n: 10, t: 9, "0": 0, "'": 39, "\\": 92 };
          bytes.push(map[next] ?? next.charCodeAt(0));
        } else bytes.push(text.charCodeAt(i));
        i++;
      }
      items.push(Buffer.from(bytes).toString("utf8"));
      i++;
    } else {
      const end = text.indexOf(",", i) === -1 ? text.length - 1 : text.indexOf(",", i);
      const token = text.slice(i, end);
      items.push(token === "NULL" ? null : token);
      i = end;
    }
    if (text[i] === ",") i++;
  }
  return items;
}

export function clickhouseCanonical(column: ColumnDef, raw: Buffer): string | null {
  if (raw.equals(Buffer.from("\\N"))) return null;
  if (column.kind === "int[]") return JSON.stringify(parseClickHouseArray(raw).map((x) => (x === null ? null : Number(x))));
  if (column.kind === "text[]") return JSON.stringify(parseClickHouseArray(raw));
  const bytes = unescapeField(raw);
  const text = bytes.toString("utf8");
  switch (column.kind) {
    case "decimal":
      return canonicalDecimal(text);
    case "float4":
      return canonicalFloat(text, true);
    case "float8":
      return canonicalFloat(text, false);
    case "bool":
      return text === "1" ? "true" : text === "0" ? "false" : `?${text}`; // UInt8
    case "bytea":
      return bytes.toString("hex"); // String holding the raw bytes
    default:
      return text; // ints; numeric (String); date (Int32 days) and timestamps (Int64 µs) on 18.16; uuid; json (String)
  }
}

export async function readClickHouse(database: string, view: string, def: TableDef): Promise<CanonicalTable> {
  const names = def.columns.map((c) => `\`${c.name}\``).join(", ");
  const data = await clickhouseQuery(`SELECT ${names} FROM \`${database}\`.\`${view}\` FORMAT TabSeparated`);
  const rows: CanonicalTable = new Map();
  for (const fields of parseTsv(data)) {
    const row = Object.fromEntries(def.columns.map((c, i) => [c.name, clickhouseCanonical(c, fields[i] ?? Buffer.alloc(0))]));
    rows.set(keyOf(def, row), row);
  }
  return rows;
}

/**
 * Drops a test's database. On a loaded machine ClickHouse 18.16's DROP can wait minutes for merges of the database's
 * tables; the server goes on with it after the request's 60 s, so that case waits for the database to be gone
 * (cleanup, not what a test checks: it warns rather than fails if the database outlives the wait).
 */
export async function dropClickHouseDatabase(database: string): Promise<void> {
  try {
    await clickhouseQuery(`DROP DATABASE IF EXISTS \`${database}\``);
    return;
  } catch (error) {
    if (!(error instanceof Error && error.name === "TimeoutError")) throw error;
  }
  const deadline = Date.now() + 240_000;
  while (Date.now() < deadline) {
    const left = await clickhouseQuery(`SELECT count() FROM system.databases WHERE name = '${database.replaceAll("'", "\\'")}'`);
    if (left.toString("utf8").trim() === "0") return;
    await sleep(2_000);
  }
  console.error(`ClickHouse database ${database} still there 5 min after its DROP was sent`);
}

// ---- Elasticsearch (the alias, every document through a scroll)

export async function esRequest(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown; text: string }> {
  const response = await fetch(`${elasticsearch.url}${path}`, {
    method,
    headers: { "content-type": "application/json" },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    signal: AbortSignal.timeout(60_000),
  });
  const text = await response.text();
  return { status: response.status, json: text ? decodeJson(text) : null, text };
}

function base64ToHex(text: string): string {
  return Buffer.from(text, "base64").toString("hex");
}

function isoToMicros(text: string): bigint {
  const match = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z?$/.exec(text);
  assert.ok(match, `not an ISO timestamp: ${text}`);
  const [, y, mo, d, h, mi, s, f = ""] = match;
  return BigInt(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s))) * 1000n + BigInt(f.padEnd(6, "0"));
}

function isoDateToDays(text: string): number {
  const [y, m, d] = text.split("-").map(Number) as [number, number, number];
  return Date.UTC(y, m - 1, d) / 86_400_000;
}

export function elasticCanonical(column: ColumnDef, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  switch (column.kind) {
    case "decimal":
      return canonicalDecimal(String(value)); // exact digits as a string in _source
    case "float4":
      return canonicalFloat(typeof value === "string" ? Number(value) : (value as number), true); // "NaN"/"Infinity" as strings
    case "float8":
      return canonicalFloat(typeof value === "string" ? Number(value) : (value as number), false);
    case "bool":
      return String(value);
    case "bytea":
      return base64ToHex(String(value));
    case "date":
      return String(isoDateToDays(String(value)));
    case "timestamp":
    case "timestamptz":
      return isoToMicros(String(value)).toString();
    case "json":
    case "jsonb": {
      // Non-objects are wrapped as {"_value": …} for the flattened field.
      const object = value as Record<string, unknown>;
      const keys = Object.keys(object);
      return structuralJson(keys.length === 1 && keys[0] === "_value" ? object["_value"] : object);
    }
    case "int[]":
      return JSON.stringify((value as unknown[]).map((x) => (x === null ? null : Number(x))));
    case "text[]":
      return JSON.stringify(value);
    default:
      return String(value); // ints (number or bigint), numeric (string), text, uuid
  }
}

/** Every visible document of the alias (refreshed first), by a scroll. */
export async function readElasticsearch(alias: string, def: TableDef, options: { refresh?: boolean } = {}): Promise<CanonicalTable> {
  if (options.refresh !== false) await esRequest("POST", `/${alias}/_refresh`);
  const rows: CanonicalTable = new Map();
  let page = await esRequest("POST", `/${alias}/_search?scroll=1m`, { size: 5000, sort: ["_doc"], query: { match_all: {} } });
  assert.equal(page.status, 200, `search ${alias}: ${page.text.slice(0, 500)}`);
  for (;;) {
    const body = page.json as { _scroll_id?: string; hits: { hits: { _id: string; _source: Record<string, unknown> }[] } };
    const hits = body.hits.hits;
    for (const hit of hits) {
      const row = Object.fromEntries(def.columns.map((c) => [c.name, elasticCanonical(c, hit._source[c.name])]));
      row["_id"] = hit._id;
      rows.set(keyOf(def, row), row);
    }
    if (hits.length === 0 || !body._scroll_id) {
      if (body._scroll_id) await esRequest("DELETE", "/_search/scroll", { scroll_id: body._scroll_id });
      break;
    }
    page = await esRequest("POST", "/_search/scroll", { scroll: "1m", scroll_id: body._scroll_id });
    assert.equal(page.status, 200, `scroll ${alias}: ${page.text.slice(0, 500)}`);
  }
  return rows;
}

/** The document id Elasticsearch uses: the key's text, or a JSON array for composite keys. */
export function expectedEsIds(def: TableDef, rows: CanonicalTable): CanonicalTable {
  const out: CanonicalTable = new Map();
  for (const [key, row] of rows) {
    const keyValues = def.key.map((k) => row[k]!);
    const id = keyValues.length === 1 ? keyValues[0]! : JSON.stringify(def.key.map((k) => {
      const column = def.columns.find((c) => c.name === k)!;
      return column.kind.startsWith("int") ? Number(row[k]) : row[k];
    }));
    out.set(key, { ...row, _id: id });
  }
  return out;
}

/** Deletes every index whose name starts with `prefix` (wildcard deletes are refused by default). */
export async function deleteElasticIndices(prefix: string): Promise<void> {
  const listed = await esRequest("GET", `/_cat/indices/${prefix}*?format=json&expand_wildcards=all`);
  if (listed.status !== 200) return;
  for (const index of listed.json as { index: string }[]) await esRequest("DELETE", `/${index.index}`);
}

/**
 * Removes the offsets the sinks stored in the shared `sluice-offsets` index. Found by a search and deleted by id:
 * `_delete_by_query` lives in Elasticsearch's reindex module, which the integ-test distribution does not have.
 * With `only`, just the documents of that deployment's topics and of targets named with that prefix: sink names
 * such as "search" are common to many tests and benches, and one running beside this one (another file on the
 * shared services) must keep its offsets, nor can it keep this loop going by writing them.
 */
export async function deleteElasticOffsets(sinks: readonly string[], only?: { deployment: string; targetPrefix: string }): Promise<void> {
  const mine = only === undefined ? [] : [{ bool: { should: [{ prefix: { topic: `${only.deployment}.` } }, { prefix: { target: only.targetPrefix } }], minimum_should_match: 1 } }];
  for (;;) {
    const found = await esRequest("POST", "/sluice-offsets/_search", { size: 1000, _source: false, query: { bool: { filter: [{ terms: { sink: [...sinks] } }, ...mine] } } });
    if (found.status === 404) return;
    if (found.status !== 200) throw new Error(`searching sluice-offsets for ${sinks.join(", ")}: HTTP ${found.status} ${found.text}`);
    const hits = (found.json as { hits: { hits: { _id: string }[] } }).hits.hits;
    if (hits.length === 0) return;
    const response = await fetch(`${elasticsearch.url}/_bulk?refresh=true`, {
      method: "POST",
      headers: { "content-type": "application/x-ndjson" },
      body: hits.map((hit) => `${JSON.stringify({ delete: { _index: "sluice-offsets", _id: hit._id } })}\n`).join(""),
      signal: AbortSignal.timeout(60_000),
    });
    if (!response.ok) throw new Error(`deleting ${hits.length} offsets from sluice-offsets: HTTP ${response.status} ${await response.text()}`);
  }
}

// ---- the embedded topic log (read from the test process, with the daemon stopped)

export interface ReadRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: bigint;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers: Record<string, string>;
  /** The change the record carries, for data topics (decoded with the deployment's registry). */
  readonly event: ChangeEvent | null;
}

/** Every record of the topics (all partitions), read as a throw-away consumer group; data topics decoded. */
export async function readEmbeddedTopics(path: string, topics: readonly string[], options: { decode?: boolean } = {}): Promise<ReadRecord[]> {
  const { openTopicLog } = await import("../../connectors/topics/open.ts");
  const { openRegistry, recordDecoder } = await import("../../daemon/components.ts");
  const { createLogger } = await import("../../runtime/logger.ts");
  const topicsConfig = { kind: "embedded" as const, path, partitions: 1, retention: { cleanup_policy: "compact" as const, max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 }, max_record_bytes: 16 * 2 ** 20 };
  const log = await openTopicLog(topicsConfig, "reader", createLogger("silent"));
  try {
    const existing = new Set((await log.listTopics()).map((t) => t.name));
    const wanted = topics.filter((t) => existing.has(t));
    if (wanted.length === 0) return [];
    const decoder = options.decode
      ? recordDecoder((await openRegistry({ schema_registry: { kind: "builtin", compatibility: "BACKWARD", path: "/registry" } } as Parameters<typeof openRegistry>[0], log)).registry)
      : null;
    const consumer = await log.consumer(randomName("e2e_reader"), wanted);
    const out: ReadRecord[] = [];
    try {
      for (;;) {
        const records = await consumer.poll({ maxRecords: 10_000, maxBytes: 64 * 2 ** 20, maxWaitMs: 300 });
        if (records.length === 0) break;
        for (const record of records) {
          out.push({
            topic: record.topic,
            partition: record.partition,
            offset: record.offset,
            key: record.key === null ? null : Buffer.from(record.key),
            value: record.value === null ? null : Buffer.from(record.value),
            headers: Object.fromEntries(Object.entries(record.headers ?? {}).map(([k, v]) => [k, Buffer.from(v).toString("utf8")])),
            event: decoder ? await decoder.decode(record) : null,
          });
        }
      }
    } finally {
      await consumer.close();
    }
    return out;
  } finally {
    await log.close();
  }
}

// ---- Kafka

export { deleteKafkaDeployment } from "../../connectors/kafka/kafka-test-config.ts";

// ---------------------------------------------------------------------------------------------
// comparing

/** Whether two canonical values are equal; `diffTables` uses exact equality unless given another. */
export type ValueEquality = (column: string, expected: string | null, actual: string | null | undefined) => boolean;

/** Distance in units of the last place between two doubles (or singles), as canonical text. */
export function ulpDistance(a: string, b: string, single: boolean): number {
  const bits = (text: string): bigint => {
    if (single) {
      const view = new DataView(new ArrayBuffer(4));
      view.setFloat32(0, Number(text));
      const raw = view.getInt32(0);
      return BigInt(raw < 0 ? -2147483648 - raw : raw); // monotonic: negatives below positives
    }
    const view = new DataView(new ArrayBuffer(8));
    view.setFloat64(0, Number(text));
    const raw = view.getBigInt64(0);
    return raw < 0n ? -9223372036854775808n - raw : raw;
  };
  const d = bits(a) - bits(b);
  return Number(d < 0n ? -d : d);
}

/**
 * ClickHouse (18.16, and later servers without precise_float_parsing) parses the float text the
 * sink inserts with an inexact parser: some values land a unit or two in the last place away
 * (product bug, reproduced exactly in bug-reproductions.int.test.ts). Scenario tests accept that
 * (up to 4 units) and nothing more for float columns, so they keep catching every other difference.
 */
export function clickhouseFloatEquality(def: TableDef): ValueEquality {
  const kinds = new Map(def.columns.map((c) => [c.name, c.kind]));
  return (column, expected, actual) => {
    if (expected === actual) return true;
    const kind = kinds.get(column);
    if ((kind !== "float4" && kind !== "float8") || expected === null || actual === null || actual === undefined) return false;
    if (!Number.isFinite(Number(expected)) || !Number.isFinite(Number(actual))) return false;
    return ulpDistance(expected, actual, kind === "float4") <= 4;
  };
}

/** A readable difference between two canonical tables (empty when equal). */
export function diffTables(expected: CanonicalTable, actual: CanonicalTable, limit = 12, same: ValueEquality = (_c, a, b) => a === b): string {
  const missing = [...expected.keys()].filter((k) => !actual.has(k));
  const extra = [...actual.keys()].filter((k) => !expected.has(k));
  const differing: string[] = [];
  for (const [key, row] of expected) {
    const other = actual.get(key);
    if (!other) continue;
    for (const [column, value] of Object.entries(row)) {
      if (!same(column, value, other[column])) differing.push(`${key}.${column}: expected ${short(value)}, got ${short(other[column])}`);
    }
  }
  if (missing.length === 0 && extra.length === 0 && differing.length === 0) return "";
  const lines = [`expected ${expected.size} rows, got ${actual.size}`];
  if (missing.length > 0) lines.push(`missing ${missing.length}: ${missing.slice(0, limit).join(" ")}`);
  if (extra.length > 0) lines.push(`unexpected ${extra.length}: ${extra.slice(0, limit).join(" ")}`);
  if (differing.length > 0) lines.push(`differing values ${differing.length}:`, ...differing.slice(0, limit).map((d) => `  ${d}`));
  return lines.join("\n");
}

function short(value: string | null | undefined): string {
  if (value === undefined) return "(absent)";
  if (value === null) return "NULL";
  return value.length > 120 ? `${JSON.stringify(value.slice(0, 60))}…(${value.length} chars, sha1 ${createHash("sha1").update(value).digest("hex").slice(0, 10)})` : JSON.stringify(value);
}

export function assertTablesEqual(expected: CanonicalTable, actual: CanonicalTable, label: string): void {
  const diff = diffTables(expected, actual);
  if (diff !== "") assert.fail(`${label}: the sink differs from PostgreSQL\n${diff}`);
}

/** Polls until `read()` equals `expected` (for targets that become visible a little later, e.g. after a refresh). */
export async function waitEqual(
  label: string,
  expected: CanonicalTable | (() => Promise<CanonicalTable>),
  read: () => Promise<CanonicalTable>,
  options: WaitOptions & { same?: ValueEquality },
): Promise<void> {
  let lastDiff = "";
  await waitFor(
    `${label} to equal PostgreSQL`,
    async () => {
      lastDiff = diffTables(typeof expected === "function" ? await expected() : expected, await read(), 12, options.same);
      return lastDiff === "";
    },
    { ...options, lastSeen: () => lastDiff },
  );
}
