#!/usr/bin/env node
// Plain JavaScript on purpose: it must run on any Node to say which Node Sluice needs.
import { mkdirSync, statSync } from "node:fs";
import module from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`sluice: Node.js 24 or newer is required (this is ${process.version}); run it through "npm run sluice --" or install Node 24.\n`);
  process.exit(2);
}
const args = process.argv.slice(2);
// `sluice run` listens for SIGTERM and SIGINT from its first line. As PID 1 in a container a signal nobody listens for
// is dropped, not fatal: one that came while the modules loaded (seconds with a cold compile cache) was lost and the
// daemon started and ran on until the orchestrator's SIGKILL. The first one is kept and handed to `run` (cli.ts).
let earlySignal;
const noteEarlySignal = (signal) => {
  earlySignal ??= signal;
};
if (args[0] === "run") {
  process.on("SIGTERM", noteEarlySignal);
  process.on("SIGINT", noteEarlySignal);
}
// Node caches the type-stripped and compiled modules on disk (NODE_COMPILE_CACHE, default a directory of this user's
// under os.tmpdir()): a start after the first skips stripping the types of ~200 TypeScript files, about half the CPU of
// loading them. NODE_DISABLE_COMPILE_CACHE=1 turns it off. Worker threads (sinks) use it through the environment.
// Node writes the cache at exit, which a daemon killed (kill -9, out of memory) never reaches: also a minute after start.
const cacheDirectory = process.env.NODE_COMPILE_CACHE || privateCacheDirectory();
const cache = cacheDirectory === undefined ? undefined : module.enableCompileCache?.(cacheDirectory);
if (cache?.directory) {
  process.env.NODE_COMPILE_CACHE ??= cache.directory;
  setTimeout(() => module.flushCompileCache(), 60_000).unref();
}
// `sluice run` gives the main thread its share of the memory budget, which V8 takes only at start (daemon/memory-exec.ts,
// and daemon/memory-exec-start.ts for how the flags of earlier starts spare planning twice).
if (args[0] === "run" && typeof process.execve === "function") {
  const { reexecForRun } = await import("./memory-exec-start.ts");
  const reexec = await reexecForRun(args.slice(1), process.env, process.execArgv, cache?.directory);
  // Loading modules need not turn the event loop: let a signal that came meanwhile be dispatched before the re-exec
  // (which would drop it). Asked to stop before anything started: nothing to stop.
  await new Promise((resolve) => setImmediate(resolve));
  if (earlySignal !== undefined) {
    const line = { level: "info", time: new Date().toISOString(), service: "sluice", signal: earlySignal, msg: "signal before the start: not starting" };
    process.stdout.write(`${JSON.stringify(line)}\n`, () => process.exit(0));
    await new Promise(() => undefined);
  }
  if (reexec !== null) {
    module.flushCompileCache?.();
    process.execve(process.execPath, [process.execPath, ...reexec.execArgv, ...reexec.flags, fileURLToPath(import.meta.url), ...args], reexec.env);
  }
}
const { main, installCrashHandler, takeOverEarlySignals } = await import("./cli.ts");
installCrashHandler();
takeOverEarlySignals(() => {
  process.off("SIGTERM", noteEarlySignal);
  process.off("SIGINT", noteEarlySignal);
  return earlySignal;
});
process.exitCode = await main(args);

/**
 * Compiled code is run as it is found, so the cache must be writable by this user alone: a directory another local
 * user could create first (the shared temporary directory's default name) would let them plant code. No cache when
 * the directory is not ours or is open to others.
 */
function privateCacheDirectory() {
  const uid = process.getuid?.();
  const directory = join(tmpdir(), `sluice-compile-cache-${uid ?? "user"}`);
  try {
    mkdirSync(directory, { recursive: true, mode: 0o700 });
    const stats = statSync(directory);
    if (!stats.isDirectory() || (uid !== undefined && stats.uid !== uid) || (stats.mode & 0o077) !== 0) return undefined;
    return directory;
  } catch {
    return undefined;
  }
}
