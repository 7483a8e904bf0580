/**
 * The publication and the replication slot: names, creation, and the decision where capture
 * starts. A checkpoint whose slot is gone, lost its WAL or was confirmed beyond the checkpoint
 * is refused (unless snapshot.mode is when-needed), never papered over with a new slot.
 */
import { randomBytes } from "node:crypto";
import type pg from "pg";
import type { Logger } from "pino";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import type { Checkpoint, Position } from "../contracts.ts";
import { ConfigError, ConnectionError, SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { publicationInfo, publishedTables, slotInfo } from "./catalog.ts";
import type { SlotInfo, TableRef } from "./catalog.ts";
import { quoteIdent, quoteLiteral } from "./connection-settings.ts";
import { formatLsn, parseLsn } from "./lsn.ts";
import { exportedSnapshotProgress, flushLsnFor, isSnapshotIncomplete } from "./positions.ts";
import type { ExportedSnapshotProgress } from "./positions.ts";
import { snapshotResetPosition } from "../common/snapshot-reset.ts";
import { backfillStatement, emptyTargetsStatement } from "./stream-decoder.ts";
import { publicationMembers } from "./publication-actions.ts";
import { describeLockHolders } from "./lock-holders.ts";

type Queryable = Pick<pg.Client, "query">;

export interface CaptureNames {
  readonly slot: string;
  readonly publication: string;
}

export function captureNames(config: PostgresSourceConfig): CaptureNames {
  const slot = config.slot ?? `sluice_${config.name.toLowerCase()}`;
  if (!/^[a-z0-9_]{1,63}$/.test(slot)) {
    throw new ConfigError(`replication slot name "${slot}" may only contain lower case letters, digits and underscores`, {
      code: "PG_SLOT_NAME",
      context: { component: "postgres-source", source: config.name },
    });
  }
  return { slot, publication: config.publication ?? `sluice_${config.name}` };
}

/**
 * Makes sure the publication exists and carries the configured tables. Returns the tables it added
 * to an existing publication (they need a backfill: their rows predate their capture). Those `emptied`
 * chooses get a truncate in the stream (emptyTargetsStatement) in the ALTER PUBLICATION's transaction:
 * after everything of a dropped table of their name, before their own changes, or none if the ALTER fails.
 * With `backfill`, the same transaction asks for each added table's backfill (backfillStatement): the
 * stream hands the request on where the table joins the publication, so no crash point loses it.
 *
 * A table the ALTER PUBLICATION cannot lock within the catalog connection's lock_timeout (a long transaction, CREATE
 * INDEX CONCURRENTLY, an anti-wraparound vacuum holding a conflicting lock, possibly for hours) must not keep the
 * others out: the missing tables are then added one by one, and those still locked are warned (naming the sessions
 * holding the lock) and handed to `onLocked`, for the caller to try again later (RepublishTries) while the others stream.
 */
export async function ensurePublication(
  db: Queryable,
  config: PostgresSourceConfig,
  names: CaptureNames,
  tables: readonly TableRef[],
  serverVersion: number,
  logger: Logger,
  context: ErrorContext,
  emptied: (table: TableRef) => boolean = () => false,
  backfill = false,
  onLocked: (tables: readonly TableRef[], why: LeftOut) => void = () => undefined,
): Promise<readonly TableRef[]> {
  const existing = await publicationInfo(db, names.publication);
  if (existing === null) {
    if (!config.create_publication) {
      throw new SluiceError(`publication "${names.publication}" does not exist and create_publication is false`, {
        code: "PG_PUBLICATION_MISSING",
        context,
      });
    }
    const list = tables.map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`).join(", ");
    const viaRoot = serverVersion >= 130000 ? " WITH (publish_via_partition_root = true)" : "";
    const create = `CREATE PUBLICATION ${quoteIdent(names.publication)} FOR TABLE ${list}${viaRoot}`;
    await db.query(create).catch(async (error: unknown) => {
      if ((error as { code?: unknown }).code === LOCK_NOT_AVAILABLE) throw await lockTimeoutError(db, `creating publication "${names.publication}"`, tables, error, context);
      if ((error as { code?: unknown }).code !== "42501") throw error;
      throw new SluiceError(
        `cannot create publication "${names.publication}": ${(error as Error).message}. Creating a publication takes CREATE on the database and ownership of every table in it; ` +
          `have the tables' owner or an administrator run ${create} (and optionally ALTER PUBLICATION ${quoteIdent(names.publication)} OWNER TO the capture role), or set publication: to an existing one`,
        { code: "PG_PRIVILEGE_MISSING", retriable: false, cause: error, context: { ...context, publication: names.publication, grant: "CREATE on the database, ownership of the tables" } },
      );
    });
    logger.info({ publication: names.publication, tables: tables.map((t) => `${t.schema}.${t.table}`) }, "publication created");
    return [];
  }
  if (existing.allTables) return [];
  const published = new Set((await publishedTables(db, names.publication, serverVersion)).map((t) => `${t.schema}.${t.table}`));
  const members = !existing.viaRoot && tables.some((t) => t.kind === "p") ? await publicationMembers(db, names.publication) : new Set<number>();
  const missing = tables.filter((t) => !published.has(`${t.schema}.${t.table}`) && !(t.kind === "p" && members.has(t.relid)));
  let added: readonly TableRef[] = [];
  if (missing.length > 0) {
    const alter = addTableStatement(names, missing);
    const list = missing.map((t) => `${t.schema}.${t.table}`);
    if (config.create_publication && (await ownsPublication(db, names.publication))) {
      const failure = await addTables(db, names, missing, emptied, backfill);
      if (failure === null) {
        added = missing;
        logger.info({ publication: names.publication, tables: list }, "tables added to the publication; their rows are read by an online snapshot (docs/snapshots.md)");
      } else if (failure.code === LOCK_NOT_AVAILABLE || isGone(failure.code)) {
        added = await addLockable(db, names, missing, emptied, backfill, logger, context, onLocked, failure);
      } else {
        logger.warn(
          { publication: names.publication, tables: list, err: failure.message },
          `cannot add the configured tables to publication "${names.publication}", so they are not captured: have their owner or an administrator run ${alter} (their changes are captured from then on), then read their existing rows with sluice snapshot --table T --execute`,
        );
      }
    } else {
      logger.warn(
        { publication: names.publication, tables: list },
        `configured tables are not in publication "${names.publication}" (Sluice does not own it), so they are not captured: run ${alter} ` +
          `(their changes are captured from then on), then read their existing rows with sluice snapshot --table T --execute`,
      );
    }
  }
  if (!existing.viaRoot && tables.some((t) => t.kind === "p")) {
    logger.warn({ publication: names.publication }, "publication does not publish via the partition root: changes of partitioned tables arrive under the partitions' names");
  }
  return added;
}

