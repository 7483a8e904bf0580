/**
 * Capture under a lease: several processes may run capture for the same sources; the one holding
 * the lease captures, the others stand by (ready, capturing nothing, writing nothing) and take
 * over when it dies, freezes or loses its network. Each term of leadership starts capture afresh
 * from the last durable checkpoint and ends when the lease is lost or the topic log fences this
 * process (another process took the capture's transactional id: it leads now). A fenced process
 * leaves the lease's group and joins again as the newest candidate, so it never takes the lease
 * back by claiming a term it has lost.
 */
import { isRetriable, SluiceError } from "../connectors/errors.ts";
import { MYSQL_REPLICA_REPLACED } from "../connectors/mysql/mysql-errors.ts";
import { backoffDelay, sleep } from "../runtime/backoff.ts";
import type { Logger } from "../runtime/logger.ts";

/** Backoff between terms that failed on an outage (e.g. Kafka unavailable while the term opened its registry). */
const TERM_RETRY = { initialMs: 500, maxMs: 30_000 };

export interface LeaseHandle {
  held(): boolean;
  /** Whether this candidacy saw the lease given to another candidate (it stood by behind a leader). */
  stoodBy?(): boolean;
  start(): Promise<void>;
  close(): Promise<void>;
}

export type CaptureRole = "leader" | "standby";

export interface LeadershipOptions {
  /** A new candidacy; `onChange` tells when the lease is granted or lost. */
  newLease(onChange: (held: boolean) => void): LeaseHandle;
  /** Captures until `signal` aborts (the term ended) or fails. */
  lead(signal: AbortSignal): Promise<void>;
  /** Called when a term starts, before `lead`: e.g. take the source's replication slot from a frozen former leader. */
  beforeLead?(signal: AbortSignal): Promise<void>;
  readonly logger: Logger;
}

/**
 * Another process leads now: the topic log fenced this one, or the source ended its stream for a
 * newer reader (MariaDB/MySQL: a binlog dump with the same server_id, the new leader's, which can
 * come first when a frozen leader wakes up).
 */
function isFenced(error: unknown): error is SluiceError {
  return error instanceof SluiceError && (error.code === "KAFKA_PRODUCER_FENCED" || error.code === MYSQL_REPLICA_REPLACED);
}

export class CaptureLeadership {
  private readonly options: LeadershipOptions;
  private lease: LeaseHandle | null = null;
  /** The candidacy join() started, until run() takes it. */
  private candidacy: Promise<void> | null = null;
  private wake: (() => void) | null = null;
  private term: AbortController | null = null;
  private roleNow: CaptureRole = "standby";
  private standbySince = Date.now();
  /** Terms led so far. */
  terms = 0;
  /** This process stood by while another led (its lease given to another candidate, or lost or fenced after a term). */
  private stoodBehind = false;
  /** The term under way took capture over from another process (see takingOver). */
  private termTakesOver = false;

  constructor(options: LeadershipOptions) {
    this.options = options;
  }

  role(): CaptureRole {
    return this.roleNow;
  }

  /**
   * Whether the term under way takes capture over from another process: this process stood by behind another leader
   * before it. False for the process's first start leading at once, whose refused source login is a config error told
   * at once; a takeover waits such a refusal out (a password rotation half done: the server and this process's
   * password_file do not agree yet), as a leader that connected before does.
   */
  takingOver(): boolean {
    return this.termTakesOver;
  }

  /**
   * Stands as a candidate now, before run(): joining the lease's group waits for the group's
   * coordinator (a group with no members waits the broker's group.initial.rebalance.delay.ms, 3 s
   * by default), and that wait overlaps the rest of the start. No term starts before run(); a lease
   * granted meanwhile is led at once when run() starts. close() ends a candidacy run() never took.
   */
  join(): void {
    if (this.candidacy || this.lease) return;
    this.candidacy = this.candidate();
    this.candidacy.catch(() => undefined);
  }

  /** Leaves the lease's group (a candidacy of join() that run() never took; run() leaves it itself when it ends). */
  async close(): Promise<void> {
    await this.candidacy?.catch(() => undefined);
    this.candidacy = null;
    const lease = this.lease;
    this.lease = null;
    await lease?.close();
  }

  /** Runs terms until `stop` aborts; rejects only on a failure that is not a lost lease or a fencing. */
  async run(stop: AbortSignal): Promise<void> {
    // Stopped before it ran (a signal while starting): no candidacy; the stop leaves one join() made (close()).
    if (stop.aborted) return;
    const { logger } = this.options;
    const onStop = () => {
      this.term?.abort(new Error("stopping"));
      this.wake?.();
    };
    stop.addEventListener("abort", onStop, { once: true });
    let failedTerms = 0;
    try {
      const joined = this.candidacy;
      this.candidacy = null;
      await (joined ?? this.candidate());
      while (!stop.aborted) {
        if (!this.lease?.held()) {
          await new Promise<void>((resolve) => (this.wake = resolve));
          this.wake = null;
          continue;
        }
        const term = (this.term = new AbortController());
        if (this.lease.stoodBy?.() === true) this.stoodBehind = true;
        this.termTakesOver = this.stoodBehind;
        this.roleNow = "leader";
        this.terms++;
        logger.info({ waitedMs: Date.now() - this.standbySince, term: this.terms }, "capture lease held: this process leads the capture now, from the last durable checkpoint");
        let fenced = false;
        let outage = false;
        try {
          await this.options.beforeLead?.(term.signal);
          await this.options.lead(term.signal);
          failedTerms = 0;
        } catch (error) {
          if (isFenced(error)) {
            fenced = true;
            logger.warn({ err: error.toLog() }, "capture fenced: another process leads the capture now (it registered the capture's transactional id, or took over the source's binlog stream); standing by");
          } else if (isRetriable(error) && !stop.aborted) {
            // An outage is waited out: the next term starts again from the last durable checkpoint.
            outage = true;
            const delayMs = backoffDelay(TERM_RETRY, failedTerms++);
            logger.warn({ err: error instanceof SluiceError ? error.toLog() : String(error), delayMs }, `capture term failed on an outage; leading again in ${delayMs} ms`);
            await sleep(delayMs, stop).catch(() => undefined);
          } else {
            throw error;
          }
        } finally {
          this.term = null;
          this.termTakesOver = false;
          this.roleNow = "standby";
          this.standbySince = Date.now();
        }
        if (stop.aborted) break;
        if (outage) continue;
        // Fenced or the lease lost: another process leads now, so a term this one leads again takes over from it.
        this.stoodBehind = true;
        if (fenced || this.lease?.held()) {
          // A term that ended while the lease still looks held was fenced: join again as the newest candidate.
          await this.lease?.close();
          await this.candidate();
        } else {
          logger.warn("capture lease lost: another process takes over the capture; standing by");
        }
      }
    } finally {
      stop.removeEventListener("abort", onStop);
      this.roleNow = "standby";
      await this.lease?.close();
      this.lease = null;
    }
  }

  private async candidate(): Promise<void> {
    const lease = this.options.newLease((held) => {
      if (lease !== this.lease) return;
      if (!held) this.term?.abort(new Error("capture lease lost"));
      this.wake?.();
    });
    this.lease = lease;
    await lease.start();
  }
}
