/** The registry's state as the replay of its mutation log, with the invariants every log keeps. */
import type { CompatibilityLevel } from "./compatibility-levels.ts";
import type { RegistryMode, StoreMutation, VersionRecord } from "./store.ts";

export class StoreState {
  /** subject -> version -> record. */
  readonly subjects = new Map<string, Map<number, VersionRecord>>();
  readonly schemaOfId = new Map<number, string>();
  readonly idOfSchema = new Map<string, number>();
  readonly compatibility = new Map<string | null, CompatibilityLevel>();
  readonly modes = new Map<string | null, RegistryMode>();
  nextId = 1;

  clone(): StoreState {
    const copy = new StoreState();
    for (const [subject, versions] of this.subjects) copy.subjects.set(subject, new Map(versions));
    for (const [id, schema] of this.schemaOfId) copy.schemaOfId.set(id, schema);
    for (const [schema, id] of this.idOfSchema) copy.idOfSchema.set(schema, id);
    for (const [subject, level] of this.compatibility) copy.compatibility.set(subject, level);
    for (const [subject, mode] of this.modes) copy.modes.set(subject, mode);
    copy.nextId = this.nextId;
    return copy;
  }

  /** Applies one mutation; throws (leaving the state partly changed) when it breaks an invariant. */
  apply(mutation: StoreMutation): void {
    switch (mutation.op) {
      case "register": {
        const { subject, version, id, schema } = mutation;
        if (!Number.isInteger(id) || id < 0) throw new Error(`schema id ${id} is not a non-negative integer`);
        if (!Number.isInteger(version) || version < 1) throw new Error(`version ${version} is not a positive integer`);
        const knownSchema = this.schemaOfId.get(id);
        if (knownSchema !== undefined && knownSchema !== schema) throw new Error(`schema id ${id} already belongs to another schema`);
        const knownId = this.idOfSchema.get(schema);
        if (knownId !== undefined && knownId !== id) throw new Error(`this schema already has id ${knownId}, not ${id}`);
        const versions = this.subjects.get(subject) ?? new Map<number, VersionRecord>();
        if (versions.has(version)) throw new Error(`subject ${subject} already has version ${version}`);
        versions.set(version, { subject, version, id, deleted: false });
        this.subjects.set(subject, versions);
        this.schemaOfId.set(id, schema);
        this.idOfSchema.set(schema, id);
        this.nextId = Math.max(this.nextId, id + 1);
        return;
      }
      case "softDelete": {
        const record = this.version(mutation.subject, mutation.version);
        if (record.deleted) throw new Error(`subject ${mutation.subject} version ${mutation.version} is already deleted`);
        this.subjects.get(mutation.subject)?.set(mutation.version, { ...record, deleted: true });
        return;
      }
      case "hardDelete": {
        const record = this.version(mutation.subject, mutation.version);
        if (!record.deleted) throw new Error(`subject ${mutation.subject} version ${mutation.version} must be soft-deleted first`);
        const versions = this.subjects.get(mutation.subject) as Map<number, VersionRecord>;
        versions.delete(mutation.version);
        if (versions.size === 0) this.subjects.delete(mutation.subject);
        return;
      }
      case "setCompatibility":
        if (mutation.level === null) this.compatibility.delete(mutation.subject);
        else this.compatibility.set(mutation.subject, mutation.level);
        return;
      case "setMode":
        if (mutation.mode === null) this.modes.delete(mutation.subject);
        else this.modes.set(mutation.subject, mutation.mode);
        return;
      case "reserveIds":
        if (!Number.isInteger(mutation.through) || mutation.through < 0) throw new Error(`reserved schema ids through ${mutation.through}: not a non-negative integer`);
        this.nextId = Math.max(this.nextId, mutation.through + 1);
        return;
    }
  }

  /** Whether any version (soft-deleted included) still uses the id. */
  isIdInUse(id: number): boolean {
    for (const versions of this.subjects.values()) for (const record of versions.values()) if (record.id === id) return true;
    return false;
  }

  private version(subject: string, version: number): VersionRecord {
    const record = this.subjects.get(subject)?.get(version);
    if (!record) throw new Error(`subject ${subject} has no version ${version}`);
    return record;
  }
}