/** The first PostgreSQL whose pgoutput leaves out the changes made while the publication was missing instead of failing. */
export const PUBLICATION_SKIPPED_SINCE = 180000;

/**
 * Why a slot cannot be resumed because its publication is missing at start, or null. Up to PostgreSQL 17 the stream
 * itself fails at the first change made while the publication was missing (PG_PUBLICATION_DROPPED), whatever the start
 * does; from 18 on, the start would create the publication again and the stream would go on without those changes, not
 * a word said. So from 18 on a publication missing when a checkpoint is resumed is taken for dropped while Sluice was
 * stopped: a new snapshot under snapshot.mode when-needed, else the start stops saying so (planStart's brokenBy).
 */
export function missingPublicationProblem(serverVersion: number, resuming: boolean, publicationExists: boolean, names: CaptureNames): string | null {
  if (!resuming || publicationExists || serverVersion < PUBLICATION_SKIPPED_SINCE) return null;
  return (
    `publication "${names.publication}" is missing while slot "${names.slot}" has changes to stream from the checkpoint: it was dropped while Sluice was stopped, ` +
    `and PostgreSQL ${Math.floor(serverVersion / 10000)} would leave the changes made while it was missing out of the stream without failing it (docs/postgres.md#a-dropped-publication)`
  );
}

