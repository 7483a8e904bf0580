/**
 * Snapshot and rebuild progress on a terminal: one line per table (a snapshot) or per sink (a
 * rebuild), redrawn in place at most twice a second (on standard error, so the JSON logs on
 * standard output stay clean).
 */
import type { TableSnapshotProgress } from "../connectors/contracts.ts";
import { etaSeconds, formatDuration } from "./snapshot-progress.ts";
import { rebuildLine } from "./rebuild-progress.ts";
import { oneLine } from "./terminal-text.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";

function bar(fraction: number, width = 20): string {
  const filled = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return `[${"#".repeat(filled)}${".".repeat(width - filled)}]`;
}

export function progressLine(source: string, table: TableSnapshotProgress): string {
  const total = table.state === "done" ? table.rowsDone : table.rowsEstimated;
  const fraction = total && total > 0 ? table.rowsDone / total : table.state === "done" ? 1 : 0;
  const percent = total ? `${Math.min(100, Math.floor(fraction * 100))}%`.padStart(4) : "  ?%";
  const eta = etaSeconds(table);
  const rate = table.rowsPerSecond ? `  ${Math.round(table.rowsPerSecond).toLocaleString("en-US")} rows/s${eta === null ? "" : `  ETA ${formatDuration(eta)}`}` : "";
  const counts = `${table.rowsDone.toLocaleString("en-US")}${total ? ` / ${total.toLocaleString("en-US")}` : ""} rows`;
  return `snapshot ${source} ${oneLine(table.table)} ${bar(fraction)} ${percent}  ${counts}  ${table.state}${table.state === "running" ? rate : ""}`;
}

export class ProgressDisplay {
  private readonly out: NodeJS.WriteStream;
  private readonly lines = new Map<string, string>();
  private drawnLines = 0;
  private lastDraw = 0;

  constructor(out: NodeJS.WriteStream) {
    this.out = out;
  }

  update(source: string, progress: readonly TableSnapshotProgress[]): void {
    for (const table of progress) this.lines.set(`${source}\u0000${table.table}`, progressLine(source, table));
    this.draw(progress.every((t) => t.state === "done"));
  }

  rebuild(progress: RebuildProgress): void {
    this.lines.set(`rebuild\u0000${progress.sink}`, rebuildLine(progress));
    this.draw(progress.state !== "reading");
  }

  private draw(force: boolean): void {
    const now = Date.now();
    if (now - this.lastDraw < 500 && !force) return;
    this.lastDraw = now;
    const lines = [...this.lines.values()].map((line) => line.slice(0, (this.out.columns || 120) - 1));
    const up = this.drawnLines > 0 ? `\x1b[${this.drawnLines}A` : "";
    this.out.write(`${up}${lines.map((line) => `\x1b[2K${line}`).join("\n")}\n`);
    this.drawnLines = lines.length;
  }
}
