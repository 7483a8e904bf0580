/**
 * The schema registry as the daemon sees it: one interface for the built-in registry
 * (LocalRegistry) and a remote Confluent-compatible one (RemoteRegistry).
 */
import type { AvroSchemaJson } from "./avro-schema.ts";
import type { CompatibilityLevel } from "./compatibility-levels.ts";

/** A schema as JSON, or its text. */
export type SchemaInput = AvroSchemaJson | string;

export interface SubjectVersion {
  readonly subject: string;
  readonly version: number;
  readonly id: number;
  /** Schema text as the registry stores it. */
  readonly schema: string;
}

export interface CompatibilityReport {
  readonly compatible: boolean;
  /** One sentence per incompatibility (empty when compatible). */
  readonly messages: readonly string[];
}

export interface SchemaRegistry {
  /**
   * Registers a schema under a subject and returns its id. The registry checks it against the
   * subject's compatibility level; an incompatible schema rejects with IncompatibleSchemaError.
   * Registering a schema the subject already has returns the existing id.
   */
  register(subject: string, schema: SchemaInput): Promise<number>;
  /** The schema text with this id; rejects with code SCHEMA_NOT_FOUND when unknown. */
  getById(id: number): Promise<string>;
  /** The latest version of a subject, or null when the subject does not exist. */
  getLatest(subject: string): Promise<SubjectVersion | null>;
  /** One version of a subject, or null when it does not exist. */
  getVersion(subject: string, version: number): Promise<SubjectVersion | null>;
  listSubjects(): Promise<string[]>;
  /** Versions of a subject, ascending; empty when the subject does not exist. */
  listVersions(subject: string): Promise<number[]>;
  /** Would this schema be accepted, given the subject's history and compatibility level? */
  checkCompatibility(subject: string, schema: SchemaInput): Promise<CompatibilityReport>;
  /** The level in force for a subject (its own, else the global one). */
  getCompatibilityLevel(subject: string): Promise<CompatibilityLevel>;
}

/** TopicNameStrategy: the subjects of a topic's keys and values. */
export function subjectForTopic(topic: string, part: "key" | "value"): string {
  return `${topic}-${part}`;
}

export function schemaText(schema: SchemaInput): string {
  return typeof schema === "string" ? schema : JSON.stringify(schema);
}