/** SQLSTATE 55P03: the statement's lock_timeout ended its wait for a lock. */
const LOCK_NOT_AVAILABLE = "55P03";

function addTableStatement(names: CaptureNames, tables: readonly TableRef[]): string {
  return `ALTER PUBLICATION ${quoteIdent(names.publication)} ADD TABLE ${tables.map((t) => `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`).join(", ")}`;
}

/** SQLSTATE of sameTablesStatement's error: a table's name no longer names the relation listed (dropped, or dropped and created again). */
export const TABLE_REPLACED = "SLR01";

/**
 * Statements that pin each table's name to the relation listed, for the rest of the transaction: ALTER PUBLICATION ...
 * ADD TABLE takes names, and a table dropped and created again under its name between the listing and the ALTER would
 * have the new table added (and a backfill named for the old one). LOCK TABLE takes the relation the name resolves to
 * now (ACCESS SHARE: the SELECT Sluice has is enough, and a DROP or a rename waits for it until the transaction ends);
 * then the name must resolve to the relid listed, else TABLE_REPLACED rolls everything back. A table dropped and not
 * created again fails the LOCK (42P01).
 */
export function sameTablesStatement(tables: readonly TableRef[]): string {
  return tables
    .map((t) => {
      const name = `${quoteIdent(t.schema)}.${quoteIdent(t.table)}`;
      const check =
        `BEGIN IF pg_catalog.to_regclass(${quoteLiteral(name)}) IS DISTINCT FROM ${t.relid}::oid::regclass THEN ` +
        `RAISE EXCEPTION USING ERRCODE = ${quoteLiteral(TABLE_REPLACED)}, MESSAGE = ${quoteLiteral(`${t.schema}.${t.table} is no longer the table listed (relation ${t.relid}): dropped and created again`)}; END IF; END`;
      return `LOCK TABLE ONLY ${name} IN ACCESS SHARE MODE; DO ${dollarQuoted(check)}`;
    })
    .join("; ");
}

/**
 * `body` dollar-quoted under a tag it does not hold: no second level of string quoting, so the names in the body's own
 * literals (quoteLiteral) are read once, as written.
 */
function dollarQuoted(body: string): string {
  let tag = "$sluice$";
  while (body.includes(tag)) tag = `$sluice_${randomBytes(6).toString("hex")}$`;
  return `${tag}${body}${tag}`;
}

/**
 * Adds `tables` in one simple query, one implicit transaction (the messages and the ALTER commit together or not at
 * all), each name first pinned to the relation listed (sameTablesStatement); the failure, or null.
 */
async function addTables(db: Queryable, names: CaptureNames, tables: readonly TableRef[], emptied: (table: TableRef) => boolean, backfill: boolean): Promise<{ code: unknown; message: string; error: unknown } | null> {
  try {
    await db.query(`${sameTablesStatement(tables)}; ${addedTablesStatement(names.slot, tables, addTableStatement(names, tables), emptied, backfill)}`);
    return null;
  } catch (error) {
    return { code: (error as { code?: unknown }).code, message: (error as Error).message, error };
  }
}

/** SQLSTATE 42P01: a table listed was dropped before the ALTER PUBLICATION's transaction pinned its name. */
const UNDEFINED_TABLE = "42P01";
const isGone = (code: unknown): boolean => code === TABLE_REPLACED || code === UNDEFINED_TABLE;

/**
 * Why ensurePublication handed tables to `onLocked` to be tried again: "locked", a lock kept the ALTER out past the
 * lock_timeout (tried again after a while); "renamed", the relation listed is still there under another name or schema
 * (renamed, or swapped with another table, between the listing and the ALTER): tried again at the next look, which
 * lists it under its name then.
 */
export type LeftOut = "locked" | "renamed";

