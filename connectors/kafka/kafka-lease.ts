/**
 * A lease held through a Kafka consumer group: every candidate joins the group `group` on a
 * one-partition topic, and the member the group assigns that partition holds the lease. Kafka's
 * group coordinator decides liveness: a holder that dies (kill -9), freezes (SIGSTOP) or loses its
 * network stops heartbeating and is removed after `sessionTimeoutMs`, and the partition (the lease)
 * goes to another member. The assignment is sticky: the current holder keeps it when members join
 * or leave, and only when there is none goes it to the longest-waiting candidate.
 *
 * A lease alone does not stop a frozen former holder from acting once it wakes up before it learns
 * it lost: what it guards must also be fenced (capture: Kafka's transactional id, which the new
 * holder initialises, so the former holder's next transaction is refused).
 */
import { randomBytes } from "node:crypto";
import kafkajs from "kafkajs";
import type { Assigner, Consumer, Kafka } from "kafkajs";
import type { Logger } from "../../runtime/logger.ts";
import { isGoneLocalProcess, processTokenInText } from "../../runtime/local-process.ts";
import { FORMER_MEMBER_LOOKS, removeGoneMembers } from "./gone-members.ts";

const { AssignerProtocol } = kafkajs;

export interface KafkaLeaseOptions {
  /** The lease's own client, whose client id ends with its process (runtime/local-process.ts processTokenText). */
  readonly kafka: Kafka;
  /** The consumer group: one per thing leased. */
  readonly group: string;
  /** A one-partition topic the group subscribes to (its records are never read). */
  readonly topic: string;
  /** This candidate, for logs and /status. */
  readonly holder: string;
  readonly sessionTimeoutMs: number;
  readonly logger: Logger;
  /** The lease was granted (true) or lost (false). */
  readonly onChange: (held: boolean) => void;
}

interface Candidate {
  readonly holding: boolean;
  /** When this candidate joined (the longest waiting gets a free lease). */
  readonly since: number;
  /** When it was granted the lease it claims (0 when it claims none). */
  readonly heldSince?: number;
  readonly holder: string;
}

const ASSIGNER = "SluiceStickyLease";

/**
 * The member to hold the lease: the one holding it now, else the longest waiting. Should two claim
 * it (a frozen former holder woke up and rejoined before it learned it lost), the latest grant wins:
 * the former holder's claim is older than its successor's.
 */
export function chooseHolder(members: readonly { memberId: string; candidate: Candidate | null }[]): string | undefined {
  const ranked = [...members].sort((a, b) => {
    const [x, y] = [a.candidate, b.candidate];
    if (Boolean(x?.holding) !== Boolean(y?.holding)) return x?.holding ? -1 : 1;
    if (x?.holding && y?.holding && (x.heldSince ?? 0) !== (y.heldSince ?? 0)) return (y.heldSince ?? 0) - (x.heldSince ?? 0);
    const since = (x?.since ?? Number.MAX_SAFE_INTEGER) - (y?.since ?? Number.MAX_SAFE_INTEGER);
    return since !== 0 ? since : a.memberId < b.memberId ? -1 : 1;
  });
  return ranked[0]?.memberId;
}

function decodeCandidate(metadata: Buffer): Candidate | null {
  try {
    const userData = AssignerProtocol.MemberMetadata.decode(metadata)?.userData;
    if (!userData || userData.length === 0) return null;
    return JSON.parse(userData.toString("utf8")) as Candidate;
  } catch {
    return null;
  }
}

export class KafkaLease {
  private readonly options: KafkaLeaseOptions;
  private readonly since = Date.now();
  private consumer: Consumer | null = null;
  private holding = false;
  private heldSince = 0;
  private closed = false;
  /** The attempt to join under way (see close()). */
  private joining: Promise<void> | null = null;
  /** The group member of this lease's running consumer, once it joined. */
  private memberId: string | null = null;
  /**
   * Members of this lease's failed consumers, which may still be in the group: a member whose
   * leave failed (its broker restarting, the coordinator loading) stays until its session times
   * out, and the coordinator holds the next join's rebalance that long. Removed before rejoining.
   */
  private readonly formerMembers = new Set<string>();
  /** Another process's member was in the group, or a join gave the lease to another member (stoodBy). */
  private behindAnother = false;

  constructor(options: KafkaLeaseOptions) {
    this.options = options;
  }

  held(): boolean {
    return this.holding;
  }

  /**
   * Whether this candidate stood by behind another process: its look at the group before joining found another
   * process's member (a holder alive, or one killed on this machine, removed), or a group join gave the lease to another.
   */
  stoodBy(): boolean {
    return this.behindAnother;
  }

