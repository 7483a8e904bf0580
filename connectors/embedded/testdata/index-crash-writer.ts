/**
 * Child process of ../index-kill9.test.ts: appends to a compacted topic of the embedded log and runs
 * its compaction job (which first indexes the keys appended since its last run) until killed.
 * Record n has key `k<n * 7919 mod keys>` and value `v<n>`; each produce call's checkpoint holds the
 * number of records written so far. Prints "append" before each produce call, "index" before each
 * job run and "indexed" after it.
 * Usage: node index-crash-writer.ts <path> <keys>
 */
import { createLogger } from "../../../runtime/logger.ts";
import { EmbeddedTopicLog } from "../embedded-log.ts";

export const CRASH_TOPIC = "dep.src.public.crash";
export const CALL_RECORDS = 500;
/** Produce calls between two job runs: each run then indexes thousands of keys. */
export const CALLS_PER_RUN = 30;
export const crashKey = (n: number, keys: number) => `k${(n * 7919) % keys}`;

if (import.meta.main) {
  const [path, keys] = process.argv.slice(2);
  const log = EmbeddedTopicLog.open({ path: path!, logger: createLogger("silent"), maintenanceIntervalMs: 0, maintenanceBudget: 10_000 });
  await log.createTopic({ name: CRASH_TOPIC, partitions: 2, retentionMs: null, retentionBytes: null, compacted: true });
  const encoder = new TextEncoder();
  let n = Number((await log.readCheckpoint("crash"))?.position.commit ?? 0n);
  for (let call = 0; ; call++) {
    process.stdout.write("append\n");
    const records = Array.from({ length: CALL_RECORDS }, (_, i) => ({ topic: CRASH_TOPIC, key: encoder.encode(crashKey(n + i, Number(keys))), value: encoder.encode(`v${n + i}`), timestamp: Date.now() }));
    n += CALL_RECORDS;
    await log.produce(records, { source: "crash", position: { commit: BigInt(n), change: BigInt(n) } });
    if (call % CALLS_PER_RUN === CALLS_PER_RUN - 1) {
      process.stdout.write("index\n");
      log.runMaintenance();
      process.stdout.write("indexed\n");
    }
  }
}