/**
 * After an ALTER PUBLICATION of several tables ran into the lock_timeout, or met a table dropped or renamed (and maybe
 * another created under its name) since it was listed: each table alone, so one locked for hours keeps only itself
 * out. Those still locked are warned, naming the sessions holding the lock, and handed to `onLocked`. Of those whose
 * name no longer names the relation listed, the ones whose relation is still there (renamed) are handed to `onLocked`
 * too; the ones whose relation is gone are left out, said at info: the catalog look that finds a table created again
 * under the name takes it up as a new table.
 */
async function addLockable(
  db: Queryable,
  names: CaptureNames,
  missing: readonly TableRef[],
  emptied: (table: TableRef) => boolean,
  backfill: boolean,
  logger: Logger,
  context: ErrorContext,
  onLocked: (tables: readonly TableRef[], why: LeftOut) => void,
  first: { code: unknown; message: string; error: unknown },
): Promise<readonly TableRef[]> {
  const added: TableRef[] = [];
  const locked: TableRef[] = [];
  const unnamed: { table: TableRef; message: string }[] = [];
  let lockError = first;
  for (const table of missing) {
    const failure = missing.length > 1 ? await addTables(db, names, [table], emptied, backfill) : first;
    if (failure === null) added.push(table);
    else if (failure.code === LOCK_NOT_AVAILABLE) {
      locked.push(table);
      lockError = failure;
    } else if (isGone(failure.code)) {
      unnamed.push({ table, message: failure.message });
    } else {
      logger.warn(
        { publication: names.publication, table: `${table.schema}.${table.table}`, err: failure.message },
        `cannot add ${table.schema}.${table.table} to publication "${names.publication}", so it is not captured: have its owner or an administrator run ${addTableStatement(names, [table])} (its changes are captured from then on), then read its existing rows with sluice snapshot --table ${table.schema}.${table.table} --execute`,
      );
    }
  }
  if (added.length > 0) logger.info({ publication: names.publication, tables: added.map((t) => `${t.schema}.${t.table}`) }, "tables added to the publication; their rows are read by an online snapshot (docs/snapshots.md)");
  await tellUnnamed(db, names, unnamed, logger, onLocked);
  if (locked.length > 0) {
    const list = locked.map((t) => `${t.schema}.${t.table}`);
    const blocked = await lockedText(db, `adding ${list.join(", ")} to publication "${names.publication}"`, locked, lockError.error);
    logger.warn(
      { ...context, publication: names.publication, tables: list, code: "PG_LOCK_TIMEOUT" },
      `${blocked}; not captured until it is added: tried again later, the other tables are captured meanwhile (docs/postgres.md#failures-and-reconnects)`,
    );
    onLocked(locked, "locked");
  }
  return added;
}

/**
 * Tables whose name no longer named the relation listed when the ALTER ran: a relation still there was renamed (or
 * swapped with another table) meanwhile and is handed back to be tried under its name at the next look; only one gone
 * is said to be dropped.
 */
async function tellUnnamed(db: Queryable, names: CaptureNames, unnamed: readonly { table: TableRef; message: string }[], logger: Logger, onLocked: (tables: readonly TableRef[], why: LeftOut) => void): Promise<void> {
  if (unnamed.length === 0) return;
  const result = await db.query<{ relid: string; name: string }>(
    "SELECT c.oid::int8::text AS relid, n.nspname || '.' || c.relname AS name FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY($1::oid[])",
    [unnamed.map(({ table }) => table.relid)],
  );
  const now = new Map(result.rows.map((r) => [Number(r.relid), r.name]));
  const renamed: TableRef[] = [];
  for (const { table, message } of unnamed) {
    const listed = `${table.schema}.${table.table}`;
    const name = now.get(table.relid);
    if (name === undefined) {
      logger.info(
        { publication: names.publication, table: listed, relid: table.relid, err: message },
        `not added to publication "${names.publication}": the table listed was dropped meanwhile (a table created again under its name is taken up as a new table)`,
      );
      continue;
    }
    renamed.push(table);
    logger.info(
      { publication: names.publication, table: listed, relid: table.relid, now: name, err: message },
      `not added to publication "${names.publication}" yet: the table listed as ${listed} was renamed meanwhile (now ${name}); tried again under its name at the next look`,
    );
  }
  if (renamed.length > 0) onLocked(renamed, "renamed");
}

