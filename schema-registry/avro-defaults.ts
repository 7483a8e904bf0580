/**
 * Whether a JSON value is a valid Avro default for a type, as Avro Java (and so Confluent's
 * registry) judges it, which is more tolerant than the specification: a union's default may match
 * any branch, and string, bytes, fixed and enum defaults need only be strings (no byte range,
 * length or symbol check). See docs/schema-registry.md.
 */
import type { AvroType } from "./avro-parse.ts";

const INT_MIN = -(2 ** 31);
const INT_MAX = 2 ** 31 - 1;

export function isValidDefault(type: AvroType, value: unknown): boolean {
  switch (type.kind) {
    case "primitive":
      switch (type.name) {
        case "null":
          return value === null;
        case "boolean":
          return typeof value === "boolean";
        case "int":
          return Number.isInteger(value) && (value as number) >= INT_MIN && (value as number) <= INT_MAX;
        case "long":
          return Number.isInteger(value);
        case "float":
        case "double":
          return typeof value === "number";
        case "bytes":
        case "string":
          return typeof value === "string";
      }
      return false;
    case "fixed":
    case "enum":
      return typeof value === "string";
    case "array":
      return Array.isArray(value) && value.every((item) => isValidDefault(type.items, item));
    case "map":
      return isPlainObject(value) && Object.values(value).every((item) => isValidDefault(type.values, item));
    case "record":
      return (
        isPlainObject(value) &&
        type.fields.every((field) => (field.name in value ? isValidDefault(field.type, value[field.name]) : field.hasDefault))
      );
    case "union":
      // The specification asks for the first branch; Avro Java accepts a match of any branch.
      return type.branches.some((branch) => isValidDefault(branch, value));
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
