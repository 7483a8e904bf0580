/**
 * The Elasticsearch sink's staged write (sinks/contract.ts StagedWrite): each change's bulk
 * operation is written as NDJSON bytes while the runtime decodes the batch, so the batch keeps
 * its operations' bytes (outside the heap) and per document its key (an integer in typed arrays,
 * other keys as text) and version instead of every decoded event until the write. It takes the
 * plain case: upserts and deletes (tombstones) of a live index without a rebuild's shadow whose
 * mapping holds the change's schema as it is, with no unchanged-TOAST values, moved keys or
 * truncates. An index not loaded yet is loaded first; one to create or evolve is not staged for.
 * Anything not staged makes the batch go through the sink's write as before.
 *
 * Of several changes of one key only the newest is sent, as collapseChanges keeps it: by version,
 * ties in batch order. The operations go in batch order, not version order: each document is
 * written once, so the order between documents changes nothing. The write sends them after the
 * batch is staged, one request at a time as the sink's write does (bulk.ts planBodies). Sending a
 * part while the rest is staged was tried: no faster on the 2-core test machine, whose cores the
 * sink thread and Elasticsearch already share to the full, for one more request per batch.
 */
import type { ChangeEvent, TableSchema, TopicPartitionOffset } from "../contracts.ts";
import { stagedChange } from "../sinks/batch.ts";
import type { StagedChange } from "../sinks/batch.ts";
import type { TargetColumn } from "../sinks/columns.ts";
import type { StagedWrite } from "../sinks/contract.ts";
import { ValueRejected } from "../sinks/errors.ts";
import { integerKey, StagedRows } from "../sinks/newest-rows.ts";
import { writeIndexOperation } from "./documents.ts";
import type { EsIndex } from "./indices.ts";
import { NdjsonOperations } from "./ndjson-operations.ts";

/** One index's staged operations, and the state of the index they were written for. */
export class StagedIndex {
  readonly index: EsIndex;
  readonly columns: readonly TargetColumn[];
  readonly truncateVersion: bigint;
  readonly operations: NdjsonOperations;
  /** Each operation (by position in `operations`) with its document's key and version. */
  readonly #staged = new StagedRows();
  /** The key columns, for the documents' integer keys. */
  readonly #keys: readonly string[];

  constructor(index: EsIndex, capacity: number) {
    this.index = index;
    this.columns = index.columns;
    this.truncateVersion = index.truncateVersion;
    this.operations = new NdjsonOperations(capacity);
    this.#keys = index.columns.filter((column) => column.key).map((column) => column.name);
  }

  /**
   * Writes a change's operation unless the document has a newer one staged; ValueRejected when a
   * value does not fit (nothing written). Its action line names no index: the write sends the
   * index's operations to its alias (`POST /<alias>/_bulk`).
   */
  take(change: StagedChange): void {
    const id = writeIndexOperation(this.operations, null, this.columns, change, undefined);
    // An older change than the one staged for its document is counted but not sent (members()).
    this.#staged.add(integerKey(change.key, this.#keys) ?? id, change.version);
  }

  /** The positions of the operations to send, ascending; undefined: all of them. */
  members(): number[] | undefined {
    return this.#staged.kept();
  }
}

/** What the staged write needs of the sink. */
export interface StagingHost {
  /** The live index a schema's changes go to as they are; null: the sink does not take the table (its changes count as applied); undefined: it must be prepared first (or cannot be staged for). */
  indexFor(schema: TableSchema): EsIndex | null | undefined;
  /** Loads the schema's indexes; the index as indexFor then answers, undefined when it cannot be staged for (the sink's write then does what is needed and reports what fails). */
  prepare(schema: TableSchema): Promise<EsIndex | null | undefined>;
  /** The bytes an index's operations start with room for. */
  capacity(index: EsIndex): number;
  /** Sends the indexes' operations (throwing when an index is no longer as they were written for, or any operation failed), then stores `offsets`; whether it stored them. */
  write(indexes: readonly StagedIndex[], signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<boolean>;
}

export class ElasticsearchStagedWrite implements StagedWrite {
  readonly #host: StagingHost;
  /** Per schema object of the batch: its index's staged operations (null: not taken by the sink). */
  readonly #bySchema = new Map<TableSchema, StagedIndex | null>();
  readonly #indexes = new Map<string, StagedIndex>();

  constructor(host: StagingHost) {
    this.#host = host;
  }

  stage(event: ChangeEvent): boolean | Promise<boolean> {
    const staged = this.#bySchema.get(event.schema);
    if (staged !== undefined) return this.#take(staged, event);
    const ready = this.#host.indexFor(event.schema);
    if (ready !== undefined) return this.#take(this.#use(event.schema, ready), event);
    return this.#host.prepare(event.schema).then((index) => (index === undefined ? false : this.#take(this.#use(event.schema, index), event)));
  }

  /** The batch's staged operations for a schema's index (null: not taken by the sink); false when the index changed under operations staged for it. */
  #use(schema: TableSchema, index: EsIndex | null): StagedIndex | null | false {
    let staged: StagedIndex | null = null;
    if (index !== null) {
      const known = this.#indexes.get(index.physical);
      if (known !== undefined && known.columns === index.columns && known.index === index) staged = known;
      else if (known !== undefined && known.operations.length > 0) return false;
      else staged = new StagedIndex(index, this.#host.capacity(index));
      this.#indexes.set(index.physical, staged);
    }
    this.#bySchema.set(schema, staged);
    return staged;
  }

  #take(staged: StagedIndex | null | false, event: ChangeEvent): boolean {
    if (staged === false) return false;
    if (staged === null) return true;
    const change = stagedChange(event);
    if (change === null) return false;
    // Hidden by the index's truncate (the sink's write leaves such rows out too).
    if (change.version <= staged.truncateVersion) return true;
    try {
      staged.take(change);
      return true;
    } catch (error) {
      // The sink's write reports it (a failure of that change, by the sink's policy).
      if (error instanceof ValueRejected) return false;
      throw error;
    }
  }

  write(signal: AbortSignal, offsets?: readonly TopicPartitionOffset[]): Promise<boolean> {
    return this.#host.write([...this.#indexes.values()], signal, offsets);
  }
}