/** "doing: canceling statement due to lock timeout (the lock_timeout of the catalog connection): pid 123 (...) holds ShareUpdateExclusiveLock on s.t". */
async function lockedText(db: Queryable, doing: string, tables: readonly TableRef[], cause: unknown): Promise<string> {
  const holders = await describeLockHolders(db, tables.map((t) => t.relid)).catch(() => null);
  const names = tables.map((t) => `${t.schema}.${t.table}`);
  return `${doing}: ${(cause as Error).message} (the lock_timeout of the catalog connection): ${holders ?? "another transaction holds a lock on " + names.join(", ") + " (pg_locks shows which)"}`;
}

/** Retriable: the lock is held by a transaction that ends some time; says by whom when the server tells. */
async function lockTimeoutError(db: Queryable, doing: string, tables: readonly TableRef[], cause: unknown, context: ErrorContext): Promise<SluiceError> {
  const names = tables.map((t) => `${t.schema}.${t.table}`);
  return new ConnectionError(`${await lockedText(db, doing, tables, cause)}; waiting for it to end and trying again (docs/postgres.md#failures-and-reconnects)`, {
    code: "PG_LOCK_TIMEOUT",
    cause,
    context: { ...context, table: names.join(", ") },
  });
}

/**
 * `change` (adding the tables to the publication, or nothing for one of all tables) in one simple query, one implicit
 * transaction, with the messages that go with it: the truncates of those `emptied` chooses before it, and with
 * `backfill` the backfill requests after it. They commit together or not at all.
 */
export function addedTablesStatement(slot: string, tables: readonly TableRef[], change: string, emptied: (table: TableRef) => boolean, backfill: boolean): string {
  const name = (t: TableRef) => `${t.schema}.${t.table}`;
  const truncates = tables.filter(emptied).map((t) => emptyTargetsStatement(slot, name(t)));
  const requests = backfill ? tables.map((t) => backfillStatement(slot, name(t), t.relid, emptied(t))) : [];
  return [...truncates, ...(change === "" ? [] : [change]), ...requests].join("; ");
}

/** Whether the connecting role owns the publication (Sluice created it, or was given it): only then does Sluice change it. */
export async function ownsPublication(db: Queryable, publication: string): Promise<boolean> {
  const result = await db.query<{ owns: boolean | string }>("SELECT pubowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AS owns FROM pg_publication WHERE pubname = $1", [publication]);
  const owns = result.rows[0]?.owns;
  return owns === true || owns === "t";
}

export type StartPlan =
  | {
      readonly kind: "snapshot";
      /** An existing slot to drop first (a snapshot needs a slot created with it). */
      readonly dropExisting: boolean;
    }
  | {
      readonly kind: "create-and-stream";
    }
  | {
      /**
       * An exported initial snapshot that did not finish, on a slot still usable: stream from the
       * slot's consistent point and read the tables left online (docs/snapshots.md).
       */
      readonly kind: "resume-snapshot";
      readonly progress: ExportedSnapshotProgress;
      readonly consistentPoint: bigint;
      /** The version of the interrupted snapshot's resets: one below its rows'. */
      readonly resetVersion: bigint;
    }
  | {
      readonly kind: "stream";
      readonly startLsn: bigint;
      /** Durable already: reported as flushed from the start. */
      readonly flushedLsn: bigint;
      readonly skipThrough: Position | null;
    };

