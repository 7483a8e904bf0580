/**
 * How `sluice run` starts with its main thread's heap flags (daemon/memory-exec.ts) without
 * planning twice on the way: planning needs the config read and validated, and loading the
 * modules that does (zod, yaml: ~190 of them) was most of the first process's cost (0.15 CPU-s,
 * 0.2-0.5 s of the launch, docs/benchmarks.md), paid again by the process it starts.
 *
 * So the first process starts the daemon at once with the flags the last start with the same
 * command line used (or, for a new one, the last start's of a config of the same shape: the same
 * kinds of source, topic log and sink, and memory setting), remembered in the compile cache's
 * directory (private to this user, like the compiled code there; no remembering without it). The
 * started process checks them against its config before it loads anything else; when they differ
 * (the config, the code or the machine's cores changed) it starts again with the right ones and
 * remembers those. Only when nothing is remembered does the first process plan, as before.
 */
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { CONFIG_FILE_MAX_BYTES, readBoundedFile } from "../config/bounded-file.ts";

export const REEXEC_MARK = "SLUICE_MEMORY_EXEC";
/** Beside REEXEC_MARK: the flags were remembered, not planned for this config; the started process checks them. */
export const REMEMBERED_MARK = "SLUICE_MEMORY_EXEC_REMEMBERED";

const HEAP_FLAG = /--max[-_]old[-_]space[-_]size|--max[-_]semi[-_]space[-_]size/;
/** Node refuses it in NODE_OPTIONS; given on node's command line it must not be followed by ours (V8 takes the last). */
export const GROWING_FLAG = /--heap[-_]growing[-_]percent/;
/** The only flags a remembered entry may hold: anything else read from the file is ignored. */
const PLANNED_FLAG = /^(--(max-old-space-size|max-semi-space-size|heap-growing-percent)=\d+|--no-allocation-site-pretenuring)$/;
const FILE = "sluice-run-heap-flags.json";
const MAX_ENTRIES = 32;

/** How to start the daemon's process again: node's own flags, then the heap flags, and its environment. */
export interface Reexec {
  readonly execArgv: readonly string[];
  readonly flags: readonly string[];
  readonly env: Record<string, string | undefined>;
}

/** The environment of the re-executed process. */
export function reexecEnvironment(env: Readonly<Record<string, string | undefined>>, flags: readonly string[]): Record<string, string | undefined> {
  return { MALLOC_ARENA_MAX: "2", MALLOC_MMAP_THRESHOLD_: "131072", MALLOC_TRIM_THRESHOLD_: "131072", ...env, [REEXEC_MARK]: flags.join(" ") };
}

/** Whether node was given a heap size by the user. */
export function heapFlagGiven(env: Readonly<Record<string, string | undefined>>, execArgv: readonly string[]): boolean {
  return HEAP_FLAG.test(env["NODE_OPTIONS"] ?? "") || execArgv.some((arg) => HEAP_FLAG.test(arg));
}

const PRETENURING = /--(no-)?allocation[-_]site[-_]pretenuring/;

/** A growing factor or a pretenuring flag the user gave on node's command line wins: ours is left out. */
export function withoutOverriddenFlags(flags: readonly string[], execArgv: readonly string[]): string[] {
  const given = [GROWING_FLAG, PRETENURING].filter((flag) => execArgv.some((arg) => flag.test(arg)));
  return flags.filter((flag) => !given.some((pattern) => pattern.test(flag)));
}

/**
 * What `sluice run ARGS` (this process: `env`, node's own `execArgv`) should start again with, or
 * null when it runs as it is. `cacheDirectory`: where the flags of earlier starts are remembered.
 */
