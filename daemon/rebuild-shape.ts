/**
 * The shape a rebuild gives each table: its newest schema (connectors/sinks/contract.ts,
 * prepareRebuild's `shape`), and the check that every change the rebuild replays fits it the way
 * the sinks evolve a target (connectors/sinks/columns.ts: added columns, widened types, numbers
 * into text). A change that does not fit stops the rebuild before the swap, naming the record.
 */
import type { Position, SinkChange, TableSchema } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { schemaFingerprint } from "../connectors/sinks/batch.ts";
import { initialColumns, planColumns } from "../connectors/sinks/columns.ts";
import type { TargetColumn } from "../connectors/sinks/columns.ts";
import { SCHEMA_UNSUPPORTED } from "../connectors/sinks/errors.ts";
import { describeType, logicalType } from "../connectors/sinks/logical-type.ts";
import { tableLabel } from "../connectors/sinks/naming.ts";
import { recordWhere } from "./rebuild-records.ts";

export const REBUILD_SCHEMA_UNSUPPORTED = "REBUILD_SCHEMA_UNSUPPORTED";

interface Planned {
  readonly newest: TableSchema;
  columns: readonly TargetColumn[];
  /** Schemas checked already (decoders share one object per writer schema), and their fingerprints. */
  readonly checked: WeakSet<TableSchema>;
  readonly fingerprints: Set<string>;
}

export class ReplayShapes {
  readonly #sink: string;
  readonly #tables = new Map<string, Planned>();

  /** `newest`: per data topic, the schema of its newest change. */
  constructor(sink: string, newest: ReadonlyMap<string, TableSchema>) {
    this.#sink = sink;
    for (const [topic, schema] of newest) {
      this.#tables.set(topic, { newest: schema, columns: initialColumns(schema, { sink, table: tableLabel(schema) }), checked: new WeakSet([schema]), fingerprints: new Set([schemaFingerprint(schema)]) });
    }
  }

  /** The refusal (REBUILD_SCHEMA_UNSUPPORTED) when `change`'s schema does not fit its table's newest shape, else null. */
  misfit(change: SinkChange): SluiceError | null {
    const planned = this.#tables.get(change.origin.topic);
    const schema = change.event.schema;
    if (!planned || planned.checked.has(schema)) return null;
    const fingerprint = schemaFingerprint(schema);
    if (planned.fingerprints.has(fingerprint)) {
      planned.checked.add(schema);
      return null;
    }
    const newestKey = planned.newest.key;
    if (schema.key.join("\u0000") !== newestKey.join("\u0000")) return this.#keyChanged(change, planned.newest);
    try {
      planned.columns = planColumns(planned.columns, schema, { sink: this.#sink, table: tableLabel(schema) }).columns;
    } catch (error) {
      if (!(error instanceof SluiceError) || error.code !== SCHEMA_UNSUPPORTED) throw error;
      return this.#typeUnsupported(change, planned, error);
    }
    planned.checked.add(schema);
    planned.fingerprints.add(fingerprint);
    return null;
  }

  #where(change: SinkChange): string {
    return recordWhere(change.origin);
  }

  #refusal(change: SinkChange, message: string, column: string | undefined, cause?: unknown): SluiceError {
    const table = tableLabel(change.event.schema);
    return new SluiceError(
      `rebuild of sink "${this.#sink}" refused before the swap: table ${table}${column ? `, column "${column}"` : ""}: ${message}. ` +
        "The live tables are unchanged and keep serving; the rebuilt ones were dropped.",
      {
        code: REBUILD_SCHEMA_UNSUPPORTED,
        context: { component: "rebuild", sink: this.#sink, table, ...(column ? { column } : {}), record: this.#where(change) },
        ...(cause ? { cause } : {}),
      },
    );
  }

  #typeUnsupported(change: SinkChange, planned: Planned, error: SluiceError): SluiceError {
    const name = typeof error.context["column"] === "string" ? error.context["column"] : undefined;
    const schema = change.event.schema;
    const column = schema.columns.find((c) => c.name === name);
    const target = planned.columns.find((c) => c.name === name);
    if (!column || !target) return this.#refusal(change, `the record at ${this.#where(change)}, written under an older schema, does not fit the table's newest one: ${error.message}`, name, error);
    const older = logicalType(column.dbType, schema.sourceKind);
    return this.#refusal(
      change,
      `the record at ${this.#where(change)} has it as ${describeType(older)} (${column.dbType}), the table's newest schema as ${describeType(target.type)}, ` +
        `and ${describeType(older)} values have no exact conversion to ${describeType(target.type)}. ` +
        "Re-snapshot the table (sluice snapshot --table T --execute) and rebuild once it is done: a rebuild leaves out the older changes a finished snapshot under the newest schema covers",
      name,
      error,
    );
  }

  #keyChanged(change: SinkChange, newest: TableSchema): SluiceError {
    const older = change.event.schema.key;
    return this.#refusal(
      change,
      `the key is (${older.join(", ")}) in the record at ${this.#where(change)} and (${newest.key.join(", ")}) in the table's newest schema. ` +
        "Changes written under the old key cannot be given the new one exactly (a delete carries only the old key's columns), so the rebuild does not replay them: " +
        "re-snapshot the table first (sluice snapshot --table T --execute) and rebuild once it is done: a rebuild leaves out the older changes a finished snapshot under the new key covers " +
        "(docs/operations.md, \"Type and key changes a sink cannot take\")",
      undefined,
    );
  }
}