/** Permanent: resuming would lose changes. Says what happened and how to take a new snapshot. */
export function dataLossError(names: CaptureNames, checkpoint: Checkpoint, problem: string, context: ErrorContext): SluiceError {
  return new SluiceError(
    `cannot resume source "${checkpoint.source}" from its checkpoint (commit ${formatLsn(checkpoint.position.commit)}): ${problem}. ` +
      `Resuming would lose the changes in between, so capture does not start. To capture again from a new consistent snapshot, ` +
      `set snapshot.mode: when-needed for this source (or delete its checkpoint) and restart; each table's snapshot reset then removes ` +
      `from the sinks the rows deleted meanwhile (docs/postgres.md#missing-or-unusable-slot).`,
    { code: "PG_SLOT_UNUSABLE", retriable: false, context: { ...context, slot: names.slot, position: formatLsn(checkpoint.position.commit) } },
  );
}

/**
 * How long a standby's replayed WAL may stay below the checkpoint before it is refused as another history: after a
 * restart a standby replays again from its last restartpoint, so pg_last_wal_replay_lsn() can sit below what Sluice
 * decoded there for a while.
 */
export const STANDBY_CATCH_UP_MS = 15 * 60_000;

/** Since when a standby has been seen behind the checkpoint (the source keeps it across its connect attempts). */
export interface StandbyCatchUp {
  behindSinceMs: number | null;
}

export async function planStart(
  db: Queryable,
  config: PostgresSourceConfig,
  names: CaptureNames,
  checkpoint: Checkpoint | null,
  database: string,
  logger: Logger,
  context: ErrorContext,
  catchUp: StandbyCatchUp = { behindSinceMs: null },
  /** What the slot's stream showed it cannot deliver (a dropped publication), beyond what its state in the catalog says. */
  brokenBy: string | null = null,
): Promise<StartPlan> {
  const slot = await slotInfo(db, names.slot);
  if (slot !== null) checkSlotShape(slot, names, database, context);
  const mode = config.snapshot.mode;

  const needsFreshSlot = (reason: string): StartPlan => freshSnapshotPlan(config, names, slot, reason, logger, context);

  if (checkpoint === null) {
    if (mode === "never") {
      if (slot === null) {
        if (!config.create_slot) throw new SluiceError(`replication slot "${names.slot}" does not exist and create_slot is false`, { code: "PG_SLOT_MISSING", context });
        return { kind: "create-and-stream" };
      }
      const confirmed = slot.confirmedFlushLsn ?? 0n;
      return { kind: "stream", startLsn: confirmed, flushedLsn: confirmed, skipThrough: null };
    }
    if (slot === null) {
      if (!config.create_slot) throw new SluiceError(`replication slot "${names.slot}" does not exist and create_slot is false`, { code: "PG_SLOT_MISSING", context });
      return { kind: "snapshot", dropExisting: false };
    }
    return needsFreshSlot("replication slot exists but there is no checkpoint (an earlier snapshot did not finish): starting over with a new slot and snapshot");
  }

  await checkSameHistory(db, names, checkpoint, context, catchUp);

  if (isSnapshotIncomplete(checkpoint.position)) {
    const progress = exportedSnapshotProgress(checkpoint.position);
    if (progress === null) return needsFreshSlot("the initial snapshot did not finish (its checkpoint does not say how far it got): starting over with a new slot and snapshot");
    const problem = slotProblem(slot, names, checkpoint) ?? brokenBy;
    if (problem !== null) return needsFreshSlot(`the initial snapshot did not finish and cannot resume (${problem}): starting over with a new slot and snapshot`);
    const reset = snapshotResetPosition(checkpoint.position);
    return { kind: "resume-snapshot", progress, consistentPoint: checkpoint.position.commit, resetVersion: reset.change };
  }

  const problem = slotProblem(slot, names, checkpoint) ?? brokenBy;
  if (problem !== null) {
    if (mode === "when-needed") return needsFreshSlot(`${problem}: taking a new snapshot (snapshot.mode when-needed)`);
    throw dataLossError(names, checkpoint, problem, context);
  }
  const resumeFrom = flushLsnFor(checkpoint.position);
  return { kind: "stream", startLsn: resumeFrom, flushedLsn: resumeFrom, skipThrough: checkpoint.position };
}

