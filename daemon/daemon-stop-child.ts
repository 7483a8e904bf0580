/**
 * Child process of daemon-stop.int.test.ts: starts a daemon from the config given, stops it, then
 * asks it for its status a few times, a moment later, as requests that reached the HTTP server while it stopped
 * do (they ask the closed topic log for the sinks' lag); then returns without exiting, so the
 * process ends only if nothing holds it open. Prints "stopped <sinks' lag as JSON>" when done and,
 * should the process still be alive 3 s later, "held <what holds it>".
 * Usage: node daemon-stop-child.ts '<config as JSON>' (its http.listen is replaced by a free port)
 */
import { setTimeout as sleep } from "node:timers/promises";
import { loadConfigText } from "../config/load.ts";
import { createLogger } from "../runtime/logger.ts";
import { Daemon } from "./daemon.ts";
import { parseRoles, selectParts } from "./roles.ts";

const loaded = loadConfigText("daemon-stop-child.yaml", process.argv[2]!);
const config = { ...loaded, http: { ...loaded.http, listen: "127.0.0.1:0" } };
const logger = createLogger("warn", { write: (line: string) => void process.stderr.write(line) });
const daemon = new Daemon(config, logger, { writeLogLine: (line) => void process.stderr.write(line), selection: selectParts(config, parseRoles({ role: ["sinks"] })) });
await daemon.start();
const { abandoned } = await daemon.stop("test", 60_000);
if (abandoned.length > 0) throw new Error(`the stop abandoned ${abandoned.join(", ")}`);
const lags: unknown[] = [];
for (let request = 0; request < 3; request++) {
  // Later than the stop: the clients' sockets have closed by then (a request in the moment itself sometimes fails on them, sometimes not).
  await sleep(300);
  const status = await daemon.status();
  lags.push((status["sinks"] as { lagRecords: unknown }[]).map((s) => s.lagRecords));
}
process.stdout.write(`stopped ${JSON.stringify(lags)}\n`);
setTimeout(() => process.stdout.write(`held ${JSON.stringify(process.getActiveResourcesInfo())}\n`), 3_000).unref();
