/**
 * `sluice replay --sink NAME --from-beginning --rebuild [--table T]... [--execute]`: asks the
 * running daemon to rebuild the sink (or only the tables given) (it owns the target and keeps it serving); with no daemon running, rebuilds
 * here under the sink's lease.
 */
import { existsSync } from "node:fs";
import { hostname } from "node:os";
import type { SinkConfig, SluiceConfig } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import { lostTopicPolicyOf, openTopicLogForCommand } from "../connectors/topics/open.ts";
import { createSink, openRegistry, personalDecryptor, recordDecoder, sinkGroupName } from "./components.ts";
import { callDaemon, daemonBusyMessage, daemonRunning, refusalHint } from "./daemon-client.ts";
import type { DaemonAnswer } from "./daemon-client.ts";
import type { Logger } from "../runtime/logger.ts";
import { describeHistoryGaps, historyGaps, isRebuildable, rebuildSink } from "./rebuild.ts";
import type { RebuildReport } from "./rebuild.ts";
import type { GroupHold, TopicLog } from "../connectors/contracts.ts";
import type { RebuildableSink, RebuildShadow } from "../connectors/sinks/contract.ts";
import type { RebuildProgress, RebuildProgressEntry } from "./rebuild-progress.ts";
import { REBUILD_UNKNOWN_TABLE, rebuildTopics } from "./rebuild-tables.ts";
import { recordWhere } from "./rebuild-records.ts";
import { otherSinkProcesses, REBUILD_SINK_SHARED, sinkSharedError } from "./rebuild-sharing.ts";
import type { OtherSinkProcess } from "./rebuild-sharing.ts";
import { abandonRebuild, describeAbandon, planAbandon, undroppedReport } from "./rebuild-abandon.ts";
import type { AbandonReport } from "./rebuild-abandon.ts";
import { eraseInSink } from "./governance/erasure.ts";
import { watchRebuildErasures } from "./governance/rebuild-erasures.ts";
import { oneLine } from "./terminal-text.ts";
import { sinkNotHere } from "./sink-elsewhere.ts";
import type { SeenInstance } from "./sink-elsewhere.ts";

export interface RebuildIo {
  stdout(text: string): void;
  stderr(text: string): void;
  /** Progress as the rebuild goes (a terminal draws it); the daemon's is polled from its /status. */
  progress?(progress: RebuildProgress): void;
}

/** How often the command asks a daemon doing the rebuild how far it got. */
const PROGRESS_POLL_MS = 1_000;

/** Errors that mean "refused, nothing changed" rather than a failure. */
const REFUSALS = new Set(["REBUILD_HISTORY_INCOMPLETE", "REBUILD_ROW_COUNT_MISMATCH", REBUILD_UNKNOWN_TABLE, REBUILD_SINK_SHARED]);

function describe(report: RebuildReport): string {
  const rebuilt = `rebuilt ${report.tables.length} table${report.tables.length === 1 ? "" : "s"} (${report.tables.map(oneLine).join(", ") || "none"}) from ${report.records} records, swapped in`;
  // A daemon from before the count answers without it.
  const leftOut = report.leftOut ?? 0;
  if (leftOut === 0) return rebuilt;
  const shown = (report.leftOutRecords ?? []).map((r) => `${oneLine(recordWhere(r))} (${oneLine(r.reason)})`).join(", ");
  const more = leftOut > (report.leftOutRecords ?? []).length ? ` and ${leftOut - (report.leftOutRecords ?? []).length} more` : "";
  return `${rebuilt}; left out ${leftOut} record${leftOut === 1 ? "" : "s"} no decoder can read (no change in ${leftOut === 1 ? "it" : "them"}): ${shown}${more}`;
}

