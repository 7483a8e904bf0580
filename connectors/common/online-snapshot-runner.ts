/**
 * The part of online (incremental) snapshots a source runs the same way whatever the database: the
 * tasks restored from and written into checkpoints (incremental-snapshot-state.ts), the engine and
 * the signal table's poller running while the source streams, stopping them, their progress, and
 * the backfill requests for tables whose rows predate their capture. The engine itself (how chunks
 * are read and woven into the stream) is the database's.
 */
import type { Logger } from "pino";
import type { Checkpoint, Position, TableSnapshotProgress } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { decodeResume, encodeResume, SnapshotLedger } from "./incremental-snapshot-state.ts";
import type { SnapshotTask } from "./incremental-snapshot-state.ts";

export interface OnlineSnapshotEngine {
  run(signal: AbortSignal): Promise<void>;
  close(): Promise<void>;
  progress(): TableSnapshotProgress[];
}

/** What runs beside the engine while the stream runs (the signal table's poller). */
export interface OnlineSnapshotCompanion {
  run(signal: AbortSignal): Promise<void>;
}

/** The engine of one streaming session, built on the tasks now queued and the list of tables finished. */
export interface OnlineSnapshotSession<Engine> {
  readonly engine: Engine;
  readonly companion?: OnlineSnapshotCompanion;
}

export interface OnlineSnapshotRunnerOptions {
  readonly logger: Logger;
  readonly context: ErrorContext;
}

interface Running<Engine> {
  readonly engine: Engine;
  readonly controller: AbortController;
  readonly done: Promise<void>;
}

export class OnlineSnapshotRunner<Engine extends OnlineSnapshotEngine> {
  private readonly options: OnlineSnapshotRunnerOptions;
  private tasks = new SnapshotLedger([]);
  /** Tables finished (kept across reconnects; the engine keeps the last ones). */
  private readonly finished: TableSnapshotProgress[] = [];
  private running: Running<Engine> | null = null;

  constructor(options: OnlineSnapshotRunnerOptions) {
    this.options = options;
  }

  get ledger(): SnapshotLedger {
    return this.tasks;
  }

  /** The engine while the stream runs. */
  get engine(): Engine | null {
    return this.running?.engine ?? null;
  }

  /**
   * Before connecting: the tasks the checkpoint carries, and requests not yet stored with one (a reconnect keeps them),
   * from their start: no batch carrying them was stored, so none of the rows they handed on is (the stream from the
   * checkpoint does not hand those chunks on again).
   */
  restore(from: Checkpoint | null): void {
    const restored = decodeResume(from?.position.resume).tasks;
    const unstored = this.tasks.tasks.filter((t) => !restored.some((r) => r.id === t.id));
    this.tasks = new SnapshotLedger([...restored, ...unstored.map((t): SnapshotTask => ({ ...t, lastKey: null, rowsDone: 0, resetVersion: null, startedAtMs: null }))]);
  }

  /** Replaces the queued tasks (none: a new initial snapshot reads every table, online snapshots in progress are moot). */
  replace(tasks: readonly SnapshotTask[] = []): void {
    this.tasks = new SnapshotLedger(tasks);
  }

  /** Starts the engine (and its companion) unless it runs already; returns it. */
  start(create: (ledger: SnapshotLedger, finished: TableSnapshotProgress[]) => OnlineSnapshotSession<Engine>): Engine {
    if (this.running !== null) return this.running.engine;
    const { engine, companion } = create(this.tasks, this.finished);
    const controller = new AbortController();
    const stopped = (error: unknown) => this.options.logger.error({ err: (error as Error).message }, "online snapshots stopped");
    const running = [engine.run(controller.signal).catch(stopped)];
    if (companion !== undefined) running.push(companion.run(controller.signal).catch(stopped));
    this.running = { engine, controller, done: Promise.all(running).then(() => undefined) };
    return engine;
  }

  async stop(): Promise<void> {
    const running = this.running;
    this.running = null;
    if (running === null) return;
    running.controller.abort(new SluiceError("the source was closed", { code: "SOURCE_CLOSED", retriable: true, context: this.options.context }));
    await running.engine.close();
    await running.done;
  }

  /** While no engine runs (the server away), the tasks queued or running show as pending with the rows read so far. */
  progress(): TableSnapshotProgress[] {
    if (this.running !== null) return this.running.engine.progress();
    const paused = this.tasks.tasks.map((task): TableSnapshotProgress => ({
      table: task.table,
      state: "pending",
      rowsDone: task.rowsDone,
      rowsEstimated: task.rowsEstimated,
      rowsPerSecond: 0,
      startedAtMs: task.startedAtMs,
      finishedAtMs: null,
    }));
    return [...this.finished, ...paused];
  }

