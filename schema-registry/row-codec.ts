/**
 * A Row (contracts.ts) to the avsc value of its Avro record and back.
 *
 * Two pieces of bookkeeping carry what a column's own type cannot. In the Debezium layout
 * (`sideFields: "headers"`) they are returned beside the record (RowSide) and travel in record
 * headers, so the record is exactly the table's columns; in Sluice's earlier layout
 * (`sideFields: "record"`) they are two extra fields of the record:
 * - `__sluice_unchanged` (array<string>): fields whose value the source did not send (PostgreSQL
 *   unchanged TOAST, the UNCHANGED symbol) or that are absent from the row. Such a field holds
 *   null, or its type's zero value when it cannot be null. Decoding gives UNCHANGED back.
 * - `__sluice_special` (map<string>): precise decimals that are NaN, Infinity or -Infinity
 *   (PostgreSQL numeric), keyed by field name, or `field[i]` for an array element. The field
 *   (or element) holds null, or zero when it cannot be null. Decoding gives the special text back.
 */
import { UNCHANGED } from "../connectors/contracts.ts";
import type { ColumnValue, Row } from "../connectors/contracts.ts";
import { describeValue, ZeroDateValueError } from "./column-types.ts";
import type { ColumnAvroType, DecodeContext, EncodeContext, SpecialNumeric, ToAvroFunction } from "./column-types.ts";
import type { AvroOutput, AvroWriter } from "./avro-writer.ts";
import { AvroValueError } from "./schema-errors.ts";
import type { ErrorContext } from "../connectors/errors.ts";

/** The decode context of a row without special values (most rows): one for all of them. */
const NO_SPECIALS: DecodeContext = Object.freeze({ special: () => undefined });

export const UNCHANGED_FIELD = "__sluice_unchanged";
export const SPECIAL_FIELD = "__sluice_special";
export const RESERVED_FIELD_NAMES: ReadonlySet<string> = new Set([UNCHANGED_FIELD, SPECIAL_FIELD]);

export interface ColumnBinding {
  /** Column name as the database spells it (the Row key). */
  readonly column: string;
  /** Avro field name (sanitised). */
  readonly field: string;
  readonly type: ColumnAvroType;
  readonly nullable: boolean;
}

export interface RowCodecOptions {
  /** Whether the row may have unavailable values, recorded as `__sluice_unchanged` (value records may, key records may not). */
  readonly unchangedField: boolean;
  /** Where the bookkeeping goes: fields of the record (Sluice's earlier layout, the default) or beside it (RowSide, Debezium layout). */
  readonly sideFields?: "record" | "headers";
  /** Error context (table) for values that cannot be encoded. */
  readonly context?: ErrorContext;
  /** The table's key columns, for errors about their values. */
  readonly keyColumns?: ReadonlySet<string>;
}

export type AvroRecordValue = Record<string, unknown>;

/** The bookkeeping of one row kept beside its record (Debezium layout): absent when empty. */
export interface RowSide {
  unchanged?: string[];
  special?: Record<string, string>;
}

class SpecialCollector implements EncodeContext {
  specials: Record<string, SpecialNumeric> | undefined;
  /** Fields whose value is not available. */
  unchanged: string[] | undefined;

  special(path: string, value: SpecialNumeric): void {
    (this.specials ??= {})[path] = value;
  }
}

/** A key column's zero date: zero_dates cannot help (a key cannot be NULL); what the operator can do instead. */
function zeroDateInKey(context: ErrorContext): string {
  const release = `sluice halted skip --source ${context.source ?? "SOURCE"} --table ${context.table ?? "TABLE"}`;
  return (
    "a key column holds a zero date (0000-00-00, a zero month or day, or a date no calendar has), which no Avro date or timestamp holds, and a key cannot be NULL whatever zero_dates says. " +
    `Give the rows a real date on the server (UPDATE ... SET the column = a real date WHERE it = '0000-00-00'), skip the parked changes that carry the zero date (\`${release} --all-pending\`, then --execute with the --through it prints), then read the table again (\`sluice snapshot --table ${context.table ?? "TABLE"} --execute\`); ` +
    "or leave the table out of `tables` (docs/mysql.md#zero-dates-in-a-key-column)"
  );
}

export class RowCodec {
  readonly bindings: readonly ColumnBinding[];
  readonly hasUnchangedField: boolean;
  readonly hasSpecialField: boolean;
  /** Bookkeeping beside the record (RowSide) instead of in it. */
  readonly sideInHeaders: boolean;
  private readonly errorContext: ErrorContext;
  private readonly keyColumns: ReadonlySet<string>;
  /** Reused by writeAvro (its lists are handed on, never reused). */
  private readonly scratch = new SpecialCollector();
  /**
   * An object with every column (null), copied for each row fromAvro makes: the copy has a slot in
   * the object itself for every column, where a row filled from `{}` keeps all but its first four
   * columns in a property array of its own (one more object a row, grown as columns are added).
   * JSON.parse gives the template its columns in place.
   */
  private readonly rowTemplate: Readonly<Record<string, null>>;
  /** Each binding's conversion of a value written out at once (writeAvro): its type's writtenAtOnce, else its toAvro. */
  private readonly writtenAtOnce: readonly ToAvroFunction[];