export async function runRebuildCommand(
  config: SluiceConfig,
  sinkName: string,
  execute: boolean,
  io: RebuildIo,
  logger: Logger,
  tables: readonly string[] = [],
): Promise<number> {
  const found = await sinkAndDaemon(config, sinkName, io);
  if (typeof found === "number") return found;
  const { sinkConfig, running } = found;
  if (!execute) {
    // The daemon at http.listen may run other roles only (scale-out): the dry run says so, as --execute would be answered.
    const elsewhere = running ? await daemonRunsElsewhere(config, sinkName) : null;
    if (elsewhere !== null) {
      io.stderr(`sluice replay: the daemon at http.listen would not rebuild sink "${sinkName}": ${elsewhere}.\nDry run: nothing changed.\n`);
      return 1;
    }
    // The same history check the rebuild makes first: a dry run shows the refusal too.
    const readLog = await openTopicLogForCommand(config.topics, config.name, logger, "read-only");
    try {
      let topics: string[];
      try {
        topics = rebuildTopics(config, sinkConfig, await readLog.topicNames(), tables);
      } catch (error) {
        if (!(error instanceof SluiceError) || error.code !== REBUILD_UNKNOWN_TABLE) throw error;
        io.stderr(`sluice replay: ${error.message}\n`);
        return 1;
      }
      const gaps = await historyGaps(readLog, topics);
      if (gaps.length > 0) {
        io.stderr(`sluice replay: a rebuild would be refused: ${describeHistoryGaps(sinkName, gaps)}.\nDry run: nothing changed.\n`);
        return 1;
      }
    } finally {
      await readLog.close();
    }
    const which = tables.length === 0 ? "each of its tables" : `each of the tables ${tables.join(", ")}`;
    io.stdout(
      `Rebuild of sink "${sinkName}": ${which} gets a new generation filled from its topic's beginning, ` +
        `while the current one keeps serving; each swaps in once caught up. ${running ? "The running daemon will do it." : "No daemon runs: this command will do it."}\n` +
        (tables.length === 0 ? "" : "Its other tables are left as they are. ") +
        "Dry run: nothing changed. Run again with --execute.\n",
    );
    return 0;
  }
  if (running) {
    const polling = io.progress === undefined ? null : pollDaemonProgress(config, sinkName, io.progress.bind(io));
    const response = await callDaemon(config, `/sinks/${encodeURIComponent(sinkName)}/rebuild`, { method: "POST", body: JSON.stringify(tablesField(tables)), timeoutMs: 24 * 3_600_000 }).finally(() => polling?.stop());
    const body = answerOf<RebuildReport>(response);
    if (!response.ok) {
      io.stderr(`sluice replay: the daemon could not rebuild sink "${sinkName}": ${oneLine(body.error ?? response.statusText)}${refusalHint(response)}\n`);
      return 1;
    }
    io.stdout(`Done (by the running daemon): ${describe(body)}.\n`);
    return 0;
  }
  return withSinkHere(config, sinkConfig, "rebuild", io, logger, async (sink, log, sharing, signal) => {
    const { registry } = await openRegistry(config, log);
    try {
      const topics = rebuildTopics(config, sinkConfig, await log.topicNames(), tables);
      const personal = personalDecryptor(config, log);
      // sluice forget run meanwhile erases from its own process: each subject it forgets is erased again here, in the new tables too.
      const erasures = await watchRebuildErasures(config, sinkConfig, personal, (requests) => eraseInSink(sink, requests, signal), logger);
      try {
        const report = await rebuildSink({
          sink,
          log,
          decoder: recordDecoder(registry, personal),
          topics,
          group: `${sharing.group}.rebuild`,
          logger,
          signal,
          retry: { initialMs: sinkConfig.retry.initial, maxMs: sinkConfig.retry.max },
          ...(io.progress === undefined ? {} : { onProgress: io.progress.bind(io) }),
          ...(erasures === null ? {} : { erasures }),
          // Kafka gives no lease: the sink's processes elsewhere are its group's members, and this command holds the group meanwhile.
          sharing,
        });
        io.stdout(`Done: ${describe(report)}.\n`);
        return 0;
      } finally {
        erasures?.close();
      }
    } catch (error) {
      if (!(error instanceof SluiceError) || !REFUSALS.has(error.code)) throw error;
      io.stderr(`sluice replay: ${error.message}\n`);
      return 1;
    }
  });
}

/**
 * `sluice replay --sink NAME --abandon-rebuild [--table T]... [--execute]`: drops the half-built
 * tables an interrupted rebuild left (rebuild-abandon.ts), through the running daemon, else here
 * under the sink's lease.
 */
