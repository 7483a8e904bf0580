/**
 * Can data written with `writer` be read with `reader`? The Avro specification's schema
 * resolution, with the semantics of Avro Java's SchemaCompatibility (which Confluent's registry
 * uses): every incompatibility is collected, each with its kind, its location in the reader
 * schema (`/fields/3/type`, as Confluent reports it) and a sentence naming the column or field.
 * Names compare by short name or reader alias; logical types are not compared (as in Java).
 */
import type { AvroField, AvroRecord, AvroType, AvroUnion } from "./avro-parse.ts";
import { shortName } from "./avro-names.ts";

export type IncompatibilityKind =
  | "NAME_MISMATCH"
  | "FIXED_SIZE_MISMATCH"
  | "MISSING_ENUM_SYMBOLS"
  | "READER_FIELD_MISSING_DEFAULT_VALUE"
  | "TYPE_MISMATCH"
  | "MISSING_UNION_BRANCH";

export interface Incompatibility {
  readonly kind: IncompatibilityKind;
  /** Location in the reader schema: "/fields/3/type". */
  readonly path: string;
  /** What is wrong, naming the column or field: "column `price`: writer type double cannot be read as int". */
  readonly message: string;
}

/** Where the checker is, for messages: the column (inside a table row record) or the field path. */
interface Subject {
  readonly column?: string;
  readonly fields: readonly string[];
}

const ROOT: Subject = { fields: [] };

export function checkReaderWriter(reader: AvroType, writer: AvroType): Incompatibility[] {
  return new Checker().check(reader, writer, [], ROOT);
}

/** A short description of a type for messages: "int", "bytes (decimal)", "array<string>", "record Value". */
export function describeType(type: AvroType): string {
  switch (type.kind) {
    case "primitive": {
      const logical = type.props.logicalType;
      return typeof logical === "string" ? `${type.name} (${logical})` : type.name;
    }
    case "array":
      return `array<${describeType(type.items)}>`;
    case "map":
      return `map<${describeType(type.values)}>`;
    case "union":
      return `union [${type.branches.map(describeType).join(", ")}]`;
    default:
      return `${type.kind} ${shortName(type.fullName)}`;
  }
}

function label(subject: Subject): string {
  if (subject.column !== undefined) return `column \`${subject.column}\``;
  return subject.fields.length === 0 ? "the schema" : `field \`${subject.fields.join(".")}\``;
}

/** Row records of Sluice (and Debezium) are named Key or Value; their fields are columns. */
function isRowRecord(record: AvroRecord): boolean {
  const name = shortName(record.fullName);
  return name === "Value" || name === "Key" || "sluice.table" in record.props;
}

function columnName(field: AvroField): string {
  const original = field.props["sluice.original.name"];
  return typeof original === "string" ? original : field.name;
}

function pathOf(location: readonly string[]): string {
  return `/${location.join("/")}`;
}

function namesMatch(reader: { fullName: string; aliases: readonly string[] }, writer: { fullName: string }): boolean {
  return shortName(reader.fullName) === shortName(writer.fullName) || reader.aliases.includes(writer.fullName);
}

class Checker {
  /** Reader/writer pairs being checked: meeting one again means a recursive type. */
  private readonly inProgress = new Map<AvroType, Set<AvroType>>();

  check(reader: AvroType, writer: AvroType, location: readonly string[], subject: Subject): Incompatibility[] {
    let writers = this.inProgress.get(reader);
    if (!writers) {
      writers = new Set();
      this.inProgress.set(reader, writers);
    }
    // Compatible unless proven otherwise by the outer check of the same pair.
    if (writers.has(writer)) return [];
    writers.add(writer);
    try {
      return this.calculate(reader, writer, location, subject);
    } finally {
      writers.delete(writer);
    }
  }

  private calculate(reader: AvroType, writer: AvroType, location: readonly string[], subject: Subject): Incompatibility[] {
    const mismatch = (): Incompatibility[] => [
      {
        kind: "TYPE_MISMATCH",
        path: pathOf(location),
        message: `${label(subject)}: writer type ${describeType(writer)} cannot be read as ${describeType(reader)}`,
      },
    ];
    if (reader.kind === "primitive" && writer.kind === "primitive") {
      if (reader.name === writer.name) return [];
      return promotes(writer.name, reader.name) ? [] : mismatch();
    }
    if (reader.kind === writer.kind) {
      switch (reader.kind) {
        case "array":
          return this.check(reader.items, (writer as typeof reader).items, [...location, "items"], subject);
        case "map":
          return this.check(reader.values, (writer as typeof reader).values, [...location, "values"], subject);
        case "fixed": {
          const writerFixed = writer as typeof reader;
          const problems = this.names(reader, writerFixed, location, subject);
          if (reader.size !== writerFixed.size) {
            problems.push({
              kind: "FIXED_SIZE_MISMATCH",
              path: pathOf([...location, "size"]),
              message: `${label(subject)}: fixed ${shortName(writerFixed.fullName)} of ${writerFixed.size} bytes cannot be read as fixed of ${reader.size} bytes`,
            });
          }
          return problems;
        }
        case "enum": {
          const writerEnum = writer as typeof reader;
          const problems = this.names(reader, writerEnum, location, subject);
          const missing = writerEnum.symbols.filter((symbol) => !reader.symbols.includes(symbol));
          if (missing.length > 0 && reader.default === undefined) {
            problems.push({
              kind: "MISSING_ENUM_SYMBOLS",
              path: pathOf([...location, "symbols"]),
              message: `${label(subject)}: writer enum symbols [${missing.join(", ")}] are missing from the reader enum, which has no default`,
            });
          }
          return problems;
        }
        case "record":
          return [...this.names(reader, writer as typeof reader, location, subject), ...this.fields(reader, writer as typeof reader, location, subject)];
        case "union":
          return (writer as typeof reader).branches.flatMap((branch, index) => this.unionBranch(reader, branch, location, subject, index));
        default:
          return [];
      }
    }
    if (writer.kind === "union") {
      // Every branch the writer may have written must be readable.
      return writer.branches.flatMap((branch) => this.check(reader, branch, location, subject));
    }
    if (reader.kind === "union") return this.unionBranch(reader, writer, location, subject, undefined);
    return mismatch();
  }

