/**
 * How a rebuild reads a record: decoded as the sink runner does, but a record no decoder can read
 * (not Sluice's encoding: a foreign producer's bytes, a schema id the registry never had) carries
 * no change any target could take. The live path halted on it or dead-lettered it; a rebuild
 * leaves it out, logs where it is and counts it, so one such record does not make every rebuild of
 * the sink impossible. A failure that may heal (the registry unreachable) still ends the rebuild,
 * naming the record.
 */
import type { ChangeEvent, StoredRecord } from "../connectors/contracts.ts";
import { isRetriable, SluiceError } from "../connectors/errors.ts";
import type { Logger } from "../runtime/logger.ts";
import type { RecordDecoder } from "./sink-runner.ts";

/** A record left out of a rebuild: where it is and why. */
export interface LeftOutRecord {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  readonly reason: string;
}

/** Left-out records named in a report; the count covers them all. */
export const LEFT_OUT_SHOWN = 10;

export function recordWhere(record: { readonly topic: string; readonly partition: number; readonly offset: bigint | string }): string {
  return `${record.topic}:${record.partition}:${record.offset}`;
}

/** Decodes a rebuild's records; the undecodable ones are left out, each counted and logged once. */
export class RebuildDecoder {
  private readonly decoder: RecordDecoder;
  private readonly sink: string;
  private readonly logger: Logger;
  private readonly seen = new Set<string>();
  private readonly shown: LeftOutRecord[] = [];

  constructor(decoder: RecordDecoder, sink: string, logger: Logger) {
    this.decoder = decoder;
    this.sink = sink;
    this.logger = logger;
  }

  /** Records left out so far. */
  get leftOut(): number {
    return this.seen.size;
  }

  /** The first LEFT_OUT_SHOWN of them. */
  get leftOutShown(): readonly LeftOutRecord[] {
    return this.shown;
  }

  /** The record's change; null for a record with none (a tombstone) or one left out. */
  async decode(record: StoredRecord): Promise<ChangeEvent | null> {
    try {
      return await this.decoder.decode(record);
    } catch (error) {
      const where = recordWhere(record);
      const reason = error instanceof Error ? error.message : String(error);
      if (isRetriable(error)) {
        throw new SluiceError(`rebuild of sink "${this.sink}" could not decode the record at ${where}: ${reason}`, {
          code: (error as SluiceError).code,
          retriable: true,
          cause: error,
          context: { component: "rebuild", sink: this.sink, topic: record.topic, partition: record.partition, offset: record.offset.toString() },
        });
      }
      if (!this.seen.has(where)) {
        this.seen.add(where);
        if (this.shown.length < LEFT_OUT_SHOWN) this.shown.push({ topic: record.topic, partition: record.partition, offset: record.offset.toString(), reason });
        this.logger.warn(
          { sink: this.sink, topic: record.topic, partition: record.partition, offset: record.offset.toString(), err: reason },
          `rebuild of sink ${this.sink}: record ${where} cannot be decoded (${reason}); left out: it carries no change a target could take`,
        );
      }
      return null;
    }
  }
}
