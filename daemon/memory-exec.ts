/**
 * The main thread's share of the memory budget (config/memory.ts) as V8 flags for `sluice run`.
 *
 * Why a re-exec: a worker's heap is limited when it starts (resourceLimits), but the main thread's
 * heap is sized when V8 starts, from flags only; `v8.setFlagsFromString("--max-old-space-size")`
 * after that has no effect on the heap already made. So daemon/sluice.js reads the config, plans,
 * and replaces its process (process.execve: same PID, so PID 1 in a container still receives the
 * signals) with node started with these flags (the budget is `memory`, 256MiB when the config
 * sets none). It does not when the user gave a heap flag (in NODE_OPTIONS or on node's command line: theirs wins; a
 * --heap-growing-percent or an --[no-]allocation-site-pretenuring of theirs is kept and ours left out), when it already did (SLUICE_MEMORY_EXEC),
 * or when it cannot (no process.execve, e.g. on Windows, or a config that does not load: the
 * command then reports the problem as usual). The first process usually does not plan: it starts
 * with the flags an earlier start planned, which the started process checks (daemon/memory-exec-start.ts).
 *
 * The new process also gets MALLOC_ARENA_MAX=2 unless the environment sets it: glibc gives every
 * thread that allocates (sink threads, DuckDB's, libuv's) an arena of its own, and their unused
 * pages kept ~20 MiB more RSS in bench/memory-budget.ts. And glibc's mmap and trim thresholds fixed
 * at their initial 128 KiB (each unless the environment sets it): by default glibc raises the mmap
 * threshold to the size of each large block freed (up to 32 MiB), so the batches' and sockets' big
 * buffers come from the arenas afterwards and their pages stay in RSS when freed; fixed, such a
 * block is its own mapping and goes back to the system when freed (a snapshot's peak RSS 9-21 MiB
 * lower in one bench/memory-budget.ts run, CPU no different: docs/benchmarks.md).
 */
import { parseArgs } from "node:util";
import { loadConfigFile } from "../config/load.ts";
import { mainHeapFlags, planMemory } from "../config/memory.ts";
import { heapFlagGiven, REEXEC_MARK, withoutOverriddenFlags } from "./memory-exec-start.ts";
import { parseRoles, selectParts } from "./roles.ts";
import { cgroupMemoryLimit } from "../runtime/cgroup-memory.ts";

export { heapFlagGiven, REEXEC_MARK, reexecEnvironment } from "./memory-exec-start.ts";

/** The V8 flags `sluice run ARGS` should start with, or null when it should start as it is. */
export function heapFlagsForRun(args: readonly string[], env: Readonly<Record<string, string | undefined>>, execArgv: readonly string[]): string[] | null {
  if (env[REEXEC_MARK] !== undefined || heapFlagGiven(env, execArgv)) return null;
  try {
    const { values } = parseArgs({
      args: [...args],
      options: { config: { type: "string", short: "c" }, role: { type: "string", multiple: true }, source: { type: "string", multiple: true }, sink: { type: "string", multiple: true } },
      strict: false,
      allowPositionals: true,
    });
    const file = typeof values["config"] === "string" ? values["config"] : env["SLUICE_CONFIG"];
    if (file === undefined) return null;
    const roles = parseRoles({ role: values["role"] as string[] | undefined, source: values["source"] as string[] | undefined, sink: values["sink"] as string[] | undefined });
    const captures = (name: string) => roles.roles.has("capture") && (roles.sources.length === 0 || roles.sources.includes(name));
    const runsSink = (name: string) => roles.roles.has("sinks") && (roles.sinks.length === 0 || roles.sinks.includes(name));
    const config = loadConfigFile(file, { env, captures, runsSink, checkMemory: true });
    const plan = planMemory(config, selectParts(config, roles), undefined, cgroupMemoryLimit()?.bytes ?? null);
    return withoutOverriddenFlags(mainHeapFlags(plan), execArgv);
  } catch {
    return null;
  }
}
