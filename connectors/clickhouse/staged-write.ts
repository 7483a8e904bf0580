/**
 * The ClickHouse sink's staged write (sinks/contract.ts StagedWrite): each change's row goes into
 * RowBinary while the runtime decodes the batch, so the batch keeps its rows' bytes (outside the
 * heap) and per row its key (an integer in typed arrays, other keys as text), number and version
 * instead of every decoded event until the write.
 * It takes the plain case: upserts and deletes of a live table without a rebuild's shadow, with no
 * unchanged-TOAST values, moved keys or truncates. A table is created, compared with the server or
 * evolved for the first change of it in the batch, before that change's row is written; its rows
 * are then written for its new columns, so a later change of the table that needs another
 * evolution is not staged, nor one older than that first change that has a column given a default
 * from it (an added column's default applies to rows older than the version that added it). Anything not staged makes the batch go through
 * the sink's write as before.
 *
 * Of several changes of one key only the newest is inserted, as collapseChanges keeps it: by
 * version, ties in batch order.
 */
import type { ChangeEvent, TableSchema, TopicPartitionOffset } from "../contracts.ts";
import { stagedChange, versionOf } from "../sinks/batch.ts";
import type { StagedChange } from "../sinks/batch.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import type { StagedWrite } from "../sinks/contract.ts";
import { ValueRejected } from "../sinks/errors.ts";
import { keyId } from "../sinks/keys.ts";
import { integerKey, StagedRows } from "../sinks/newest-rows.ts";
import type { RowKey } from "../sinks/newest-rows.ts";
import type { ClickHouseTable } from "./catalog.ts";
import { RowBinaryWriter } from "./rowbinary.ts";

/** One physical table's staged rows, and the state of the table they were encoded for. */
export class StagedTable {
  readonly physical: ClickHouseTable;
  readonly columns: readonly TargetColumn[];
  readonly truncateVersion: bigint;
  readonly types: readonly string[];
  /**
   * The version of the change the table was prepared (created, evolved) for, when that gave
   * columns a default from it on (`since`): older changes with such a column are not staged (the
   * write would date the default from the oldest). Null otherwise.
   */
  readonly floor: bigint | null;
  /** The columns whose default dates from `floor`. */
  readonly #floorColumns: ReadonlySet<string>;
  readonly writer = new RowBinaryWriter();
  /** The rows kept in the writer (numbered as written), each key's newest among them. */
  readonly #rows = new StagedRows();

  constructor(physical: ClickHouseTable, types: readonly string[], prepared: bigint | null) {
    this.physical = physical;
    this.columns = physical.columns;
    this.truncateVersion = physical.truncateVersion;
    this.types = types;
    const since = prepared === null ? null : String(prepared);
    this.#floorColumns = new Set(physical.columns.filter((c) => since !== null && c.since === since).map((c) => c.name));
    this.floor = this.#floorColumns.size > 0 ? prepared : null;
  }

  /** Whether a change at `version` under `schema` is older than a default the table's preparation dated. */
  belowFloor(version: bigint, schema: TableSchema): boolean {
    return this.floor !== null && version < this.floor && schema.columns.some((c) => this.#floorColumns.has(c.name));
  }

  /** Whether rows have been kept for the table. */
  get used(): boolean {
    return this.#rows.count > 0;
  }

  /** Whether a change of `key` at `version` is older than the one staged for the key (it is then left out). */
  older(key: RowKey, version: bigint): boolean {
    return this.#rows.older(key, version);
  }

  /** Notes the row just kept in the writer as the key's newest. */
  kept(key: RowKey, version: bigint): void {
    this.#rows.add(key, version);
  }

  /** The numbers of the rows to insert, ascending. */
  rows(): number[] {
    return this.#rows.kept() ?? Array.from({ length: this.#rows.count }, (_, row) => row);
  }
}

/** What the staged write needs of the sink. */
export interface StagingHost {
  /** The live table a schema's rows go to as they are; null: the sink does not take the table (its changes count as applied); undefined: it must be prepared first (or cannot be staged for). */
  tableFor(schema: TableSchema): ClickHouseTable | null | undefined;
  /**
   * Creates, compares or evolves the schema's live table for a change at `version`; the table, or
   * undefined when it cannot be staged for (the sink's write then does it, and reports what fails).
   * `hasRows(target)`: whether the batch has rows staged for a target (not evolved under them).
   */
  prepare(schema: TableSchema, version: bigint, hasRows: (target: string) => boolean): Promise<ClickHouseTable | undefined>;
  /** The ClickHouse types of a table's columns, in order. */
  types(columns: readonly TargetColumn[]): string[];
  /** Writes a change's row into `table.writer` and keeps it; ValueRejected when a value does not fit. */
  encode(table: StagedTable, change: StagedChange): void;
  /** Inserts the tables' rows (throwing when a table is no longer as its rows were encoded for), then stores `offsets`; whether it stored them. */
  write(tables: readonly StagedTable[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<boolean>;
}

export class ClickHouseStagedWrite implements StagedWrite {
  readonly #host: StagingHost;
  /** Per schema object of the batch: its table (null: not taken by the sink). */
  readonly #bySchema = new Map<TableSchema, StagedTable | null>();
  readonly #tables = new Map<string, StagedTable>();

  constructor(host: StagingHost) {
    this.#host = host;
  }

  stage(event: ChangeEvent): boolean | Promise<boolean> {
    const table = this.#bySchema.get(event.schema);
    if (table !== undefined) return this.#take(table, event);
    const ready = this.#host.tableFor(event.schema);
    if (ready !== undefined) return this.#take(this.#use(event.schema, ready, null), event);
    const version = versionOf(event);
    const hasRows = (target: string) => [...this.#tables.values()].some((t) => t.physical.target === target && t.used);
    return this.#host.prepare(event.schema, version, hasRows).then((prepared) => (prepared === undefined ? false : this.#take(this.#use(event.schema, prepared, version), event)));
  }

  /** The batch's staged table for a schema's physical table (null: not taken by the sink); false when the table changed under rows staged for it. */
  #use(schema: TableSchema, physical: ClickHouseTable | null, floor: bigint | null): StagedTable | null | false {
    let table: StagedTable | null = null;
    if (physical !== null) {
      const known = this.#tables.get(physical.physical);
      if (known !== undefined && known.columns === physical.columns) table = known;
      else if (known !== undefined && known.used) return false;
      else table = new StagedTable(physical, this.#host.types(physical.columns), floor);
      this.#tables.set(physical.physical, table);
    }
    this.#bySchema.set(schema, table);
    return table;
  }

  #take(table: StagedTable | null | false, event: ChangeEvent): boolean {
    if (table === false) return false;
    if (table === null) return true;
    const change = stagedChange(event);
    if (change === null) return false;
    if (table.belowFloor(change.version, event.schema)) return false;
    // Hidden by the table's truncate (the sink's write leaves such rows out too).
    if (change.version <= table.truncateVersion) return true;
    try {
      const key = integerKey(change.key, event.schema.key) ?? keyId(change.key, event.schema.key);
      if (table.older(key, change.version)) return true;
      this.#host.encode(table, change);
      table.kept(key, change.version);
      return true;
    } catch (error) {
      // The sink's write reports it (a failure of that change, by the sink's policy).
      if (error instanceof ValueRejected) return false;
      throw error;
    }
  }

  write(signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<boolean> {
    return this.#host.write([...this.#tables.values()], signal, offsets);
  }
}