/**
 * Changes that do not fit their table's newest shape are left out of a rebuild only where a
 * whole-table snapshot taken after them covers them: the table's newest snapshot reset closes an
 * online snapshot whose reads (marked so, above the reset's version and at or below its commit
 * position) all fit, at least one was read, and every change left out was committed before every
 * change replayed. Such changes predate the schema change, and the snapshot read every row after
 * it: its reads stand for the table as it was then, and every later change fits. Compared by
 * commit position, not by version: an online snapshot's reads are versioned just above its reset,
 * which is below the replication slot's restart position when it began, and a read does not
 * outrank an older change it saw, since a sink has that change too; so no change replayed may be
 * older than one left out. Anything else refuses the rebuild before the swap, naming the change
 * left out last.
 */
export class Misfits {
  readonly #resets: ReadonlyMap<string, Position>;
  /** Per data topic: the change left out committed last (its commit position and refusal). */
  readonly #left = new Map<string, { newest: bigint; refusal: SluiceError }>();
  /** Per data topic: the commit position of the oldest change replayed. */
  readonly #oldestReplayed = new Map<string, bigint>();
  /** Data topics with a read of their covering snapshot. */
  readonly #read = new Set<string>();

  /** `resets`: per data topic, the position of its newest snapshot reset. */
  constructor(resets: ReadonlyMap<string, Position>) {
    this.#resets = resets;
  }

  /** A change replayed. */
  fits(change: SinkChange): void {
    const topic = change.origin.topic;
    if (this.#ofCoveringSnapshot(change)) this.#read.add(topic);
    const commit = change.event.source.position.commit;
    const oldest = this.#oldestReplayed.get(topic);
    if (oldest === undefined || commit < oldest) this.#oldestReplayed.set(topic, commit);
  }

  /** A change left out; throws `refusal` at once when nothing can cover it (no snapshot since, or a read of that snapshot does not fit). */
  add(change: SinkChange, refusal: SluiceError): void {
    const topic = change.origin.topic;
    if (!this.#resets.has(topic) || this.#ofCoveringSnapshot(change)) throw refusal;
    const commit = change.event.source.position.commit;
    const known = this.#left.get(topic);
    if (!known || commit > known.newest) this.#left.set(topic, { newest: commit, refusal });
  }

  /** Once every change was read: throws the refusal of a table whose changes left out the snapshot does not cover. */
  check(): void {
    for (const [topic, { newest, refusal }] of this.#left) {
      const oldest = this.#oldestReplayed.get(topic);
      if (!this.#read.has(topic) || oldest === undefined || oldest <= newest) throw refusal;
    }
  }

  #ofCoveringSnapshot(change: SinkChange): boolean {
    const reset = this.#resets.get(change.origin.topic);
    const { op, source } = change.event;
    return (
      reset !== undefined && op === "r" && source.snapshotMarker === "incremental" && source.position.change > reset.change && source.position.commit <= reset.commit
    );
  }
}
