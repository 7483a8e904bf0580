/** `sluice status` on a terminal: the daemon's /status document as aligned tables. */

import { formatDuration } from "./snapshot-progress.ts";
import { oneLine } from "./terminal-text.ts";
import type { SnapshotProgressEntry } from "./snapshot-progress.ts";
import type { RebuildProgressEntry } from "./rebuild-progress.ts";

interface SourceStatus {
  name: string;
  kind: string;
  ready: boolean;
  /** `text` is the position as the source writes it (LSN, binlog file:offset); older daemons sent only the numbers. */
  position: { commit: string; change: string; text?: string } | null;
  lagSeconds: number | null;
  halted: { table: string; error: string }[];
  /** What it waits for while not ready (daemons before issue 12 do not send it). */
  waiting?: string | null;
  /** Under the capture lease (Kafka): leader or standby. */
  state?: "leader" | "standby";
  /** Snapshots running, queued or just finished (daemons before issue 14 do not send it). */
  snapshots?: SnapshotProgressEntry[];
  /** Data checks that failed (governance; daemons before issue 18 do not send it). */
  dataChecks?: { table: string; check: string; column: string | null; action: string; failures: number; lastKey: string | null; lastAt: string }[];
  /** What the source wants an operator to know, e.g. a publication that leaves out changes (older daemons do not send it). */
  warnings?: { code: string; message: string }[];
}

/** One process of the deployment, as it announced itself (daemons before issue 17 do not send them). */
interface InstanceStatus {
  id: string;
  roles: string[];
  self?: boolean;
  stale?: boolean;
  ageSeconds?: number;
  sources: { name: string; state: string; ready: boolean; lagSeconds: number | null }[];
  sinks: { name: string; ready: boolean; partitions: string[]; lagRecords: number | null }[];
}

interface SinkStatus {
  name: string;
  ready: boolean;
  waiting?: string | null;
  lagRecords: number | null;
  /** The last lag read, when none came within the answer's wait (daemons before it do not send it). */
  lastLag?: { records: number; ageSeconds: number } | null;
  freshnessSeconds: number | null;
  /** Since when its server refuses its credentials, the sink waiting (older daemons do not send it). */
  credentialsRefused?: { since: string; seconds: number } | null;
  halted: { table: string; error: string }[];
  /** The running or last rebuild (daemons before issue 14 do not send it). */
  rebuild?: RebuildProgressEntry | null;
}

function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((row) => row.map(oneLine));
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

function seconds(value: number | null): string {
  return value === null ? "-" : `${value.toFixed(1)}s`;
}

/** A lag read for this answer, else the last one read with its age ("~", an older figure), else "-". */
function sinkLag(sink: SinkStatus): string {
  if (sink.lagRecords !== null) return String(sink.lagRecords);
  return sink.lastLag ? `~${sink.lastLag.records} (${sink.lastLag.ageSeconds.toFixed(0)}s ago)` : "-";
}

function sinkState(sink: SinkStatus): string {
  if (sink.credentialsRefused) return `CREDENTIALS REFUSED for ${formatDuration(sink.credentialsRefused.seconds)}`;
  return sink.ready ? "applying" : "not ready";
}

/**
 * What the answer shows NOT READY: this process (its top-level ready), or a source or sink another process
 * runs (its instance entry). Empty when all is ready. `sluice status` exits EXIT_NOT_READY when it is not empty.
 * A stale instance (no report within the daemon's freshness limit, shown STALE: killed, or cut off) is not ready
 * whatever its last report said: that process may be gone, and its parts with it.
 */
export function notReadyParts(status: Record<string, unknown>): string[] {
  const parts = status["ready"] === true ? [] : ["this process"];
  for (const instance of (status["instances"] as InstanceStatus[] | undefined) ?? []) {
    if (instance.self) continue;
    if (instance.stale === true) {
      parts.push(`${instance.id} (stale: no report for ${seconds(instance.ageSeconds ?? null)})`);
      continue;
    }
    for (const s of instance.sources ?? []) if (s.ready === false) parts.push(`source ${s.name} of ${instance.id}`);
    for (const s of instance.sinks ?? []) if (s.ready === false) parts.push(`sink ${s.name} of ${instance.id}`);
  }
  return parts;
}

