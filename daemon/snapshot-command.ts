/**
 * `sluice snapshot`: ask the running daemon for an online snapshot of one table (read again in
 * key-ordered chunks while capture goes on; see docs/snapshots.md), a dry run unless --execute;
 * or list the snapshots queued, running and failed. Talks to the daemon's admin API
 * (daemon/snapshot-admin.ts) with the config's token.
 */
import type { SluiceConfig } from "../config/schema.ts";
import type { FailedSnapshot, OnlineSnapshotPlan, SnapshotTask } from "../connectors/common/incremental-snapshot-state.ts";
import { someReading, tableReadings } from "../connectors/common/table-label.ts";
import { tableMatcher } from "../connectors/common/table-patterns.ts";
import { callDaemon, callFailure, daemonUrl, refusalHint } from "./daemon-client.ts";
import type { DaemonAnswer } from "./daemon-client.ts";
import { oneLine } from "./terminal-text.ts";

export const SNAPSHOT_USAGE = "sluice snapshot -c FILE (--table T [--where SQL] | list) [--source NAME] [--execute] [--json]";

export const SNAPSHOT_DETAILS = `  --table T           the table to read again (schema.table; MySQL: database.table)
  --where SQL         only the rows matching this SQL condition (e.g. "updated_at > '2024-01-01'");
                      such a snapshot removes nothing from the sinks
  --source NAME       the source that captures the table (needed when several could)
  --execute           queue the snapshot (without: a dry run that checks the table and says what
                      would be read)
  --json              print the daemon's answer as JSON

  list                the snapshots queued or running (rows read, last key) and those that failed,
                      of --source NAME or of every source (with --json: one answer per line)

The table is read in chunks of snapshot.chunk_rows rows by its primary key while capture goes on,
interleaved with the stream so a chunk never overwrites a newer change. Progress is kept with the
source's checkpoint: a restart goes on with the next chunk. A whole-table snapshot ends with a reset
that removes from the sinks the rows the source no longer has. Asks the running daemon at the
config's http.listen address; where it cannot be reached, use the signal table (docs/snapshots.md).`;

export interface SnapshotIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface SnapshotOptions {
  readonly table?: string | undefined;
  readonly where?: string | undefined;
  readonly source?: string | undefined;
  readonly execute: boolean;
  readonly json: boolean;
}

/** The source a table belongs to: --source, the only source, or the only one whose tables match. */
export function sourceFor(config: SluiceConfig, table: string | undefined, named: string | undefined): { source: string } | { error: string } {
  if (named !== undefined) {
    return config.sources.some((s) => s.name === named) ? { source: named } : { error: `no source "${named}" in the config; sources: ${config.sources.map((s) => s.name).join(", ")}` };
  }
  if (config.sources.length === 1) return { source: config.sources[0]!.name };
  const candidates = table === undefined || tableReadings(table).length === 0 ? config.sources : config.sources.filter((s) => someReading(table, tableMatcher(s.tables)));
  if (candidates.length === 1) return { source: candidates[0]!.name };
  return { error: `say which source with --source NAME (${candidates.length === 0 ? "no source's tables match" : "several sources could capture"} ${table ?? "it"}: ${(candidates.length === 0 ? config.sources : candidates).map((s) => s.name).join(", ")})` };
}

function bodyOf<T>(answer: DaemonAnswer): T & { error?: string; code?: string } {
  try {
    return answer.json() as T & { error?: string; code?: string };
  } catch {
    return { error: answer.statusText } as T & { error?: string; code?: string };
  }
}

export async function runSnapshotCommand(config: SluiceConfig, positionals: readonly string[], options: SnapshotOptions, io: SnapshotIo): Promise<number> {
  const listing = positionals[0] === "list";
  if (positionals.length > (listing ? 1 : 0) || (!listing && !options.table) || (listing && options.table !== undefined)) {
    io.stderr(`sluice snapshot: give --table T, or list\nUsage: ${SNAPSHOT_USAGE}\n`);
    return 2;
  }
  // list without --source: every source of the config, in turn.
  if (listing && options.source === undefined && config.sources.length > 1) {
    let code = 0;
    for (const source of config.sources) code = Math.max(code, await askDaemon(config, source.name, true, options, io));
    return code;
  }
  const chosen = sourceFor(config, options.table, options.source);
  if ("error" in chosen) {
    io.stderr(`sluice snapshot: ${chosen.error}\n`);
    return 2;
  }
  return askDaemon(config, chosen.source, listing, options, io);
}

