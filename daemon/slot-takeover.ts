/**
 * At the start of a capture term (this process was just granted the capture lease), the
 * PostgreSQL replication slots of the sources it now leads may still be held by the former
 * leader's walsender: after kill -9 only for a moment, but after a freeze (SIGSTOP) or a network
 * cut until wal_sender_timeout (60 s by default). The new leader ends that walsender, so it takes
 * over within seconds. This is safe only because the lease was granted and the former leader is
 * fenced from Kafka: it can no longer publish, nor acknowledge what it did not publish.
 *
 * PostgreSQL lets a role end backends of its own role (or needs pg_signal_backend): the capture
 * user ending its own former walsender needs no extra grant. A failure is only logged: capture
 * then waits for the slot with backoff as usual.
 */
import pg from "pg";
import type { PostgresSourceConfig, SluiceConfig } from "../config/schema.ts";
import { clientConfig } from "../connectors/postgres/connection-settings.ts";
import { captureNames } from "../connectors/postgres/slot-setup.ts";
import type { Logger } from "../runtime/logger.ts";
import type { RunSelection } from "./roles.ts";

export async function takeOverSlots(config: SluiceConfig, selection: RunSelection, logger: Logger, signal: AbortSignal): Promise<void> {
  const sources = config.sources.filter((s): s is PostgresSourceConfig => s.kind === "postgres" && selection.sources.includes(s.name));
  for (const source of sources) {
    if (signal.aborted) return;
    const slot = captureNames(source).slot;
    const client = new pg.Client(clientConfig(source, "catalog"));
    client.on("error", () => undefined);
    try {
      await client.connect();
      const ended = await client.query<{ pid: string }>(
        // The holder is found first (a materialized CTE): in one WHERE, PostgreSQL may call pg_terminate_backend on other slots' walsenders before the name test.
        "WITH holder AS MATERIALIZED (SELECT active_pid FROM pg_replication_slots WHERE slot_name = $1 AND active AND active_pid IS DISTINCT FROM pg_backend_pid()) SELECT active_pid::text AS pid FROM holder WHERE pg_terminate_backend(active_pid)",
        [slot],
      );
      for (const row of ended.rows) logger.warn({ source: source.name, slot, pid: Number(row.pid) }, "ended the former capture leader's walsender, which still held the replication slot");
    } catch (error) {
      logger.warn({ source: source.name, slot, err: error instanceof Error ? error.message : String(error) }, "could not end the walsender holding the replication slot; capture waits for the slot instead");
    } finally {
      await client.end().catch(() => undefined);
    }
  }
}
