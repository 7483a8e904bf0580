/**
 * A rebuild runs only where no other process runs its sink. With Kafka, several processes may run
 * one sink (its consumer group), each applying its share of the partitions; each keeps in memory
 * which tables or indexes the sink writes. A rebuild's new generations are known to the process
 * that prepares them: another process's live writes do not reach them (its changes past the
 * rebuild's end offsets would be missing from the swapped-in tables), and after the swap it writes
 * to the tables the swap dropped. Until the processes coordinate a rebuild, it is refused while the
 * sink's group has members of other processes, before it starts and again up to its swap.
 *
 * A command that rebuilds (or abandons a rebuild) with no daemon running joins the group too, as a
 * hold (TopicLog.holdGroup): the others see it, a daemon starting the sink waits for it to leave
 * (sink-runner.ts), and any process joining or leaving the group meanwhile shows as a change of the
 * group, which refuses the swap even when that process is gone again by the swap.
 */
import { SluiceError } from "../connectors/errors.ts";
import type { TopicLog } from "../connectors/contracts.ts";
import { isGoneLocalProcess, localProcessToken, processTokenInText } from "../runtime/local-process.ts";
import type { ProcessToken } from "../runtime/local-process.ts";

export const REBUILD_SINK_SHARED = "REBUILD_SINK_SHARED";

/** Another process in the sink's consumer group, as the group's coordinator tells of it. */
export interface OtherSinkProcess {
  readonly clientId: string;
  readonly host: string;
  /** Its PID, when its client id names its process (runtime/local-process.ts). */
  readonly pid: number | null;
  /** A command's hold on the group (TopicLog.holdGroup): what for (`rebuild`, `abandon`); null for a sink's member. */
  readonly heldFor: string | null;
}

function sameProcess(a: ProcessToken, b: ProcessToken | null): boolean {
  return b !== null && a.pid === b.pid && a.started === b.started && a.boot === b.boot && a.pidNamespace === b.pidNamespace;
}

/**
 * The members of the sink's group (`group`) that are not this process, nor a process of this
 * machine that is gone (killed), whose member only waits to be removed or to time out. `ownMembers`
 * is how many this process has in it (1 when its sink runs here or a command holds the group, else
 * 0): counted off only where a client id does not name its process (not Linux), since all
 * processes' client ids are then alike.
 * The embedded log runs a sink in one process (its lease): none there.
 */
export async function otherSinkProcesses(log: TopicLog, group: string, ownMembers: 0 | 1, goneMembers?: Set<string>): Promise<OtherSinkProcess[]> {
  if (log.kind !== "kafka") return [];
  const activity = await log.groupActivity(group);
  const clients: NonNullable<typeof activity.clients> = activity.clients ?? activity.members.map((member) => ({ clientId: member, host: "", heldFor: null }));
  const here = localProcessToken();
  // A member of a process of this machine that is gone (killed) writes nothing; it stays listed until removed or its session times out.
  const listed = clients.map((client) => ({ ...client, token: processTokenInText(client.clientId) }));
  for (const member of listed) if (member.memberId !== undefined && isGoneLocalProcess(member.token)) goneMembers?.add(member.memberId);
  const members = listed.filter((member) => !isGoneLocalProcess(member.token));
  const others = here === null ? members.slice(ownMembers) : members.filter((member) => !sameProcess(here, member.token));
  return others.map((member) => ({ clientId: member.clientId, host: member.host.replace(/^\//, ""), pid: member.token?.pid ?? null, heldFor: member.heldFor ?? null }));
}

function describeProcess(other: OtherSinkProcess): string {
  const who = other.pid === null ? `Kafka client ${other.clientId}` : `process ${other.pid}`;
  const where = other.host === "" ? who : `${who} on ${other.host}`;
  return other.heldFor === null ? where : `${where}, running sluice replay --${other.heldFor === "abandon" ? "abandon-rebuild" : other.heldFor} on the sink`;
}

/**
 * The refusal (REBUILD_SINK_SHARED): names the other processes and what to do. `rebuild`: a rebuild,
 * with `prepared` once its new tables exist (they are left as an interrupted rebuild: a process
 * that started meanwhile may write into them); `abandon`: dropping an interrupted rebuild's tables,
 * which the others may write into. `others` empty: the group changed during the rebuild (a process
 * joined it and may be gone again).
 */
export function sinkSharedError(sink: string, group: string, others: readonly OtherSinkProcess[], step: "rebuild" | "abandon", prepared = false): SluiceError {
  const who =
    others.length === 0
      ? `a process joined or left sink "${sink}"'s consumer group ${group} while it ran (it may be gone again)`
      : `${others.length === 1 ? `another process runs sink "${sink}"` : `${others.length} other processes run sink "${sink}"`} (consumer group ${group}: ${others.map(describeProcess).join(", ")})`;
  const what = step === "rebuild" ? `rebuild of sink "${sink}"` : `abandoning the interrupted rebuild of sink "${sink}"`;
  const why =
    step === "rebuild"
      ? "Only the process that rebuilds writes its changes into the new tables, and the others would write to the tables the swap drops. "
      : "A process that started while the half-built tables existed writes into them too, and would fail once they are dropped. ";
  const again = step === "rebuild" ? "run the rebuild again (through the one process left, or by this command with none running)" : "run it again";
  const after = prepared
    ? "The live tables are unchanged and keep serving; the half-built new ones are left, since a process that started meanwhile may write into them: the rebuild run again starts them over (or drop them with sluice replay --abandon-rebuild --execute)."
    : "Nothing changed.";
  return new SluiceError(
    `${what} refused${prepared ? " before the swap" : ""}: ${who}. ${why}` +
      `Run it with the sink running in one process at most: stop the sink's other processes (sluice status lists them), ${again}, then start them again. ${after}`,
    { code: REBUILD_SINK_SHARED, context: { component: "rebuild", sink, group, others: others.map((o) => o.clientId).join(", ") } },
  );
}

/**
 * What a rebuild asked of a running sink compares (RebuildOptions.sharing): other processes listed in
 * the group at each look, and (`changed`) a member of another process its consumers saw in the group at
 * a rebalance since the rebuild began (`seenMembers`: SinkRunner.otherGroupMembersSeen), even one gone
 * again by the next look. This process's consumer opened again (a new topic, a retried failure) is no
 * change, nor a member of a process of this machine known gone (killed) that times out.
 */
export function runningSinkSharing(log: TopicLog, group: string, seenMembers: () => ReadonlySet<string>): { group: string; others: () => Promise<OtherSinkProcess[]>; changed: () => boolean } {
  const atStart = new Set(seenMembers());
  const gone = new Set<string>();
  return {
    group,
    others: () => otherSinkProcesses(log, group, 1, gone),
    changed: () => [...seenMembers()].some((member) => !atStart.has(member) && !gone.has(member)),
  };
}

/** The holds of other processes' commands on the sink's group (a daemon starting the sink waits for them to leave). */
export async function otherHolds(log: TopicLog, group: string): Promise<OtherSinkProcess[]> {
  return (await otherSinkProcesses(log, group, 0)).filter((other) => other.heldFor !== null);
}

export function describeHolds(holds: readonly OtherSinkProcess[]): string {
  return holds.map(describeProcess).join(", ");
}