  /** The checkpoint's position with the snapshot tasks it carries (`rebase` may rewrite the source's own resume text). */
  checkpoint(position: Position, rebase: (base: string | undefined) => string | undefined = (base) => base): Position {
    const resume = encodeResume(rebase(decodeResume(position.resume).base), this.tasks.tasksAt(position));
    return resume === undefined ? { commit: position.commit, change: position.change } : { commit: position.commit, change: position.change, resume };
  }
}

/**
 * A table renamed to a name no captured table had: its changes go to the new name's topic, whose targets have none
 * of its rows, so an online snapshot reads them under that name (not with snapshot.mode never, which only says so).
 */
export async function backfillRenamed(from: string, to: string, snapshotMode: string, request: (table: string) => Promise<unknown>, logger: Logger, at: string, context: ErrorContext = {}): Promise<void> {
  logger.warn({ table: to, renamedFrom: from }, `table ${from} was renamed to ${to}: its changes go to ${to}'s topic from now on, and its rows are read again under the new name; the targets of ${from} keep the rows they have (drop them when no longer needed)`);
  await readAgain([to], snapshotMode, request, logger, at, context, {
    neverFields: { table: to },
    never: `the renamed table is not read again (snapshot.mode never): sluice snapshot --table ${to} --execute reads it`,
    cannot: (table) => `the renamed table cannot be read online (its changes are captured from now on): read it with sluice snapshot --table ${table} --execute`,
  });
}

/**
 * A table whose rows hold values its targets do not have in some columns: a column renamed (the targets have the
 * values under the old name), dropped and added again under its name (the targets kept the dropped column's values,
 * a sink keeps a dropped column), or converted in place (MySQL's MODIFY to a narrower DECIMAL scale rounds them).
 * The change carries no rows, so an online snapshot reads them (not with snapshot.mode never, which only says so).
 */
export async function backfillColumns(table: string, columns: readonly string[], snapshotMode: string, request: () => Promise<unknown>, logger: Logger, at: string, context: ErrorContext = {}, what?: string): Promise<void> {
  const told = what === undefined ? `columns ${columns.join(", ")} of ${table} were renamed, dropped and added again, or had their values converted` : `${table}: ${what}`;
  logger.warn({ table, columns }, `${told}: the targets do not have what its rows hold in them, so its rows are read again`);
  await readAgain([table], snapshotMode, request, logger, at, context, tableReadAgain(table));
}

/**
 * Rows that entered or left a table with no row event (`what`: e.g. MySQL's ALTER TABLE ... TRUNCATE PARTITION):
 * the table is read again, and the online snapshot's closing reset removes the rows it no longer has (`reset` false:
 * the read adds what entered and removes nothing).
 */
export async function backfillChangedRows(table: string, what: string, snapshotMode: string, request: () => Promise<unknown>, logger: Logger, at: string, context: ErrorContext = {}, reset = true): Promise<void> {
  if (reset) logger.warn({ table, statement: what }, `rows of ${table} were added or removed by ${what}, which no row event carries: its rows are read again`);
  else logger.warn({ table, statement: what }, `rows of ${table} were added or removed by ${what}, which no row event carries: its rows are read again with no reset, the targets keep the rows it no longer has`);
  await readAgain([table], snapshotMode, request, logger, at, context, tableReadAgain(table));
}

/**
 * A ROLLBACK TO SAVEPOINT (or a ROLLBACK) whose undone changes the binlog kept and which went to the topics (MySQL/MariaDB,
 * when the transaction also wrote a non-transactional table since the savepoint): the tables changed since are read again, and
 * the online snapshot's closing reset removes the rows it inserted (not with snapshot.mode never, which only says so).
 */
export async function backfillRolledBackSavepoint(tables: readonly string[], snapshotMode: string, request: (table: string) => Promise<unknown>, logger: Logger, at: string, context: ErrorContext = {}): Promise<void> {
  logger.warn(
    { tables, at },
    `a transaction rolled back (to a savepoint, or whole) at ${at} after changing a non-transactional table: the binlog keeps the changes it undid, which reached the topics, so ${tables.join(", ")} ${tables.length === 1 ? "is" : "are"} read again`,
  );
  await readAgain(tables, snapshotMode, request, logger, at, context, {
    neverFields: { tables },
    never: "not read again (snapshot.mode never): sluice snapshot --table T --execute reads each",
    cannot: cannotReadOnline,
  });
}

