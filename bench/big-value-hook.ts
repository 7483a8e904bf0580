/**
 * Loaded into every thread of a daemon bench/big-value.ts starts with --timeline (NODE_OPTIONS=--import):
 * every 5 ms, when the process's RSS or this thread's V8 heap or external memory moved by 4 MiB or
 * more, appends `<ms> t<thread> rss <MiB> heap <MiB> ext <MiB> ab <MiB>` to $SLUICE_BIG_VALUE_TIMELINE
 * (external memory counts ArrayBuffers, `ab`, and external strings). A thread busy in one
 * synchronous step is not sampled until it ends.
 */
import { appendFileSync, readFileSync } from "node:fs";
import { threadId } from "node:worker_threads";

const out = process.env["SLUICE_BIG_VALUE_TIMELINE"];
const MiB = 2 ** 20;

if (out !== undefined) {
  let last = { rss: 0, heap: 0, ext: 0 };
  setInterval(() => {
    const usage = process.memoryUsage();
    const rss = Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1]) / 1024;
    const now = { rss, heap: usage.heapUsed / MiB, ext: usage.external / MiB };
    if (Math.abs(now.rss - last.rss) < 4 && Math.abs(now.heap - last.heap) < 4 && Math.abs(now.ext - last.ext) < 4) return;
    appendFileSync(out, `${Date.now()} t${threadId} rss ${now.rss.toFixed(0)} heap ${now.heap.toFixed(0)} ext ${now.ext.toFixed(0)} ab ${(usage.arrayBuffers / MiB).toFixed(0)}\n`);
    last = now;
  }, 5).unref();
}
