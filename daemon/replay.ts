/**
 * Replay: move a sink's consumer group back (or forward) so it re-reads its topics. Planning reads
 * only; executing overwrites the group's committed offsets, and is refused while the sink runs.
 *
 *   sluice replay --sink NAME --from-beginning | --from-time ISO8601 | --from-offset T:P:O [--execute]
 */
import { parseArgs } from "node:util";
import type { SluiceConfig } from "../config/schema.ts";
import { SluiceError } from "../connectors/errors.ts";
import type { TopicLog } from "../connectors/topics/contract.ts";
import { sinkGroup } from "../connectors/topics/names.ts";
import { sinkTopics } from "./sink-components.ts";
import { lostTopicPolicyOf, openTopicLogForCommand } from "../connectors/topics/open.ts";
import { createLogger } from "../runtime/logger.ts";
import type { Logger } from "../runtime/logger.ts";

export type ReplayTarget =
  | { readonly kind: "beginning" }
  | { readonly kind: "time"; readonly ms: number }
  | { readonly kind: "offset"; readonly topic: string; readonly partition: number; readonly offset: bigint };

export interface ReplayPartition {
  readonly topic: string;
  readonly partition: number;
  /** The group's committed offset now; null when it never committed. */
  readonly current: bigint | null;
  readonly target: bigint;
}

export interface ReplayPlan {
  readonly group: string;
  readonly target: ReplayTarget;
  readonly partitions: readonly ReplayPartition[];
}

/** What the group would be moved to, per partition; changes nothing. */
export async function planReplay(log: TopicLog, group: string, topics: readonly string[], target: ReplayTarget): Promise<ReplayPlan> {
  const committed = await log.committedOffsets(group);
  const currentOf = (topic: string, partition: number) => committed.find((c) => c.topic === topic && c.partition === partition)?.offset ?? null;
  const partitions: ReplayPartition[] = [];
  if (target.kind === "offset") {
    if (!topics.includes(target.topic)) throw replayError(`topic "${target.topic}" is not read by group "${group}"; its topics: ${topics.join(", ") || "(none)"}`, "REPLAY_UNKNOWN_TOPIC");
    const range = (await log.partitionOffsets(target.topic)).find((r) => r.partition === target.partition);
    if (!range) throw replayError(`topic "${target.topic}" has no partition ${target.partition}`, "REPLAY_UNKNOWN_PARTITION");
    if (target.offset < range.start || target.offset > range.end) {
      throw replayError(`offset ${target.offset} is outside ${target.topic}:${target.partition}, which holds offsets ${range.start} to ${range.end} (end)`, "REPLAY_OFFSET_OUT_OF_RANGE");
    }
    partitions.push({ topic: target.topic, partition: target.partition, current: currentOf(target.topic, target.partition), target: target.offset });
    return { group, target, partitions };
  }
  for (const topic of topics) {
    const targets = target.kind === "beginning"
      ? (await log.partitionOffsets(topic)).map((r) => ({ partition: r.partition, offset: r.start }))
      : await log.offsetsForTimestamp(topic, target.ms);
    for (const t of targets) partitions.push({ topic, partition: t.partition, current: currentOf(topic, t.partition), target: t.offset });
  }
  return { group, target, partitions };
}

/**
 * Moves the group's committed offsets to the plan's targets. Refused (REPLAY_SINK_RUNNING) while
 * another process runs the group; holds the group's lease meanwhile so the sink cannot start halfway.
 */
export async function executeReplay(log: TopicLog, plan: ReplayPlan, owner = `sluice replay (pid ${process.pid})`): Promise<void> {
  if (!(await log.acquireLease(plan.group, owner, 60_000))) throw runningError(plan.group, (await log.groupActivity(plan.group)).members);
  try {
    const activity = await log.groupActivity(plan.group);
    const others = activity.members.filter((member) => member !== owner);
    if (activity.active && others.length > 0) throw runningError(plan.group, others);
    const offsets = plan.partitions.map((p) => ({ topic: p.topic, partition: p.partition, offset: p.target }));
    await log.setCommittedOffsets(plan.group, offsets);
    // Sinks that keep offsets in their target resume from those, unless a replay asked otherwise.
    await log.setCommittedOffsets(replayMarkerGroup(plan.group), offsets);
  } finally {
    await log.releaseLease(plan.group, owner);
  }
}