/**
 * An XA transaction rolled back after its prepare: the binlog holds its changes at the prepare, and they went to
 * the topics then, so the tables it changed are read again; the online snapshot's closing reset removes the rows
 * it inserted (not with snapshot.mode never, which only says so). `tables` null: its prepare was not decoded.
 */
export async function backfillRolledBackXa(xid: string, tables: readonly string[] | null, snapshotMode: string, request: (table: string) => Promise<unknown>, logger: Logger, at: string, context: ErrorContext = {}): Promise<void> {
  if (tables === null) {
    logger.warn(
      { xid },
      `XA transaction ${xid} was rolled back after it was prepared, before this run read on from its prepare: its changes may have reached the topics; read the tables it changed again with sluice snapshot --table T --execute`,
    );
    return;
  }
  logger.warn({ xid, tables }, `XA transaction ${xid} was rolled back after it was prepared: its changes reached the topics at its prepare, so ${tables.join(", ")} ${tables.length === 1 ? "is" : "are"} read again`);
  await readAgain(tables, snapshotMode, request, logger, at, context, {
    neverFields: { tables },
    never: "not read again (snapshot.mode never): sluice snapshot --table T --execute reads each",
    cannot: cannotReadOnline,
  });
}

/** What readAgain says: instead of the read under snapshot.mode never (a warning with `neverFields`), and of a table that cannot be read online (an error). */
interface ReadAgainTexts {
  readonly neverFields: Record<string, unknown>;
  readonly never: string;
  readonly cannot: (table: string) => string;
}

const cannotReadOnline = (table: string) => `the table cannot be read online: read it with sluice snapshot --table ${table} --execute`;

/** The texts of one table read again. */
function tableReadAgain(table: string): ReadAgainTexts {
  return {
    neverFields: { table },
    never: `the table is not read again (snapshot.mode never): sluice snapshot --table ${table} --execute reads it`,
    cannot: cannotReadOnline,
  };
}

/** Asks for the online snapshots of `tables` (requestBackfills), or under snapshot.mode never only says they are not read. */
async function readAgain(tables: readonly string[], snapshotMode: string, request: (table: string) => Promise<unknown>, logger: Logger, at: string, context: ErrorContext, said: ReadAgainTexts): Promise<void> {
  if (snapshotMode === "never") {
    logger.warn(said.neverFields, said.never);
    return;
  }
  await requestBackfills(tables, request, (table, error) => gaveUp(table, error, logger, said), at, context);
}

/**
 * A table the server no longer has (dropped or renamed away since the statement, as pt-online-schema-change drops the
 * table it renamed away a moment later) has nothing to read: a warning, not an error asking for a snapshot of it.
 */
function gaveUp(table: string, error: Error, logger: Logger, said: ReadAgainTexts): void {
  if (error instanceof SluiceError && error.code === "SNAPSHOT_TABLE_UNKNOWN") {
    logger.warn({ table, err: error.message }, `the server no longer has ${table} (dropped or renamed since): nothing of it is read again; its targets keep the rows they have`);
    return;
  }
  logger.error({ table, err: error.message }, said.cannot(table));
}

/**
 * Asks for an online snapshot of each table, twice more after a passing failure (0.5 s, then 1 s later). A table that
 * cannot be read online (a refusal that is not retriable: gone meanwhile, no key, not captured) is told to `gaveUp` and
 * the others go on. A request that still fails for a passing reason (the catalog connection lost, the server restarting, a lock
 * timeout; an error that is no SluiceError counts as one) fails the call with a retriable SNAPSHOT_REQUEST_FAILED
 * naming the table and `at`, where the stream asked: the caller must not go past that point, so capture reconnects from
 * its last checkpoint, decodes it again and asks again (a skip would let the next checkpoint be stored without the read).
 */
export async function requestBackfills(tables: readonly string[], request: (table: string) => Promise<unknown>, gaveUp: (table: string, error: Error) => void, at: string, context: ErrorContext = {}): Promise<void> {
  for (const table of tables) {
    for (let attempt = 1; ; attempt++) {
      try {
        await request(table);
        break;
      } catch (error) {
        const permanent = error instanceof SluiceError && !error.retriable;
        if (!permanent && attempt < 3) {
          await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
          continue;
        }
        if (permanent) {
          gaveUp(table, error);
          break;
        }
        throw new SluiceError(`the online snapshot of ${table} asked for at ${at} could not be requested (${(error as Error).message}): capture goes on from its last checkpoint before it and asks again`, {
          code: "SNAPSHOT_REQUEST_FAILED",
          retriable: true,
          cause: error,
          context: { ...context, table, position: at },
        });
      }
    }
  }
}
