/**
 * The members of a consumer group one member saw at its joins (every rebalance is one): its own
 * member ids, and the others. The generation's leader is given every member by the coordinator (it
 * assigns the partitions): when this member leads, it sees them all; when another one leads, it sees
 * that leader, which is another member. A process that joins the group and leaves it again is thus
 * seen by a member that stayed in the group meanwhile, whichever of them led; its own consumer opened
 * again (a new member id) or a gone member timing out adds no one.
 */
import kafkajs from "kafkajs";
import type { Assigner, PartitionAssigner } from "kafkajs";
import { keepNewest, RECENT_OWN_MEMBERS } from "../topics/recent-members.ts";

export interface GroupJoin {
  readonly memberId: string;
  readonly leaderId: string;
  readonly isLeader: boolean;
}

export class GroupMembersSeen {
  private readonly own = new Set<string>();
  private readonly seen = new Set<string>();
  /** The members the last assignment this member made (as leader) was for. */
  private assigned: readonly string[] = [];
  /** What the last join saw. */
  private lastSeen: readonly string[] = [];
  /**
   * Whether every join's members are kept (a rebuild watches the group), or only the last join's
   * (and the recent own member ids): otherwise each member id that ever joined (every restart of a
   * peer) would be kept for the process's life. Keeping from the start: a watcher may be waiting.
   */
  private keeping = true;

  /** kafkajs's own assigner (round robin, the same protocol name), telling this of the members it assigns to. */
  readonly assigner: PartitionAssigner = (config) => {
    const inner: Assigner = kafkajs.PartitionAssigners.roundRobin(config);
    return {
      name: inner.name,
      version: inner.version,
      protocol: (subscription) => inner.protocol(subscription),
      assign: async (group) => {
        this.assigned = group.members.map((member) => member.memberId);
        return inner.assign(group);
      },
    };
  };

  /** At each join (kafkajs GROUP_JOIN, emitted after the assignment a leader made). */
  joined(join: GroupJoin): void {
    this.own.delete(join.memberId);
    this.own.add(join.memberId);
    this.lastSeen = join.isLeader ? this.assigned : [join.leaderId];
    this.assigned = [];
    if (!this.keeping) this.seen.clear();
    for (const member of this.lastSeen) this.seen.add(member);
    if (!this.keeping) keepNewest(this.own, RECENT_OWN_MEMBERS);
  }

  /** Keep every join's members from now on (true), or from now only the last join's (false: forgets the rest). */
  keep(keeping: boolean): void {
    this.keeping = keeping;
    if (keeping) return;
    this.seen.clear();
    for (const member of this.lastSeen) this.seen.add(member);
    keepNewest(this.own, RECENT_OWN_MEMBERS);
  }

  /** Member ids this member has had (one per membership: a member that lost its place joins with a new one). */
  ownMembers(): readonly string[] {
    return [...this.own];
  }

  /** Every member id seen at its joins, its own included. */
  members(): readonly string[] {
    return [...this.seen];
  }
}
