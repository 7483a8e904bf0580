/**
 * The processes of a deployment, as each announces itself: every `sluice run` writes a small
 * report (its roles, the sources it leads or stands by for, the partitions its sinks read, their
 * lag) every few seconds to the compacted topic `<deployment>.sluice.instances` and reads everyone
 * else's, so `/status` of any process shows the whole deployment. A process that stops cleanly
 * removes its report (a tombstone); one that dies is shown as stale, then left out.
 *
 * Kafka only: the embedded log is one machine's, and /status then shows this process alone.
 */
import { randomBytes } from "node:crypto";
import type { TopicConsumer, TopicPartitionOffset } from "../connectors/topics/contract.ts";
import { instancesTopic } from "../connectors/topics/names.ts";
import type { Logger } from "../runtime/logger.ts";

export interface InstanceReport {
  readonly id: string;
  readonly host: string;
  readonly pid: number;
  readonly version: string;
  readonly roles: readonly string[];
  readonly startedAt: string;
  /** When this report was written (milliseconds since the epoch). */
  readonly at: number;
  /** The process's admin API, scheme://host:port (its host name when it listens on every interface); absent in reports of earlier versions. */
  readonly api?: string;
  readonly sources: readonly ({ name: string; state: "leader" | "standby" | "capturing"; ready: boolean; position: string | null; lagSeconds: number | null } & AnnouncedHalts)[];
  readonly sinks: readonly ({ name: string; ready: boolean; partitions: readonly string[]; lagRecords: number | null } & AnnouncedHalts)[];
}

/** A sink's or source's halts as announced: at most HALTS_PER_REPORT of them, and how many more there are. */
export interface AnnouncedHalts {
  /** Absent in reports of processes of earlier versions. */
  readonly halted?: readonly InstanceHalt[];
  /** Halts held but left out of `halted` (over HALTS_PER_REPORT); absent when none are. */
  readonly haltedMore?: number;
}

/**
 * A table halted in a process: a halt lives in the process that met it (a sink's halt in the one reading
 * the partition), so `sluice halted list` asked of another process finds it here. Absent in reports of
 * processes of earlier versions.
 */
export interface InstanceHalt {
  readonly table: string;
  /** A sink halt's poison record, TOPIC:PARTITION:OFFSET. */
  readonly at?: string;
}

/**
 * Halts listed per sink or source in a report. A sink can hold thousands (an Elasticsearch write
 * block halts every table it writes to); listed whole they could push the report past Kafka's
 * message size limit (about 1 MB by default), and a process whose report cannot be written drops
 * out of every other process's /status.
 */
export const HALTS_PER_REPORT = 100;

export function announcedHalts(halts: readonly InstanceHalt[], limit = HALTS_PER_REPORT): AnnouncedHalts {
  return halts.length > limit ? { halted: halts.slice(0, limit), haltedMore: halts.length - limit } : { halted: halts };
}

/** What the directory needs of the topic log (the Kafka log has it; the embedded log does not). */
export interface AnnouncingLog {
  announce(key: string, value: string | null): Promise<void>;
  consumer(group: string, topics: readonly string[]): Promise<TopicConsumer>;
  endOffsets(topic: string): Promise<TopicPartitionOffset[]>;
}

export function canAnnounce(log: object): log is AnnouncingLog {
  return typeof (log as Partial<AnnouncingLog>).announce === "function";
}

export interface DirectoryOptions {
  readonly log: AnnouncingLog | null;
  readonly deployment: string;
  readonly id: string;
  readonly report: () => Promise<InstanceReport>;
  readonly intervalMs: number;
  readonly logger: Logger;
  /** Milliseconds of a monotonic clock (performance.now by default), for tests. */
  readonly clock?: () => number;
}

/**
 * Reports older than this many intervals are shown as stale; older than DROP_INTERVALS, left out.
 *
 * A report's age is judged on this process's clock alone where it can be: the time since it arrived, for a
 * report that arrived once the reader had reached the topic's end offset read when its consumer was made (so it
 * was written after that: a live report). Its `at` is the writer's clock: compared with this host's, a skew
 * between the two hosts of 3 intervals (15 s) showed every report of a live process STALE, and `sluice status`
 * exited 3; of 12 intervals, left it out. Only a report read before that (the topic's backlog at start, when its
 * age can only be told from `at`) is judged by `at`, and by no less than the time this process has followed the
 * topic, so a dead process's report ages here whatever the clocks. A report read by a consumer made again (the log
 * was out of reach) that is newer than the one held for its process was written after the last poll before: it is
 * aged from that poll, on this process's clock; aged as backlog, every process whose heartbeat fell in the outage
 * dropped out of /status until its next one, in a process up for longer than DROP_INTERVALS.
 *
 * Not this process's own report coming back: an announcement that cannot be written (no write ACL on the topic,
 * the log down at start) never comes back, and every other process's report, arriving all along, aged from the
 * start until all showed STALE and then were left out.
 */
export const STALE_INTERVALS = 3;
export const DROP_INTERVALS = 12;

export class InstanceDirectory {
  private readonly options: DirectoryOptions;
  private readonly known = new Map<string, InstanceReport>();
  private readonly stop = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private tail: Promise<void> = Promise.resolve();
  /** The announcement under way: close() waits for it, so none comes after the removal (nor after the topic log closed). */
  private announcing: Promise<void> | null = null;
  private last: InstanceReport | null = null;
  /** The announcements failing since the last that succeeded: warned once per streak, not at every heartbeat. */
  private announceFailing = false;
  /**
   * When (clock) each other instance's latest report arrived, for those that arrived once followed live; for one read after the
   * log was out of reach, newer than the report held, the last poll before (it was written after that).
   */
  private readonly arrivedAt = new Map<string, number>();
  /** The offset of the record each report held was read from: a consumer made again reads the topic again, older records too. */
  private readonly readOffset = new Map<string, bigint>();
  private readonly now: () => number;
  private followingSince: number;
  /** When (clock) the last poll that succeeded began: a record none of the polls before it read was written after that. */
  private lastPolledAt: number | undefined;

