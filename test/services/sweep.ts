/**
 * Removes what test runs that were killed left on the shared services: their after hooks never ran, so their Kafka
 * topics and PostgreSQL replication slots stayed (a slot keeps every WAL file after its position: 7.8 GB once; every
 * topic on the broker costs each full metadata and listing). A safety net run by test/run before the integration
 * files; each test removes what it creates itself.
 *
 * Only what tests name (a random hex part, as randomName and testDeployment make) and only when untouched for
 * DEBRIS_AGE_MS, so that what a test running now beside this run (another checkout on the same services) uses is kept:
 * a topic's last record written, or its creation when empty, read from the broker's partition files; a slot's last
 * saved position, read from its state file. Prints what it removed; never fails the run.
 *
 * With --left-since, removes nothing: lists the test deployments created on the broker since that time and the inactive
 * test slots saved since then that are still there (test/run, after the integration files: what they left, or what tests
 * running beside them use at that moment).
 *
 *   node test/services/sweep.ts [--dry-run | --left-since <epoch ms>]
 */
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { kafka, postgres, servicesDir } from "./ports.ts";

/** Longer than any test file may run (test/run ends a hung test after 15 minutes, its file 7 minutes later). */
export const DEBRIS_AGE_MS = 2 * 3_600_000;

/** A deployment name made by the tests' randomName (10 hex) or testDeployment (8 hex), with the suffixes tests add. */
const TEST_DEPLOYMENT = /^[a-z][a-z0-9_]*_[0-9a-f]{8}(?:[0-9a-f]{2})?(?:[-_][a-z0-9]+)?$/;
/** The daemon's default slot of a test source (sluice_<randomName("src")>) and the connector tests' randomName("slot"). */
const TEST_SLOT = /^(?:sluice_src_[0-9a-f]{10}(?:_[a-z0-9]+)?|slot_[0-9a-f]{10})$/;

export interface TopicActivity {
  readonly topic: string;
  /** The newest write to any of its partitions (records, or the partition's creation when it holds none). */
  readonly lastWriteMs: number;
  /** When its first partition was created. */
  readonly createdMs: number;
}

/** The deployment a topic of a test belongs to, or null for a topic no test names. */
function testDeploymentOf(topic: string): string | null {
  const deployment = topic.split(".")[0]!;
  return deployment !== topic && TEST_DEPLOYMENT.test(deployment) ? deployment : null;
}

/** Deployments of tests whose every topic was left untouched for `minAgeMs`: their names and topics. */
export function debrisDeployments(topics: readonly TopicActivity[], nowMs: number, minAgeMs = DEBRIS_AGE_MS): Map<string, string[]> {
  const byDeployment = new Map<string, TopicActivity[]>();
  for (const topic of topics) {
    const deployment = testDeploymentOf(topic.topic);
    if (deployment !== null) byDeployment.set(deployment, [...(byDeployment.get(deployment) ?? []), topic]);
  }
  const debris = new Map<string, string[]>();
  for (const [deployment, owned] of byDeployment) {
    if (owned.every((t) => nowMs - t.lastWriteMs >= minAgeMs)) debris.set(deployment, owned.map((t) => t.topic).sort());
  }
  return debris;
}

