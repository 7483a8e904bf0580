/**
 * Writes a tiny non-transactional logical decoding message every heartbeat_interval. It reaches
 * the slot even when the captured tables are quiet, so the stream yields a position through which
 * everything is decoded, the pipeline stores and acknowledges it, and the slot does not pin WAL
 * that only other tables' changes produced.
 */
import type pg from "pg";
import type { Logger } from "pino";

export const HEARTBEAT_PREFIX = "sluice.heartbeat";

export class Heartbeat {
  private readonly db: Pick<pg.Client, "query">;
  private readonly intervalMs: number;
  private readonly content: string;
  private readonly logger: Logger;
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private failures = 0;

  constructor(db: Pick<pg.Client, "query">, intervalMs: number, content: string, logger: Logger) {
    this.db = db;
    this.intervalMs = intervalMs;
    this.content = content;
    this.logger = logger;
  }

  start(): void {
    if (this.intervalMs <= 0 || this.timer !== null) return;
    this.timer = setInterval(() => void this.beat(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }

  async beat(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      await this.db.query("SELECT pg_logical_emit_message(false, $1, $2)", [HEARTBEAT_PREFIX, this.content]);
      if (this.failures > 0) this.logger.info({ failures: this.failures }, "heartbeat works again");
      this.failures = 0;
    } catch (error) {
      // Only the first failure of a run is a warning: a lost connection is reported by the stream.
      if (this.failures++ === 0) this.logger.warn({ err: (error as Error).message }, "heartbeat failed; the slot's position advances only with captured changes until it works");
    } finally {
      this.running = false;
    }
  }
}
