import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { RegistryJournal } from "../topics/contract.ts";
import { topicLogError } from "./sqlite-errors.ts";

/** The schema registry's store in the embedded log: JSON entries in append order, each append fsynced. */
export class EmbeddedRegistryJournal implements RegistryJournal {
  private readonly path: string;
  private readonly clock: () => number;
  private readonly insert: StatementSync;
  private readonly all: StatementSync;
  private readonly assertWritable: () => void;

  constructor(db: DatabaseSync, path: string, clock: () => number, assertWritable: () => void = () => undefined) {
    this.path = path;
    this.clock = clock;
    this.assertWritable = assertWritable;
    this.insert = db.prepare("INSERT INTO registry_journal (entry, appended_at_ms) VALUES (?, ?)");
    this.all = db.prepare("SELECT entry FROM registry_journal ORDER BY sequence");
  }

  async append(entry: unknown): Promise<void> {
    const text = JSON.stringify(entry);
    if (text === undefined) throw new TypeError("registry journal entries must be JSON values");
    this.assertWritable();
    try {
      this.insert.run(text, this.clock());
    } catch (error) {
      throw topicLogError(error, "append registry entry", this.path);
    }
  }

  async loadAll(): Promise<unknown[]> {
    try {
      return (this.all.all() as unknown as { entry: string }[]).map((row) => JSON.parse(row.entry) as unknown);
    } catch (error) {
      throw topicLogError(error, "load registry entries", this.path);
    }
  }
}
