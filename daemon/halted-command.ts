/**
 * `sluice halted`: list the halted tables of the running daemon (capture and sinks), and release
 * a sink's halted table -- `retry` (read it again from its poison record, after the cause was
 * fixed) or `skip` (send the poison record to the sink's dead-letter topic with its reason and go
 * on) -- or a table halted at capture (`--source`: re-publish its parked changes, or first skip the
 * one that halted it). Both are dry runs unless --execute. Halts live in the running daemon, so
 * every subcommand asks it over its HTTP API (daemon/halted-admin.ts).
 */
import type { SluiceConfig } from "../config/schema.ts";
import { callDaemon, callFailure, daemonUrl, refusalHint } from "./daemon-client.ts";
import type { DaemonAnswer } from "./daemon-client.ts";
import type { CaptureReleaseReport, HaltedSinkTable, HaltReleaseReport } from "./halted.ts";
import { oneLine } from "./terminal-text.ts";
import { HALTS_PER_REPORT } from "./instances.ts";

export const HALTED_USAGE =
  "sluice halted -c FILE (list | retry (--sink NAME [--force] | --source NAME) --table T | skip (--sink NAME | --source NAME) --table T [--through OFFSET | --all-pending]) [--execute] [--json]";

export const HALTED_DETAILS = `  --sink NAME         the sink whose table is halted
  --source NAME       the source whose table is halted at capture (its changes are parked in
                      <deployment>.sluice.halted.<source>)
  --table T           the halted table (schema.table, as "list" shows it) or its topic
  --execute           do it (without: a dry run that says what would happen and changes nothing)
  --json              print the daemon's answer as JSON

  list    every halted table: sink halts (sink, table, topic:partition:offset of the record
          that halted it, error) and capture halts (source, table, error)
  retry   read the table again from the record that halted it, e.g. after the target or the
          sink's config was fixed; a record that still fails halts it again
  skip    send that record to the sink's dead-letter topic (<deployment>.dlq.<sink>) with its
          reason, and go on after it; a restart does not halt the table on it again
  --force             (retry --sink) take the target as it is where the sink refused its state: a
                      ClickHouse table found with none of the rows written to it (emptied by TRUNCATE,
                      DROP PARTITION or a TTL, not created again) is written on from the record that
                      halted it; refused (400) for other halts
  --through OFFSET    (skip --sink) also send there every later record of the table, on the halted
                      record's partition up to OFFSET, that the sink refuses for the reason it
                      refused that one (those it accepts are applied), each with its reason and a
                      log line, instead of halting per record; a refused record past it, or one its
                      target refuses (a write block, out of memory), halts the table as usual
  --all-pending       (skip --sink) the same up to the last record each of the table's partitions
                      holds now (the dry run says how many records that range holds). Held by the
                      running daemon only: after a restart the table halts at its next refused record
  With --source: retry re-publishes the table's parked changes in order and captures it again
          (a change that still fails halts it again); skip first marks the change that halted it
          as skipped (it stays in the parking topic with its reason), then does the same.
          Parked personal columns are sealed with their subject's key: a subject forgotten
          (sluice forget) since they were parked is re-published with them null. Transformed
          columns are sealed too (with the subject's key, else the table's parking key) and
          re-published transformed, as at capture
  --through OFFSET    (skip --source) also skip each parked change of the table, up to that offset of
                      the parking topic, that capture refuses again for the reason it refused the
                      halting one (same error code, column and check); those it accepts are
                      re-published in order, one refused for another reason halts the table again.
                      Each skipped change is logged and marked in the parking topic (table, key
                      without personal values, source position); other tables are not touched
  --all-pending       (skip --source) the same through the table's last parked change now. The dry
                      run says the range (pin it with the --through it prints), how many parked
                      changes it holds and the first of them

Asks the running daemon at the config's http.listen address. See docs/operations.md, "Halted tables".`;

export interface HaltedIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

interface CaptureHalt {
  table: string;
  error: string;
  since?: string;
}

/** The JSON body of an answer, or its status text as the error. */
function bodyOf<T>(answer: DaemonAnswer): T & { error?: string } {
  try {
    return answer.json() as T & { error?: string };
  } catch {
    return { error: answer.statusText } as T & { error?: string };
  }
}

