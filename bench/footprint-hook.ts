/**
 * Loaded into every thread of a daemon that bench/footprint.ts starts (NODE_OPTIONS=--import): notes
 * the modules the thread loads and writes its V8 heap figures and module counts, every 500 ms, to
 * $SLUICE_FOOTPRINT_DIR/heap-<pid>-<thread>.json.
 */
import module from "node:module";
import { writeFileSync } from "node:fs";
import { getHeapSpaceStatistics, getHeapStatistics } from "node:v8";
import { threadId } from "node:worker_threads";

const dir = process.env["SLUICE_FOOTPRINT_DIR"];
const MiB = 2 ** 20;
const modules = new Map<string, number>();

if (dir !== undefined) {
  module.registerHooks({
    load(url, context, next) {
      const loaded = next(url, context);
      if (url.startsWith("file:")) {
        const name = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url)?.[1] ?? "(sluice)";
        modules.set(name, (modules.get(name) ?? 0) + 1);
      }
      return loaded;
    },
  });
  const write = () => {
    const heap = getHeapStatistics();
    const spaces = Object.fromEntries(getHeapSpaceStatistics().map((s) => [s.space_name, { usedMiB: s.space_used_size / MiB, physicalMiB: s.physical_space_size / MiB }]));
    const figures = {
      thread: threadId,
      usedMiB: heap.used_heap_size / MiB,
      physicalMiB: heap.total_physical_size / MiB,
      externalMiB: heap.external_memory / MiB,
      spaces,
      // Node's list of its own modules loaded: amaro strips TypeScript types when the compile cache misses.
      typeStripper: (process as unknown as { moduleLoadList: string[] }).moduleLoadList.some((m) => m.includes("amaro")),
      modules: Object.fromEntries([...modules].sort((a, b) => b[1] - a[1])),
    };
    writeFileSync(`${dir}/heap-${process.pid}-${threadId}.json`, JSON.stringify(figures));
  };
  setInterval(write, 500).unref();
}