export async function runAbandonRebuildCommand(config: SluiceConfig, sinkName: string, tables: readonly string[], execute: boolean, io: RebuildIo, logger: Logger): Promise<number> {
  const found = await sinkAndDaemon(config, sinkName, io);
  if (typeof found === "number") return found;
  const { sinkConfig, running } = found;
  const finish = (report: AbandonReport, by: string) => {
    io.stdout(describeAbandon(sinkName, report, execute).replace(/^Done:/m, `Done${by}:`));
    return report.notFound.length > 0 ? 1 : 0;
  };
  if (running) {
    const response = await callDaemon(config, `/sinks/${encodeURIComponent(sinkName)}/rebuild/abandon`, { method: "POST", body: JSON.stringify({ ...tablesField(tables), execute }), timeoutMs: 600_000 });
    const body = answerOf<AbandonReport>(response);
    if (!response.ok) {
      io.stderr(`sluice replay: the daemon could not abandon the rebuild of sink "${sinkName}": ${oneLine(body.error ?? response.statusText)}${refusalHint(response)}\n`);
      return 1;
    }
    return finish(body, " (by the running daemon)");
  }
  // Looked at first without opening the sink or the topic log (both made if missing): a dry run, and an --execute with
  // nothing to drop, change nothing.
  const look = await lookAtShadows(sinkConfig);
  if (look instanceof SluiceError && !execute) {
    io.stderr(`sluice replay: ${look.message}; is the sink running elsewhere? Nothing changed.\n`);
    return 1;
  }
  if (Array.isArray(look)) {
    const plan = planAbandon(look, tables);
    if (!execute || plan.owned.length === 0) return finish(undroppedReport(plan), "");
  }
  if (!execute && config.topics.kind === "embedded" && !existsSync(config.topics.path)) {
    // No embedded log: no process runs the sink with this config, so there is no lease to take, and none to make.
    return withRebuildableSink(sinkConfig, io, logger, async (sink, signal) => finish(await abandonRebuild(sink, tables, false, signal, logger), ""));
  }
  return withSinkHere(config, sinkConfig, execute ? "abandon" : "abandon-dry-run", io, logger, async (sink, _log, sharing, signal) => {
    try {
      return finish(await abandonRebuild(sink, tables, execute, signal, logger, sharing), "");
    } catch (error) {
      if (!(error instanceof SluiceError) || error.code !== REBUILD_SINK_SHARED) throw error;
      io.stderr(`sluice replay: ${error.message}\n`);
      return 1;
    }
  });
}

/**
 * The shadows the sink's target holds, read without opening the sink (nothing made); null for a kind that cannot be
 * looked at so (it is opened), the error when the target cannot be read (a DuckDB file another process holds).
 */
async function lookAtShadows(sinkConfig: SinkConfig): Promise<readonly RebuildShadow[] | SluiceError | null> {
  if (sinkConfig.kind !== "duckdb") return null;
  const { readDuckDbShadows } = await import("../connectors/duckdb/shadows-read-only.ts");
  return readDuckDbShadows(sinkConfig.path).catch((error: unknown) => {
    if (error instanceof SluiceError) return error;
    throw error;
  });
}

/**
 * The sink the command names and whether a daemon runs (any answer means one does; a refused token is reported by the request
 * to it); an exit code when there is no such sink (2) or a daemon listens but does not answer (1), said on standard error.
 */
async function sinkAndDaemon(config: SluiceConfig, sinkName: string, io: RebuildIo): Promise<{ sinkConfig: SinkConfig; running: boolean } | number> {
  const sinkConfig = config.sinks.find((s) => s.name === sinkName);
  if (!sinkConfig) {
    io.stderr(`sluice replay: no sink "${sinkName}"; sinks: ${config.sinks.map((s) => s.name).join(", ") || "(none)"}\n`);
    return 2;
  }
  const running = await daemonRunning(config);
  if (typeof running === "object") {
    io.stderr(`sluice replay: ${daemonBusyMessage(config, running)}\n`);
    return 1;
  }
  return { sinkConfig, running };
}

/** Why the daemon at http.listen does not run `sinkName`, as its /status tells (sink-elsewhere.ts); null when it does, or cannot tell. */
async function daemonRunsElsewhere(config: SluiceConfig, sinkName: string): Promise<string | null> {
  const answer = await callDaemon(config, "/status", { timeoutMs: 10_000 }).catch(() => null);
  if (!answer?.ok) return null;
  const status = answerOf<{ instance?: { roles?: string[]; sinks?: string[] }; instances?: SeenInstance[] }>(answer);
  const here = status.instance?.sinks;
  if (here === undefined) return null;
  return sinkNotHere(sinkName, { configured: config.sinks.map((s) => s.name), here, roles: status.instance?.roles ?? [] }, status.instances ?? []);
}

/** The daemon's JSON answer; one that is not JSON (a proxy's page) is read as an error named by the status text. */
function answerOf<T>(response: DaemonAnswer): T & { error?: string } {
  try {
    return response.json() as T & { error?: string };
  } catch {
    return { error: response.statusText } as T & { error?: string };
  }
}

/** The request's "tables": left out for every table (the daemon refuses an empty list). */
function tablesField(tables: readonly string[]): { tables?: readonly string[] } {
  return tables.length === 0 ? {} : { tables };
}

/** What the sink's other processes are, for a command that works on it here (RebuildOptions.sharing). */
interface SinkSharing {
  readonly group: string;
  readonly others: () => Promise<readonly OtherSinkProcess[]>;
  readonly changed?: () => boolean;
}

