/**
 * Tables created while capture runs: a migration adds a table matching the source's `tables`, and
 * without a look at the catalog it would be captured only from the next start (it is not in the
 * publication), its dashboards empty meanwhile with nothing reported. Every interval the matching
 * tables are listed; each one not seen before is handed to `add` once (the source adds it to the
 * publication and backfills its rows with an online snapshot), in the order the catalog lists them.
 */
import type { Logger } from "pino";
import type { LeafPartition, TableRef } from "./catalog.ts";

export interface TableDiscoveryOptions {
  readonly intervalMs: number;
  /** The tables matching the source's config now. */
  readonly list: () => Promise<readonly TableRef[]>;
  /** Tables known at start (already captured, or already reported). */
  readonly known: readonly TableRef[];
  /**
   * Takes up tables seen for the first time and returns those it took up; the others (e.g. not keyed yet) are
   * offered again at the next look, and so are all of them after a rejection (logged). `recreated`: those of them
   * whose name a known table had that is gone (dropped, or renamed out of the tables, and created again).
   */
  readonly add: (tables: readonly TableRef[], recreated: ReadonlySet<number>) => Promise<readonly TableRef[]>;
  /**
   * A known table gone (dropped, or renamed out of the tables) and no listed table has the name it last had: told
   * once, with that name. A table renamed away and another renamed onto its name (a swap) does not leave it free.
   */
  readonly vacated?: (relid: number, name: string) => void;
  /**
   * At every look, the known tables as listed now: the source checks that they are still in its publication (one
   * taken out while capture streams, by hand or by a migration tool, has its changes lost until it is put back).
   */
  readonly republish?: (known: readonly TableRef[]) => Promise<void>;
  /**
   * Partitions attached to a known partitioned table (ATTACH PARTITION of a table holding rows, which no change in
   * the WAL carries; also CREATE TABLE ... PARTITION OF): `list` gives each partitioned table's leaf partitions,
   * `attached` is told those not there at the previous look, once (the source reads their rows). `rewritten` is told
   * those with a new relfilenode: a TRUNCATE of a partition, which pgoutput does not send when it publishes through
   * the root (also VACUUM FULL, CLUSTER or a rewriting ALTER, which keep the rows), and `gone` those no longer
   * partitions of it (DETACH PARTITION, also CONCURRENTLY once done, or a partition dropped: their rows leave the root
   * with no change in the WAL), and `reattached` those detached and attached again since (a new pg_inherits row,
   * their changes while detached not streamed); it covers the attached ones too.
   */
  readonly partitions?: {
    /** Kept by the source across streams: a discovery made at a reconnect takes up what the last one saw. */
    readonly seen: SeenPartitions;
    readonly list: (known: readonly TableRef[]) => Promise<ReadonlyMap<number, readonly LeafPartition[]>>;
    readonly attached: (table: TableRef, partitions: readonly number[]) => Promise<void>;
    readonly rewritten: (table: TableRef, partitions: readonly number[], gone: readonly number[], reattached: readonly number[]) => Promise<void>;
  };
  /**
   * At every look, the known tables as listed now: the source reads again those whose enum labels were renamed since
   * the last look (enum-labels.ts). One that fails is tried at the next look, without stopping the rest of this one.
   */
  readonly enumLabels?: (known: readonly TableRef[]) => Promise<void>;
  /** After every look, whatever it did: the source stores what the looks saw with its next checkpoints (catalog-marks.ts). */
  readonly looked?: () => void;
  readonly logger: Logger;
}

/**
 * The leaf partitions of the known partitioned tables at the last look (relfilenode by relation id), null before the
 * first. Owned by the source, not by one stream's discovery: capture opens a new stream after every retriable failure
 * (a network blip, a server restart), and a discovery starting from nothing would take the partitions attached during
 * the outage, or before its first look, as known: their rows never read. Across restarts and takeovers the source keeps
 * them with its checkpoints (catalog-marks.ts) and sets them at a connect, so the first look compares too.
 */
export class SeenPartitions {
  leaves: Map<number, Map<number, number>> | null = null;
  /** Of the same leaves, LeafPartition.attachment; null (or a table or leaf missing) when unknown: not compared. */
  attachments: Map<number, Map<number, number>> | null = null;
}

