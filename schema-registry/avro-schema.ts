/**
 * Avro schemas as JSON values (the form they are registered, stored and exchanged in).
 * The parsed, validated form is in avro-parse.ts.
 */

export type AvroPrimitiveName = "null" | "boolean" | "int" | "long" | "float" | "double" | "bytes" | "string";

export const AVRO_PRIMITIVES: ReadonlySet<string> = new Set<AvroPrimitiveName>([
  "null",
  "boolean",
  "int",
  "long",
  "float",
  "double",
  "bytes",
  "string",
]);

/** Any Avro schema in JSON form: a type name, a union (array) or a schema object. */
export type AvroSchemaJson = string | readonly AvroSchemaJson[] | AvroSchemaObject;

export interface AvroSchemaObject {
  readonly type: AvroSchemaJson;
  readonly [attribute: string]: unknown;
}

export interface AvroFieldJson {
  readonly name: string;
  readonly type: AvroSchemaJson;
  readonly default?: unknown;
  readonly doc?: string;
  readonly aliases?: readonly string[];
  readonly order?: "ascending" | "descending" | "ignore";
  readonly [attribute: string]: unknown;
}

export interface AvroRecordJson extends AvroSchemaObject {
  readonly type: "record";
  readonly name: string;
  readonly namespace?: string;
  readonly doc?: string;
  readonly fields: readonly AvroFieldJson[];
}

export function isSchemaObject(value: unknown): value is AvroSchemaObject {
  return typeof value === "object" && value !== null && !Array.isArray(value) && "type" in value;
}
