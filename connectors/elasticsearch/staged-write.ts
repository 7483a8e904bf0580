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
import { integerKey, NewestRows, NO_ROW } from "../sinks/newest-rows.ts";
import { writeIndexOperation } from "./documents.ts";
import type { EsIndex } from "./indices.ts";
import { NdjsonOperations } from "./ndjson-operations.ts";

/** One index's staged operations, and the state of the index they were written for. */
export class StagedIndex {
  readonly index: EsIndex;
  readonly columns: readonly TargetColumn[];
  readonly truncateVersion: bigint;
  readonly operations: NdjsonOperations;
  /** Each document's newest operation (its position in `operations`). */
  readonly #operationOf = new NewestRows();
  /** The key columns, for the documents' integer keys. */
  readonly #keys: readonly string[];
  /** Every operation's version, by position (0 .. 2^63-1, as writeIndexOperation checks): no bigint kept per operation. */
  #versions = new BigInt64Array(1024);
  /** 1: a newer change of its document replaced the operation (or it was older than the one staged). */
  #replaced = new Uint8Array(1024);
  #anyReplaced = false;

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
    const position = this.operations.length;
    const id = writeIndexOperation(this.operations, null, this.columns, change, undefined);
    if (position === this.#versions.length) {
      const versions = new BigInt64Array(2 * position);
      versions.set(this.#versions);
      this.#versions = versions;
      const replaced = new Uint8Array(2 * position);
      replaced.set(this.#replaced);
      this.#replaced = replaced;
    }
    this.#versions[position] = change.version;
    const key = integerKey(change.key, this.#keys) ?? id;
    const previous = this.#operationOf.get(key);
    if (previous !== NO_ROW && (this.#versions[previous] as bigint) > change.version) {
      // An older change than the one staged for its document: its operation is not sent.
      this.#replace(position);
      return;
    }
    if (previous !== NO_ROW) this.#replace(previous);
    this.#operationOf.set(key, position);
  }

  /** The positions of the operations to send, ascending; undefined: all of them. */
  members(): number[] | undefined {
    if (!this.#anyReplaced) return undefined;
    const out: number[] = [];
    for (let position = 0; position < this.operations.length; position++) if (this.#replaced[position] === 0) out.push(position);
    return out;
  }

  #replace(position: number): void {
    this.#replaced[position] = 1;
    this.#anyReplaced = true;
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
