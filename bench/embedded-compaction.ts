/**
 * The embedded log's compaction job: produce N records of 256 bytes over K keys (a tenth of them
 * deletes: record + tombstone) into a compacted topic, then run the job as the daemon does (one
 * bounded run at a time) until a run finds nothing left, and report records examined per second,
 * what is left, the longest run (how long a writer may wait for the job's transaction) and the
 * heap's growth (memory stays bounded by one stored batch and the run's row list).
 *
 *   node --expose-gc bench/embedded-compaction.ts [--records 1000000] [--keys 50000]
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { ProducedRecord } from "../connectors/topics/contract.ts";
import { createLogger } from "../runtime/logger.ts";

const { values } = parseArgs({ options: { records: { type: "string", default: "1000000" }, keys: { type: "string", default: "50000" } } });
const total = Number(values.records);
const keys = Number(values.keys);
const dir = mkdtempSync(join(tmpdir(), "sluice-bench-compaction-"));
const day = 86_400_000;
let now = Date.now();
const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: createLogger("silent"), maintenanceIntervalMs: 0, clock: () => now, tombstoneRetentionMs: day });
try {
  await log.createTopic({ name: "t", partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
  const value = Buffer.alloc(256, 7);
  for (let i = 0; i < total; ) {
    const batch: ProducedRecord[] = [];
    for (; batch.length < 1000 && i < total; i++) {
      const key = Buffer.from(`key-${i % keys}`);
      batch.push({ topic: "t", key, value, timestamp: now });
      if (i % 10 === 9) batch.push({ topic: "t", key, value: null, timestamp: now });
    }
    await log.produce(batch);
  }
  const written = (await log.endOffsets("t"))[0]!.offset;
  now += 2 * day;
  global.gc?.();
  const heapBefore = process.memoryUsage().heapUsed;
  let heapPeak = heapBefore;
  let runs = 0;
  let removed = 0;
  let longest = 0;
  const started = performance.now();
  for (let idle = 0; idle < 2; runs++) {
    global.gc?.();
    const t0 = performance.now();
    const result = log.runMaintenance();
    longest = Math.max(longest, performance.now() - t0);
    // Right after a run, before any collection: what one run allocated, on top of what stays.
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    removed += result.compactedRecords;
    idle = result.compactedRecords === 0 && result.deletedBatches === 0 ? idle + 1 : 0;
  }
  const seconds = (performance.now() - started) / 1000;
  console.log(`${written} records written (${total} values over ${keys} keys, every tenth followed by a tombstone)`);
  console.log(`compaction: ${removed} records removed in ${runs} runs, ${seconds.toFixed(1)} s (${Math.round(Number(written) / seconds)} records/s)`);
  console.log(`longest run ${longest.toFixed(0)} ms; largest heap growth by one run (garbage included; --expose-gc collects between runs) ${((heapPeak - heapBefore) / 2 ** 20).toFixed(1)} MiB`);
} finally {
  await log.close();
  rmSync(dir, { recursive: true, force: true });
}
