/**
 * The built-in registry: Confluent's semantics (ids, versions, compatibility levels, soft and
 * permanent deletes, modes) over a SchemaStore. The REST API (rest-handler.ts) is a thin layer
 * over it, and it implements the daemon's SchemaRegistry interface directly.
 */
import { parseSchemaText } from "./avro-parse.ts";
import type { AvroType } from "./avro-parse.ts";
import { normalizedForm } from "./avro-canonical.ts";
import { checkAgainstHistory, DEFAULT_COMPATIBILITY_LEVEL, describeIncompatibility, isCompatibilityLevel } from "./compatibility-levels.ts";
import type { CompatibilityLevel } from "./compatibility-levels.ts";
import { SluiceError } from "../connectors/errors.ts";
import { IncompatibleSchemaError, RegistryError } from "./registry-errors.ts";
import { schemaText } from "./registry.ts";
import type { CompatibilityReport, SchemaInput, SchemaRegistry, SubjectVersion } from "./registry.ts";
import { isRegistryMode } from "./store.ts";
import type { RegistryMode, SchemaStore, StoreMutation, VersionRecord } from "./store.ts";

/** A registration or lookup request, as Confluent's API takes it. */
export interface SchemaRequest {
  readonly schema?: unknown;
  readonly schemaType?: unknown;
  readonly references?: unknown;
  /** IMPORT mode only: the id to register the schema under. */
  readonly id?: unknown;
  /** IMPORT mode only: the version to register. */
  readonly version?: unknown;
}

/** "latest", or a version number. */
export type VersionSpec = number | "latest";

const MAX_VERSION = 2 ** 31 - 1;

export function parseVersionSpec(text: string | number): VersionSpec {
  const value = String(text);
  if (value === "latest" || value === "-1") return "latest";
  const version = Number(value);
  if (/^\d+$/.test(value) && version >= 1 && version <= MAX_VERSION) return version;
  throw new RegistryError(
    "INVALID_VERSION",
    `The specified version '${value}' is not a valid version id. Allowed values are between [1, 2^31-1] and the string "latest"`,
  );
}

export function parseCompatibilityLevel(value: unknown): CompatibilityLevel {
  const level = typeof value === "string" ? value.toUpperCase() : value;
  if (!isCompatibilityLevel(level)) {
    throw new RegistryError(
      "INVALID_COMPATIBILITY_LEVEL",
      "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive",
    );
  }
  return level;
}

export interface LocalRegistryOptions {
  /** The global level until one is set through the API (PUT /config). Default BACKWARD. */
  readonly defaultCompatibility?: CompatibilityLevel;
}

export class LocalRegistry implements SchemaRegistry {
  readonly store: SchemaStore;
  private readonly defaultCompatibility: CompatibilityLevel;
  private readonly parsedById = new Map<number, AvroType>();
  private writes: Promise<unknown> = Promise.resolve();

  constructor(store: SchemaStore, options: LocalRegistryOptions = {}) {
    this.store = store;
    this.defaultCompatibility = options.defaultCompatibility ?? DEFAULT_COMPATIBILITY_LEVEL;
  }

  // --- SchemaRegistry -------------------------------------------------------------------------

  async register(subject: string, schema: SchemaInput): Promise<number> {
    return (await this.registerSchema(subject, { schema: schemaText(schema) })).id;
  }

  async getById(id: number): Promise<string> {
    return this.schemaById(id);
  }

  async getLatest(subject: string): Promise<SubjectVersion | null> {
    const live = await this.store.versions(subject, false);
    const latest = live.at(-1);
    return latest ? this.toSubjectVersion(latest) : null;
  }

  async getVersion(subject: string, version: number): Promise<SubjectVersion | null> {
    const record = (await this.store.versions(subject, false)).find((candidate) => candidate.version === version);
    return record ? this.toSubjectVersion(record) : null;
  }

  listSubjects(): Promise<string[]> {
    return this.store.subjects(false);
  }

  async listVersions(subject: string): Promise<number[]> {
    return (await this.store.versions(subject, false)).map((record) => record.version);
  }

  async checkCompatibility(subject: string, schema: SchemaInput): Promise<CompatibilityReport> {
    return this.testCompatibility(subject, "all", { schema: schemaText(schema) }, false);
  }

