/**
 * Child process of the contract suite's crash test: writes batches with their checkpoint through
 * a topic log as fast as it can and prints "acked N" after batch N is acknowledged, until killed.
 * Usage: node crash-writer.ts '<CrashWriterArgs as JSON>'
 */
import { createLogger } from "../../runtime/logger.ts";
import type { CrashWriterArgs } from "./contract-suite.ts";
import { CRASH_BASE } from "./crash-base.ts";
import { openTopicLog } from "./open.ts";

const args = JSON.parse(process.argv[2]!) as CrashWriterArgs;
const log = await openTopicLog(args.topics, args.deployment, createLogger("warn"));
const encoder = new TextEncoder();
for (let batch = 0; ; batch++) {
  const records = Array.from({ length: args.recordsPerBatch }, (_, i) => ({
    topic: args.topic,
    key: encoder.encode(`key-${i % 7}`),
    value: encoder.encode(`${batch}:${String(i).padStart(4, "0")}`),
    timestamp: Date.now(),
  }));
  await log.produce(records, { source: args.source, position: { commit: CRASH_BASE + BigInt(batch), change: CRASH_BASE * 2n + BigInt(batch) } });
  process.stdout.write(`acked ${batch}\n`);
}