export async function reexecForRun(args: readonly string[], env: Readonly<Record<string, string | undefined>>, execArgv: readonly string[], cacheDirectory: string | undefined): Promise<Reexec | null> {
  const key = JSON.stringify([process.cwd(), args, env["SLUICE_CONFIG"] ?? null]);
  const shape = cacheDirectory === undefined ? "" : shapeOf(args, env);
  const started = env[REEXEC_MARK];
  if (started !== undefined) {
    if (env[REMEMBERED_MARK] === undefined) return null;
    // Started with remembered flags: plan for this config, as a first process would have.
    const given = started.split(" ");
    const userArgv = execArgv.slice(-given.length).join(" ") === started ? execArgv.slice(0, -given.length) : execArgv;
    const userEnv = { ...env };
    delete userEnv[REEXEC_MARK];
    delete userEnv[REMEMBERED_MARK];
    const { heapFlagsForRun } = await import("./memory-exec.ts");
    const planned = heapFlagsForRun(args, userEnv, userArgv);
    // A config that does not load: the command reports it, whatever the heap.
    if (planned === null) return null;
    const known = cacheDirectory === undefined ? undefined : remembered(cacheDirectory).get(key);
    if (cacheDirectory !== undefined && (known?.shape !== shape || known.flags.join(" ") !== planned.join(" "))) remember(cacheDirectory, key, shape, planned);
    if (planned.join(" ") === started) return null;
    return { execArgv: userArgv, flags: planned, env: reexecEnvironment(userEnv, planned) };
  }
  if (heapFlagGiven(env, execArgv)) return null;
  if (cacheDirectory !== undefined) {
    const entries = remembered(cacheDirectory);
    const guess = entries.get(key) ?? [...entries.values()].findLast((entry) => shape !== "" && entry.shape === shape);
    if (guess !== undefined) {
      const flags = withoutOverriddenFlags(guess.flags, execArgv);
      return { execArgv, flags, env: { ...reexecEnvironment(env, flags), [REMEMBERED_MARK]: "1" } };
    }
  }
  const { heapFlagsForRun } = await import("./memory-exec.ts");
  const flags = heapFlagsForRun(args, env, execArgv);
  if (flags === null) return null;
  if (cacheDirectory !== undefined) remember(cacheDirectory, key, shape, flags);
  return { execArgv, flags, env: reexecEnvironment(env, flags) };
}

/**
 * What most decides the plan, read from the config's text without parsing it: its kinds (of
 * sources, topic log, sinks), its memory setting and whether it names personal columns. Only a
 * guess (the started process checks); "" when the file cannot be read.
 */
export function shapeOf(args: readonly string[], env: Readonly<Record<string, string | undefined>>): string {
  try {
    const { values } = parseArgs({ args: [...args], options: { config: { type: "string", short: "c" } }, strict: false, allowPositionals: true });
    const file = typeof values["config"] === "string" ? values["config"] : env["SLUICE_CONFIG"];
    if (file === undefined) return "";
    // Bounded, and never a FIFO: its open would wait for a writer before the daemon could say what is wrong.
    const text = readBoundedFile(file, CONFIG_FILE_MAX_BYTES).toString("utf8");
    const kinds = [...text.matchAll(/\bkind["']?\s*:\s*["']?([\w-]+)/g)].map((m) => m[1]!).sort();
    const memory = /\bmemory["']?\s*:\s*["']?([^\s,"'}]+)/.exec(text)?.[1] ?? "";
    return JSON.stringify([kinds, memory, /\bpersonal\b/.test(text)]);
  } catch {
    return "";
  }
}

/** The remembered flags per command line, with its config's shape, oldest first; entries that are not plain heap flags are dropped. */
function remembered(directory: string): Map<string, { shape: string; flags: string[] }> {
  const entries = new Map<string, { shape: string; flags: string[] }>();
  try {
    const stored = JSON.parse(readFileSync(join(directory, FILE), "utf8")) as unknown;
    if (!Array.isArray(stored)) return entries;
    for (const entry of stored as unknown[]) {
      if (!Array.isArray(entry) || typeof entry[0] !== "string" || typeof entry[1] !== "string" || !Array.isArray(entry[2])) continue;
      const flags = entry[2] as unknown[];
      if (flags.length > 0 && flags.length <= 4 && flags.every((flag) => typeof flag === "string" && PLANNED_FLAG.test(flag))) entries.set(entry[0], { shape: entry[1], flags: flags as string[] });
    }
  } catch {
    // None yet, or unreadable: plan.
  }
  return entries;
}

/** Remembers `flags` for `key` as the latest entry (written whole and renamed: a start reading meanwhile sees the old file or the new). */
function remember(directory: string, key: string, shape: string, flags: readonly string[]): void {
  const entries = remembered(directory);
  entries.delete(key);
  entries.set(key, { shape, flags: [...flags] });
  const kept = [...entries].slice(-MAX_ENTRIES).map(([k, entry]) => [k, entry.shape, entry.flags]);
  const temporary = join(directory, `${FILE}.${process.pid}`);
  try {
    writeFileSync(temporary, JSON.stringify(kept), { mode: 0o600 });
    renameSync(temporary, join(directory, FILE));
  } catch {
    // Not remembered: the next start plans.
  }
}