  constructor(bindings: readonly ColumnBinding[], options: RowCodecOptions) {
    this.bindings = bindings;
    this.writtenAtOnce = bindings.map((binding) => binding.type.toAvro.writtenAtOnce ?? binding.type.toAvro);
    this.rowTemplate = JSON.parse(JSON.stringify(Object.fromEntries(bindings.map((binding) => [binding.column, null])))) as Record<string, null>;
    this.hasUnchangedField = options.unchangedField;
    this.hasSpecialField = bindings.some((binding) => binding.type.mayBeSpecial);
    this.sideInHeaders = options.sideFields === "headers";
    this.errorContext = options.context ?? {};
    this.keyColumns = options.keyColumns ?? new Set();
  }

  /**
   * The record of a row. In the Debezium layout an unchanged TOAST value becomes Debezium's
   * placeholder where the type can hold it, and the bookkeeping goes into `side`.
   */
  toAvro(row: Row, side?: RowSide): AvroRecordValue {
    const record: AvroRecordValue = {};
    const context = new SpecialCollector();
    for (const binding of this.bindings) record[binding.field] = this.fieldValue(binding, row[binding.column], context);
    if (this.sideInHeaders) {
      if (side && context.unchanged) side.unchanged = context.unchanged;
      if (side && context.specials) side.special = context.specials;
      return record;
    }
    if (this.hasUnchangedField) record[UNCHANGED_FIELD] = context.unchanged ?? [];
    if (this.hasSpecialField) record[SPECIAL_FIELD] = context.specials ?? {};
    return record;
  }

  /**
   * Writes the record of a row (the columns only: Debezium layout, or a key) straight into `out`,
   * with one writer per binding in order: the same values as toAvro, without the record object.
   */
  writeAvro(row: Row, side: RowSide | undefined, out: AvroOutput, writers: readonly AvroWriter[]): void {
    const context = this.scratch;
    context.unchanged = undefined;
    context.specials = undefined;
    const bindings = this.bindings;
    const converters = this.writtenAtOnce;
    for (let i = 0; i < bindings.length; i++) {
      const binding = bindings[i]!;
      writers[i]!(out, this.fieldValue(binding, row[binding.column], context, converters[i]));
    }
    if (side && this.sideInHeaders) {
      if (context.unchanged) side.unchanged = context.unchanged;
      if (context.specials) side.special = context.specials;
    }
  }

  /** The Avro value of one field; unavailable fields and special numerics are noted in `context`. */
  private fieldValue(binding: ColumnBinding, value: ColumnValue | undefined, context: SpecialCollector, convert: ToAvroFunction = binding.type.toAvro): unknown {
    const { column, field, type, nullable } = binding;
    const unavailable = value === undefined || value === UNCHANGED || (value === null && !nullable && this.hasUnchangedField);
    if (unavailable) {
      if (!this.hasUnchangedField) throw this.error(column, `key column has no value (${String(value)})`);
      (context.unchanged ??= []).push(field);
      const placeholder = this.sideInHeaders && value === UNCHANGED ? type.unavailable : undefined;
      return placeholder !== undefined ? placeholder : nullable ? null : type.zero;
    }
    if (value === null) {
      if (!nullable) throw this.error(column, "value is null but the column is NOT NULL");
      return null;
    }
    let encoded: unknown;
    try {
      const present = value as Exclude<ColumnValue, null | typeof UNCHANGED>;
      encoded = convert(present, context, field);
    } catch (error) {
      const present = value as Exclude<ColumnValue, null | typeof UNCHANGED>;
      const shown = (type.show ?? describeValue)(present);
      const problem = error instanceof ZeroDateValueError && this.keyColumns.has(column) ? zeroDateInKey(this.errorContext) : `cannot be encoded as ${type.label}: ${(error as Error).message}`;
      throw this.error(column, problem, error, shown.length > 200 ? `${shown.slice(0, 200)}...` : shown);
    }
    return encoded !== undefined ? encoded : nullable ? null : type.zero;
  }

  /** The row of a record; in the Debezium layout `side` is its bookkeeping from the record headers. */
  fromAvro(record: AvroRecordValue, side?: RowSide): Row {
    const row: Record<string, ColumnValue> = { ...this.rowTemplate };
    const unchangedList = this.sideInHeaders ? side?.unchanged : (record[UNCHANGED_FIELD] as readonly string[] | undefined);
    const unchanged = unchangedList && unchangedList.length > 0 ? new Set(unchangedList) : undefined;
    const specials = this.sideInHeaders ? side?.special : (record[SPECIAL_FIELD] as Readonly<Record<string, string>> | undefined);
    const context: DecodeContext = specials == null ? NO_SPECIALS : { special: (path) => specials[path] };
    for (const { column, field, type } of this.bindings) {
      if (unchanged?.has(field)) {
        row[column] = UNCHANGED;
        continue;
      }
      const special = specials?.[field];
      if (special !== undefined) {
        row[column] = special;
        continue;
      }
      const value = record[field];
      if (value === null || value === undefined) {
        row[column] = null;
        continue;
      }
      try {
        row[column] = type.fromAvro(value, context, field);
      } catch (error) {
        throw this.error(column, `cannot be decoded from ${type.label}: ${(error as Error).message}`, error);
      }
    }
    return row;
  }

  private error(column: string, problem: string, cause?: unknown, value?: string): AvroValueError {
    const table = this.errorContext.table;
    return new AvroValueError(`${table ? `table ${table} ` : ""}column \`${column}\`: ${problem}`, { ...this.errorContext, column, ...(value === undefined ? {} : { value }) }, cause);
  }
}