export function formatStatus(status: Record<string, unknown>): string {
  const sources = (status["sources"] as SourceStatus[] | undefined) ?? [];
  const sinks = (status["sinks"] as SinkStatus[] | undefined) ?? [];
  const topics = status["topics"] as { kind: string; ready: boolean; waiting?: string | null } | undefined;
  const out = [
    `Deployment ${String(status["deployment"])} (sluice ${String(status["version"])}): ${status["ready"] ? "ready" : "NOT READY"}; topic log ${topics?.kind ?? "?"} ${topics?.ready ? "up" : "down"}`,
    "",
    table(
      ["SOURCE", "KIND", "STATE", "POSITION", "LAG"],
      sources.map((s) => [s.name, s.kind, s.state === "standby" ? "standby" : s.ready ? "capturing" : "not ready", s.position ? (s.position.text ?? `${s.position.commit}/${s.position.change}`) : "-", seconds(s.lagSeconds)]),
    ),
    "",
    table(["SINK", "STATE", "LAG (RECORDS)", "FRESHNESS"], sinks.map((s) => [s.name, sinkState(s), sinkLag(s), seconds(s.freshnessSeconds)])),
  ];
  const instances = (status["instances"] as InstanceStatus[] | undefined) ?? [];
  if (instances.length > 0) {
    out.push(
      "",
      table(
        ["INSTANCE", "ROLES", "CAPTURE", "SINKS (PARTITIONS, LAG)", "SEEN"],
        instances.map((i) => [
          `${i.id}${i.self ? " (this)" : ""}`,
          i.roles.join(","),
          // Another process's part that is not ready shows only here (the readiness above is this process's).
          i.sources.map((s) => `${s.name}:${s.state}${s.state !== "standby" && s.lagSeconds !== null ? ` ${seconds(s.lagSeconds)}` : ""}${s.ready === false ? " NOT READY" : ""}`).join(" ") || "-",
          i.sinks.map((s) => `${s.name}:${s.partitions.length}p lag ${s.lagRecords ?? "-"}${s.ready === false ? " NOT READY" : ""}`).join(" ") || "-",
          i.stale ? `STALE ${seconds(i.ageSeconds ?? null)} ago` : i.self ? "now" : `${seconds(i.ageSeconds ?? null)} ago`,
        ]),
      ),
    );
  }
  const waiting = [
    ...(topics?.waiting ? [["topic log", topics.waiting]] : []),
    ...sources.flatMap((s) => (!s.ready && s.waiting ? [[`source ${s.name}`, s.waiting]] : [])),
    ...sinks.flatMap((s) => (!s.ready && s.waiting ? [[`sink ${s.name}`, s.waiting]] : [])),
  ];
  const snapshots = sources.flatMap((s) => (s.snapshots ?? []).map((p) => [s.name, p.table, p.state, `${p.rowsDone}${p.rowsEstimated === null ? "" : ` / ~${p.rowsEstimated}`}`, p.state === "running" ? `${p.rowsPerSecond}/s` : "-", p.etaSeconds === null ? "-" : formatDuration(p.etaSeconds)]));
  if (snapshots.length > 0) out.push("", table(["SNAPSHOT OF", "TABLE", "STATE", "ROWS", "RATE", "ETA"], snapshots));
  const rebuilds = sinks.flatMap((s) => {
    const r = s.rebuild;
    if (!r) return [];
    if (r.state === "interrupted") return [[s.name, `interrupted (since ${r.since ?? r.startedAt})`, "-", "-", "-", r.tables.join(", ") || "-", r.error ?? ""]];
    const records = `${r.recordsDone}${r.recordsTotal === null ? "" : ` / ${r.recordsTotal}`}${r.recordsLeftOut ? ` (${r.recordsLeftOut} undecodable left out)` : ""}`;
    return [[s.name, r.state, records, r.state === "reading" ? `${r.recordsPerSecond}/s` : "-", r.etaSeconds === null || r.state !== "reading" ? "-" : formatDuration(r.etaSeconds), r.tables.join(", ") || "-", r.error ?? (r.waiting ? `waiting: ${r.waiting}` : "")]];
  });
  if (rebuilds.length > 0) out.push("", table(["REBUILD OF", "STATE", "RECORDS", "RATE", "ETA", "TABLES", "ERROR"], rebuilds));
  if (waiting.length > 0) out.push("", table(["NOT READY", "WAITING FOR"], waiting));
  const checks = sources.flatMap((s) => (s.dataChecks ?? []).map((c) => [s.name, c.table, c.check, c.column ?? "-", c.action, String(c.failures), c.lastKey ?? "-", c.lastAt]));
  if (checks.length > 0) out.push("", table(["DATA CHECKS OF", "TABLE", "CHECK", "COLUMN", "ACTION", "FAILURES", "LAST KEY", "LAST AT"], checks));
  const warnings = sources.flatMap((s) => (s.warnings ?? []).map((w) => [s.name, w.code, w.message]));
  if (warnings.length > 0) out.push("", table(["WARNING OF", "CODE", "MESSAGE"], warnings));
  const halted = [...sources.flatMap((s) => s.halted.map((h) => [s.name, h.table, h.error])), ...sinks.flatMap((s) => s.halted.map((h) => [s.name, h.table, h.error]))];
  if (halted.length > 0) out.push("", table(["HALTED IN", "TABLE", "ERROR"], halted), "", 'Details and release: "sluice halted -c FILE list", then "sluice halted retry" or "sluice halted skip" (see docs/operations.md, "Halted tables").');
  return `${out.join("\n")}\n`;
}
