/**
 * Removes what test runs that were killed left on the shared services: their after hooks never ran, so their Kafka
 * topics and PostgreSQL replication slots stayed (a slot keeps every WAL file after its position: 7.8 GB once; every
 * topic on the broker costs each full metadata and listing). A safety net run by test/run before the integration
 * files; each test removes what it creates itself.
 *
 * Only what a test provably made: names in the ledger of test names (test-names.ts; randomName and testDeployment
 * record each name they make with the pid and start of their process), once that process is gone and the name was
 * recorded DEBRIS_AGE_MS ago; and only when untouched for DEBRIS_AGE_MS, so that what a test running now beside this
 * run (another checkout on the same services) uses is kept: a topic's last record written, or its creation when empty,
 * read from the broker's partition files; a slot's last saved position, read from its state file. A name not in the
 * ledger is never touched, however much it looks like a test's. A ledger entry is removed once its process is gone,
 * it is that old and nothing it names is left. Prints what it removed; never fails the run.
 *
 * With --left-since, removes nothing: lists the test deployments created on the broker since that time and the inactive
 * test slots saved since then that are still there (test/run, after the integration files: what they left, or what tests
 * running beside them use at that moment).
 *
 *   node test/services/sweep.ts [--dry-run | --left-since <epoch ms>]
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { kafka, postgres, servicesDir } from "./ports.ts";
import { creatorRuns, readTestNames, removeTestName, TestNames } from "./test-names.ts";
import type { TestNameEntry } from "./test-names.ts";

/** Longer than any test file may run (test/run ends a hung test after 15 minutes, its file 7 minutes later). */
export const DEBRIS_AGE_MS = 2 * 3_600_000;

export interface TopicActivity {
  readonly topic: string;
  /** The newest write to any of its partitions (records, or the partition's creation when it holds none). */
  readonly lastWriteMs: number;
  /** When its first partition was created. */
  readonly createdMs: number;
}

/** Ledger entries whose names may be swept: their process is gone and they were recorded `minAgeMs` ago. */
export function sweepableNames(entries: readonly TestNameEntry[], nowMs: number, runs: (entry: TestNameEntry) => boolean = creatorRuns, minAgeMs = DEBRIS_AGE_MS): TestNames {
  return new TestNames(entries.filter((e) => nowMs - e.recordedMs >= minAgeMs && !runs(e)).map((e) => e.name));
}

/** Deployments owned by ledger names whose every topic was left untouched for `minAgeMs`: their names and topics. */
export function debrisDeployments(topics: readonly TopicActivity[], names: TestNames, nowMs: number, minAgeMs = DEBRIS_AGE_MS): Map<string, string[]> {
  const byDeployment = new Map<string, TopicActivity[]>();
  for (const topic of topics) {
    const deployment = names.deploymentOf(topic.topic);
    if (deployment !== null) byDeployment.set(deployment, [...(byDeployment.get(deployment) ?? []), topic]);
  }
  const debris = new Map<string, string[]>();
  for (const [deployment, owned] of byDeployment) {
    if (owned.every((t) => nowMs - t.lastWriteMs >= minAgeMs)) debris.set(deployment, owned.map((t) => t.topic).sort());
  }
  return debris;
}

/** Test deployments (of ledger names) with a topic created at or after `sinceMs`, and how many topics each has. */
export function deploymentsLeft(topics: readonly TopicActivity[], names: TestNames, sinceMs: number): Map<string, number> {
  const left = new Map<string, number>();
  const created = new Set(topics.filter((t) => t.createdMs >= sinceMs).map((t) => names.deploymentOf(t.topic)));
  for (const topic of topics) {
    const deployment = names.deploymentOf(topic.topic);
    if (deployment !== null && created.has(deployment)) left.set(deployment, (left.get(deployment) ?? 0) + 1);
  }
  return new Map([...left].sort(([a], [b]) => (a < b ? -1 : 1)));
}

export interface SlotActivity {
  readonly name: string;
  readonly active: boolean;
  /** When the slot's position was last saved (its state file), null when unknown. */
  readonly savedMs: number | null;
}

/** Inactive slots of ledger names whose position was saved at or after `sinceMs` (created or used since then). */
export function slotsLeft(slots: readonly SlotActivity[], names: TestNames, sinceMs: number): string[] {
  return slots.filter((s) => !s.active && s.savedMs !== null && s.savedMs >= sinceMs && names.slotOwner(s.name) !== null).map((s) => s.name).sort();
}

/** Inactive slots of ledger names whose position was not saved for `minAgeMs`. */
export function debrisSlots(slots: readonly SlotActivity[], names: TestNames, nowMs: number, minAgeMs = DEBRIS_AGE_MS): string[] {
  return slots.filter((s) => !s.active && s.savedMs !== null && nowMs - s.savedMs >= minAgeMs && names.slotOwner(s.name) !== null).map((s) => s.name).sort();
}

/** The cluster id a broker's data directory was formatted for (its meta.properties), or null. */
export function clusterIdOf(metaProperties: string): string | null {
  return /^cluster\.id=(.+)$/m.exec(metaProperties)?.[1]?.trim() ?? null;
}