/**
 * The first look comes this soon after a start (or the interval, when shorter): catalog changes made while Sluice was
 * stopped, compared with what the last process saw (catalog-marks.ts), are acted on then, not an interval later. Late
 * enough to leave the catalog connection to the stream's start (launch -> first record).
 */
const FIRST_LOOK_MS = 1_000;

/** By relation id: a table dropped and created again under its name is a new table (and no longer in the publication). */
const idOf = (table: TableRef) => table.relid;
const nameOf = (table: TableRef) => `${table.schema}.${table.table}`;

export class TableDiscovery {
  private readonly options: TableDiscoveryOptions;
  /** Known tables' names by relation id (as last listed). */
  private readonly known: Map<number, string>;
  /** Known tables told to `vacated`. */
  private readonly vacated = new Set<number>();
  private timer: NodeJS.Timeout | null = null;
  private firstTimer: NodeJS.Timeout | null = null;
  private looking: Promise<void> | null = null;
  private failures = 0;
  private republishFailures = 0;
  private enumLabelFailures = 0;

  constructor(options: TableDiscoveryOptions) {
    this.options = options;
    this.known = new Map(options.known.map((table) => [idOf(table), nameOf(table)]));
  }

  start(): void {
    if (this.options.intervalMs <= 0 || this.timer !== null) return;
    this.timer = setInterval(() => void this.look(), this.options.intervalMs);
    this.timer.unref();
    if (this.options.intervalMs > FIRST_LOOK_MS) {
      this.firstTimer = setTimeout(() => void this.look(), FIRST_LOOK_MS);
      this.firstTimer.unref();
    }
  }