  getCompatibilityLevel(subject: string): Promise<CompatibilityLevel> {
    return this.getConfig(subject, true);
  }

  // --- Subjects and versions -------------------------------------------------------------------

  registerSchema(subject: string, request: SchemaRequest): Promise<SubjectVersion> {
    return this.exclusive(async () => {
      validateSubject(subject);
      const mode = await this.effectiveMode(subject);
      const importing = request.id !== undefined && request.id !== null;
      if (mode === "READONLY") throw notPermitted(`Subject ${subject} is in read-only mode`);
      if (importing && mode !== "IMPORT") throw notPermitted(`Subject ${subject} is not in import mode`);
      if (!importing && mode === "IMPORT") throw notPermitted(`Subject ${subject} is not in read-write mode`);
      const { type, normalized } = parseRequestSchema(request);
      const all = await this.store.versions(subject, true);
      const live = all.filter((record) => !record.deleted);
      const knownId = await this.store.idOfSchema(normalized);
      const requestedId = importing ? requireInteger(request.id, "id") : undefined;
      if (requestedId !== undefined) {
        if (knownId !== null && knownId !== requestedId) {
          throw new RegistryError("ID_DOES_NOT_MATCH", `Schema already registered with id ${knownId} instead of input id ${requestedId}`);
        }
        const holder = await this.store.schemaById(requestedId);
        if (holder !== null && holder !== normalized) throw notPermitted(`Overwrite new schema with id ${requestedId} is not permitted.`);
      }
      const requestedVersion = request.version === undefined || request.version === null ? undefined : requireInteger(request.version, "version");
      if (knownId !== null && requestedVersion === undefined) {
        const existing = live.filter((record) => record.id === knownId).at(-1);
        if (existing) return this.toSubjectVersion(existing);
      }
      if (mode !== "IMPORT") {
        const level = await this.getConfig(subject, true);
        const history = await Promise.all(live.map(async (record) => ({ version: record.version, schema: await this.parsedSchema(record.id) })));
        const problems = checkAgainstHistory(type, history, level);
        if (problems.length > 0) {
          throw new IncompatibleSchemaError(
            subject,
            problems.map((problem) => describeIncompatibility(problem, level)),
          );
        }
      }
      const maxVersion = all.reduce((max, record) => Math.max(max, record.version), 0);
      const version = requestedVersion ?? maxVersion + 1;
      if (requestedVersion !== undefined && all.some((record) => record.version === requestedVersion)) {
        throw new RegistryError("INVALID_SCHEMA", `Subject ${subject} already has a version ${requestedVersion}`);
      }
      if (mode !== "IMPORT" && version !== maxVersion + 1) {
        throw new RegistryError("INVALID_SCHEMA", "Version is not one more than previous version");
      }
      const id = knownId ?? requestedId ?? (await this.store.nextId());
      // Re-registering a schema whose version was soft-deleted removes that old version for good, as Confluent does.
      const mutations: StoreMutation[] = all
        .filter((record) => record.deleted && record.id === id)
        .map((record) => ({ op: "hardDelete", subject, version: record.version }));
      mutations.push({ op: "register", subject, version, id, schema: normalized });
      await this.applyToStore(mutations);
      this.parsedById.set(id, type);
      return { subject, version, id, schema: normalized };
    });
  }

  async lookupSchema(subject: string, request: SchemaRequest, includeDeleted: boolean): Promise<SubjectVersion> {
    const { normalized } = parseRequestSchema(request);
    const versions = await this.store.versions(subject, includeDeleted);
    if (versions.length === 0) throw subjectNotFound(subject);
    const id = await this.store.idOfSchema(normalized);
    const match = versions.filter((record) => record.id === id).at(-1);
    if (!match) throw new RegistryError("SCHEMA_NOT_FOUND", "Schema not found", { context: { subject } });
    return this.toSubjectVersion(match);
  }

  async subjectVersion(subject: string, spec: VersionSpec, includeDeleted: boolean): Promise<SubjectVersion> {
    const versions = await this.store.versions(subject, includeDeleted);
    if (versions.length === 0) throw subjectNotFound(subject);
    const record = spec === "latest" ? versions.at(-1) : versions.find((candidate) => candidate.version === spec);
    if (!record) throw versionNotFound(subject, spec);
    return this.toSubjectVersion(record);
  }

