/**
 * A sink thread's erasures (`sluice forget` through the daemon) and rebuilds, which both write the
 * sink. One lock per sink: an erasure (the subject's key dropped, then its rows nulled between the
 * runner's batches) and each step of a rebuild that writes (a batch, from decrypting its first
 * record to writing its last; the swap) run one at a time, so no value the rebuild decrypted before
 * the key was dropped is written after the erase. The rebuild also erases again the subjects
 * forgotten while it ran (governance/rebuild-erasures.ts), for erasures another process made.
 */
import type { SinkConfig, SluiceConfig } from "../config/schema.ts";
import type { Sink } from "../connectors/contracts.ts";
import type { ErasureRequest } from "../connectors/sinks/contract.ts";
import type { Logger } from "../runtime/logger.ts";
import { Serial } from "../runtime/serial.ts";
import { eraseInSink, erasureRequests } from "./governance/erasure.ts";
import type { PersonalDataDecryptor } from "./governance/personal-data.ts";
import { watchRebuildErasures } from "./governance/rebuild-erasures.ts";
import type { RebuildOptions } from "./rebuild.ts";

export interface SinkErasuresOptions {
  readonly config: SluiceConfig;
  readonly sinkConfig: SinkConfig;
  readonly sink: Sink;
  /** The decryption of the sink's runner and rebuilds (null: no personal columns in the deployment). */
  readonly personal: PersonalDataDecryptor | null;
  /** Runs an operation between the runner's batches (SinkRunner.betweenBatches). */
  readonly betweenBatches: <T>(operation: () => Promise<T>) => Promise<T>;
  readonly signal: AbortSignal;
}

/** What a rebuild of the sink takes, and what to close once it is over. */
export interface RebuildGuard extends Required<Pick<RebuildOptions, "exclusive">>, Pick<RebuildOptions, "erasures"> {
  close(): void;
}

export class SinkErasures {
  readonly #options: SinkErasuresOptions;
  readonly #lock = new Serial();

  constructor(options: SinkErasuresOptions) {
    this.#options = options;
  }

  /** Erases the subject in the sink: its key dropped here first (the tombstone is written already), so no batch applied from then on decrypts its values. */
  erase(source: string, subject: string): Promise<number | null> {
    const { config, sinkConfig, personal } = this.#options;
    const requests = erasureRequests(config, sinkConfig, source, subject);
    return this.#lock.run(async () => {
      if (personal) {
        const keys = await personal.store();
        await keys.catchUp();
        keys.forgetLocally(source, subject);
      }
      return this.#erase(requests);
    });
  }

  /** Made before the rebuild reads its first record. */
  async rebuildGuard(logger: Logger): Promise<RebuildGuard> {
    const { config, sinkConfig, personal } = this.#options;
    const exclusive = <T>(step: () => Promise<T>) => this.#lock.run(step);
    const erasures = await watchRebuildErasures(config, sinkConfig, personal, (requests) => this.#erase(requests), logger);
    return erasures === null ? { exclusive, close: () => undefined } : { exclusive, erasures, close: () => erasures.close() };
  }

  #erase(requests: readonly ErasureRequest[]): Promise<number | null> {
    const { sink, betweenBatches, signal } = this.#options;
    return betweenBatches(() => eraseInSink(sink, requests, signal));
  }
}