/** The part of the Kafka admin client deleteTopicsThere uses. */
export interface TopicAdmin {
  listTopics(): Promise<string[]>;
  deleteTopics(request: { topics: string[]; timeout?: number }): Promise<void>;
}

/**
 * Deletes the topics the broker still has (listed again before each batch). Kafka answers a batch naming a topic
 * deleted meanwhile (another sweep, a test's own cleanup) with UNKNOWN_TOPIC_OR_PARTITION for it, having deleted the
 * others, and kafkajs throws for the whole batch after its retries: the topics left are then listed again and deleted
 * one by one, a topic gone meanwhile not being an error.
 */
export async function deleteTopicsThere(admin: TopicAdmin, topics: readonly string[]): Promise<void> {
  for (let i = 0; i < topics.length; i += 100) {
    const there = new Set(await admin.listTopics());
    const batch = topics.slice(i, i + 100).filter((t) => there.has(t));
    if (batch.length === 0) continue;
    try {
      await admin.deleteTopics({ topics: batch, timeout: 30_000 });
      continue;
    } catch (error) {
      if (!isUnknownTopic(error)) throw error;
    }
    const existing = new Set(await admin.listTopics());
    for (const topic of batch.filter((t) => existing.has(t))) {
      await admin.deleteTopics({ topics: [topic], timeout: 30_000 }).catch((error: unknown) => {
        if (!isUnknownTopic(error)) throw error;
      });
    }
  }
}

/** Kafka's UNKNOWN_TOPIC_OR_PARTITION, also as the cause of kafkajs's retries-exceeded error (it retries that code). */
function isUnknownTopic(error: unknown): boolean {
  for (let e = error as { type?: unknown; cause?: unknown } | null | undefined, depth = 0; e && depth < 5; e = e.cause as typeof e, depth++) {
    if (e.type === "UNKNOWN_TOPIC_OR_PARTITION") return true;
  }
  return false;
}

/** The part of a pg client dropSlot uses. */
export interface SlotClient {
  query(text: string, values?: unknown[]): Promise<{ rowCount: number | null }>;
}

/**
 * Drops a slot if still inactive (a daemon may have taken it up since the listing), and its publication of the same
 * name only when the slot was dropped: a slot in use again keeps the publication it streams. Whether it dropped.
 */
export async function dropSlot(client: SlotClient, slot: string): Promise<boolean> {
  const dropped = await client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot]);
  if ((dropped.rowCount ?? 0) === 0) return false;
  await client.query(`DROP PUBLICATION IF EXISTS "${slot.replaceAll('"', '""')}"`);
  return true;
}

/** Each topic's creation and last write, from the broker's partition directories (`<topic>-<partition>`) in its data directory. */
function kafkaTopicActivity(logDir: string): TopicActivity[] {
  const topics = new Map<string, { lastWriteMs: number; createdMs: number }>();
  for (const entry of readdirSync(logDir, { withFileTypes: true })) {
    const partition = entry.isDirectory() ? /^(.+)-\d+$/.exec(entry.name) : null;
    if (!partition) continue;
    const dir = join(logDir, entry.name);
    // Segment files (*.log) change only when records are written; the partition's metadata file is written at its
    // creation. Indexes, snapshots and checkpoints are rewritten at each broker start, so they tell nothing.
    let created: number;
    let times: number[];
    try {
      created = statSync(join(dir, "partition.metadata")).mtimeMs;
      times = readdirSync(dir).filter((f) => f.endsWith(".log")).map((f) => statSync(join(dir, f)).mtimeMs);
    } catch {
      continue; // deleted meanwhile (a test's cleanup), or not written yet
    }
    const topic = topics.get(partition[1]!) ?? { lastWriteMs: 0, createdMs: Infinity };
    topics.set(partition[1]!, { lastWriteMs: Math.max(topic.lastWriteMs, created, ...times), createdMs: Math.min(topic.createdMs, created) });
  }
  return [...topics].map(([topic, times]) => ({ topic, ...times }));
}

/** What to do: remove the debris (or only count it), or list what was left since a time. */
export type Mode = { readonly kind: "sweep"; readonly dryRun: boolean } | { readonly kind: "left"; readonly sinceMs: number };

/** The mode the command line asks for, or what is wrong with it. */
export function parseMode(args: readonly string[]): Mode | { readonly error: string } {
  const since = args.indexOf("--left-since");
  if (since < 0) return { kind: "sweep", dryRun: args.includes("--dry-run") };
  const value = args[since + 1];
  const sinceMs = value !== undefined && /^\d+$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(sinceMs)) return { error: `--left-since takes a time in milliseconds since the epoch (date +%s%3N), not ${JSON.stringify(value ?? "")}` };
  return { kind: "left", sinceMs };
}

/** Ledger names that still own something after a sweep (their entries are kept). */
type Owners = Set<string>;