/** Where `executeReplay` records the offsets it set, so a sink can tell a replay from its own progress. */
export function replayMarkerGroup(group: string): string {
  return `${group}.replay`;
}

function replayError(message: string, code: string): SluiceError {
  return new SluiceError(message, { code, context: { component: "replay" } });
}

function runningError(group: string, members: readonly string[]): SluiceError {
  return new SluiceError(`the sink is running (consumer group "${group}" has active members: ${members.join(", ")}); stop it, then run the replay again`, {
    code: "REPLAY_SINK_RUNNING",
    context: { component: "replay", group },
  });
}

export function formatPlan(plan: ReplayPlan): string {
  const rows = plan.partitions.map((p) => {
    const change = p.current === null ? "from start" : p.target <= p.current ? `replay ${p.current - p.target}` : `skip ${p.target - p.current}`;
    return [p.topic, String(p.partition), p.current === null ? "-" : p.current.toString(), p.target.toString(), change];
  });
  const header = ["TOPIC", "PARTITION", "COMMITTED", "TARGET", "CHANGE"];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()).join("\n") + "\n";
}

function describeTarget(target: ReplayTarget): string {
  switch (target.kind) {
    case "beginning":
      return "the beginning";
    case "time":
      return new Date(target.ms).toISOString();
    case "offset":
      return `offset ${target.offset} of ${target.topic}:${target.partition}`;
  }
}

// As `sluice replay --help` gives it (daemon/cli.ts): the rebuild forms are handled before this module.
const USAGE = "sluice replay -c FILE --sink NAME (--from-beginning [--rebuild [--table T]...] | --from-time ISO8601 | --from-offset TOPIC:PARTITION:OFFSET | --abandon-rebuild [--table T]...) [--execute]";

export interface ReplayIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

class UsageError extends Error {}

interface ReplayArgs {
  sink: string;
  target: ReplayTarget;
  execute: boolean;
}

function parseReplayArgs(args: string[]): ReplayArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args,
      options: {
        sink: { type: "string" },
        "from-beginning": { type: "boolean" },
        "from-time": { type: "string" },
        "from-offset": { type: "string" },
        execute: { type: "boolean" },
        config: { type: "string", short: "c" },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  const sink = values["sink"];
  if (typeof sink !== "string" || sink === "") throw new UsageError("missing --sink NAME");
  const chosen = ["from-beginning", "from-time", "from-offset"].filter((k) => values[k] !== undefined);
  if (chosen.length !== 1) throw new UsageError(chosen.length === 0 ? "say where to replay from: --from-beginning, --from-time or --from-offset" : `choose one of ${chosen.map((c) => `--${c}`).join(", ")}`);
  return { sink, target: parseTarget(values), execute: values["execute"] === true };
}

function parseTarget(values: Record<string, string | boolean | undefined>): ReplayTarget {
  if (values["from-beginning"]) return { kind: "beginning" };
  const time = values["from-time"];
  if (typeof time === "string") {
    const ms = /^\d{4}-\d{2}-\d{2}/.test(time) ? Date.parse(time) : NaN;
    if (Number.isNaN(ms)) throw new UsageError(`--from-time "${time}" is not an ISO 8601 time such as 2024-05-01T12:00:00Z`);
    // Date.parse rolls a day past the month's end over (2024-02-30 is March 1st): a later start than meant skips records.
    const [year, month, day] = time.slice(0, 10).split("-").map(Number) as [number, number, number];
    const civil = new Date(Date.UTC(year, month - 1, day));
    if (civil.getUTCMonth() !== month - 1 || civil.getUTCDate() !== day) throw new UsageError(`--from-time "${time}" is no date: ${time.slice(0, 7)} has no day ${day}`);
    return { kind: "time", ms };
  }
  const spec = String(values["from-offset"]);
  const match = /^(.+):(\d+):(\d+)$/.exec(spec);
  if (!match) throw new UsageError(`--from-offset "${spec}" is not TOPIC:PARTITION:OFFSET (e.g. shop.pg.public.orders:0:1200)`);
  return { kind: "offset", topic: match[1]!, partition: Number(match[2]), offset: BigInt(match[3]!) };
}