  /**
   * A writer type read by a reader union: fine if some branch reads it. If none does but one
   * corresponds to it (same named type, or same kind of array or map), that branch's own problems
   * are reported, so the message names the column that changed; otherwise MISSING_UNION_BRANCH.
   * The verdict is Avro Java's either way.
   */
  private unionBranch(reader: AvroUnion, writer: AvroType, location: readonly string[], subject: Subject, writerIndex: number | undefined): Incompatibility[] {
    if (reader.branches.some((branch, index) => this.check(branch, writer, [...location, String(index)], subject).length === 0)) return [];
    const corresponding = reader.branches.findIndex((branch) => correspondsTo(branch, writer));
    if (corresponding >= 0) return this.check(reader.branches[corresponding] as AvroType, writer, [...location, String(corresponding)], subject);
    return [
      {
        kind: "MISSING_UNION_BRANCH",
        path: pathOf(writerIndex === undefined ? location : [...location, String(writerIndex)]),
        message:
          writerIndex === undefined
            ? `${label(subject)}: writer type ${describeType(writer)} cannot be read by any branch of ${describeType(reader)}`
            : `${label(subject)}: the reader union has no branch that can read the writer's ${describeType(writer)}`,
      },
    ];
  }

  private names(
    reader: { fullName: string; aliases: readonly string[] },
    writer: { fullName: string },
    location: readonly string[],
    subject: Subject,
  ): Incompatibility[] {
    if (namesMatch(reader, writer)) return [];
    return [
      {
        kind: "NAME_MISMATCH",
        path: pathOf([...location, "name"]),
        message: `${label(subject)}: writer type ${writer.fullName} cannot be read as ${reader.fullName} (names differ and no reader alias matches)`,
      },
    ];
  }

  private fields(reader: AvroRecord, writer: AvroRecord, location: readonly string[], subject: Subject): Incompatibility[] {
    const problems: Incompatibility[] = [];
    const rowRecord = isRowRecord(reader);
    reader.fields.forEach((readerField, index) => {
      const fieldLocation = [...location, "fields", String(index)];
      const fieldSubject: Subject = rowRecord
        ? { column: columnName(readerField), fields: [...subject.fields, readerField.name] }
        : { ...(subject.column === undefined ? {} : { column: subject.column }), fields: [...subject.fields, readerField.name] };
      const writerField = lookupWriterField(writer, readerField);
      if (writerField) {
        problems.push(...this.check(readerField.type, writerField.type, [...fieldLocation, "type"], fieldSubject));
      } else if (!readerField.hasDefault) {
        problems.push({
          kind: "READER_FIELD_MISSING_DEFAULT_VALUE",
          path: pathOf(fieldLocation),
          message: `${label(fieldSubject)}: the reader has it without a default value, and data written without it cannot be read`,
        });
      }
    });
    return problems;
  }
}

function correspondsTo(readerBranch: AvroType, writer: AvroType): boolean {
  if (readerBranch.kind !== writer.kind) return false;
  if (readerBranch.kind === "array" || readerBranch.kind === "map") return true;
  if ("fullName" in readerBranch && "fullName" in writer) return namesMatch(readerBranch, writer);
  return false;
}

function lookupWriterField(writer: AvroRecord, readerField: AvroField): AvroField | undefined {
  const direct = writer.fields.find((field) => field.name === readerField.name);
  if (direct) return direct;
  return writer.fields.find((field) => readerField.aliases.includes(field.name));
}

/** Avro's promotions: what a reader of type `to` accepts besides its own type. */
function promotes(from: string, to: string): boolean {
  switch (to) {
    case "long":
      return from === "int";
    case "float":
      return from === "int" || from === "long";
    case "double":
      return from === "int" || from === "long" || from === "float";
    case "string":
      return from === "bytes";
    case "bytes":
      return from === "string";
    default:
      return false;
  }
}