/**
 * The start's plan (planStart), with the old slot of a new snapshot dropped at once, before anything else is done: before
 * the publication is created again (ensurePublication), the privileges checked, an abort looked at. Up to then, the only
 * record that the publication was dropped while Sluice was stopped (PostgreSQL 18) is its absence, and what a stream
 * showed of the slot (`brokenBy`) is held in memory only: a start stopped or failing in between would leave the
 * next one a publication present and the old slot intact, and it would stream, PostgreSQL 18 skipping the changes made
 * while the publication was missing. A slot missing while a checkpoint needs it is found by any later start.
 */
export async function settleStart(
  db: Queryable,
  config: PostgresSourceConfig,
  names: CaptureNames,
  checkpoint: Checkpoint | null,
  server: { readonly database: string; readonly version: number },
  logger: Logger,
  context: ErrorContext,
  catchUp: StandbyCatchUp,
  brokenBy: string | null,
): Promise<StartPlan> {
  // PostgreSQL 18 streams past changes made while the publication was missing: one missing now was dropped while stopped.
  const missing = config.create_publication ? missingPublicationProblem(server.version, checkpoint !== null, (await publicationInfo(db, names.publication)) !== null, names) : null;
  const plan = await planStart(db, config, names, checkpoint, server.database, logger, context, catchUp, brokenBy ?? missing);
  if (plan.kind === "snapshot" && plan.dropExisting) await dropSlot(db, names);
  return plan;
}

/**
 * A checkpoint beyond the end of the server's WAL was taken on a history this server does not
 * have: the database was restored (a backup, a disk snapshot, a dump into a new cluster) or failed
 * over to a server behind the one the checkpoint was taken on. Resuming there skips the changes up
 * to it (a slot restored with the data directory is not refused otherwise), and a new snapshot's
 * LSNs sort below the versions the topics and sinks hold, so they would keep their old rows
 * (docs/postgres.md#a-restored-database-or-another-cluster): refused, under when-needed too.
 */
async function checkSameHistory(db: Queryable, names: CaptureNames, checkpoint: Checkpoint, context: ErrorContext, catchUp: StandbyCatchUp): Promise<void> {
  const result = await db.query<{ lsn: string | null; standby: boolean | null }>(
    "SELECT pg_is_in_recovery() AS standby, (CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END)::text AS lsn",
  );
  const text = result.rows[0]?.lsn;
  if (text === null || text === undefined) return;
  const end = parseLsn(text);
  const at = checkpoint.position.commit;
  if (at <= end) {
    catchUp.behindSinceMs = null;
    return;
  }
  let waited = "";
  if (result.rows[0]?.standby === true) {
    const now = Date.now();
    catchUp.behindSinceMs ??= now;
    const minutes = Math.round(STANDBY_CATCH_UP_MS / 60_000);
    if (now - catchUp.behindSinceMs < STANDBY_CATCH_UP_MS) {
      throw new SluiceError(
        `source "${checkpoint.source}" waits for this standby to replay its WAL up to the checkpoint (commit ${formatLsn(at)}; replayed up to ${formatLsn(end)}): a standby that just restarted replays again from its last restartpoint. ` +
          `Capture retries; if the standby is still behind after ${minutes} minutes, it is refused as another history (PG_HISTORY_CHANGED)`,
        { code: "PG_STANDBY_BEHIND", retriable: true, context: { ...context, slot: names.slot, position: formatLsn(at), walEnd: formatLsn(end) } },
      );
    }
    waited = ` (this standby stayed behind it for ${minutes} minutes)`;
  }
  throw new SluiceError(
    `cannot resume source "${checkpoint.source}": its checkpoint (commit ${formatLsn(at)}) is beyond the end of this server's WAL (${formatLsn(end)})${waited}: the database was restored or failed over to a server behind the one the checkpoint was taken on, or this is another cluster. ` +
      `Resuming would skip this server's changes up to ${formatLsn(at)}, and a new snapshot's versions would sort below those the topics and sinks hold (they would keep their old rows), so snapshot.mode: when-needed does not apply. ` +
      `Capture this server under a new deployment name whose sinks write new targets (docs/postgres.md#a-restored-database-or-another-cluster)`,
    { code: "PG_HISTORY_CHANGED", retriable: false, context: { ...context, slot: names.slot, position: formatLsn(at), walEnd: formatLsn(end) } },
  );
}