  async versionsOf(subject: string, includeDeleted: boolean): Promise<number[]> {
    const versions = await this.store.versions(subject, includeDeleted);
    if (versions.length === 0) throw subjectNotFound(subject);
    return versions.map((record) => record.version);
  }

  async subjects(includeDeleted: boolean, prefix = ""): Promise<string[]> {
    return (await this.store.subjects(includeDeleted)).filter((subject) => subject.startsWith(prefix));
  }

  deleteSubject(subject: string, permanent: boolean): Promise<number[]> {
    return this.exclusive(async () => {
      const all = await this.store.versions(subject, true);
      if (all.length === 0) throw subjectNotFound(subject);
      if ((await this.effectiveMode(subject)) === "READONLY") throw notPermitted(`Subject ${subject} is in read-only mode`);
      const live = all.filter((record) => !record.deleted);
      if (!permanent) {
        if (live.length === 0) {
          throw new RegistryError("SUBJECT_SOFT_DELETED", `Subject '${subject}' was soft deleted.Set permanent=true to delete permanently`, { context: { subject } });
        }
        await this.applyToStore(live.map((record) => ({ op: "softDelete", subject, version: record.version })));
        return live.map((record) => record.version);
      }
      if (live.length > 0) {
        throw new RegistryError("SUBJECT_NOT_SOFT_DELETED", `Subject '${subject}' was not deleted first before being permanently deleted`, { context: { subject } });
      }
      await this.applyToStore([...all.map((record): StoreMutation => ({ op: "hardDelete", subject, version: record.version })), ...(await this.subjectSettingsRemoval(subject))]);
      return all.map((record) => record.version);
    });
  }

  deleteVersion(subject: string, spec: VersionSpec, permanent: boolean): Promise<number> {
    return this.exclusive(async () => {
      const all = await this.store.versions(subject, true);
      if (all.length === 0) throw subjectNotFound(subject);
      if ((await this.effectiveMode(subject)) === "READONLY") throw notPermitted(`Subject ${subject} is in read-only mode`);
      const record = spec === "latest" ? all.at(-1) : all.find((candidate) => candidate.version === spec);
      if (!record) throw versionNotFound(subject, spec);
      if (!permanent && record.deleted) {
        throw new RegistryError("VERSION_SOFT_DELETED", `Subject '${subject}' Version ${record.version} was soft deleted.Set permanent=true to delete permanently`, {
          context: { subject },
        });
      }
      if (permanent && !record.deleted) {
        throw new RegistryError("VERSION_NOT_SOFT_DELETED", `Subject '${subject}' Version ${record.version} was not deleted first before being permanently deleted`, {
          context: { subject },
        });
      }
      const mutations: StoreMutation[] = [{ op: permanent ? "hardDelete" : "softDelete", subject, version: record.version }];
      if (permanent && all.length === 1) mutations.push(...(await this.subjectSettingsRemoval(subject)));
      await this.applyToStore(mutations);
      return record.version;
    });
  }

  // --- Schemas by id ---------------------------------------------------------------------------

  async schemaById(id: number): Promise<string> {
    const schema = await this.store.schemaById(id);
    if (schema === null) throw new RegistryError("SCHEMA_NOT_FOUND", `Schema ${id} not found`, { context: { schemaId: id } });
    return schema;
  }

  async versionsOfId(id: number, includeDeleted: boolean): Promise<VersionRecord[]> {
    await this.schemaById(id);
    return this.store.versionsOfId(id, includeDeleted);
  }

  // --- Compatibility ---------------------------------------------------------------------------

