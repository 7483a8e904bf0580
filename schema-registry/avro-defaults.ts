/** Whether a JSON value is a valid Avro default for a type (Avro specification, "default" table). */
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
          return isByteString(value);
        case "string":
          return typeof value === "string";
      }
      return false;
    case "fixed":
      return isByteString(value) && value.length === type.size;
    case "enum":
      return typeof value === "string" && type.symbols.includes(value);
    case "array":
      return Array.isArray(value) && value.every((item) => isValidDefault(type.items, item));
    case "map":
      return isPlainObject(value) && Object.values(value).every((item) => isValidDefault(type.values, item));
    case "record":
      return (
        isPlainObject(value) &&
        type.fields.every((field) => (field.name in value ? isValidDefault(field.type, value[field.name]) : field.hasDefault))
      );
    case "union": {
      // The default of a union matches its first branch (the rule avsc and Avro Java 1.11 enforce).
      const first = type.branches[0];
      return first !== undefined && isValidDefault(first, value);
    }
  }
}

/** Bytes and fixed defaults are strings whose code points 0-255 stand for the bytes. */
function isByteString(value: unknown): value is string {
  if (typeof value !== "string") return false;
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) > 0xff) return false;
  return true;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}
