#!/usr/bin/env node
// Plain JavaScript on purpose: it must run on any Node to say which Node Sluice needs.
const major = Number(process.versions.node.split(".")[0]);
if (major < 24) {
  process.stderr.write(`sluice: Node.js 24 or newer is required (this is ${process.version}); run it through "npm run sluice --" or install Node 24.\n`);
  process.exit(2);
}
const { main, installCrashHandler } = await import("./cli.ts");
installCrashHandler();
process.exitCode = await main(process.argv.slice(2));