  /** Checks a schema against one version ("latest" included) or, with "all", every live version, at the subject's level. */
  async testCompatibility(subject: string, against: VersionSpec | "all", request: SchemaRequest, verbose: boolean): Promise<CompatibilityReport> {
    let type: AvroType;
    try {
      type = parseRequestSchema(request).type;
    } catch (error) {
      if (verbose && error instanceof RegistryError) return { compatible: false, messages: [error.message] };
      throw error;
    }
    const live = await this.store.versions(subject, false);
    let targets: VersionRecord[];
    if (against === "all") targets = live;
    else if (against === "latest") targets = live.slice(-1);
    else {
      const record = live.find((candidate) => candidate.version === against);
      if (!record) throw versionNotFound(subject, against);
      targets = [record];
    }
    const level = await this.getConfig(subject, true);
    const history = await Promise.all(targets.map(async (record) => ({ version: record.version, schema: await this.parsedSchema(record.id) })));
    const problems = checkAgainstHistory(type, history, level);
    return { compatible: problems.length === 0, messages: problems.map((problem) => describeIncompatibility(problem, level)) };
  }

  // --- Config and mode -------------------------------------------------------------------------

  async getConfig(subject: string | null, defaultToGlobal: boolean): Promise<CompatibilityLevel> {
    const global = (await this.store.compatibility(null)) ?? this.defaultCompatibility;
    if (subject === null) return global;
    const own = await this.store.compatibility(subject);
    if (own !== null) return own;
    if (defaultToGlobal) return global;
    throw new RegistryError("SUBJECT_COMPATIBILITY_NOT_CONFIGURED", `Subject '${subject}' does not have subject-level compatibility configured`, {
      context: { subject },
    });
  }

  async setConfig(subject: string | null, level: unknown): Promise<CompatibilityLevel> {
    const parsed = parseCompatibilityLevel(level);
    return this.exclusive(async () => {
      if (subject !== null) validateSubject(subject);
      await this.applyToStore([{ op: "setCompatibility", subject, level: parsed }]);
      return parsed;
    });
  }

  deleteConfig(subject: string | null): Promise<CompatibilityLevel> {
    return this.exclusive(async () => {
      const previous = await this.store.compatibility(subject);
      if (previous === null) {
        if (subject !== null) throw subjectNotFound(subject);
        return this.defaultCompatibility;
      }
      await this.applyToStore([{ op: "setCompatibility", subject, level: null }]);
      return previous;
    });
  }

  async getMode(subject: string | null, defaultToGlobal: boolean): Promise<RegistryMode> {
    const global = (await this.store.mode(null)) ?? "READWRITE";
    if (subject === null) return global;
    const own = await this.store.mode(subject);
    if (own !== null) return own;
    if (defaultToGlobal) return global;
    throw new RegistryError("SUBJECT_MODE_NOT_CONFIGURED", `Subject '${subject}' does not have subject-level mode configured`, { context: { subject } });
  }

  async setMode(subject: string | null, mode: unknown, force: boolean): Promise<RegistryMode> {
    const parsed = typeof mode === "string" ? mode.toUpperCase() : mode;
    if (!isRegistryMode(parsed)) throw new RegistryError("INVALID_MODE", "Invalid mode. Valid values are READWRITE, READONLY, IMPORT.");
    return this.exclusive(async () => {
      if (subject !== null) validateSubject(subject);
      if (parsed === "IMPORT" && !force && (await this.effectiveMode(subject)) !== "IMPORT") {
        const existing = subject === null ? await this.store.subjects(false) : (await this.store.versions(subject, false)).map((record) => record.subject);
        if (existing.length > 0) throw notPermitted("Cannot import since found existing subjects");
      }
      await this.applyToStore([{ op: "setMode", subject, mode: parsed }]);
      return parsed;
    });
  }

  deleteMode(subject: string | null): Promise<RegistryMode> {
    return this.exclusive(async () => {
      const previous = await this.store.mode(subject);
      if (previous === null) {
        if (subject !== null) throw subjectNotFound(subject);
        return "READWRITE";
      }
      await this.applyToStore([{ op: "setMode", subject, mode: null }]);
      return previous;
    });
  }

  close(): Promise<void> {
    return this.store.close();
  }

  // --- Internals -------------------------------------------------------------------------------

  private async toSubjectVersion(record: VersionRecord): Promise<SubjectVersion> {
    const schema = (await this.store.schemaById(record.id)) ?? "";
    return { subject: record.subject, version: record.version, id: record.id, schema };
  }

  private async parsedSchema(id: number): Promise<AvroType> {
    let type = this.parsedById.get(id);
    if (!type) {
      type = parseSchemaText(await this.schemaById(id));
      this.parsedById.set(id, type);
    }
    return type;
  }

