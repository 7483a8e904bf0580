/**
 * A consumer's own member ids kept while no rebuild watches its group (TopicConsumer.keepGroupMembersSeen):
 * a closed member whose leave failed stays in the group until its session times out, and must still be
 * told from another process's then; older ones are gone from the group.
 */
export const RECENT_OWN_MEMBERS = 16;

/** Drops a set's oldest entries (in insertion order) beyond `count`. */
export function keepNewest(set: Set<string>, count: number): void {
  for (const member of set) {
    if (set.size <= count) return;
    set.delete(member);
  }
}
