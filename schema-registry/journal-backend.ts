/**
 * The registry's mutation log kept in the topic log's registry journal (SQLite table or Kafka
 * topic): one journal entry per applied batch, so a batch stays all-or-nothing.
 */
import { SluiceError } from "../connectors/errors.ts";
import { LogStore } from "./log-store.ts";
import type { StoreBackend, StoreMutation } from "./store.ts";

/** What the topic log offers (connectors/topics/contract.ts RegistryJournal). */
export interface JournalLike {
  append(entry: unknown): Promise<void>;
  loadAll(): Promise<unknown[]>;
}

interface JournalEntry {
  readonly mutations: readonly StoreMutation[];
}

export class JournalBackend implements StoreBackend {
  private readonly journal: JournalLike;

  constructor(journal: JournalLike) {
    this.journal = journal;
  }

  async load(): Promise<StoreMutation[]> {
    const entries = await this.journal.loadAll();
    return entries.flatMap((entry, index) => {
      if (typeof entry !== "object" || entry === null || !Array.isArray((entry as JournalEntry).mutations)) {
        throw new SluiceError(`registry journal entry ${index} is not a batch of mutations`, {
          code: "SCHEMA_STORE_CORRUPT",
          context: { component: "schema-registry" },
        });
      }
      return (entry as JournalEntry).mutations;
    });
  }

  async append(mutations: readonly StoreMutation[]): Promise<void> {
    const entry: JournalEntry = { mutations };
    await this.journal.append(entry);
  }

  async close(): Promise<void> {}
}

export function openJournalStore(journal: JournalLike): Promise<LogStore> {
  return LogStore.open(new JournalBackend(journal));
}
