/**
 * Registry errors, with the HTTP status and error code Confluent's registry answers them with
 * (io.confluent.kafka.schemaregistry.rest.exceptions.Errors). The REST API sends them as
 * `{error_code, message}`; RemoteRegistry turns such answers back into these errors.
 */
import { SluiceError } from "../connectors/errors.ts";
import type { ErrorContext } from "../connectors/errors.ts";

export const REGISTRY_ERRORS = {
  SUBJECT_NOT_FOUND: { status: 404, errorCode: 40401 },
  VERSION_NOT_FOUND: { status: 404, errorCode: 40402 },
  SCHEMA_NOT_FOUND: { status: 404, errorCode: 40403 },
  SUBJECT_SOFT_DELETED: { status: 404, errorCode: 40404 },
  SUBJECT_NOT_SOFT_DELETED: { status: 404, errorCode: 40405 },
  VERSION_SOFT_DELETED: { status: 404, errorCode: 40406 },
  VERSION_NOT_SOFT_DELETED: { status: 404, errorCode: 40407 },
  SUBJECT_COMPATIBILITY_NOT_CONFIGURED: { status: 404, errorCode: 40408 },
  SUBJECT_MODE_NOT_CONFIGURED: { status: 404, errorCode: 40409 },
  // Confluent answered 409 with error_code 409 for years (40901 only since late 2025); clients check the status.
  INCOMPATIBLE_SCHEMA: { status: 409, errorCode: 409 },
  INVALID_SCHEMA: { status: 422, errorCode: 42201 },
  INVALID_VERSION: { status: 422, errorCode: 42202 },
  INVALID_COMPATIBILITY_LEVEL: { status: 422, errorCode: 42203 },
  INVALID_MODE: { status: 422, errorCode: 42204 },
  OPERATION_NOT_PERMITTED: { status: 422, errorCode: 42205 },
  ID_DOES_NOT_MATCH: { status: 422, errorCode: 42207 },
  INVALID_SUBJECT: { status: 422, errorCode: 42208 },
  BAD_REQUEST: { status: 400, errorCode: 400 },
  UNAUTHORIZED: { status: 401, errorCode: 401 },
  NOT_FOUND: { status: 404, errorCode: 404 },
  METHOD_NOT_ALLOWED: { status: 405, errorCode: 405 },
  PAYLOAD_TOO_LARGE: { status: 413, errorCode: 413 },
  UNSUPPORTED_MEDIA_TYPE: { status: 415, errorCode: 415 },
  UNPROCESSABLE_ENTITY: { status: 422, errorCode: 422 },
  INTERNAL: { status: 500, errorCode: 500 },
  STORE_ERROR: { status: 500, errorCode: 50001 },
  UNAVAILABLE: { status: 503, errorCode: 50003 },
} as const;

export type RegistryErrorKind = keyof typeof REGISTRY_ERRORS;

/** The SluiceError code of a kind: SCHEMA_INCOMPATIBLE, SCHEMA_INVALID, SCHEMA_NOT_FOUND, SCHEMA_SUBJECT_NOT_FOUND... */
export function errorCodeOf(kind: RegistryErrorKind): string {
  if (kind === "INCOMPATIBLE_SCHEMA") return "SCHEMA_INCOMPATIBLE";
  if (kind === "INVALID_SCHEMA") return "SCHEMA_INVALID";
  return kind.startsWith("SCHEMA_") ? kind : `SCHEMA_${kind}`;
}

export class RegistryError extends SluiceError {
  readonly kind: RegistryErrorKind;
  readonly httpStatus: number;
  readonly errorCode: number;

  constructor(kind: RegistryErrorKind, message: string, options: { context?: ErrorContext; cause?: unknown; retriable?: boolean; errorCode?: number } = {}) {
    const spec = REGISTRY_ERRORS[kind];
    super(message, {
      code: errorCodeOf(kind),
      retriable: options.retriable ?? spec.status >= 500,
      context: { component: "schema-registry", ...options.context },
      cause: options.cause,
    });
    this.kind = kind;
    this.httpStatus = spec.status;
    this.errorCode = options.errorCode ?? spec.errorCode;
  }
}

/** A schema rejected by the subject's compatibility level; `messages` say what breaks and where. */
export class IncompatibleSchemaError extends RegistryError {
  readonly messages: readonly string[];

  constructor(subject: string, messages: readonly string[], context: ErrorContext = {}) {
    super("INCOMPATIBLE_SCHEMA", `Schema being registered is incompatible with an earlier schema for subject "${subject}", details: ${messages.join("; ")}`, {
      context: { subject, ...context },
    });
    this.messages = messages;
  }
}

/** The kind for a Confluent error code, when it is one we know. */
export function registryErrorKindOf(errorCode: number): RegistryErrorKind | undefined {
  if (errorCode === 40901) return "INCOMPATIBLE_SCHEMA";
  for (const [kind, spec] of Object.entries(REGISTRY_ERRORS)) if (spec.errorCode === errorCode) return kind as RegistryErrorKind;
  return undefined;
}
