/**
 * What the daemon says about its memory budget at start (config/memory.ts): the split, a warning
 * when the default was raised, and one when the main thread's heap is not the planned one (it can
 * only be set when the process starts: daemon/memory-exec.ts).
 */
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import type { MemoryPlan } from "../config/memory.ts";
import { mainHeapFlags } from "../config/memory.ts";
import type { Logger } from "../runtime/logger.ts";
import { cgroupMemoryLimit, type CgroupMemoryLimit } from "../runtime/cgroup-memory.ts";

const MiB = 2 ** 20;

/**
 * V8's heap flags (--max-old-space-size, --max-semi-space-size) size every heap made after them and
 * override a worker's resourceLimits: once the main thread's heap exists, they are set back to 0
 * ("not set"), so each sink thread started later gets its own share. The main heap keeps its limit.
 */
export function releaseHeapFlags(): void {
  setFlagsFromString("--max-old-space-size=0");
  setFlagsFromString("--max-semi-space-size=0");
}

/** The plan in MiB, for a log line. */
export function memorySummary(plan: MemoryPlan): Record<string, unknown> {
  const mb = (bytes: number) => Math.round((bytes / MiB) * 10) / 10;
  return {
    budgetMiB: mb(plan.budgetBytes),
    budgetFrom: plan.budgetFrom,
    reservedMiB: mb(plan.reservedBytes),
    mainHeapMiB: { old: plan.main.oldMb, young: plan.main.youngMb },
    ...(plan.mainReader ? { mainKafkaReaderMiB: { readAhead: mb(plan.mainReader.readAheadBytes), fetch: mb(plan.mainReader.fetchBytes), partitionFetch: mb(plan.mainReader.partitionFetchBytes) } } : {}),
    sources: Object.fromEntries(Object.entries(plan.sources).map(([name, s]) => [name, { readAheadMiB: mb(s.readAheadBytes) }])),
    sinks: Object.fromEntries(
      Object.entries(plan.sinks).map(([name, s]) => [
        name,
        { heapMiB: { old: s.heap.oldMb, young: s.heap.youngMb }, batchMiB: mb(s.batchBytes), ...(s.duckdb ? { duckdbMemoryLimitMiB: mb(s.duckdb.memoryLimitBytes), duckdbThreads: s.duckdb.threads } : {}),
          ...(s.reader ? { kafkaReaderMiB: { readAhead: mb(s.reader.readAheadBytes), fetch: mb(s.reader.fetchBytes), partitionFetch: mb(s.reader.partitionFetchBytes) } } : {}),
        },
      ]),
    ),
    ...(plan.sqliteCacheBytes !== null ? { sqliteCacheMiB: mb(plan.sqliteCacheBytes) } : {}),
  };
}

/** The main thread's V8 heap limit in MiB, as its flags set it. */
export function mainHeapLimitMb(): number {
  return Math.round(getHeapStatistics().heap_size_limit / MiB);
}

export function reportMemoryPlan(plan: MemoryPlan, logger: Logger, heapLimitMb = mainHeapLimitMb(), containerLimit: CgroupMemoryLimit | null = cgroupMemoryLimit()): void {
  logger.info({ memory: { ...memorySummary(plan), ...(containerLimit ? { containerLimitMiB: Math.round(containerLimit.bytes / MiB) } : {}) } }, "memory budget");
  if (plan.budgetFrom === "container" && containerLimit !== null) {
    const budget = Math.round(plan.budgetBytes / MiB);
    const limit = Math.floor(containerLimit.bytes / MiB);
    logger.info(
      { memoryMiB: budget, containerLimitMiB: limit, file: containerLimit.file },
      `memory budget ${budget}MiB, sized from this container's memory limit (${limit}MiB, ${containerLimit.file}): four fifths of it, the rest left for what the kernel counts besides Sluice's memory (page cache, socket buffers, a tmpfs /tmp). memory in the config sets the budget instead (docs/operations.md#memory)`,
    );
  }
  // The budget is kept by Sluice, the container's limit by the kernel: above it, the process may be killed (OOMKilled) on
  // the way to its budget, e.g. through a backlog, with no word from Sluice.
  if (containerLimit !== null && containerLimit.bytes < plan.budgetBytes) {
    const budget = Math.round(plan.budgetBytes / MiB);
    const limit = Math.floor(containerLimit.bytes / MiB);
    logger.warn(
      { memoryMiB: budget, containerLimitMiB: limit, file: containerLimit.file },
      `the memory budget (${budget}MiB${plan.budgetFrom === "raised" ? ", raised from the default for what this process runs" : ""}) is above this container's memory limit (${limit}MiB, ${containerLimit.file}): the kernel may kill it (OOMKilled) before it reaches its budget. Raise the container's limit to about a quarter above the budget (${Math.ceil((budget * 1.25) / 16) * 16}MiB)${plan.budgetFrom === "raised" ? ", or run sinks in another process (--role)" : ", or lower memory in the config"} (docs/operations.md#memory)`,
    );
  }
  // A warning: the container's memory limit, sized for the default, may be too small for it.
  if (plan.budgetFrom === "raised") {
    const mib = Math.round(plan.budgetBytes / MiB);
    logger.warn(
      { memoryMiB: mib },
      `the default memory budget (256MiB) cannot hold this process ${plan.raisedBecause ?? ""}; using ${mib}MiB. Set memory in the config to ${mib}MiB or more (and the container's memory limit about a quarter above it), or run sinks in another process (--role) (docs/operations.md#memory)`,
    );
  }
  // V8 rounds the young generation; a few MiB either way is the planned heap.
  const planned = plan.main.oldMb + plan.main.youngMb;
  if (Math.abs(heapLimitMb - planned) > Math.max(8, planned / 8)) {
    logger.warn(
      { heapLimitMiB: heapLimitMb, plannedMiB: planned },
      `the main thread's heap limit is ${heapLimitMb}MiB, not the ${planned}MiB the memory budget gives it: it was set with --max-old-space-size (NODE_OPTIONS) or Sluice was not started through its command (daemon/sluice.js), so RSS may leave the budget; remove the flag, or give node ${mainHeapFlags(plan).join(" ")}`,
    );
  }
}