  constructor(options: DirectoryOptions) {
    this.options = options;
    this.now = options.clock ?? (() => performance.now());
    this.followingSince = this.now();
  }

  start(): void {
    const { log } = this.options;
    if (!log) return;
    const beat = () => {
      this.announcing ??= this.announce().finally(() => (this.announcing = null));
    };
    this.followingSince = this.now();
    beat();
    this.timer = setInterval(beat, this.options.intervalMs);
    this.tail = this.follow(log);
  }

  private async announce(): Promise<void> {
    const { log, id, logger } = this.options;
    try {
      const report = await this.options.report();
      this.last = report;
      this.known.set(id, report);
      await log?.announce(id, JSON.stringify(report));
      if (this.announceFailing) logger.info("announcing this instance works again");
      this.announceFailing = false;
    } catch (error) {
      const err = error instanceof Error ? error.message : String(error);
      if (this.announceFailing) {
        logger.debug({ err }, "announcing this instance failed; retrying at the next heartbeat");
        return;
      }
      this.announceFailing = true;
      logger.warn(
        { err },
        "announcing this instance failed: once its last report is stale, the other processes' /status and 'sluice halted list' leave this process out; retrying at every heartbeat (logged again at debug level until it succeeds)",
      );
    }
  }

  /** Reads every announcement, from the beginning of the compacted topic, until stopped. */
  private async follow(log: AnnouncingLog): Promise<void> {
    const signal = this.stop.signal;
    const group = `${this.options.deployment}.sluice.instances-reader.${randomBytes(5).toString("hex")}`;
    while (!signal.aborted) {
      let consumer: TopicConsumer | null = null;
      try {
        const topic = instancesTopic(this.options.deployment);
        consumer = await log.consumer(group, [topic]);
        // Read again with each consumer, which may read the topic from its beginning again.
        const ends = new Map((await log.endOffsets(topic)).map((end) => [end.partition, end.offset]));
        // A topic that no longer reaches the offsets read (deleted and made again) starts its offsets over.
        if ([...this.readOffset.values()].some((offset) => offset >= (ends.get(0) ?? 0n))) this.readOffset.clear();
        // The last poll of the consumers before this one: a report newer than the one held was written after it.
        const polledBefore = this.lastPolledAt;
        while (!signal.aborted) {
          const pollAt = this.now();
          const records = await consumer.poll({ maxRecords: 1_000, maxBytes: 4 * 2 ** 20, maxWaitMs: 1_000, signal });
          this.lastPolledAt = pollAt;
          for (const record of records) {
            if (!record.key) continue;
            const key = Buffer.from(record.key).toString("utf8");
            if (key === this.options.id) continue;
            // Read before (the consumer started over): the report held, and when it arrived, stand.
            if (record.offset <= (this.readOffset.get(key) ?? -1n)) continue;
            if (record.value === null) {
              this.known.delete(key);
              this.arrivedAt.delete(key);
              this.readOffset.delete(key);
              continue;
            }
            const held = this.readOffset.has(key);
            this.readOffset.set(key, record.offset);
            this.known.set(key, JSON.parse(Buffer.from(record.value).toString("utf8")) as InstanceReport);
            // At or past the end read when the consumer was made: written since, so it arrived now.
            if (record.offset >= (ends.get(record.partition) ?? 0n)) this.arrivedAt.set(key, this.now());
            // Newer than the report held (the log out of reach in between): written after the consumers' last poll before.
            else if (held && polledBefore !== undefined) this.arrivedAt.set(key, polledBefore);
            else this.arrivedAt.delete(key);
          }
        }
      } catch (error) {
        if (signal.aborted) break;
        this.options.logger.debug({ err: error instanceof Error ? error.message : String(error) }, "reading instance announcements failed; retrying");
        await new Promise((resolve) => setTimeout(resolve, 2_000));
      } finally {
        await consumer?.close().catch(() => undefined);
      }
    }
  }

  /**
   * Every instance announced recently, this one first (its report fresh), each with its age and whether it is stale
   * (see STALE_INTERVALS for how the age is told). `now` and `monotonic`: this host's clocks.
   */
  async instances(now = Date.now(), monotonic = this.now()): Promise<(InstanceReport & { ageSeconds: number; stale: boolean; self: boolean })[]> {
    const own = await this.options.report().catch(() => this.last);
    const interval = this.options.intervalMs;
    const ageMs = (report: InstanceReport): number => {
      if (report.id === this.options.id) return Math.max(0, now - report.at);
      const arrived = this.arrivedAt.get(report.id);
      return Math.max(0, arrived !== undefined ? monotonic - arrived : Math.max(now - report.at, monotonic - this.followingSince));
    };
    const others = [...this.known.values()]
      .filter((report) => report.id !== this.options.id && ageMs(report) <= DROP_INTERVALS * interval)
      .sort((a, b) => a.id.localeCompare(b.id));
    return [...(own ? [own] : []), ...others].map((report) => ({
      ...report,
      ageSeconds: ageMs(report) / 1000,
      stale: ageMs(report) > STALE_INTERVALS * interval,
      self: report.id === this.options.id,
    }));
  }

  /** Stops announcing and removes this instance's report. */
  async close(): Promise<void> {
    clearInterval(this.timer);
    this.stop.abort();
    await this.tail;
    await this.announcing;
    await this.options.log?.announce(this.options.id, null).catch(() => undefined);
  }
}
