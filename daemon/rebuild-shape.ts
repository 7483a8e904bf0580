/**
 * The shape a rebuild gives each table: its newest schema (connectors/sinks/contract.ts,
 * prepareRebuild's `shape`), and the check that every change the rebuild replays fits it the way
 * the sinks evolve a target (connectors/sinks/columns.ts: added columns, widened types, numbers
 * into text). A change that does not fit stops the rebuild before the swap, naming the record.
 */
import type { SinkChange, TableSchema } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { schemaFingerprint } from "../connectors/sinks/batch.ts";
import { initialColumns, planColumns } from "../connectors/sinks/columns.ts";
import type { TargetColumn } from "../connectors/sinks/columns.ts";
import { SCHEMA_UNSUPPORTED } from "../connectors/sinks/errors.ts";
import { describeType, logicalType } from "../connectors/sinks/logical-type.ts";
import { tableLabel } from "../connectors/sinks/naming.ts";

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

  /** Throws REBUILD_SCHEMA_UNSUPPORTED when `change`'s schema does not fit its table's newest shape. */
  check(change: SinkChange): void {
    const planned = this.#tables.get(change.origin.topic);
    const schema = change.event.schema;
    if (!planned || planned.checked.has(schema)) return;
    const fingerprint = schemaFingerprint(schema);
    if (planned.fingerprints.has(fingerprint)) {
      planned.checked.add(schema);
      return;
    }
    const newestKey = planned.newest.key;
    if (schema.key.join("\u0000") !== newestKey.join("\u0000")) throw this.#keyChanged(change, planned.newest);
    try {
      planned.columns = planColumns(planned.columns, schema, { sink: this.#sink, table: tableLabel(schema) }).columns;
    } catch (error) {
      if (!(error instanceof SluiceError) || error.code !== SCHEMA_UNSUPPORTED) throw error;
      throw this.#typeUnsupported(change, planned, error);
    }
    planned.checked.add(schema);
    planned.fingerprints.add(fingerprint);
  }

  #where(change: SinkChange): string {
    return `${change.origin.topic}:${change.origin.partition}:${change.origin.offset}`;
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
        "Re-snapshot the table (sluice snapshot --table T --execute): changes at or below a snapshot's closing reset are left out of a rebuild",
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
        "re-snapshot the table first (sluice snapshot --table T --execute); once the snapshot is done its closing reset covers every change before it, which a rebuild then leaves out " +
        "(docs/operations.md, \"Type and key changes a sink cannot take\")",
      undefined,
    );
  }
}
