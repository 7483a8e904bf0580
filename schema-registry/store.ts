/**
 * Registry storage. The store keeps subjects, versions, schema ids, compatibility levels and modes;
 * the rules of registration (compatibility, soft before permanent delete, modes) live in
 * LocalRegistry. Everything the store holds is the replay of a log of mutations, so a backend
 * only has to load the log and append to it (a JSON file today; the topic log later).
 */
import type { CompatibilityLevel } from "./compatibility-levels.ts";

export const REGISTRY_MODES = ["READWRITE", "READONLY", "IMPORT"] as const;
export type RegistryMode = (typeof REGISTRY_MODES)[number];

export function isRegistryMode(value: unknown): value is RegistryMode {
  return typeof value === "string" && (REGISTRY_MODES as readonly string[]).includes(value);
}

export interface VersionRecord {
  readonly subject: string;
  readonly version: number;
  readonly id: number;
  readonly deleted: boolean;
}

export type StoreMutation =
  /** A new version of a subject; `schema` is its normalized text, `id` its global id. */
  | { readonly op: "register"; readonly subject: string; readonly version: number; readonly id: number; readonly schema: string }
  | { readonly op: "softDelete"; readonly subject: string; readonly version: number }
  /** Removes a soft-deleted version for good (its id stays used). */
  | { readonly op: "hardDelete"; readonly subject: string; readonly version: number }
  /** `subject` null is the global level; `level` null removes the setting. */
  | { readonly op: "setCompatibility"; readonly subject: string | null; readonly level: CompatibilityLevel | null }
  | { readonly op: "setMode"; readonly subject: string | null; readonly mode: RegistryMode | null }
  /**
   * Ids up to `through` are taken by records whose schemas were lost with the journal (an internal topic deleted, its
   * loss accepted: connectors/kafka/lost-internal-topics.ts): new schemas get ids above them. An older Sluice ignores it.
   */
  | { readonly op: "reserveIds"; readonly through: number };

export interface SchemaStore {
  /** Subjects with at least one live version (or any version, with includeDeleted), sorted. */
  subjects(includeDeleted: boolean): Promise<string[]>;
  /** Versions of a subject, ascending. */
  versions(subject: string, includeDeleted: boolean): Promise<VersionRecord[]>;
  /** The schema text of an id still used by some version (soft-deleted included); null otherwise. */
  schemaById(id: number): Promise<string | null>;
  /** The id ever assigned to this normalized schema text, or null. */
  idOfSchema(schema: string): Promise<number | null>;
  /** Every version using an id. */
  versionsOfId(id: number, includeDeleted: boolean): Promise<VersionRecord[]>;
  /** The lowest id never assigned: ids are never reused, even after a permanent delete. */
  nextId(): Promise<number>;
  compatibility(subject: string | null): Promise<CompatibilityLevel | null>;
  mode(subject: string | null): Promise<RegistryMode | null>;
  /** Applies mutations atomically and durably (all or none). Rejects a batch that breaks an invariant. */
  apply(mutations: readonly StoreMutation[]): Promise<void>;
  close(): Promise<void>;
}

/** Where the mutation log lives. */
export interface StoreBackend {
  load(): Promise<StoreMutation[]>;
  /** Resolves once the mutations are durable. */
  append(mutations: readonly StoreMutation[]): Promise<void>;
  close(): Promise<void>;
}
