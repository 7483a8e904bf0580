/**
 * A hold on a sink's consumer group: a member that reads nothing, joined by a command that works
 * on the sink without running it (`sluice replay --rebuild` or `--abandon-rebuild` with no daemon),
 * so that every process looking at the group sees the command as one of the sink's processes, and
 * a daemon about to start the sink can tell it apart (its client id says what it holds for).
 *
 * It subscribes to the never-written capture-lease topic, and to the topics the group keeps offsets
 * of (`keptTopics`, paused as it joins: nothing of them is fetched), since a stable group's offsets of
 * topics no member subscribes to expire; it commits nothing. Should a sink process join meanwhile,
 * each member drops the partitions of topics it did not subscribe to (kafkajs). Every member joining or leaving the group makes the coordinator rebalance, which the
 * hold sees as a join of its own: `changed()` tells a command that the group's membership changed
 * since it joined, even when the process that joined is gone again by the time it looks.
 */
import type { Consumer, Kafka } from "kafkajs";
import type { GroupHold } from "../topics/contract.ts";
import type { Logger } from "../../runtime/logger.ts";
import { kafkaSessionTimeoutMs } from "./kafka-consumer.ts";
import { kafkaError } from "./kafka-errors.ts";

/** The client id part that marks a hold, and its purpose: `<client_id>.hold-<purpose>[.<process token>]`. */
const HOLD_PATTERN = /\.hold-([a-z]+)(?:\.p\d+s\d+n\d+b[0-9a-f-]+)?$/;

export function holdClientIdPart(purpose: string): string {
  if (!/^[a-z]+$/.test(purpose)) throw new TypeError(`a hold's purpose is lowercase letters: ${purpose}`);
  return `hold-${purpose}`;
}

/** What a group member holds the group for, when its client id marks a hold (else null). */
export function holdPurpose(clientId: string): string | null {
  return HOLD_PATTERN.exec(clientId)?.[1] ?? null;
}

export interface GroupHoldOptions {
  /** A client of its own, whose client id carries holdClientIdPart (and ends with this process's token where there is one). */
  readonly kafka: Kafka;
  readonly group: string;
  /** A topic that exists and is never written. */
  readonly topic: string;
  /** Topics the group has offsets of (they must exist): subscribed too, paused, so the coordinator keeps their offsets. */
  readonly keptTopics?: readonly string[];
  readonly brokers: readonly string[];
  readonly logger: Logger;
  /** How long to wait for the first assignment. */
  readonly joinTimeoutMs?: number;
}

export class KafkaGroupHold implements GroupHold {
  private readonly consumer: Consumer;
  private joins = 0;
  private lost = false;

  private constructor(consumer: Consumer) {
    this.consumer = consumer;
  }

  /** Joins the group; resolves once the coordinator assigned this member (it is then listed to everyone). */
  static async join(options: GroupHoldOptions): Promise<KafkaGroupHold> {
    const sessionTimeout = kafkaSessionTimeoutMs();
    const consumer = options.kafka.consumer({
      groupId: options.group,
      sessionTimeout,
      heartbeatInterval: Math.min(3_000, Math.floor(sessionTimeout / 5)),
      maxBytes: 64 * 1024,
      maxBytesPerPartition: 64 * 1024,
      maxWaitTimeInMs: 500,
      allowAutoTopicCreation: false,
      retry: { retries: 5, initialRetryTime: 200, maxRetryTime: 2_000, restartOnFailure: async () => false },
    });
    const hold = new KafkaGroupHold(consumer);
    let joined!: () => void;
    let failed!: (error: unknown) => void;
    const first = new Promise<void>((resolve, reject) => ((joined = resolve), (failed = reject)));
    const kept = (options.keptTopics ?? []).filter((topic) => topic !== options.topic);
    consumer.on(consumer.events.GROUP_JOIN, () => {
      // Emitted as the join completes, before kafkajs fetches anything: a fetch at a kept offset out of the
      // partition's range would have kafkajs reset the group's offset by committing -2 (earliest). A whole topic
      // paused stays paused whatever the group assigns later (and a batch of a paused partition is skipped).
      if (kept.length > 0) consumer.pause(kept.map((topic) => ({ topic })));
      hold.joins++;
      joined();
    });
    consumer.on(consumer.events.CRASH, (event) => {
      hold.lost = true;
      options.logger.warn({ group: options.group, err: String(event.payload.error) }, "the command's member of the sink's group failed: it no longer holds the group");
      failed(event.payload.error);
    });
    const timeoutMs = options.joinTimeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await consumer.connect();
      await consumer.subscribe({ topics: [options.topic, ...kept], fromBeginning: false });
      await consumer.run({ autoCommit: false, eachBatchAutoResolve: false, eachBatch: async ({ pause }) => void pause() });
      await Promise.race([
        first,
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no assignment from group ${options.group} within ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
    } catch (error) {
      await consumer.disconnect().catch(() => undefined);
      throw kafkaError(error, `join consumer group ${options.group}`, options.brokers);
    } finally {
      clearTimeout(timer);
    }
    return hold;
  }

  /** The group rebalanced since this member joined (a process joined or left it), or this member lost its place in it. */
  changed(): boolean {
    return this.lost || this.joins > 1;
  }

  /** Leaves the group at once. */
  async close(): Promise<void> {
    await this.consumer.disconnect().catch(() => undefined);
  }
}
