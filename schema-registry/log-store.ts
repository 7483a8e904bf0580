/** SchemaStore over a mutation log: state in memory, durability in the backend. */
import { SluiceError } from "../connectors/errors.ts";
import type { CompatibilityLevel } from "./compatibility-levels.ts";
import { StoreState } from "./store-state.ts";
import type { RegistryMode, SchemaStore, StoreBackend, StoreMutation, VersionRecord } from "./store.ts";

export class LogStore implements SchemaStore {
  private state: StoreState;
  private readonly backend: StoreBackend;
  private writes: Promise<void> = Promise.resolve();

  private constructor(backend: StoreBackend, state: StoreState) {
    this.backend = backend;
    this.state = state;
  }

  static async open(backend: StoreBackend): Promise<LogStore> {
    const state = new StoreState();
    const mutations = await backend.load();
    mutations.forEach((mutation, index) => {
      try {
        state.apply(mutation);
      } catch (error) {
        throw new SluiceError(`schema store log entry ${index} cannot be replayed: ${(error as Error).message}`, {
          code: "SCHEMA_STORE_CORRUPT",
          context: { component: "schema-registry" },
          cause: error,
        });
      }
    });
    return new LogStore(backend, state);
  }

  async subjects(includeDeleted: boolean): Promise<string[]> {
    const names: string[] = [];
    for (const [subject, versions] of this.state.subjects) {
      if (includeDeleted || [...versions.values()].some((record) => !record.deleted)) names.push(subject);
    }
    return names.sort();
  }

  async versions(subject: string, includeDeleted: boolean): Promise<VersionRecord[]> {
    const versions = this.state.subjects.get(subject);
    if (!versions) return [];
    return [...versions.values()].filter((record) => includeDeleted || !record.deleted).sort((a, b) => a.version - b.version);
  }

  async schemaById(id: number): Promise<string | null> {
    return this.state.isIdInUse(id) ? (this.state.schemaOfId.get(id) ?? null) : null;
  }

  async idOfSchema(schema: string): Promise<number | null> {
    return this.state.idOfSchema.get(schema) ?? null;
  }

  async versionsOfId(id: number, includeDeleted: boolean): Promise<VersionRecord[]> {
    const found: VersionRecord[] = [];
    for (const versions of this.state.subjects.values()) {
      for (const record of versions.values()) if (record.id === id && (includeDeleted || !record.deleted)) found.push(record);
    }
    return found.sort((a, b) => (a.subject === b.subject ? a.version - b.version : a.subject < b.subject ? -1 : 1));
  }

  async nextId(): Promise<number> {
    return this.state.nextId;
  }

  async compatibility(subject: string | null): Promise<CompatibilityLevel | null> {
    return this.state.compatibility.get(subject) ?? null;
  }

  async mode(subject: string | null): Promise<RegistryMode | null> {
    return this.state.modes.get(subject) ?? null;
  }

  apply(mutations: readonly StoreMutation[]): Promise<void> {
    const write = this.writes.then(async () => {
      const next = this.state.clone();
      for (const mutation of mutations) next.apply(mutation);
      await this.backend.append(mutations);
      this.state = next;
    });
    this.writes = write.catch(() => undefined);
    return write;
  }

  async close(): Promise<void> {
    await this.writes;
    await this.backend.close();
  }
}

/** A backend that keeps the log in memory (tests, throwaway registries). */
export class MemoryBackend implements StoreBackend {
  readonly mutations: StoreMutation[] = [];

  async load(): Promise<StoreMutation[]> {
    return [...this.mutations];
  }

  async append(mutations: readonly StoreMutation[]): Promise<void> {
    this.mutations.push(...mutations);
  }

  async close(): Promise<void> {}
}

export function openMemoryStore(): Promise<LogStore> {
  return LogStore.open(new MemoryBackend());
}