/**
 * Runs `work` on the sink opened by this command (no daemon runs it), under the sink's lease: refused when the sink runs
 * elsewhere (exit 1, nothing changed). With Kafka, where a lease always succeeds, a rebuild and an abandon that
 * drops hold the sink's consumer group instead (TopicLog.holdGroup), refused first while other processes run the sink:
 * every other process sees them as one of the sink's, a daemon starting the sink waits for them, and `changed` tells
 * of any process that joined or left the group meanwhile.
 */
async function withSinkHere(
  config: SluiceConfig,
  sinkConfig: SluiceConfig["sinks"][number],
  what: "rebuild" | "abandon" | "abandon-dry-run",
  io: RebuildIo,
  logger: Logger,
  work: (sink: RebuildableSink, log: TopicLog, sharing: SinkSharing, signal: AbortSignal) => Promise<number>,
): Promise<number> {
  const log = await openTopicLogForCommand(config.topics, config.name, logger, "write", lostTopicPolicyOf(config));
  const group = sinkGroupName(config, sinkConfig);
  const option = what === "rebuild" ? "--rebuild" : "--abandon-rebuild";
  const owner = `sluice replay ${option} (${hostname()}:${process.pid})`;
  let hold: GroupHold | null = null;
  try {
    if (!(await log.acquireLease(group, owner, 3_600_000))) {
      io.stderr(`sluice replay: refused: sink "${sinkConfig.name}" is running elsewhere (consumer group ${group}); nothing changed.\n`);
      return 1;
    }
    if (log.holdGroup !== undefined && what !== "abandon-dry-run") {
      // Refused here while others run the sink, before joining disturbs their group with a rebalance; checked again once joined.
      const others = await otherSinkProcesses(log, group, 0);
      if (others.length > 0) {
        io.stderr(`sluice replay: ${sinkSharedError(sinkConfig.name, group, others, what).message}\n`);
        return 1;
      }
      hold = await log.holdGroup(group, what);
    }
    const held = hold;
    const sharing: SinkSharing = held === null ? { group, others: () => otherSinkProcesses(log, group, 0) } : { group, others: () => otherSinkProcesses(log, group, 1), changed: () => held.changed() };
    return await withRebuildableSink(sinkConfig, io, logger, (sink, signal) => work(sink, log, sharing, signal));
  } finally {
    // Left only once the sink is closed: a daemon waiting for it opens the sink after the swap.
    await hold?.close();
    await log.releaseLease(group, owner).catch(() => undefined);
    await log.close();
  }
}

/** Runs `work` on the sink opened by this command, closed after it (alone: a look with no topic log and no lease, which changes nothing). */
async function withRebuildableSink(sinkConfig: SinkConfig, io: RebuildIo, logger: Logger, work: (sink: RebuildableSink, signal: AbortSignal) => Promise<number>): Promise<number> {
  const sink = await createSink(sinkConfig, logger);
  if (!isRebuildable(sink)) {
    io.stderr(`sluice replay: sink "${sinkConfig.name}" (${sinkConfig.kind}) cannot rebuild\n`);
    return 1;
  }
  const signal = new AbortController().signal;
  await sink.open(signal);
  try {
    return await work(sink, signal);
  } finally {
    await sink.close();
  }
}

/** Polls the daemon's /status for the rebuild of `sink` it runs for this command, and hands on what it says. */
function pollDaemonProgress(config: SluiceConfig, sink: string, report: (progress: RebuildProgress) => void): { stop(): void } {
  const askedAt = Date.now();
  let stopped = false;
  const poll = async () => {
    while (!stopped) {
      await new Promise((resolve) => setTimeout(resolve, PROGRESS_POLL_MS));
      if (stopped) break;
      const answer = await callDaemon(config, "/status", { timeoutMs: 5_000 }).catch(() => null);
      if (answer === null || !answer.ok || stopped) continue;
      const sinks = (answer.json() as { sinks?: { name: string; rebuild?: RebuildProgressEntry | null }[] }).sinks ?? [];
      const entry = sinks.find((s) => s.name === sink)?.rebuild;
      // An earlier rebuild's entry stays listed a while: only this one's is shown (one machine's clock, a second of slack).
      if (!entry || entry.state === "interrupted" || Date.parse(entry.startedAt) < askedAt - 1_000) continue;
      report({ ...entry, state: entry.state, recordsLeftOut: entry.recordsLeftOut ?? 0, sink, startedAtMs: Date.parse(entry.startedAt), finishedAtMs: entry.finishedAt === null ? null : Date.parse(entry.finishedAt) });
    }
  };
  void poll();
  return {
    stop: () => {
      stopped = true;
    },
  };
}
