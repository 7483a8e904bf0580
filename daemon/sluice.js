#!/usr/bin/env node
// Plain JavaScript on purpose: it must run on any Node to say which Node Sluice needs.
import { fileURLToPath } from "node:url";

const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`sluice: Node.js 24 or newer is required (this is ${process.version}); run it through "npm run sluice --" or install Node 24.\n`);
  process.exit(2);
}
const args = process.argv.slice(2);
// `sluice run` gives the main thread its share of the memory budget, which V8 takes only at start (daemon/memory-exec.ts).
if (args[0] === "run" && typeof process.execve === "function") {
  const { heapFlagsForRun, reexecEnvironment } = await import("./memory-exec.ts");
  const flags = heapFlagsForRun(args.slice(1), process.env, process.execArgv);
  if (flags !== null) process.execve(process.execPath, [process.execPath, ...process.execArgv, ...flags, fileURLToPath(import.meta.url), ...args], reexecEnvironment(process.env, flags));
}
const { main, installCrashHandler } = await import("./cli.ts");
installCrashHandler();
process.exitCode = await main(args);
