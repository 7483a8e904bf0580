/**
 * Capture: source → encode → topic log → acknowledge. The source position is acknowledged only
 * after the topic log has durably stored every record up to it together with the checkpoint.
 */
import type { ChangeEvent, Checkpoint, ProducedRecord, Source, SourceBatch, TopicLog } from "../connectors/contracts.ts";
import { tableName } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { retry } from "./backoff.ts";
import type { BackoffPolicy } from "./backoff.ts";
import type { Logger } from "./logger.ts";
import { serializeEvent } from "./event-json.ts";

/** Turns one change into the records that carry it (a delete also yields its tombstone). */
export interface ChangeEncoder {
  encode(event: ChangeEvent): Promise<ProducedRecord[]>;
}

export interface HaltedTable {
  readonly table: string;
  readonly error: string;
  readonly code: string;
  readonly since: string;
}

export interface CaptureStats {
  onBatch?(batch: SourceBatch, records: number, produceSeconds: number): void;
  onHalt?(table: string, error: SluiceError): void;
}

export interface CaptureOptions {
  readonly source: Source;
  readonly log: TopicLog;
  readonly encoder: ChangeEncoder;
  readonly logger: Logger;
  /** Topic holding the events of halted tables, so the position can advance without losing them. */
  readonly parkingTopic: string;
  readonly reconnect: BackoffPolicy;
  readonly stats?: CaptureStats;
}

/** Error codes that halt one table's stream instead of the whole source. */
const TABLE_HALTING_CODES = new Set(["SCHEMA_INCOMPATIBLE", "SCHEMA_UNSUPPORTED"]);

export class CapturePipeline {
  private readonly options: CaptureOptions;
  private readonly logger: Logger;
  private readonly halted = new Map<string, HaltedTable>();
  private connected = false;
  private lastCheckpoint: Checkpoint | null = null;
  private lastAckedCommitMs: number | null = null;

  constructor(options: CaptureOptions) {
    this.options = options;
    this.logger = options.logger.child({ component: "capture", source: options.source.name });
  }

  ready(): boolean {
    return this.connected;
  }

  haltedTables(): HaltedTable[] {
    return [...this.halted.values()];
  }

  checkpoint(): Checkpoint | null {
    return this.lastCheckpoint;
  }

  /**
   * Commit time of the last acknowledged change, milliseconds since the epoch. An acknowledged
   * batch without changes (a heartbeat) means the source had nothing older to send: now.
   */
  lastAckedCommitTime(): number | null {
    return this.lastAckedCommitMs;
  }

  /**
   * Runs until `stop` aborts, reconnecting on retriable errors from the latest durable checkpoint.
   * A batch already read when `stop` aborts is still stored and acknowledged before returning.
   */
  async run(stop: AbortSignal): Promise<void> {
    const { source, log } = this.options;
    while (!stop.aborted) {
      try {
        await retry(
          async () => {
            this.lastCheckpoint = await log.readCheckpoint(source.name);
            await source.connect(this.lastCheckpoint, stop);
          },
          {
            ...this.options.reconnect,
            signal: stop,
            onRetry: (error, attempt, delayMs) => this.logger.warn({ err: describe(error), attempt, delayMs }, "source connect failed; retrying"),
          },
        );
        this.connected = true;
        this.logger.info({ from: this.lastCheckpoint ? positionText(this.lastCheckpoint) : "start" }, "capturing");
        await this.pump(stop);
      } catch (error) {
        this.connected = false;
        await source.close().catch(() => undefined);
        if (stop.aborted) break;
        if (!(error instanceof SluiceError) || !error.retriable) throw error;
        this.logger.warn({ err: describe(error) }, "capture interrupted; reconnecting");
      }
    }
    this.connected = false;
    await source.close().catch(() => undefined);
  }

  private async pump(stop: AbortSignal): Promise<void> {
    const { source, log } = this.options;
    while (!stop.aborted) {
      let batch: SourceBatch;
      try {
        batch = await source.read(stop);
      } catch (error) {
        if (stop.aborted) return;
        throw error;
      }
      const records = await this.encodeBatch(batch);
      const started = performance.now();
      await log.produce(records, batch.checkpoint);
      const produceSeconds = (performance.now() - started) / 1000;
      await batch.ack();
      this.lastCheckpoint = batch.checkpoint;
      this.lastAckedCommitMs = batch.events.length === 0 ? Date.now() : Math.max(...batch.events.map((e) => e.source.commitTimeMs));
      this.options.stats?.onBatch?.(batch, records.length, produceSeconds);
    }
  }

  private async encodeBatch(batch: SourceBatch): Promise<ProducedRecord[]> {
    const records: ProducedRecord[] = [];
    for (const event of batch.events) {
      const table = tableName(event.schema);
      if (this.halted.has(table)) {
        records.push(this.park(event));
        continue;
      }
      try {
        records.push(...(await this.options.encoder.encode(event)));
      } catch (error) {
        if (!(error instanceof SluiceError) || !TABLE_HALTING_CODES.has(error.code)) throw error;
        this.halt(table, error);
        records.push(this.park(event));
      }
    }
    return records;
  }

  private halt(table: string, error: SluiceError): void {
    this.halted.set(table, { table, error: error.message, code: error.code, since: new Date().toISOString() });
    this.logger.error({ table, err: error.toLog(), parkingTopic: this.options.parkingTopic }, `table ${table} halted: ${error.message}`);
    this.options.stats?.onHalt?.(table, error);
  }

  private park(event: ChangeEvent): ProducedRecord {
    const table = tableName(event.schema);
    return {
      topic: this.options.parkingTopic,
      key: Buffer.from(`${event.source.name}.${table}`),
      value: Buffer.from(serializeEvent(event)),
      headers: { "sluice.reason": Buffer.from(this.halted.get(table)?.error ?? "") },
      timestamp: event.source.commitTimeMs,
    };
  }
}

function positionText(checkpoint: Checkpoint): string {
  return `${checkpoint.position.commit}/${checkpoint.position.change}`;
}

function describe(error: unknown): unknown {
  return error instanceof SluiceError ? { message: error.message, ...error.toLog() } : error;
}
