/**
 * Removes from a consumer group the members of processes known to be gone, before a process joins
 * it: a process restarted after kill -9 would otherwise wait for its predecessor's session to time
 * out (the group's coordinator holds a rebalance until every member rejoined or timed out, and
 * the capture lease stays with a dead holder that long). Which members are gone is the caller's
 * judgement on what the coordinator tells of a member (runtime/local-process.ts: its client id names
 * a process of this machine that no longer runs; its metadata is told only while the group is
 * stable, and a process killed while it joined leaves it rebalancing, or a member id the capture lease
 * remembers of its own failed consumer); a member of another process that runs, frozen or elsewhere,
 * is never removed.
 *
 * Best effort: any failure leaves the group as it was, and the session timeout does the same later.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Broker, Kafka } from "kafkajs";
import type { Logger } from "../../runtime/logger.ts";
import { clusterFactory } from "./partition-reader.ts";

export interface GroupMember {
  readonly memberId: string;
  readonly clientId: string;
  readonly clientHost: string;
  readonly memberMetadata: Buffer;
}

/** kafkajs's broker has LeaveGroup (untyped in kafkajs 2.2): by member id, which any client may send for any member (a pending one too). */
interface CoordinatorBroker extends Broker {
  leaveGroup(request: { groupId: string; memberId: string }): Promise<unknown>;
}

/** The part of kafkajs's (private) cluster this needs. */
interface CoordinatorCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  findGroupCoordinator(group: { groupId: string }): Promise<Broker>;
}

const READ_COMMITTED = 1;

/**
 * How many looks a caller that knows its own former members of the group makes (a broker just back: its coordinator
 * may still load the group, and a join made without removing them waits out their sessions).
 */
export const FORMER_MEMBER_LOOKS = 4;

/** Between looks at the group when `attempts` allows more than one (a broker just started: its coordinator still loading). */
const LOOK_AGAIN_MS = [250, 500, 1_000, 2_000];

/**
 * Returns the member ids removed. `attempts` (default 1): how many times to look when a look fails, for a caller that
 * knows members to remove (its own failed consumers'), whose next join would otherwise wait out their sessions.
 */
export async function removeGoneMembers(kafka: Kafka, group: string, isGone: (member: GroupMember) => boolean, logger: Logger, attempts = 1): Promise<string[]> {
  for (let attempt = 1; ; attempt++) {
    const removed = await removeOnce(kafka, group, isGone, logger, attempt >= attempts);
    if (removed !== null) return removed;
    await sleep(LOOK_AGAIN_MS[Math.min(attempt, LOOK_AGAIN_MS.length) - 1]!);
  }
}

/** Null when the look failed and `last` is false (it is then logged only when `last`, returning []). */
async function removeOnce(kafka: Kafka, group: string, isGone: (member: GroupMember) => boolean, logger: Logger, last: boolean): Promise<string[] | null> {
  const cluster = clusterFactory(kafka)({ allowAutoTopicCreation: false, isolationLevel: READ_COMMITTED }) as unknown as CoordinatorCluster;
  const removed: string[] = [];
  try {
    await cluster.connect();
    const coordinator = (await cluster.findGroupCoordinator({ groupId: group })) as CoordinatorBroker;
    const described = (await coordinator.describeGroups({ groupIds: [group] })) as { groups: { members: GroupMember[] }[] };
    for (const member of described.groups[0]?.members ?? []) {
      if (!isGone(member)) continue;
      await coordinator.leaveGroup({ groupId: group, memberId: member.memberId });
      removed.push(member.memberId);
    }
    if (removed.length > 0) logger.info({ group, members: removed }, "removed the group members of processes on this machine that are gone (killed), or of this process's failed consumers, instead of waiting for their sessions to time out");
  } catch (error) {
    if (!last) return null;
    logger.warn({ group, err: String(error) }, "looking for group members of gone processes failed; a gone member leaves when its session times out");
  } finally {
    await cluster.disconnect().catch(() => undefined);
  }
  return removed;
}
