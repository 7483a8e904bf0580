/**
 * The embedded log's append cost alone, no servers: capture-like records (framed Avro int keys,
 * 214-byte values, two thirds new keys and one third updates of earlier keys) produced to a
 * compacted topic in calls of 4,096 with a source checkpoint, as capture produces them.
 * CPU-seconds (user + system, `process.cpuUsage`) per 100k records of the produce calls only, each
 * round in a fresh child process and a fresh file. With `--baseline DIR` (a checkout of another
 * commit with node_modules) the two builds alternate round by round in the same run.
 * `--maintenance-runs N`: then N runs of the retention and compaction job, as the daemon's timer
 * runs it (the key index's work where it happens off the append path), timed apart and together.
 *
 *   node bench/embedded-append.ts [--records 200000] [--rounds 3] [--uncompacted] [--maintenance-runs 0] [--baseline DIR]
 */
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import type * as EmbeddedLogModule from "../connectors/embedded/embedded-log.ts";
import type * as LoggerModule from "../runtime/logger.ts";

const { values } = parseArgs({
  options: {
    records: { type: "string", default: "200000" },
    rounds: { type: "string", default: "3" },
    uncompacted: { type: "boolean", default: false },
    "maintenance-runs": { type: "string", default: "0" },
    baseline: { type: "string" },
    child: { type: "string" },
  },
});
const RECORDS = Number(values.records);
const MAINTENANCE_RUNS = Number(values["maintenance-runs"]);
const CALL = 4096;
const VALUE_BYTES = 214;

function avroIntKey(id: number): Uint8Array {
  const bytes = [0, 0, 0, 0, 7];
  let n = (id << 1) ^ (id >> 31);
  while (n > 0x7f) {
    bytes.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  bytes.push(n);
  return Uint8Array.from(bytes);
}

async function child(root: string): Promise<void> {
  const { EmbeddedTopicLog } = (await import(join(root, "connectors/embedded/embedded-log.ts"))) as typeof EmbeddedLogModule;
  const { createLogger } = (await import(join(root, "runtime/logger.ts"))) as typeof LoggerModule;
  const dir = mkdtempSync(join(tmpdir(), "sluice-embedded-append-"));
  try {
    const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: createLogger("warn"), maintenanceIntervalMs: 0, cacheBytes: 2 * 2 ** 20 });
    await log.createTopic({ name: "t", partitions: 1, retentionMs: null, retentionBytes: null, compacted: !values.uncompacted });
    const value = randomBytes(VALUE_BYTES);
    let nextId = 0;
    let seed = 1;
    const calls: { topic: string; key: Uint8Array; value: Uint8Array; timestamp: number }[][] = [];
    for (let produced = 0; produced < RECORDS; produced += CALL) {
      const call = [];
      for (let i = 0; i < Math.min(CALL, RECORDS - produced); i++) {
        seed = (seed * 1103515245 + 12345) & 0x7fffffff;
        const id = nextId > 0 && seed % 3 === 0 ? seed % nextId : nextId++;
        call.push({ topic: "t", key: avroIntKey(id), value, timestamp: Date.now() });
      }
      calls.push(call);
    }
    const start = process.cpuUsage();
    const wall = performance.now();
    let lsn = 0n;
    for (const call of calls) {
      lsn += BigInt(call.length);
      await log.produce(call, { source: "bench", position: { commit: lsn, change: lsn } });
    }
    const cpu = process.cpuUsage(start);
    const seconds = (performance.now() - wall) / 1000;
    const maintenanceStart = process.cpuUsage();
    let compacted = 0;
    for (let run = 0; run < MAINTENANCE_RUNS; run++) compacted += log.runMaintenance().compactedRecords;
    const maintenance = process.cpuUsage(maintenanceStart);
    await log.close();
    process.stdout.write(JSON.stringify({ user: cpu.user / 1e6, system: cpu.system / 1e6, seconds, maintenance: (maintenance.user + maintenance.system) / 1e6, compacted }) + "\n");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (values.child) {
  await child(values.child);
} else {
  const builds = [{ name: "this", root: resolve(import.meta.dirname, "..") }];
  if (values.baseline) builds.push({ name: "baseline", root: resolve(values.baseline) });
  console.log(`${RECORDS} records, calls of ${CALL}, ${values.uncompacted ? "uncompacted" : "compacted"} topic; CPU-s per 100k records (user + system)`);
  for (let round = 1; round <= Number(values.rounds); round++) {
    const order = round % 2 === 1 ? builds : [...builds].reverse();
    for (const build of order) {
      const out = execFileSync(process.execPath, [import.meta.filename, "--child", build.root, "--records", String(RECORDS), "--maintenance-runs", String(MAINTENANCE_RUNS), ...(values.uncompacted ? ["--uncompacted"] : [])], { encoding: "utf8" });
      const r = JSON.parse(out.trim().split("\n").at(-1)!) as { user: number; system: number; seconds: number; maintenance: number; compacted: number };
      const per = (s: number) => ((s * 100_000) / RECORDS).toFixed(3);
      const job = MAINTENANCE_RUNS > 0 ? `; ${MAINTENANCE_RUNS} maintenance runs ${per(r.maintenance)} (${r.compacted} records compacted), together ${per(r.user + r.system + r.maintenance)}` : "";
      console.log(`round ${round} ${build.name.padEnd(8)} ${per(r.user + r.system)} (user ${per(r.user)}, system ${per(r.system)}), ${Math.round(RECORDS / r.seconds)} records/s${job}, load ${loadavg()[0]!.toFixed(1)}`);
    }
  }
}
