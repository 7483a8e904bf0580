/**
 * The DuckDB sink on a large keyed table inside a memory_limit (issue 16: the whole daemon in
 * 256 MB through a 10M-row snapshot and a 2M-change backlog). DuckDB alone, through the sink's own
 * write path (staging through the appender, the upserts, one transaction a batch):
 *
 * 1. snapshot: `--keys` rows in key order (id bigint, v text, n bigint), `--batch` a write;
 * 2. the sink is closed and opened again (a daemon's restart: nothing of the table in memory);
 * 3. backlog: `--changes` updates of keys drawn uniformly from the whole range, `--batch` a write.
 *
 * Printed per phase: rows applied, rows per second, and, when DuckDB ran out of its memory_limit
 * (SINK_OUT_OF_MEMORY; a change that does not fit even alone halts its table), how many rows had been applied
 * before; the process's peak RSS (VmHWM) and the most RSS seen in the phase; DuckDB's own count
 * by tag (duckdb_memory()) at the end of the phase; progress every tenth of a phase on stderr. One
 * configuration a run (so the peak is its own); the database goes to a temporary directory removed
 * at the end.
 *
 *   node bench/duckdb-keys.ts [--keys 10000000] [--changes 2000000] [--batch 5000]
 *     [--memory-limit 96MiB] [--threads 1] [--no-restart] [--dir /tmp]
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { SinkChange } from "../connectors/contracts.ts";
import { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { SluiceError } from "../connectors/errors.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { parseSize } from "../config/units.ts";

const { values: args } = parseArgs({
  options: {
    keys: { type: "string", default: "10000000" },
    changes: { type: "string", default: "2000000" },
    batch: { type: "string", default: "5000" },
    "memory-limit": { type: "string", default: "96MiB" },
    threads: { type: "string", default: "1" },
    "no-restart": { type: "boolean", default: false },
    dir: { type: "string", default: "/tmp" },
  },
});
const KEYS = Number(args.keys);
const CHANGES = Number(args.changes);
const BATCH = Number(args.batch);
const MEMORY_LIMIT = parseSize(args["memory-limit"]) ?? 96 * 2 ** 20;
const THREADS = Number(args.threads);

const dir = mkdtempSync(join(args.dir, "sluice-duckdb-keys-"));
const path = join(dir, "keys.duckdb");
const schema = tableSchema("keys", [["id", "bigint"], ["v", "text"], ["n", "bigint"]]);
const events = new Events(schema);
const config = testSinkConfig("duckdb", { name: "bench", path, target: "{table}", memory_limit: MEMORY_LIMIT, threads: THREADS });
const signal = new AbortController().signal;

function status(field: "VmRSS" | "VmHWM"): number {
  const match = readFileSync("/proc/self/status", "utf8").match(new RegExp(`${field}:\\s+(\\d+)`));
  return match ? Math.round(Number(match[1]) / 1024) : 0;
}

async function duckdbMemory(sink: DuckDbSink): Promise<string> {
  const rows = await sink.query("SELECT tag, round(memory_usage_bytes / 1048576, 1) AS mib FROM duckdb_memory() WHERE memory_usage_bytes > 0 ORDER BY memory_usage_bytes DESC");
  return rows.map((row) => `${String(row["tag"])} ${String(row["mib"])}`).join(", ");
}

let version = 0n;
async function phase(sink: DuckDbSink, name: string, rows: number, keyOf: (i: number) => number): Promise<boolean> {
  const started = performance.now();
  let applied = 0;
  let mostRss = 0;
  let outOfMemory: string | null = null;
  while (applied < rows) {
    const size = Math.min(BATCH, rows - applied);
    const batch: SinkChange[] = [];
    for (let i = 0; i < size; i++) {
      const id = keyOf(applied + i);
      version += 1n;
      batch.push(events.insert(version, { id, v: `value ${id} ${version}`, n: Number(version) }, name === "snapshot" ? "r" : "u"));
    }
    try {
      // A change that does not fit even alone halts the table (SINK_TARGET_BLOCKED, a failure of the write).
      const refused = (await sink.write(batch, signal)).failures[0];
      if (refused !== undefined) {
        outOfMemory = refused.error.message.split("\n")[0]!;
        break;
      }
    } catch (error) {
      if (!(error instanceof SluiceError && error.code === "SINK_OUT_OF_MEMORY")) throw error;
      outOfMemory = error.message.split("\n")[0]!;
      break;
    }
    const tenth = Math.ceil(rows / 10);
    if (Math.floor((applied + size) / tenth) > Math.floor(applied / tenth)) {
      process.stderr.write(`${name}: ${applied + size} of ${rows} rows, ${((performance.now() - started) / 1000).toFixed(0)} s\n`);
    }
    applied += size;
    mostRss = Math.max(mostRss, status("VmRSS"));
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(
    JSON.stringify({
      phase: name,
      memoryLimitMiB: MEMORY_LIMIT / 2 ** 20,
      threads: THREADS,
      keys: KEYS,
      applied,
      ...(outOfMemory ? { outOfMemoryAfter: applied, error: outOfMemory } : {}),
      seconds: Number(seconds.toFixed(1)),
      rowsPerSecond: Math.round(applied / seconds),
      mostRssMiB: mostRss,
      peakRssMiB: status("VmHWM"),
      duckdb: await duckdbMemory(sink).catch((error: unknown) => `unreadable: ${String(error)}`),
    }),
  );
  return outOfMemory === null;
}

async function opened(): Promise<DuckDbSink> {
  const sink = new DuckDbSink(config, { logger: testLogger() });
  await sink.open(signal);
  return sink;
}

try {
  let sink = await opened();
  const snapshotDone = await phase(sink, "snapshot", KEYS, (i) => i);
  if (!args["no-restart"]) {
    await sink.close();
    sink = await opened();
  }
  // A multiplicative hash of the change's number spreads the updates over the whole key range.
  if (snapshotDone) await phase(sink, "backlog", CHANGES, (i) => Number((BigInt(i) * 2654435761n + 97n) % BigInt(KEYS)));
  await sink.close();
} finally {
  rmSync(dir, { recursive: true, force: true });
}
