/**
 * Debezium's finer `source.snapshot` values on an initial snapshot's reads: "first" on the first
 * read of the snapshot, "first_in_data_collection" on the first of each other table,
 * "last_in_data_collection" on the last of a table, "last" on the last read of the last table.
 *
 * Both sources end each table's snapshot with its reset (a truncate, snapshot true) right after
 * its rows, so a table's last read is known when its reset arrives: the latest read of every
 * table being read is held back until the table's next read or its reset (at most one row per
 * table in flight, so memory stays bounded by the snapshot's parallelism). The snapshot's last
 * read is the last read before the reset of the last table to finish.
 */
import type { ChangeEvent, SnapshotMarker } from "../contracts.ts";
import { tableName } from "../contracts.ts";

export class SnapshotMarkers {
  private readonly tableCount: number;
  private readonly held = new Map<string, ChangeEvent>();
  private readonly seen = new Set<string>();
  private resets = 0;

  /** `tableCount`: how many tables the snapshot reads (each ends with one reset). */
  constructor(tableCount: number) {
    this.tableCount = tableCount;
  }

  /** The events to hand on now, in order, for the next event of the snapshot. */
  next(event: ChangeEvent): ChangeEvent[] {
    const table = tableName(event.schema);
    if (event.op === "r") {
      const marker: SnapshotMarker | undefined = this.seen.size === 0 ? "first" : this.seen.has(table) ? undefined : "first_in_data_collection";
      this.seen.add(table);
      const previous = this.held.get(table);
      this.held.set(table, marker === undefined ? event : marked(event, marker));
      return previous ? [previous] : [];
    }
    if (event.op !== "t" || !event.source.snapshot) return [event];
    this.resets++;
    const last = this.held.get(table);
    if (!last) return [event];
    this.held.delete(table);
    const lastOfSnapshot = this.resets >= this.tableCount && this.held.size === 0;
    // A table's only row keeps "first"/"first_in_data_collection" unless it is the snapshot's last.
    const marker = lastOfSnapshot ? "last" : (last.source.snapshotMarker ?? "last_in_data_collection");
    return [marked(last, marker), event];
  }

  /** What is still held when the snapshot ends (nothing when every table ended with its reset). */
  flush(): ChangeEvent[] {
    const rest = [...this.held.values()];
    this.held.clear();
    return rest;
  }
}

function marked(event: ChangeEvent, snapshotMarker: SnapshotMarker): ChangeEvent {
  return { ...event, source: { ...event.source, snapshotMarker } };
}
