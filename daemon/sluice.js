#!/usr/bin/env node
// Plain JavaScript on purpose: it must run on any Node to say which Node Sluice needs.
import module from "node:module";
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`sluice: Node.js 24 or newer is required (this is ${process.version}); run it through "npm run sluice --" or install Node 24.\n`);
  process.exit(2);
}
// Node caches the type-stripped and compiled modules on disk (NODE_COMPILE_CACHE, default a directory under
// os.tmpdir()): a start after the first skips stripping the types of ~200 TypeScript files, about half the CPU of
// loading them. NODE_DISABLE_COMPILE_CACHE=1 turns it off. Worker threads (sinks) use it through the environment.
// Node writes the cache at exit, which a daemon killed (kill -9, out of memory) never reaches: also a minute after start.
const cache = module.enableCompileCache?.();
if (cache?.directory) {
  process.env.NODE_COMPILE_CACHE ??= cache.directory;
  setTimeout(() => module.flushCompileCache(), 60_000).unref();
}
const args = process.argv.slice(2);
// `sluice run` gives the main thread its share of the memory budget, which V8 takes only at start (daemon/memory-exec.ts).
if (args[0] === "run" && typeof process.execve === "function") {
  const { heapFlagsForRun, reexecEnvironment } = await import("./memory-exec.ts");
  const flags = heapFlagsForRun(args.slice(1), process.env, process.execArgv);
  if (flags !== null) {
    module.flushCompileCache?.();
    process.execve(process.execPath, [process.execPath, ...process.execArgv, ...flags, fileURLToPath(import.meta.url), ...args], reexecEnvironment(process.env, flags));
  }
}
const { main, installCrashHandler } = await import("./cli.ts");
installCrashHandler();
process.exitCode = await main(args);