/**
 * `sluice replay`: prints the plan as a table; with --execute moves the sink's group offsets.
 * Exit codes: 0 done, 1 the sink runs elsewhere or the log failed, 2 bad usage.
 */
export async function runReplayCommand(args: string[], config: SluiceConfig, io: ReplayIo, logger?: Logger): Promise<number> {
  let parsed: ReplayArgs;
  try {
    parsed = parseReplayArgs(args);
    if (!config.sinks.some((s) => s.name === parsed.sink)) {
      const names = config.sinks.map((s) => `"${s.name}"`).join(", ");
      throw new UsageError(`no sink "${parsed.sink}" in deployment "${config.name}"; sinks: ${names || "(none)"}`);
    }
  } catch (error) {
    if (!(error instanceof UsageError)) throw error;
    io.stderr(`sluice replay: ${error.message}\nUsage: ${USAGE}\n`);
    return 2;
  }
  const group = sinkGroup(config.name, parsed.sink);
  let log: TopicLog | undefined;
  try {
    // A dry run only reads; --execute moves the group's offsets, but never through the daemon's producer.
    log = await openTopicLogForCommand(config.topics, config.name, logger ?? createLogger("warn", process.stderr), parsed.execute ? "write" : "read-only", lostTopicPolicyOf(config));
    const topics = sinkTopics(config, config.sinks.find((s) => s.name === parsed.sink)!, await log.topicNames());
    if (topics.length === 0) {
      io.stdout(`Sink "${parsed.sink}" has no topics yet in deployment "${config.name}": nothing to replay.\n`);
      return 0;
    }
    const plan = await planReplay(log, group, topics, parsed.target);
    io.stdout(`Replay of sink "${parsed.sink}" (consumer group ${group}) from ${describeTarget(parsed.target)}:\n${formatPlan(plan)}`);
    const activity = await log.groupActivity(group);
    if (!parsed.execute) {
      if (activity.active) io.stderr(`Note: sink "${parsed.sink}" is running (${activity.members.join(", ")}); stop it before --execute.\n`);
      io.stdout("Dry run: nothing changed. Run again with --execute to move the group's offsets.\n");
      return 0;
    }
    if (activity.active) {
      io.stderr(`sluice replay: refused: sink "${parsed.sink}" is running (consumer group ${group}, members: ${activity.members.join(", ")}). Stop it first; nothing changed.\n`);
      return 1;
    }
    try {
      await executeReplay(log, plan);
    } catch (error) {
      if (!(error instanceof SluiceError) || error.code !== "REPLAY_SINK_RUNNING") throw error;
      io.stderr(`sluice replay: refused: sink "${parsed.sink}" started meanwhile (${error.message}). Stop it first; nothing changed.\n`);
      return 1;
    }
    io.stdout(`Done: moved ${plan.partitions.length} partition offset${plan.partitions.length === 1 ? "" : "s"} of group ${group}. The sink re-reads from there when it starts.\n`);
    return 0;
  } catch (error) {
    if (error instanceof SluiceError) {
      io.stderr(`sluice replay: ${error.message}\n`);
      return error.code.startsWith("REPLAY_") && error.code !== "REPLAY_SINK_RUNNING" ? 2 : 1;
    }
    throw error;
  } finally {
    await log?.close();
  }
}