  private async effectiveMode(subject: string | null): Promise<RegistryMode> {
    return (subject === null ? null : await this.store.mode(subject)) ?? (await this.store.mode(null)) ?? "READWRITE";
  }

  private async subjectSettingsRemoval(subject: string): Promise<StoreMutation[]> {
    const mutations: StoreMutation[] = [];
    if ((await this.store.compatibility(subject)) !== null) mutations.push({ op: "setCompatibility", subject, level: null });
    if ((await this.store.mode(subject)) !== null) mutations.push({ op: "setMode", subject, mode: null });
    return mutations;
  }

  private async applyToStore(mutations: readonly StoreMutation[]): Promise<void> {
    try {
      await this.store.apply(mutations);
    } catch (error) {
      if (error instanceof RegistryError) throw error;
      // A change its store cannot hold (a Kafka topic's message limit) is the schema's problem, not an outage.
      if (error instanceof SluiceError && TOO_LARGE_FOR_STORE.has(error.code)) {
        throw new RegistryError("INVALID_SCHEMA", `Invalid schema of type AVRO, details: too large for the registry's store (${error.message})`, { cause: error });
      }
      throw new RegistryError("STORE_ERROR", `Error in the backend data store: ${(error as Error).message}`, { cause: error });
    }
  }

  /** Runs read-check-write sequences one at a time, so two registrations never race. */
  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.writes.then(work);
    this.writes = result.catch(() => undefined);
    return result;
  }
}

const TOO_LARGE_FOR_STORE = new Set(["KAFKA_MESSAGE_TOO_LARGE", "RECORD_TOO_LARGE"]);

/**
 * The largest schema text the registry accepts (512 KiB): a record of thousands of columns is far
 * below it, and one journal entry holding it stays within a Kafka topic's default 1 MB message limit.
 */
export const MAX_SCHEMA_BYTES = 512 * 1024;

function parseRequestSchema(request: SchemaRequest): { type: AvroType; normalized: string } {
  const schemaType = request.schemaType ?? "AVRO";
  if (schemaType !== "AVRO") throw new RegistryError("INVALID_SCHEMA", `Invalid schema type ${String(schemaType)}: this registry supports AVRO only`);
  if (Array.isArray(request.references) && request.references.length > 0) {
    throw new RegistryError("INVALID_SCHEMA", "Invalid schema of type AVRO, details: schema references are not supported by this registry");
  }
  if (typeof request.schema !== "string" || request.schema.trim() === "") throw new RegistryError("INVALID_SCHEMA", "Empty schema");
  const bytes = Buffer.byteLength(request.schema);
  if (bytes > MAX_SCHEMA_BYTES) {
    throw new RegistryError("INVALID_SCHEMA", `Invalid schema of type AVRO, details: the schema is ${bytes} bytes, more than the ${MAX_SCHEMA_BYTES} bytes this registry keeps`);
  }
  let type: AvroType;
  try {
    // Only Avro Java's rules (avro-parse.ts): avsc refuses some schemas Java accepts (an empty union, a union default of a later branch).
    type = parseSchemaText(request.schema);
  } catch (error) {
    throw new RegistryError("INVALID_SCHEMA", `Invalid schema of type AVRO, details: ${(error as Error).message}`, { cause: error });
  }
  return { type, normalized: normalizedForm(type) };
}

function validateSubject(subject: string): void {
  if (subject.trim() === "" || /[\u0000-\u001f]/.test(subject)) throw new RegistryError("INVALID_SUBJECT", `Invalid subject ${JSON.stringify(subject)}`);
}

function requireInteger(value: unknown, what: string): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0) throw new RegistryError("INVALID_SCHEMA", `${what} ${JSON.stringify(value)} is not a non-negative integer`);
  return value;
}

function notPermitted(message: string): RegistryError {
  return new RegistryError("OPERATION_NOT_PERMITTED", message);
}

function subjectNotFound(subject: string): RegistryError {
  return new RegistryError("SUBJECT_NOT_FOUND", `Subject '${subject}' not found.`, { context: { subject } });
}

function versionNotFound(subject: string, spec: VersionSpec): RegistryError {
  return new RegistryError("VERSION_NOT_FOUND", `Version ${spec} not found.`, { context: { subject } });
}