/** A new slot and exported snapshot, dropping `slot` first if there is one (refused while it is in use or without create_slot). */
export function freshSnapshotPlan(config: PostgresSourceConfig, names: CaptureNames, slot: SlotInfo | null, reason: string, logger: Logger, context: ErrorContext): StartPlan {
  if (!config.create_slot) {
    throw new SluiceError(`${reason}, which needs a new slot, but create_slot is false`, { code: "PG_SLOT_MISSING", context: { ...context, slot: names.slot } });
  }
  if (slot !== null && slot.active) {
    throw new SluiceError(`replication slot "${names.slot}" must be dropped for a new snapshot but is in use by process ${slot.activePid ?? "?"}`, {
      code: "PG_SLOT_ACTIVE",
      retriable: true,
      context: { ...context, slot: names.slot },
    });
  }
  logger.warn({ slot: names.slot, dropping: slot !== null }, reason);
  return { kind: "snapshot", dropExisting: slot !== null };
}

function checkSlotShape(slot: SlotInfo, names: CaptureNames, database: string, context: ErrorContext): void {
  if (slot.slotType !== "logical" || slot.plugin !== "pgoutput" || slot.database !== database) {
    throw new SluiceError(
      `replication slot "${names.slot}" is ${slot.slotType} (plugin ${slot.plugin ?? "none"}, database ${slot.database ?? "none"}); ` +
        `Sluice needs a logical pgoutput slot on database "${database}": choose another slot name`,
      { code: "PG_SLOT_FOREIGN", context: { ...context, slot: names.slot } },
    );
  }
}

function slotProblem(slot: SlotInfo | null, names: CaptureNames, checkpoint: Checkpoint): string | null {
  if (slot === null) return `replication slot "${names.slot}" does not exist`;
  if (slot.walStatus === "lost" || slot.restartLsn === null) return `replication slot "${names.slot}" is invalidated: the server removed WAL it still needed (wal_status lost)`;
  const confirmed = slot.confirmedFlushLsn ?? 0n;
  const durable = flushLsnFor(checkpoint.position);
  if (confirmed > durable) {
    return `replication slot "${names.slot}" was confirmed up to ${formatLsn(confirmed)}, beyond the checkpoint (${formatLsn(durable)}): another consumer used the slot, or the checkpoint is older than the slot`;
  }
  return null;
}

export interface CreatedSlot {
  readonly consistentPoint: bigint;
  /** Exported snapshot to import with SET TRANSACTION SNAPSHOT, while `replication` stays idle. */
  readonly snapshotName: string | null;
}

/** CREATE_REPLICATION_SLOT on a replication connection, exporting its snapshot when asked. */
export async function createSlot(replication: Queryable, names: CaptureNames, exportSnapshot: boolean, serverVersion: number): Promise<CreatedSlot> {
  const snapshotOption =
    serverVersion >= 150000 ? `(SNAPSHOT '${exportSnapshot ? "export" : "nothing"}')` : exportSnapshot ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT";
  const result = await replication.query<Record<string, string | null>>(
    `CREATE_REPLICATION_SLOT ${quoteIdent(names.slot)} LOGICAL pgoutput ${snapshotOption}`,
  );
  const row = result.rows[0];
  if (row === undefined || row["consistent_point"] == null) throw new Error("CREATE_REPLICATION_SLOT returned no consistent point");
  return { consistentPoint: parseLsn(row["consistent_point"]), snapshotName: row["snapshot_name"] ?? null };
}

export async function dropSlot(db: Queryable, names: CaptureNames): Promise<void> {
  await db.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1", [names.slot]);
}