  /** Joins the group (again after a failure, until closed). */
  async start(): Promise<void> {
    if (this.closed) return;
    const attempt = this.join();
    this.joining = attempt;
    try {
      await attempt;
    } finally {
      if (this.joining === attempt) this.joining = null;
    }
  }

  private async join(): Promise<void> {
    const { kafka, group, topic, holder, sessionTimeoutMs, logger } = this.options;
    const assigner: Assigner = {
      name: ASSIGNER,
      version: 1,
      assign: async ({ members }) => {
        const chosen = chooseHolder(members.map((m) => ({ memberId: m.memberId, candidate: decodeCandidate(m.memberMetadata) })));
        return members.map((m) => ({
          memberId: m.memberId,
          memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 1, assignment: m.memberId === chosen ? { [topic]: [0] } : {}, userData: Buffer.alloc(0) }),
        }));
      },
      protocol: ({ topics }) => ({
        name: ASSIGNER,
        metadata: AssignerProtocol.MemberMetadata.encode({ version: 1, topics, userData: Buffer.from(JSON.stringify({ holding: this.holding, since: this.since, heldSince: this.heldSince, holder } satisfies Candidate)) }),
      }),
    };
    const consumer = kafka.consumer({
      groupId: group,
      sessionTimeout: sessionTimeoutMs,
      rebalanceTimeout: sessionTimeoutMs,
      heartbeatInterval: Math.max(200, Math.floor(sessionTimeoutMs / 6)),
      maxWaitTimeInMs: Math.max(100, Math.floor(sessionTimeoutMs / 6)),
      partitionAssigners: [() => assigner],
      retry: { retries: 3, initialRetryTime: 200, maxRetryTime: 2_000, restartOnFailure: async () => false },
    });
    this.consumer = consumer;
    consumer.on(consumer.events.GROUP_JOIN, (event) => {
      // A rebalance completes once every member rejoined or left: the former members are gone.
      this.formerMembers.clear();
      this.memberId = event.payload.memberId;
      const assigned = (event.payload.memberAssignment[topic] ?? []).includes(0);
      if (!assigned) this.behindAnother = true;
      this.set(assigned);
    });
    // A rebalance alone changes nothing: the holder claims the lease in its metadata and keeps it while it is a member.
    consumer.on(consumer.events.CRASH, (event) => {
      logger.warn({ group, err: String(event.payload.error) }, "capture lease: the group member failed; joining again");
      this.set(false);
      void this.restart(consumer);
    });
    try {
      // A killed holder on this machine (this process before a restart) would keep the lease until its session times out.
      // Its client id tells its process (kafka-log.ts), in any state of the group (a member's metadata only once it is stable).
      // So would this lease's own member from before its consumer failed: then a failed look (Kafka just back, its
      // coordinator loading the group) is made again rather than joining behind that member.
      const attempts = this.formerMembers.size > 0 ? FORMER_MEMBER_LOOKS : 1;
      const removed = await removeGoneMembers(
        kafka,
        group,
        (member) => {
          const own = this.formerMembers.has(member.memberId);
          // Another process is a candidate, or was one until it was killed on this machine: it holds, or held, the lease.
          if (!own) this.behindAnother = true;
          return own || isGoneLocalProcess(processTokenInText(member.clientId));
        },
        logger,
        attempts,
      );
      for (const memberId of removed) this.formerMembers.delete(memberId);
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: false });
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: true, eachBatch: async () => undefined });
    } catch (error) {
      logger.warn({ group, err: String(error) }, "capture lease: joining the group failed; retrying");
      await this.restart(consumer);
    }
  }

  private async restart(consumer: Consumer): Promise<void> {
    if (this.consumer === consumer && this.memberId !== null) this.formerMembers.add(this.memberId);
    this.memberId = null;
    await consumer.disconnect().catch(() => undefined);
    if (this.closed || this.consumer !== consumer) return;
    this.consumer = null;
    await new Promise((resolve) => setTimeout(resolve, 1_000 + Math.floor(Math.random() * 500)));
    await this.start();
  }

  private set(held: boolean): void {
    if (held === this.holding) return;
    this.holding = held;
    this.heldSince = held ? Date.now() : 0;
    this.options.onChange(held);
  }

  /** Leaves the group at once, so another candidate takes over without waiting for the session timeout. */
  async close(): Promise<void> {
    this.closed = true;
    // A kafkajs consumer disconnected while it joins its group forgets that join, which then runs on and holds the process open: it ends first.
    await this.joining?.catch(() => undefined);
    const consumer = this.consumer;
    this.consumer = null;
    this.set(false);
    await consumer?.disconnect().catch(() => undefined);
  }
}

/** A candidate's name in logs: host, process id and a random part. */
export function leaseHolderName(host: string, pid: number): string {
  return `${host}:${pid}:${randomBytes(3).toString("hex")}`;
}