  /** Stops looking; resolves once a look in progress is done (the source then closes the connection it uses). */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    if (this.firstTimer !== null) clearTimeout(this.firstTimer);
    this.timer = null;
    this.firstTimer = null;
    await this.looking;
  }

  /** One look at the catalog (also what the timer runs); a look already in progress is not started twice. */
  look(): Promise<void> {
    this.looking ??= this.lookOnce().finally(() => {
      this.looking = null;
    });
    return this.looking;
  }

  private async lookOnce(): Promise<void> {
    try {
      const listed = await this.options.list();
      const fresh = listed.filter((table) => !this.known.has(idOf(table)));
      this.tellVacated(listed);
      if (fresh.length > 0) {
        const present = new Set(listed.map(idOf));
        const gone = new Set([...this.known].filter(([relid]) => !present.has(relid)).map(([, name]) => name));
        const recreated = new Set(fresh.filter((table) => gone.has(nameOf(table))).map(idOf));
        for (const table of await this.options.add(fresh, recreated)) {
          for (const [relid, name] of this.known) {
            if (name !== nameOf(table) || present.has(relid)) continue;
            this.known.delete(relid);
            if (!this.vacated.has(relid)) this.options.vacated?.(relid, name);
            this.vacated.delete(relid);
          }
          this.known.set(idOf(table), nameOf(table));
        }
      }
      for (const table of listed) if (this.known.has(idOf(table))) this.known.set(idOf(table), nameOf(table));
      await this.republish(listed.filter((table) => this.known.has(idOf(table))));
      await this.lookAtPartitions(listed.filter((table) => this.known.has(idOf(table))));
      await this.lookAtEnumLabels(listed.filter((table) => this.known.has(idOf(table))));
      if (this.failures > 0) this.options.logger.info({ failures: this.failures }, "looking for new tables works again");
      this.failures = 0;
    } catch (error) {
      // One warning per run of failures: a lost connection is reported by the stream.
      if (this.failures++ === 0) this.options.logger.warn({ err: (error as Error).message }, "could not look for new tables; trying again");
    } finally {
      this.options.looked?.();
    }
  }

  /**
   * The publication check on its own: one that fails (a lock timeout on ALTER PUBLICATION, a grant missing) is tried
   * again at the next look and does not keep the partitions from being looked at. Warned once per run of failures.
   */
  private async republish(known: readonly TableRef[]): Promise<void> {
    const republish = this.options.republish;
    if (republish === undefined) return;
    try {
      await republish(known);
    } catch (error) {
      if (this.republishFailures++ === 0) {
        this.options.logger.warn({ err: (error as Error).message }, "could not check that the captured tables are still in the publication (or put them back); trying again at the next look");
      }
      return;
    }
    if (this.republishFailures > 0) this.options.logger.info({ failures: this.republishFailures }, "checking the captured tables are in the publication works again");
    this.republishFailures = 0;
  }

  /** The enum label check on its own, warned once per run of failures (as the publication check). */
  private async lookAtEnumLabels(known: readonly TableRef[]): Promise<void> {
    const enumLabels = this.options.enumLabels;
    if (enumLabels === undefined) return;
    try {
      await enumLabels(known);
    } catch (error) {
      if (this.enumLabelFailures++ === 0) this.options.logger.warn({ err: (error as Error).message }, "could not check the captured tables' enum labels for renames; trying again at the next look");
      return;
    }
    if (this.enumLabelFailures > 0) this.options.logger.info({ failures: this.enumLabelFailures }, "checking the captured tables' enum labels works again");
    this.enumLabelFailures = 0;
  }

  /**
   * Tells partitions attached, rewritten or gone since the last look; a table not known then (taken up whole) has none told. Each table
   * on its own: one whose telling fails (a lost lock, a grant missing) keeps what was seen of it before, to be told
   * again at the next look, and neither stops the others nor makes them told again.
   */
  private async lookAtPartitions(known: readonly TableRef[]): Promise<void> {
    const partitions = this.options.partitions;
    if (partitions === undefined) return;
    const now = await partitions.list(known);
    const before = partitions.seen.leaves;
    const seenOf = (relid: number) => new Map((now.get(relid) ?? []).map((leaf) => [leaf.relid, leaf.filenode]));
    const attachmentsOf = (relid: number) => new Map((now.get(relid) ?? []).map((leaf) => [leaf.relid, leaf.attachment]));
    if (before === null) {
      partitions.seen.leaves = new Map([...now.keys()].map((relid) => [relid, seenOf(relid)]));
      partitions.seen.attachments = new Map([...now.keys()].map((relid) => [relid, attachmentsOf(relid)]));
      return;
    }
    const attachedBefore = partitions.seen.attachments;
    const seen = new Map([...before].filter(([relid]) => now.has(relid)));
    const seenAttachments = new Map([...(attachedBefore ?? [])].filter(([relid]) => now.has(relid)));
    partitions.seen.leaves = seen;
    partitions.seen.attachments = seenAttachments;
    let failed: Error | null = null;
    for (const table of known) {
      if (!now.has(idOf(table))) continue;
      const had = before.get(idOf(table));
      try {
        if (had !== undefined) {
          const leaves = now.get(idOf(table)) ?? [];
          const rewritten = leaves.filter((leaf) => had.has(leaf.relid) && had.get(leaf.relid) !== leaf.filenode).map((leaf) => leaf.relid);
          const attached = leaves.filter((leaf) => !had.has(leaf.relid)).map((leaf) => leaf.relid);
          const present = new Set(leaves.map((leaf) => leaf.relid));
          const gone = [...had.keys()].filter((relid) => !present.has(relid));
          const hadAttachments = attachedBefore?.get(idOf(table));
          const reattached = leaves
            .filter((leaf) => had.has(leaf.relid) && !rewritten.includes(leaf.relid) && (hadAttachments?.get(leaf.relid) ?? leaf.attachment) !== leaf.attachment)
            .map((leaf) => leaf.relid);
          if (rewritten.length > 0 || gone.length > 0 || reattached.length > 0) await partitions.rewritten(table, rewritten, gone, reattached);
          else if (attached.length > 0) await partitions.attached(table, attached);
        }
        // Only once told: a failure is tried again at the next look.
        seen.set(idOf(table), seenOf(idOf(table)));
        seenAttachments.set(idOf(table), attachmentsOf(idOf(table)));
      } catch (error) {
        failed ??= new Error(`${nameOf(table)}'s partitions: ${(error as Error).message}`);
      }
    }
    if (failed !== null) throw failed;
  }

  private tellVacated(listed: readonly TableRef[]): void {
    if (this.options.vacated === undefined) return;
    const present = new Set(listed.map(idOf));
    const names = new Set(listed.map(nameOf));
    for (const [relid, name] of this.known) {
      if (present.has(relid) || names.has(name) || this.vacated.has(relid)) continue;
      this.vacated.add(relid);
      this.options.vacated(relid, name);
    }
  }
}
