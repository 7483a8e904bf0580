/**
 * At the start of a capture term (this process was just granted the capture lease), the
 * PostgreSQL replication slots of the sources it now leads may still be held by the former
 * leader's walsender: after kill -9 only for a moment, but after a freeze (SIGSTOP) or a network
 * cut until wal_sender_timeout (60 s by default), or for ever. The new leader ends that walsender
 * and waits until the slot is free, so it takes over within seconds. This is safe only because the
 * lease was granted and the former leader is fenced from Kafka: it can no longer publish, nor
 * acknowledge what it did not publish.
 *
 * One signal is not always enough. A walsender whose client stopped reading (frozen, or cut off)
 * has its socket full; ended, it blocks writing its "terminating connection" error to that socket,
 * out of the loop that would check wal_sender_timeout, so it keeps the slot until the client reads
 * again or TCP gives up (never, while the client's kernel still answers). PostgreSQL gives up
 * writing to a client that blocks it when a termination arrives during the write: the second
 * signal ends it. So the holder is signalled again every second until the slot is free.
 *
 * PostgreSQL lets a role end backends of its own role (or needs pg_signal_backend): the capture
 * user ending its own former walsender needs no extra grant. A failure is only logged: capture
 * then waits for the slot with backoff as usual.
 */
import pg from "pg";
import type { PostgresSourceConfig, SluiceConfig } from "../config/schema.ts";
import { clientConfig } from "../connectors/postgres/connection-settings.ts";
import { captureNames } from "../connectors/postgres/slot-setup.ts";
import { sleep } from "../runtime/backoff.ts";
import type { Logger } from "../runtime/logger.ts";
import type { RunSelection } from "./roles.ts";

export interface TakeoverTiming {
  /** How often a holder that has not exited is signalled again. */
  readonly resignalMs: number;
  /** How long to wait for the slot before leaving it to capture's retries (which then report the holder). */
  readonly waitMs: number;
}

const TIMING: TakeoverTiming = { resignalMs: 1_000, waitMs: 60_000 };
/** How often the slot is looked at between signals. */
const POLL_MS = 100;

interface SlotConnection {
  readonly source: PostgresSourceConfig;
  readonly slot: string;
  readonly client: pg.Client;
  /** The connection being made (a new backend and its authentication): rejects when it fails. */
  readonly connected: Promise<void>;
}

/**
 * A term's takeover in two steps: `begin` connects to the sources' servers at once (the slow part:
 * a new backend and its authentication), so that it overlaps the term's fencing of the former
 * leader; `take`, called once the former leader is fenced, ends the walsenders holding the slots.
 * Nothing is asked of a slot before `take`. `close` ends the connections (a term that ended first).
 */
export class SlotTakeover {
  private readonly connections: readonly SlotConnection[];
  private readonly logger: Logger;

  private constructor(connections: readonly SlotConnection[], logger: Logger) {
    this.connections = connections;
    this.logger = logger;
  }

  static begin(config: SluiceConfig, selection: RunSelection, logger: Logger): SlotTakeover {
    const sources = config.sources.filter((s): s is PostgresSourceConfig => s.kind === "postgres" && selection.sources.includes(s.name));
    return new SlotTakeover(
      sources.map((source) => {
        const client = new pg.Client(clientConfig(source, "catalog"));
        client.on("error", () => undefined);
        const connected = client.connect().then(() => undefined);
        // Met in take(), which logs it.
        connected.catch(() => undefined);
        return { source, slot: captureNames(source).slot, client, connected };
      }),
      logger,
    );
  }

  /** Frees each source's slot in turn; a failure is only logged (capture then waits for the slot with backoff). */
  async take(signal: AbortSignal, timing: TakeoverTiming = TIMING): Promise<void> {
    for (const { source, slot, client, connected } of this.connections) {
      if (signal.aborted) return;
      try {
        await connected;
        await freeSlot(client, slot, this.logger.child({ source: source.name, slot }), signal, timing);
      } catch (error) {
        this.logger.warn({ source: source.name, slot, err: error instanceof Error ? error.message : String(error) }, "could not end the walsender holding the replication slot; capture waits for the slot instead");
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all(this.connections.map(({ client, connected }) => connected.catch(() => undefined).then(() => client.end()).catch(() => undefined)));
  }
}

interface Holder {
  readonly pid: number;
  /** What the walsender waits for (pg_stat_activity.wait_event): WalSenderWriteData or ClientWrite when its client reads nothing. */
  readonly waitEvent: string | null;
}

/** Ends the walsender holding `slot` (none of this session's), again every `resignalMs`, until the slot is free, `waitMs` passed or `signal` aborts. */
async function freeSlot(client: pg.Client, slot: string, logger: Logger, signal: AbortSignal, timing: TakeoverTiming): Promise<void> {
  const started = Date.now();
  const ended = new Map<number, number>();
  for (;;) {
    const holder = await endHolder(client, slot);
    if (holder === null) {
      if (ended.size > 0) logger.info({ pids: [...ended.keys()], signals: [...ended.values()], waitedMs: Date.now() - started }, "the replication slot is free: the former capture leader's walsender has exited");
      return;
    }
    const signals = (ended.get(holder.pid) ?? 0) + 1;
    ended.set(holder.pid, signals);
    if (signals === 1) logger.warn({ pid: holder.pid, waitEvent: holder.waitEvent }, "ended the former capture leader's walsender, which still held the replication slot");
    if (signals === 2) {
      logger.warn(
        { pid: holder.pid, waitEvent: holder.waitEvent },
        "the former capture leader's walsender has not exited (its client reads nothing: frozen or cut off, so it blocks writing to it); ending it again every second until the slot is free",
      );
    }
    const until = Date.now() + timing.resignalMs;
    while (Date.now() < until) {
      await sleep(Math.min(POLL_MS, timing.resignalMs), signal).catch(() => undefined);
      if (signal.aborted) return;
      if ((await holderOf(client, slot)) === null) break;
    }
    if (Date.now() - started >= timing.waitMs && (await holderOf(client, slot)) !== null) {
      logger.warn({ pid: holder.pid, waitEvent: holder.waitEvent, waitedMs: Date.now() - started }, "the replication slot is still held; capture waits for it with backoff (see pg_stat_activity for that pid)");
      return;
    }
  }
}

const HOLDER = "SELECT s.active_pid AS pid, a.wait_event FROM pg_replication_slots s LEFT JOIN pg_stat_activity a ON a.pid = s.active_pid WHERE s.slot_name = $1 AND s.active AND s.active_pid IS DISTINCT FROM pg_backend_pid()";

async function holderOf(client: pg.Client, slot: string): Promise<Holder | null> {
  const row = (await client.query<{ pid: number; wait_event: string | null }>(HOLDER, [slot])).rows[0];
  return row ? { pid: Number(row.pid), waitEvent: row.wait_event } : null;
}

/** Signals the slot's holder to terminate; returns it, or null when the slot is free. */
async function endHolder(client: pg.Client, slot: string): Promise<Holder | null> {
  // The holder is found first (a materialized CTE): in one WHERE, PostgreSQL may call pg_terminate_backend on other slots' walsenders before the name test.
  const row = (
    await client.query<{ pid: number; wait_event: string | null }>(
      `WITH holder AS MATERIALIZED (${HOLDER}) SELECT pid, wait_event FROM holder WHERE pg_terminate_backend(pid)`,
      [slot],
    )
  ).rows[0];
  return row ? { pid: Number(row.pid), waitEvent: row.wait_event } : null;
}
