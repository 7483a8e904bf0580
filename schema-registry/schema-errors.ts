import { SluiceError } from "../connectors/errors.ts";
import type { ErrorContext } from "../connectors/errors.ts";

/** A schema text that is not valid Avro (bad JSON, unknown type, bad default, duplicate name...). */
export class InvalidSchemaError extends SluiceError {
  constructor(message: string, context: ErrorContext = {}) {
    super(message, { code: "SCHEMA_INVALID", retriable: false, context: { component: "schema-registry", ...context } });
  }
}

/** A row value that cannot be encoded in its column's Avro type, or an Avro value that cannot be decoded. */
export class AvroValueError extends SluiceError {
  constructor(message: string, context: ErrorContext = {}, cause?: unknown) {
    super(message, { code: "AVRO_VALUE_INVALID", retriable: false, context: { component: "schema-registry", ...context }, cause });
  }
}