/** Lists one source's snapshots, or asks for (a plan of) a snapshot of options.table. */
async function askDaemon(config: SluiceConfig, source: string, listing: boolean, options: SnapshotOptions, io: SnapshotIo): Promise<number> {
  const path = `/sources/${encodeURIComponent(source)}/snapshots`;
  const url = daemonUrl(config, path);
  let answer: DaemonAnswer;
  try {
    answer = listing
      ? await callDaemon(config, path, { timeoutMs: 10_000 })
      : await callDaemon(config, path, { method: "POST", body: JSON.stringify({ table: options.table, where: options.where ?? null, execute: options.execute }), timeoutMs: 60_000 });
  } catch (error) {
    const failure = callFailure(url, error, listing ? 10_000 : 60_000);
    io.stderr(
      failure.nobody
        ? `sluice snapshot: ${failure.text}. Online snapshots run in the daemon: start it with "sluice run" and this config, ` +
            `or where this command cannot reach it, insert a row into the source's signal table (docs/snapshots.md).\n`
        : `sluice snapshot: ${failure.text}.${listing ? "" : ' Whether the snapshot was started is not known: see "sluice snapshot list".'}\n`,
    );
    return 1;
  }
  if (!answer.ok) {
    const body = bodyOf<object>(answer);
    io.stderr(`sluice snapshot: ${listing ? `source ${source}: ` : ""}${oneLine(body.error ?? answer.statusText)}${refusalHint(answer)}\n`);
    return answer.status === 400 ? 2 : 1;
  }
  if (options.json) {
    io.stdout(`${answer.text}\n`);
    return 0;
  }
  if (listing) {
    io.stdout(formatList(bodyOf<SnapshotList>(answer)));
    return 0;
  }
  const body = bodyOf<{ executed: boolean; plan: OnlineSnapshotPlan; task?: SnapshotTask }>(answer);
  io.stdout(formatPlan(body.plan, body.executed, body.task));
  return 0;
}

function formatPlan(plan: OnlineSnapshotPlan, executed: boolean, task: SnapshotTask | undefined): string {
  const rows = plan.estimatedRows === null ? "an unknown number of rows" : `about ${plan.estimatedRows} rows`;
  const chunks = plan.estimatedChunks === null ? "" : ` in about ${plan.estimatedChunks} chunk(s) of ${plan.chunkRows}`;
  const lines = [
    // Names and the condition as the daemon gives them, each on one line (a table's name is anyone's who may create one).
    `source ${plan.source}, table ${oneLine(plan.table)}: ${rows}${chunks}, by key (${plan.key.map(oneLine).join(", ")}; ${plan.keySource})${plan.where === null ? "" : ` where ${oneLine(plan.where)}`}`,
    plan.reset ? "  ends with a reset: rows the sinks hold that the source no longer has are removed" : "  a snapshot of some rows: nothing is removed from the sinks",
    plan.queuedBehind > 0 ? `  ${plan.queuedBehind} snapshot(s) queued before it` : "  starts at once",
  ];
  if (executed) lines.push(`Queued as ${task?.id ?? "?"}: follow it with "sluice snapshot list" or "sluice status".`);
  else lines.push("Dry run, nothing queued. Add --execute to take the snapshot.");
  return `${lines.join("\n")}\n`;
}

/** The daemon's list; `waiting`: what the source waits for while it does not stream (its server away). */
export interface SnapshotList {
  readonly source: string;
  readonly tasks: readonly SnapshotTask[];
  readonly failed: readonly FailedSnapshot[];
  readonly waiting?: string;
}

export function formatList(body: SnapshotList): string {
  const away = body.waiting === undefined ? "" : ` (not streaming, waiting: ${oneLine(body.waiting)}`;
  if (body.tasks.length === 0 && body.failed.length === 0) return `source ${body.source}: no online snapshot queued or running${away === "" ? "" : `${away})`}\n`;
  const paused = away === "" ? "" : `${away}; these go on when it streams again)`;
  const lines: string[] = [];
  body.tasks.forEach((task, index) => {
    const of = task.rowsEstimated === null ? "" : ` of about ${task.rowsEstimated}`;
    const started = index === 0 && task.startedAtMs !== null ? (paused === "" ? "running" : "paused ") : "queued ";
    lines.push(`${started}  ${oneLine(task.table)}  ${task.rowsDone} rows${of}${task.where === null ? "" : `  where ${oneLine(task.where)}`}  (${task.origin}, ${task.id})`);
  });
  for (const failure of body.failed) lines.push(`failed   ${oneLine(failure.table)}  ${new Date(failure.atMs).toISOString()}  ${failure.code}: ${oneLine(failure.error)}`);
  return `source ${body.source}${paused}:\n${lines.map((l) => `  ${l}`).join("\n")}\n`;
}