async function sweepKafka(nowMs: number, mode: Mode, names: TestNames): Promise<Owners> {
  const logDir = join(servicesDir, "data/kafka/log");
  let activity: TopicActivity[];
  let dirCluster: string | null;
  try {
    activity = kafkaTopicActivity(logDir);
    dirCluster = clusterIdOf(readFileSync(join(logDir, "meta.properties"), "utf8"));
  } catch (error) {
    throw new Error(`cannot read ${logDir}: ${String(error)}`);
  }
  const { Kafka, logLevel } = await import("kafkajs");
  // Without it kafkajs arms a timer at a negative delay after each response (Node prints TimeoutNegativeWarning).
  (await import("../../connectors/kafka/kafka-client.ts")).guardRequestQueue();
  const admin = new Kafka({ clientId: "sluice-test-sweep", brokers: [...kafka.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    // The partition files read must be those of the broker asked: another broker on the port (a private one a test
    // started, another checkout's) has topics of the same names whose ages these files do not tell.
    const { clusterId } = await admin.describeCluster();
    if (dirCluster === null || clusterId !== dirCluster) {
      throw new Error(`the broker at ${kafka.brokers.join(",")} is cluster ${clusterId}, but ${logDir} holds cluster ${dirCluster ?? "(none)"}: nothing removed`);
    }
    // Only topics the broker has: a deleted topic's directory stays a moment under another name.
    const existing = new Set(await admin.listTopics());
    const topicsThere = activity.filter((t) => existing.has(t.topic));
    if (mode.kind === "left") {
      const left = deploymentsLeft(topicsThere, names, mode.sinceMs);
      console.log(`sweep: Kafka: ${left.size} test deployments created since the integration files started are still there${left.size > 0 ? `: ${[...left].map(([d, n]) => `${d} (${n} topics)`).join(", ")}` : ""}`);
      return new Set();
    }
    const debris = debrisDeployments(topicsThere, names, nowMs);
    const topics = [...debris.values()].flat();
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => debris.has(g.split(".")[0]!));
    console.log(`sweep: Kafka: ${debris.size} test deployments untouched for ${DEBRIS_AGE_MS / 3_600_000} h, ${topics.length} topics, ${groups.length} consumer groups${mode.dryRun ? " (dry run)" : ""}`);
    const kept = new Set(topicsThere.map((t) => names.deploymentOf(t.topic)).filter((d): d is string => d !== null && !debris.has(d)).map((d) => names.ownerOf(d)!));
    if (mode.dryRun) return kept;
    await deleteTopicsThere(admin, topics);
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
    return kept;
  } finally {
    await admin.disconnect();
  }
}

async function sweepPostgres(nowMs: number, mode: Mode, names: TestNames): Promise<Owners> {
  const client = new pg.Client(postgres);
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; active: boolean; saved: Date | null }>(
      "SELECT slot_name AS name, active, (pg_stat_file('pg_replslot/' || slot_name || '/state', true)).modification AS saved FROM pg_replication_slots WHERE slot_type = 'logical'",
    );
    const slots = rows.map((r) => ({ name: r.name, active: r.active, savedMs: r.saved?.getTime() ?? null }));
    if (mode.kind === "left") {
      const left = slotsLeft(slots, names, mode.sinceMs);
      console.log(`sweep: PostgreSQL: ${left.length} inactive test replication slots saved since the integration files started are still there${left.length > 0 ? `: ${left.join(", ")}` : ""}`);
      return new Set();
    }
    const debris = debrisSlots(slots, names, nowMs);
    console.log(`sweep: PostgreSQL: ${debris.length} inactive test replication slots untouched for ${DEBRIS_AGE_MS / 3_600_000} h${debris.length > 0 ? `: ${debris.join(", ")}` : ""}${mode.dryRun ? " (dry run)" : ""}`);
    const kept = new Set(slots.filter((s) => !debris.includes(s.name)).map((s) => names.slotOwner(s.name)).filter((o): o is string => o !== null));
    if (mode.dryRun) return kept;
    for (const slot of debris) {
      if (!(await dropSlot(client, slot))) kept.add(names.slotOwner(slot)!);
    }
    return kept;
  } finally {
    await client.end();
  }
}

if (import.meta.main) {
  const mode = parseMode(process.argv.slice(2));
  if ("error" in mode) {
    console.error(`sweep: ${mode.error}`);
    process.exit(2);
  }
  const now = Date.now();
  const entries = readTestNames();
  // Sweeping takes only names whose process is gone; listing names what any test made, running or not.
  const names = mode.kind === "sweep" ? sweepableNames(entries, now) : new TestNames(entries.map((e) => e.name));
  const kept: Owners = new Set();
  let complete = true;
  for (const [what, sweep] of [["Kafka", sweepKafka], ["PostgreSQL", sweepPostgres]] as const) {
    try {
      for (const owner of await sweep(now, mode, names)) kept.add(owner);
    } catch (error) {
      complete = false;
      console.log(`sweep: ${what} failed (the run goes on): ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (mode.kind === "sweep" && !mode.dryRun && complete) {
    // Entries of gone processes that own nothing left: a name's resources removed, or never made.
    const done = entries.filter((e) => names.ownerOf(e.name) === e.name && !kept.has(e.name));
    for (const entry of done) removeTestName(entry.name);
    console.log(`sweep: ledger: ${done.length} names of ended test processes removed, ${entries.length - done.length} kept`);
  }
}