/** `posted`: the call asked for a change, which a daemon that did not answer in time may have made. */
function unreachable(url: string, error: unknown, io: HaltedIo, timeoutMs: number, posted: boolean): number {
  const failure = callFailure(url, error, timeoutMs);
  io.stderr(
    failure.nobody
      ? `sluice halted: ${failure.text}. Halts live in the running daemon: start it with "sluice run" and this config; ` +
          `a table halted before meets its poison record again and halts again, and then this command can release it.\n`
      : `sluice halted: ${failure.text}.${posted ? ' Whether it was done is not known: see "sluice halted list".' : ""}\n`,
  );
  return 1;
}

export async function runHaltedCommand(
  config: SluiceConfig,
  positionals: readonly string[],
  options: { sink?: string | undefined; source?: string | undefined; table?: string | undefined; through?: string | undefined; allPending?: boolean; force?: boolean; execute: boolean; json: boolean },
  io: HaltedIo,
): Promise<number> {
  const [action, ...extra] = positionals;
  if (extra.length > 0 || (action !== "list" && action !== "retry" && action !== "skip")) {
    const what = action === undefined ? "" : extra.length > 0 ? `unexpected argument "${extra[0]}" after ${action}: ` : `unknown action "${action}": `;
    io.stderr(`sluice halted: ${what}say list, retry or skip\nUsage: ${HALTED_USAGE}\n`);
    return 2;
  }
  if (action === "list") return list(config, options.json, io);
  const ranged = options.through !== undefined || options.allPending === true;
  if (ranged && action !== "skip") {
    io.stderr(`sluice halted ${action}: --through and --all-pending go with "skip" only\nUsage: ${HALTED_USAGE}\n`);
    return 2;
  }
  if (options.through !== undefined && (options.allPending === true || !/^\d{1,20}$/.test(options.through))) {
    io.stderr(`sluice halted skip: ${options.allPending === true ? "give --through OFFSET or --all-pending, not both" : `--through takes a record offset (a whole number of at most 20 digits, as "sluice halted list" shows them), not "${options.through}"`}\nUsage: ${HALTED_USAGE}\n`);
    return 2;
  }
  if (options.force === true && (action !== "retry" || options.sink === undefined)) {
    io.stderr(`sluice halted ${action}: --force goes with "retry --sink" only\nUsage: ${HALTED_USAGE}\n`);
    return 2;
  }
  const through = options.allPending === true ? "pending" : (options.through ?? null);
  if (options.source !== undefined && options.sink === undefined && options.table) return releaseCapture(config, action, { ...options, source: options.source, table: options.table, through }, io);
  if (!options.sink || !options.table || options.source !== undefined) {
    io.stderr(`sluice halted ${action}: give --sink NAME or --source NAME, and --table T (see "sluice halted -c FILE list")\nUsage: ${HALTED_USAGE}\n`);
    return 2;
  }
  if (!config.sinks.some((s) => s.name === options.sink)) {
    io.stderr(`sluice halted ${action}: no sink "${options.sink}" in the config; sinks: ${config.sinks.map((s) => s.name).join(", ")}\n`);
    return 2;
  }
  const path = `/sinks/${encodeURIComponent(options.sink)}/halted/${action}`;
  const url = daemonUrl(config, path);
  let response: DaemonAnswer;
  try {
    response = await callDaemon(config, path, { method: "POST", body: JSON.stringify({ table: options.table, execute: options.execute, ...(through === null ? {} : { through }), ...(options.force === true ? { force: true } : {}) }), timeoutMs: 60_000 });
  } catch (error) {
    return unreachable(url, error, io, 60_000, true);
  }
  const body = bodyOf<HaltReleaseReport>(response);
  if (!response.ok) {
    const elsewhere = response.status === 404 ? await haltedElsewhereHint(config, "sink", options.sink, options.table) : "";
    // Not when the daemon said the sink runs in another process: that, not a capture halt, is why it has none.
    const sinkNotRunHere = /is in the config but does not run in this process/.test(body.error ?? "");
    const capture = response.status === 404 && elsewhere === "" && !sinkNotRunHere ? " A table halted at capture is released with --source NAME instead of --sink." : "";
    io.stderr(`sluice halted ${action}: ${oneLine(body.error ?? response.statusText)}${refusalHint(response)}.${elsewhere}${capture}\n`);
    return 1;
  }
  if (options.json) {
    io.stdout(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  // The table, its error and what was done as the daemon gives them, each on one line (a table's name is anyone's who may create one).
  const lines = [
    `sink ${body.sink}, table ${oneLine(body.table)}: halted at ${oneLine(body.topic)}:${body.partition}:${body.offset}`,
    `  error: ${oneLine(body.error)}`,
    body.executed ? `Done: ${oneLine(body.description)}.` : `Dry run, nothing changed: ${oneLine(body.description)}.`,
  ];
  if (body.skipThrough !== undefined) lines.push(`  Dead-lettered records: in ${body.deadLetterTopic}, each with its reason: "sluice dead-letters --sink ${body.sink}" lists them; "sluice halted list" shows the table if one halts it again.`);
  if (!body.executed) lines.push(`Add --execute to do it.`);
  io.stdout(`${lines.join("\n")}\n`);
  return 0;
}

async function releaseCapture(
  config: SluiceConfig,
  action: "retry" | "skip",
  options: { source: string; table: string; through: string | null; execute: boolean; json: boolean },
  io: HaltedIo,
): Promise<number> {
  if (!config.sources.some((s) => s.name === options.source)) {
    io.stderr(`sluice halted ${action}: no source "${options.source}" in the config; sources: ${config.sources.map((s) => s.name).join(", ")}\n`);
    return 2;
  }
  const path = `/sources/${encodeURIComponent(options.source)}/halted/${action}`;
  const url = daemonUrl(config, path);
  let response: DaemonAnswer;
  try {
    const body = { table: options.table, execute: options.execute, ...(options.through === null ? {} : { through: options.through }) };
    response = await callDaemon(config, path, { method: "POST", body: JSON.stringify(body), timeoutMs: 300_000 });
  } catch (error) {
    return unreachable(url, error, io, 300_000, true);
  }
  const body = bodyOf<CaptureReleaseReport>(response);
  if (!response.ok) {
    const elsewhere = response.status === 404 ? await haltedElsewhereHint(config, "source", options.source, options.table) : "";
    io.stderr(`sluice halted ${action}: ${oneLine(body.error ?? response.statusText)}${refusalHint(response)}${elsewhere === "" ? "" : `.${elsewhere}`}\n`);
    return 1;
  }
  if (options.json) {
    io.stdout(`${JSON.stringify(body, null, 2)}\n`);
    return 0;
  }
  const lines = [
    `source ${body.source}, table ${oneLine(body.table)}: halted at capture (${body.code}), ${body.parked} change(s) parked in ${body.parkingTopic}`,
    `  error: ${oneLine(body.error)}`,
    body.executed ? `Done: ${oneLine(body.description)}.` : `Dry run, nothing changed: would ${oneLine(body.description)}.`,
  ];
  const range = body.skipRange;
  if (range !== undefined && options.through !== null) {
    lines.push(`  Range: ${body.parkingTopic} offsets ${range.from} through ${range.through}: ${range.changes} parked change(s) of ${oneLine(body.table)}, skipped when refused for ${oneLine(range.reason)}${body.executed ? "" : ` (pin it with --through ${range.through})`}`);
  }
  const changes = body.executed ? body.skippedChanges : options.through !== null ? range?.listed : undefined;
  const total = body.executed ? (body.skipped ?? 0) : (range?.changes ?? 0);
  if (changes !== undefined && changes.length > 0) {
    lines.push(body.executed ? "  Skipped (parking offset, op, key, source position):" : "  In the range (parking offset, op, key, source position):");
    for (const change of changes) lines.push(`    ${change.offset}  ${change.op}  ${oneLine(change.key)}  ${change.position}`);
    if (total > changes.length) lines.push(`    ... and ${total - changes.length} more (${body.executed ? "each named in the daemon's log" : `all in ${body.parkingTopic}`})`);
  }
  if (!body.executed) lines.push(`Add --execute to do it.`);
  io.stdout(`${lines.join("\n")}\n`);
  return body.haltedAgain === undefined ? 0 : 1;
}

interface ElsewhereHalt {
  instance: string;
  stale: boolean;
  kind: "sink" | "source";
  name: string;
  table: string;
  at?: string | undefined;
}

/** The halts other processes of the deployment announce (Kafka: each process holds the halts it met; see daemon/instances.ts). */
function haltsElsewhere(instances: readonly InstanceEntry[] | undefined): ElsewhereHalt[] {
  return (instances ?? [])
    .filter((i) => i.self !== true)
    .flatMap((i) => [
      ...(i.sinks ?? []).flatMap((s) => (s.halted ?? []).map((h) => ({ instance: i.id, stale: i.stale === true, kind: "sink" as const, name: s.name, table: h.table, at: h.at }))),
      ...(i.sources ?? []).flatMap((s) => (s.halted ?? []).map((h) => ({ instance: i.id, stale: i.stale === true, kind: "source" as const, name: s.name, table: h.table }))),
    ]);
}

/** After "not halted" from this process: which other process holds that halt, if one announces it (or may hold it unannounced). */
async function haltedElsewhereHint(config: SluiceConfig, kind: "sink" | "source", name: string, table: string): Promise<string> {
  try {
    const answer = await callDaemon(config, "/status", { timeoutMs: 5_000 });
    if (!answer.ok) return "";
    const instances = bodyOf<StatusBody>(answer).instances;
    const holders = haltsElsewhere(instances).filter((h) => h.kind === kind && h.name === name && h.table === table);
    const live = holders.filter((h) => !h.stale);
    const names = (hs: readonly { instance: string }[]) => [...new Set(hs.map((h) => oneLine(h.instance)))].join(", ");
    if (live.length > 0) {
      return ` It is halted in another process of the deployment: ${names(live)} (host:pid). A process releases only the halts it holds: run this command with the config of that process (its http.listen).`;
    }
    if (holders.length > 0) {
      return ` ${names(holders)} (host:pid) announced it halted, but has not reported for a while (stale): that process is probably gone (killed, or restarted under a new PID), and its halts went with it. The process that reads the table now halts it again at the same record if the cause is still there: see "sluice halted list".`;
    }
    const unknown = unannounced(instances).filter((u) => !u.stale && u.kind === kind && u.name === name);
    if (unknown.length === 0) return "";
    return ` It may be halted in ${names(unknown)} (host:pid), which ${unknown.every((u) => u.reason === "earlier version") ? "does not report its halts (an earlier version)" : "does not list all of its halts"}: run this command with the config of that process (its http.listen).`;
  } catch {
    return "";
  }
}

/** Sinks and sources of other processes whose halts are not all announced: an earlier version announces none; a report lists at most 100 per sink or source. */
interface Unannounced {
  instance: string;
  stale: boolean;
  kind: "sink" | "source";
  name: string;
  reason: "earlier version" | "not listed";
  /** How many halts are not listed (reason "not listed"). */
  count?: number;
}

function unannounced(instances: readonly InstanceEntry[] | undefined): Unannounced[] {
  return (instances ?? [])
    .filter((i) => i.self !== true)
    .flatMap((i) =>
      [...(i.sinks ?? []).map((s) => ({ kind: "sink" as const, ...s })), ...(i.sources ?? []).map((s) => ({ kind: "source" as const, ...s }))].flatMap((s): Unannounced[] => {
        const at = { instance: i.id, stale: i.stale === true, kind: s.kind, name: s.name };
        if (s.halted === undefined) return [{ ...at, reason: "earlier version" }];
        return (s.haltedMore ?? 0) > 0 ? [{ ...at, reason: "not listed", count: s.haltedMore }] : [];
      }),
    );
}

function unannouncedNotes(list: readonly Unannounced[]): string[] {
  const earlier = [...new Set(list.filter((u) => u.reason === "earlier version").map((u) => `${oneLine(u.instance)}${u.stale ? " (stale)" : ""}`))];
  return [
    ...earlier.map((instance) => `Process ${instance} (an earlier version) does not report its halts: run "sluice halted list" with the config of that process (its http.listen).`),
    ...list
      .filter((u) => u.reason === "not listed")
      .map((u) => `Process ${oneLine(u.instance)}${u.stale ? " (stale)" : ""} holds ${u.count} more halted table(s) of ${u.kind} ${oneLine(u.name)} than it lists (a report lists ${HALTS_PER_REPORT}): run "sluice halted list" with the config of that process for all of them.`),
  ];
}

interface InstanceEntry {
  id: string;
  self?: boolean;
  stale?: boolean;
  sinks?: { name: string; halted?: { table: string; at?: string }[]; haltedMore?: number }[];
  sources?: { name: string; halted?: { table: string }[]; haltedMore?: number }[];
}

type StatusBody = { sources?: { name: string; halted?: CaptureHalt[] }[]; sinks?: { name: string; halted?: HaltedSinkTable[] }[]; instances?: InstanceEntry[] };

async function list(config: SluiceConfig, json: boolean, io: HaltedIo): Promise<number> {
  const url = daemonUrl(config, "/status");
  let response: DaemonAnswer;
  try {
    response = await callDaemon(config, "/status", { timeoutMs: 5_000 });
  } catch (error) {
    return unreachable(url, error, io, 5_000, false);
  }
  if (!response.ok) {
    io.stderr(`sluice halted list: the daemon answered ${response.status}: ${oneLine(bodyOf(response).error ?? response.statusText)}${refusalHint(response)}\n`);
    return 1;
  }
  const status = bodyOf<StatusBody>(response);
  const sinkHalts = (status.sinks ?? []).flatMap((s) => (s.halted ?? []).map((h) => ({ sink: s.name, ...h })));
  const captureHalts = (status.sources ?? []).flatMap((s) => (s.halted ?? []).map((h) => ({ source: s.name, ...h })));
  const elsewhere = haltsElsewhere(status.instances);
  const notAnnounced = unannounced(status.instances);
  if (json) {
    io.stdout(`${JSON.stringify({ sinks: sinkHalts, sources: captureHalts, otherProcesses: elsewhere, otherProcessesUnlisted: notAnnounced }, null, 2)}\n`);
    return 0;
  }
  const others: string[] = [];
  const notes = unannouncedNotes(notAnnounced);
  if (elsewhere.length > 0) {
    others.push(
      table(
        ["HALTED IN ANOTHER PROCESS", "SINK OR SOURCE", "TABLE", "AT (TOPIC:PARTITION:OFFSET)"],
        elsewhere.map((h) => [`${h.instance}${h.stale ? " (stale)" : ""}`, `${h.kind} ${h.name}`, h.table, h.at ?? "-"]),
      ),
      "",
      "A process releases only the halts it holds: run \"sluice halted list\", then retry or skip, with the config of that process (its http.listen). A stale process has not reported for a while: probably gone, and its halts with it.",
    );
  }
  if (notes.length > 0) others.push(...(others.length > 0 ? [""] : []), ...notes);
  if (sinkHalts.length === 0 && captureHalts.length === 0) {
    io.stdout(`${others.length > 0 ? `no halted tables in this process (${url.replace(/\/status$/, "")})\n\n${others.join("\n")}` : "no halted tables"}\n`);
    return 0;
  }
  const out: string[] = [];
  if (sinkHalts.length > 0) {
    out.push(
      table(
        ["SINK", "TABLE", "AT (TOPIC:PARTITION:OFFSET)", "SINCE", "ERROR"],
        sinkHalts.map((h) => [h.sink, h.table, `${h.topic}:${h.partition}:${h.recordOffset}`, h.since ?? "-", h.error]),
      ),
      "",
      'Release one: "sluice halted retry --sink NAME --table T" (after fixing the cause) or "sluice halted skip --sink NAME --table T" (to the dead-letter topic); add --execute to do it.',
    );
  }
  if (captureHalts.length > 0) {
    if (out.length > 0) out.push("");
    out.push(
      table(
        ["SOURCE (CAPTURE)", "TABLE", "SINCE", "ERROR"],
        captureHalts.map((h) => [h.source, h.table, h.since ?? "-", h.error]),
      ),
      "",
      'Capture halts keep the table\'s changes parked (nothing lost). Release one: "sluice halted retry --source NAME --table T" (after fixing the cause) or "sluice halted skip --source NAME --table T" (past the change that halted it; add --all-pending for every parked change refused for the same reason); add --execute to do it. A restart also re-publishes what can be published.',
    );
  }
  if (others.length > 0) out.push("", ...others);
  io.stdout(`${out.join("\n")}\n`);
  return 0;
}

/** Names and errors come from the database (a table's name may hold a line break): each cell is kept on its line. */
function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((row) => row.map(oneLine));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}