/** Test deployments with a topic created at or after `sinceMs`, and how many topics each has. */
export function deploymentsLeft(topics: readonly TopicActivity[], sinceMs: number): Map<string, number> {
  const left = new Map<string, number>();
  const created = new Set(topics.filter((t) => t.createdMs >= sinceMs).map((t) => testDeploymentOf(t.topic)));
  for (const topic of topics) {
    const deployment = testDeploymentOf(topic.topic);
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

/** Inactive test slots whose position was saved at or after `sinceMs` (created or used since then). */
export function slotsLeft(slots: readonly SlotActivity[], sinceMs: number): string[] {
  return slots.filter((s) => !s.active && s.savedMs !== null && s.savedMs >= sinceMs && TEST_SLOT.test(s.name)).map((s) => s.name).sort();
}

/** Inactive test slots whose position was not saved for `minAgeMs`. */
export function debrisSlots(slots: readonly SlotActivity[], nowMs: number, minAgeMs = DEBRIS_AGE_MS): string[] {
  return slots.filter((s) => !s.active && s.savedMs !== null && nowMs - s.savedMs >= minAgeMs && TEST_SLOT.test(s.name)).map((s) => s.name).sort();
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
type Mode = { readonly kind: "sweep"; readonly dryRun: boolean } | { readonly kind: "left"; readonly sinceMs: number };

async function sweepKafka(nowMs: number, mode: Mode): Promise<void> {
  const logDir = join(servicesDir, "data/kafka/log");
  let activity: TopicActivity[];
  try {
    activity = kafkaTopicActivity(logDir);
  } catch (error) {
    console.log(`sweep: Kafka skipped, cannot read ${logDir}: ${String(error)}`);
    return;
  }
  const { Kafka, logLevel } = await import("kafkajs");
  // Without it kafkajs arms a timer at a negative delay after each response (Node prints TimeoutNegativeWarning).
  (await import("../../connectors/kafka/kafka-client.ts")).guardRequestQueue();
  const admin = new Kafka({ clientId: "sluice-test-sweep", brokers: [...kafka.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    // Only topics the broker has: a deleted topic's directory stays a moment under another name.
    const existing = new Set(await admin.listTopics());
    const topicsThere = activity.filter((t) => existing.has(t.topic));
    if (mode.kind === "left") {
      const left = deploymentsLeft(topicsThere, mode.sinceMs);
      console.log(`sweep: Kafka: ${left.size} test deployments created since the integration files started are still there${left.size > 0 ? `: ${[...left].map(([d, n]) => `${d} (${n} topics)`).join(", ")}` : ""}`);
      return;
    }
    const debris = debrisDeployments(topicsThere, nowMs);
    const topics = [...debris.values()].flat();
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => debris.has(g.split(".")[0]!));
    console.log(`sweep: Kafka: ${debris.size} test deployments untouched for ${DEBRIS_AGE_MS / 3_600_000} h, ${topics.length} topics, ${groups.length} consumer groups${mode.dryRun ? " (dry run)" : ""}`);
    if (mode.dryRun) return;
    for (let i = 0; i < topics.length; i += 100) await admin.deleteTopics({ topics: topics.slice(i, i + 100), timeout: 30_000 });
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
  } finally {
    await admin.disconnect();
  }
}

async function sweepPostgres(nowMs: number, mode: Mode): Promise<void> {
  const client = new pg.Client(postgres);
  await client.connect();
  try {
    const { rows } = await client.query<{ name: string; active: boolean; saved: Date | null }>(
      "SELECT slot_name AS name, active, (pg_stat_file('pg_replslot/' || slot_name || '/state', true)).modification AS saved FROM pg_replication_slots WHERE slot_type = 'logical'",
    );
    const slots = rows.map((r) => ({ name: r.name, active: r.active, savedMs: r.saved?.getTime() ?? null }));
    if (mode.kind === "left") {
      const left = slotsLeft(slots, mode.sinceMs);
      console.log(`sweep: PostgreSQL: ${left.length} inactive test replication slots saved since the integration files started are still there${left.length > 0 ? `: ${left.join(", ")}` : ""}`);
      return;
    }
    const debris = debrisSlots(slots, nowMs);
    console.log(`sweep: PostgreSQL: ${debris.length} inactive test replication slots untouched for ${DEBRIS_AGE_MS / 3_600_000} h${debris.length > 0 ? `: ${debris.join(", ")}` : ""}${mode.dryRun ? " (dry run)" : ""}`);
    if (mode.dryRun) return;
    for (const slot of debris) {
      // Still inactive: a daemon may have taken it up since the listing.
      await client.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot]);
      await client.query(`DROP PUBLICATION IF EXISTS "${slot}"`);
    }
  } finally {
    await client.end();
  }
}

if (import.meta.main) {
  const since = process.argv.indexOf("--left-since");
  const mode: Mode = since > 0 ? { kind: "left", sinceMs: Number(process.argv[since + 1]) } : { kind: "sweep", dryRun: process.argv.includes("--dry-run") };
  const now = Date.now();
  for (const [what, sweep] of [["Kafka", sweepKafka], ["PostgreSQL", sweepPostgres]] as const) {
    await sweep(now, mode).catch((error: unknown) => console.log(`sweep: ${what} failed (the run goes on): ${String(error)}`));
  }
}
