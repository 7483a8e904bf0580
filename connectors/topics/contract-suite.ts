/**
 * The conformance suite every topic log passes: ordering per key, consumer group offsets, seeks,
 * retention, checkpoint atomicity, crash safety of the writer, and replay. Each implementation's
 * test file calls `topicLogContractSuite` with a factory for its kind.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";
import { after, before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import type { TopicsConfig } from "../../config/schema.ts";
import type { Checkpoint } from "../contracts.ts";
import { executeReplay, planReplay } from "../../daemon/replay.ts";
import type { ProducedRecord, StoredRecord, TopicConsumer, TopicLog, TopicSpec } from "./contract.ts";
import { CRASH_BASE } from "./crash-base.ts";
import { partitionForKey } from "./partitioner.ts";

export interface ContractFactory {
  /** Opens a log on the suite's storage (each call a new client of the same storage). */
  open(): Promise<TopicLog>;
  /** What a child process needs to open the same storage (see crash-writer.ts). */
  readonly childConfig: { readonly deployment: string; readonly topics: TopicsConfig };
  /** Applies retention now (embedded: one maintenance pass); absent where the server does it on its own schedule. */
  applyRetention?(log: TopicLog): Promise<void>;
  /** Removes the suite's storage after the tests. */
  cleanup?(): Promise<void>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const bytes = (text: string) => encoder.encode(text);
const text = (data: Uint8Array | null) => (data === null ? null : decoder.decode(data));

export function uniqueTopic(prefix: string): string {
  return `${prefix}.${randomBytes(5).toString("hex")}`;
}

function spec(name: string, overrides: Partial<TopicSpec> = {}): TopicSpec {
  return { name, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false, ...overrides };
}

/** Reads until the consumer's position reached the end offsets taken at the call, in every partition (bounded by `maxPolls`). */
export async function readToEnd(log: TopicLog, consumer: TopicConsumer, topics: readonly string[], group?: string, maxPolls = 600): Promise<StoredRecord[]> {
  const committed = group ? await log.committedOffsets(group) : [];
  const pending: { topic: string; partition: number; end: bigint }[] = [];
  for (const topic of topics) {
    for (const range of await log.partitionOffsets(topic)) {
      const from = committed.find((c) => c.topic === topic && c.partition === range.partition)?.offset ?? range.start;
      if (from < range.end) pending.push({ topic, partition: range.partition, end: range.end });
    }
  }
  const out: StoredRecord[] = [];
  for (let i = 0; i < maxPolls; i++) {
    if (pending.every((p) => (consumer.position(p.topic, p.partition) ?? -1n) >= p.end)) return out;
    out.push(...(await consumer.poll({ maxRecords: 1000, maxBytes: 4 * 2 ** 20, maxWaitMs: 200 })));
  }
  throw new Error(`did not reach the end offsets after ${maxPolls} polls; read ${out.length} records`);
}

function record(topic: string, key: string | null, value: string | null, timestamp: number, headers?: Record<string, string>): ProducedRecord {
  const produced: ProducedRecord = { topic, key: key === null ? null : bytes(key), value: value === null ? null : bytes(value), timestamp };
  return headers ? { ...produced, headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, bytes(v)])) } : produced;
}

export function topicLogContractSuite(name: string, factory: ContractFactory): void {
  describe(`topic log contract: ${name}`, () => {
    let log: TopicLog;
    const created: string[] = [];
    const createTopic = async (topicSpec: TopicSpec) => {
      await log.createTopic(topicSpec);
      created.push(topicSpec.name);
    };
    const prefix = `${factory.childConfig.deployment}.contract`;

    before(async () => {
      log = await factory.open();
    });
    after(async () => {
      for (const topic of created) await log.deleteTopic(topic).catch(() => undefined);
      await log.close();
      await factory.cleanup?.();
    });

    test("createTopic is idempotent, lists the topic, and refuses a different layout naming both", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 3, retentionMs: 3_600_000, retentionBytes: 2 ** 30 }));
      await log.createTopic(spec(topic, { partitions: 3, retentionMs: 3_600_000, retentionBytes: 2 ** 30 }));
      const [listed] = await log.listTopics([topic]);
      assert.deepEqual(await log.topicNames(), (await log.listTopics()).map((t) => t.name), "topicNames lists the same topics, sorted");
      assert.deepEqual(listed, spec(topic, { partitions: 3, retentionMs: 3_600_000, retentionBytes: 2 ** 30 }));
      await assert.rejects(log.createTopic(spec(topic, { partitions: 5 })), (error: Error & { code?: string }) => {
        assert.equal(error.code, "TOPIC_MISMATCH");
        assert.match(error.message, new RegExp(`"${topic.replaceAll(".", "\\.")}".*3 partitions exist, 5 configured`));
        return true;
      });
      await assert.rejects(log.createTopic(spec(topic, { compacted: true })), /not compacted, configured compacted/);
      assert.deepEqual((await log.endOffsets(topic)).map((o) => [o.partition, o.offset]), [[0, 0n], [1, 0n], [2, 0n]]);
    });

    // (No second client here: with Kafka it would share the transactional id and fence this one.)
    test("a topic's identity is stable; a topic deleted and created again gets another", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 1 }));
      const ids = await log.topicIds([topic, `${topic}.absent`]);
      assert.deepEqual([...ids.keys()], [topic], "only topics that exist have one");
      const id = ids.get(topic)!;
      await log.createTopic(spec(topic, { partitions: 1 }));
      assert.equal((await log.topicIds([topic])).get(topic), id, "creating an existing topic keeps it");
      await log.deleteTopic(topic);
      // Kafka deletes asynchronously: the name can be taken again once the topic is gone.
      for (let attempt = 0; (await log.topicNames()).includes(topic); attempt++) {
        assert.ok(attempt < 300, "the topic is deleted");
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
      for (let attempt = 0; ; attempt++) {
        try {
          await log.createTopic(spec(topic, { partitions: 1 }));
          break;
        } catch (error) {
          if (attempt >= 100) throw error;
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
      const again = (await log.topicIds([topic])).get(topic);
      assert.ok(again !== undefined && again !== id, `a new identity (was ${id}, now ${again})`);
    });

    test("records of one key keep their order in the key's murmur2 partition; fields round-trip", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 4 }));
      const keys = Array.from({ length: 12 }, (_, i) => `key-${i}`);
      const sent: ProducedRecord[] = [];
      for (let call = 0; call < 5; call++) {
        const batch = Array.from({ length: 60 }, (_, i) => record(topic, keys[(i * 7 + call) % keys.length]!, `${call}:${i}`, 1_700_000_000_000 + call * 100 + i, i % 3 === 0 ? { seq: `${call}:${i}`, "content-type": "avro" } : undefined));
        await log.produce(batch);
        sent.push(...batch);
      }
      const tombstone = record(topic, "key-0", null, 1_700_000_001_000);
      await log.produce([tombstone]);
      sent.push(tombstone);

      const consumer = await log.consumer(`${prefix}.order.${randomBytes(3).toString("hex")}`, [topic]);
      const received = await readToEnd(log, consumer, [topic]);
      await consumer.close();
      assert.equal(received.length, sent.length);
      for (const key of keys) {
        const expected = sent.filter((r) => text(r.key) === key);
        const got = received.filter((r) => text(r.key) === key);
        assert.deepEqual(got.map((r) => text(r.value)), expected.map((r) => text(r.value)), `order of ${key}`);
        const partition = partitionForKey(bytes(key), 4);
        assert.ok(got.every((r) => r.partition === partition), `${key} stays in partition ${partition}`);
      }
      for (const partition of [0, 1, 2, 3]) {
        const offsets = received.filter((r) => r.partition === partition).map((r) => r.offset);
        assert.ok(offsets.every((o, i) => i === 0 || o > offsets[i - 1]!), `offsets increase in partition ${partition}`);
      }
      const withHeaders = received.find((r) => text(r.value) === "2:3")!;
      assert.equal(withHeaders.timestamp, 1_700_000_000_203);
      assert.deepEqual(Object.fromEntries(Object.entries(withHeaders.headers ?? {}).map(([k, v]) => [k, text(v)])), { seq: "2:3", "content-type": "avro" });
      const last = received.filter((r) => text(r.key) === "key-0").at(-1)!;
      assert.equal(last.value, null, "tombstone keeps its null value");
    });

    test("records without a key go to partition 0", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 3 }));
      await log.produce([record(topic, null, "a", 1), record(topic, null, "b", 2)]);
      assert.deepEqual((await log.endOffsets(topic)).map((o) => o.offset > 0n), [true, false, false]);
    });

    test("a group resumes from its committed offsets, and lag counts what is left", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 1 }));
      await log.produce(Array.from({ length: 20 }, (_, i) => record(topic, `k${i}`, `v${i}`, 1000 + i)));
      const group = `${prefix}.group.${randomBytes(3).toString("hex")}`;
      const first = await log.consumer(group, [topic]);
      const read: StoredRecord[] = [];
      while (read.length < 8) read.push(...(await first.poll({ maxRecords: 8 - read.length, maxBytes: 2 ** 20, maxWaitMs: 5000 })));
      assert.deepEqual(read.map((r) => text(r.value)), Array.from({ length: 8 }, (_, i) => `v${i}`));
      await first.commit([{ topic, partition: 0, offset: read.at(-1)!.offset + 1n }]);
      await first.close();

      const committed = (await log.committedOffsets(group)).filter((o) => o.topic === topic);
      assert.equal(committed.length, 1);
      const lag = await log.groupLag(group, [topic]);
      const end = (await log.endOffsets(topic))[0]!.offset;
      assert.deepEqual(lag.map((l) => ({ ...l })), [{ topic, partition: 0, committed: committed[0]!.offset, end, lag: end - committed[0]!.offset }]);

      const second = await log.consumer(group, [topic]);
      const rest = await readToEnd(log, second, [topic], group);
      await second.close();
      assert.deepEqual(rest.map((r) => text(r.value)), Array.from({ length: 12 }, (_, i) => `v${i + 8}`));
    });

    test("seek by earliest, latest, offset and timestamp", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 1 }));
      const t0 = 1_600_000_000_000;
      await log.produce(Array.from({ length: 10 }, (_, i) => record(topic, "same", `v${i}`, t0 + i * 1000)));
      const offsets = await readAll(log, topic);
      const offsetOf = (i: number) => offsets[i]!.offset;

      assert.deepEqual(await log.offsetsForTimestamp(topic, t0 + 3500), [{ topic, partition: 0, offset: offsetOf(4) }]);
      assert.deepEqual(await log.offsetsForTimestamp(topic, t0 + 3000), [{ topic, partition: 0, offset: offsetOf(3) }]);
      const [beyond] = await log.offsetsForTimestamp(topic, t0 + 60_000);
      assert.ok(beyond!.offset > offsetOf(9) && beyond!.offset <= (await log.endOffsets(topic))[0]!.offset, "a time after every record gives the end");
      // Before 1970 is before every record (sluice replay --from-time 1969-12-31T23:59:59.999Z): Kafka's ListOffsets
      // reads -1 as "the end" and -2 as "the start", and refuses other negative times.
      for (const before of [-1, -2, -3_600_000]) assert.deepEqual(await log.offsetsForTimestamp(topic, before), [{ topic, partition: 0, offset: offsetOf(0) }], `time ${before}`);

      const consumer = await log.consumer(`${prefix}.seek.${randomBytes(3).toString("hex")}`, [topic]);
      const next = async () => (await consumer.poll({ maxRecords: 1, maxBytes: 2 ** 20, maxWaitMs: 5000 }))[0];
      await consumer.seek(topic, 0, { kind: "timestamp", timestampMs: t0 + 6200 });
      assert.equal(text((await next())!.value), "v7");
      await consumer.seek(topic, 0, { kind: "earliest" });
      assert.equal(text((await next())!.value), "v0");
      await consumer.seek(topic, 0, { kind: "timestamp", timestampMs: -1 });
      assert.equal(text((await next())!.value), "v0", "a time before 1970 seeks to the first record");
      await consumer.seek(topic, 0, { kind: "offset", offset: offsetOf(5) });
      assert.equal(text((await next())!.value), "v5");
      await consumer.seek(topic, 0, { kind: "latest" });
      assert.deepEqual(await consumer.poll({ maxRecords: 1, maxBytes: 2 ** 20, maxWaitMs: 300 }), []);
      await log.produce([record(topic, "same", "v10", t0 + 10_000)]);
      assert.equal(text((await next())!.value), "v10");
      await consumer.close();
    });

    test("a waiting poll wakes up when records arrive", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 1 }));
      const consumer = await log.consumer(`${prefix}.wake.${randomBytes(3).toString("hex")}`, [topic]);
      await consumer.poll({ maxRecords: 1, maxBytes: 2 ** 20, maxWaitMs: 200 });
      const polled = consumer.poll({ maxRecords: 10, maxBytes: 2 ** 20, maxWaitMs: 30_000 });
      await log.produce([record(topic, "k", "late", 5)]);
      assert.deepEqual((await polled).map((r) => text(r.value)), ["late"]);
      await consumer.close();
    });

    test("retention settings are kept, and applied when the log applies them", async () => {
      const byAge = uniqueTopic(prefix);
      const bySize = uniqueTopic(prefix);
      await createTopic(spec(byAge, { partitions: 1, retentionMs: 60_000 }));
      await createTopic(spec(bySize, { partitions: 1, retentionBytes: 64 * 1024 }));
      const topics = await log.listTopics([byAge, bySize]);
      assert.equal(topics.find((t) => t.name === byAge)?.retentionMs, 60_000);
      assert.equal(topics.find((t) => t.name === bySize)?.retentionBytes, 64 * 1024);
      if (!factory.applyRetention) return;

      const now = Date.now();
      await log.produce(Array.from({ length: 5 }, (_, i) => record(byAge, `k${i}`, `old${i}`, now - 3_600_000)));
      await log.produce(Array.from({ length: 5 }, (_, i) => record(byAge, `k${i}`, `new${i}`, now)));
      for (let i = 0; i < 20; i++) await log.produce([record(bySize, `k${i}`, "x".repeat(16 * 1024), now)]);
      await factory.applyRetention(log);

      assert.deepEqual((await readAll(log, byAge)).map((r) => text(r.value)), ["new0", "new1", "new2", "new3", "new4"]);
      const [range] = await log.partitionOffsets(byAge);
      assert.equal(range!.start, 5n);
      const kept = await readAll(log, bySize);
      assert.ok(kept.length > 0 && kept.length <= 4, `at most 64 KiB of 16 KiB records kept, got ${kept.length}`);
      assert.equal(kept.at(-1)!.offset, 19n, "the newest records are the ones kept");
    });

    test("a checkpoint is stored with its batch and read back exactly", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 2 }));
      const source = `src-${randomBytes(3).toString("hex")}`;
      assert.equal(await log.readCheckpoint(source), null);
      const checkpoint: Checkpoint = { source, position: { commit: 2n ** 63n + 5n, change: 9_007_199_254_740_993n, resume: "0-1-42" } };
      await log.produce([record(topic, "a", "1", 1)], checkpoint);
      assert.deepEqual(await log.readCheckpoint(source), checkpoint);
      const heartbeat: Checkpoint = { source, position: { commit: 2n ** 63n + 6n, change: 2n ** 63n + 6n } };
      await log.produce([], heartbeat);
      assert.deepEqual(await log.readCheckpoint(source), heartbeat);
    });

    test("a checkpoint's entries are kept beside it until replaced or deleted, per source, and a rejected produce stores none of them", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 1 }));
      const source = `src-${randomBytes(3).toString("hex")}`;
      const neighbour = `${source}_b`;
      const big = "é".repeat(100_000);
      await log.produce([record(topic, "a", "1", 1)], { source, position: { commit: 1n, change: 1n }, entries: { "layouts/1/0": big, "layouts/1/1": "[]" } });
      await log.produce([], { source: neighbour, position: { commit: 1n, change: 1n }, entries: { "layouts/9/0": "theirs" } });
      assert.deepEqual(await log.readCheckpoint(source), { source, position: { commit: 1n, change: 1n }, entries: { "layouts/1/0": big, "layouts/1/1": "[]" } });
      // A checkpoint naming no entry keeps them; one naming some replaces or deletes only those.
      await log.produce([record(topic, "a", "2", 2)], { source, position: { commit: 2n, change: 2n } });
      assert.deepEqual((await log.readCheckpoint(source))?.entries, { "layouts/1/0": big, "layouts/1/1": "[]" });
      await log.produce([], { source, position: { commit: 3n, change: 3n }, entries: { "layouts/1/0": null, "layouts/1/1": null, "layouts/2/0": "new" } });
      assert.deepEqual(await log.readCheckpoint(source), { source, position: { commit: 3n, change: 3n }, entries: { "layouts/2/0": "new" } });
      const missing = uniqueTopic(`${prefix}.missing`);
      await assert.rejects(log.produce([record(missing, "b", "x", 4)], { source, position: { commit: 4n, change: 4n }, entries: { "layouts/2/0": null, "layouts/3/0": "lost" } }));
      assert.deepEqual(await log.readCheckpoint(source), { source, position: { commit: 3n, change: 3n }, entries: { "layouts/2/0": "new" } });
      assert.deepEqual(await log.readCheckpoint(neighbour), { source: neighbour, position: { commit: 1n, change: 1n }, entries: { "layouts/9/0": "theirs" } });
    });

    test("a rejected produce stores neither its checkpoint nor (exactly-once) its records", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 1 }));
      const source = `src-${randomBytes(3).toString("hex")}`;
      const first: Checkpoint = { source, position: { commit: 10n, change: 10n } };
      await log.produce([record(topic, "a", "kept", 1)], first);
      const missing = uniqueTopic(`${prefix}.missing`);
      await assert.rejects(log.produce([record(topic, "a", "lost", 2), record(missing, "b", "x", 2)], { source, position: { commit: 20n, change: 20n } }));
      assert.deepEqual(await log.readCheckpoint(source), first);
      const values = (await readAll(log, topic)).map((r) => text(r.value));
      if (log.checkpointGuarantee === "exactly-once") assert.deepEqual(values, ["kept"]);
      else assert.equal(values[0], "kept");
    });

    test("after a produce with a source's checkpoint failed, a later checkpoint of that source is refused until its checkpoint is read again", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 1 }));
      const source = `src-${randomBytes(3).toString("hex")}`;
      const first: Checkpoint = { source, position: { commit: 10n, change: 10n } };
      await log.produce([record(topic, "a", "kept", 1)], first);
      const missing = uniqueTopic(`${prefix}.missing`);
      const failed = log.produce([record(missing, "b", "lost", 2)], { source, position: { commit: 20n, change: 20n } });
      // Made before the caller saw the failure: stored, its checkpoint would skip "lost".
      const later = log.produce([record(topic, "a", "after", 3)], { source, position: { commit: 30n, change: 30n } });
      await assert.rejects(failed);
      await assert.rejects(later);
      await log.produce([record(topic, "c", "no checkpoint", 4)]);
      assert.deepEqual(await log.readCheckpoint(source), first);
      const resumed: Checkpoint = { source, position: { commit: 20n, change: 20n } };
      await log.produce([record(topic, "b", "again", 5)], resumed);
      assert.deepEqual(await log.readCheckpoint(source), resumed);
      const values = (await readAll(log, topic)).map((r) => text(r.value));
      assert.ok(!values.includes("after"), `the refused call stored nothing: ${values.join(", ")}`);
      assert.deepEqual(values.filter((v) => v !== "no checkpoint"), ["kept", "again"]);
    });

    test("the registry journal keeps JSON entries in order", async () => {
      const before = (await log.registryJournal.loadAll()).length;
      const marker = randomBytes(4).toString("hex");
      await log.registryJournal.append({ marker, n: 1, subject: "a-value" });
      await log.registryJournal.append({ marker, n: 2, nested: { list: [1, "two", null] } });
      const entries = (await log.registryJournal.loadAll()).slice(before);
      assert.deepEqual(entries, [{ marker, n: 1, subject: "a-value" }, { marker, n: 2, nested: { list: [1, "two", null] } }]);
    });

    test("replay: the plan changes nothing until executed; execution moves the group's offsets", async () => {
      const topic = uniqueTopic(prefix);
      await createTopic(spec(topic, { partitions: 2 }));
      const t0 = 1_650_000_000_000;
      await log.produce(Array.from({ length: 40 }, (_, i) => record(topic, `k${i % 5}`, `v${i}`, t0 + i * 1000)));
      const group = `${prefix}.replay.${randomBytes(3).toString("hex")}`;
      const consumer = await log.consumer(group, [topic]);
      const read = await readToEnd(log, consumer, [topic]);
      const ends = await log.endOffsets(topic);
      await consumer.commit(ends.map((e) => ({ ...e, offset: consumer.position(e.topic, e.partition) ?? 0n })));
      await consumer.close();
      assert.equal(read.length, 40);

      const plan = await planReplay(log, group, [topic], { kind: "time", ms: t0 + 20_000 });
      assert.deepEqual(await log.committedOffsets(group).then((o) => o.filter((x) => x.topic === topic)), ends, "planning commits nothing");
      for (const row of plan.partitions) {
        const expected = read.filter((r) => r.partition === row.partition && r.timestamp >= t0 + 20_000).map((r) => r.offset).sort((a, b) => (a < b ? -1 : 1))[0];
        assert.equal(row.current, ends.find((e) => e.partition === row.partition)!.offset);
        assert.equal(row.target, expected ?? row.current);
      }
      await executeReplay(log, plan);
      const moved = (await log.committedOffsets(group)).filter((o) => o.topic === topic);
      assert.deepEqual(moved.map((o) => [o.partition, o.offset]), plan.partitions.map((p) => [p.partition, p.target]));

      const again = await log.consumer(group, [topic]);
      const replayed = await readToEnd(log, again, [topic], group);
      await again.close();
      assert.deepEqual(replayed.map((r) => text(r.value)).sort(), read.filter((r) => r.timestamp >= t0 + 20_000).map((r) => text(r.value)).sort());

      const fromStart = await planReplay(log, group, [topic], { kind: "beginning" });
      assert.deepEqual(fromStart.partitions.map((p) => p.target), (await log.partitionOffsets(topic)).map((p) => p.start));
      const single = await planReplay(log, group, [topic], { kind: "offset", topic, partition: 1, offset: 3n });
      assert.deepEqual(single.partitions.map((p) => [p.partition, p.target === p.current]), [[1, false]]);
    });

    test("kill -9 of a writer loses no acknowledged batch, tears none, and keeps the checkpoint consistent (3 kills)", async () => {
      for (let round = 0; round < 3; round++) {
        const topic = uniqueTopic(prefix);
        await createTopic(spec(topic, { partitions: 3 }));
        await killWriterAndCheck(factory, topic);
      }
    });
  });
}

/** One crash round: a writer is killed at a random moment; the reopened log must be consistent. */
async function killWriterAndCheck(factory: ContractFactory, topic: string): Promise<void> {
  const source = `crash-${randomBytes(3).toString("hex")}`;
  const { lastAcked } = await runAndKillWriter({ ...factory.childConfig, topic, source, recordsPerBatch: 40 });
  const reopened = await factory.open();
  try {
    const checkpoint = await reopened.readCheckpoint(source);
    assert.ok(checkpoint, "a checkpoint was stored");
    const covered = Number(checkpoint.position.commit - CRASH_BASE);
    assert.ok(covered >= lastAcked, `checkpoint covers batch ${covered}, acknowledged ${lastAcked}`);
    assert.equal(checkpoint.position.change, CRASH_BASE * 2n + BigInt(covered), "checkpoint read whole");

    const records = await readAll(reopened, topic);
    const perBatch = new Map<number, StoredRecord[]>();
    for (const r of records) {
      const [batch] = text(r.value)!.split(":").map(Number);
      perBatch.set(batch!, [...(perBatch.get(batch!) ?? []), r]);
    }
    for (let b = 0; b <= covered; b++) assert.equal(perBatch.get(b)?.length, 40, `batch ${b} (covered by the checkpoint) complete`);
    if (reopened.checkpointGuarantee === "exactly-once") {
      assert.deepEqual([...perBatch.keys()].sort((a, b) => a - b), Array.from({ length: covered + 1 }, (_, b) => b), "no batch beyond the checkpoint");
    } else {
      for (const [b, batch] of perBatch) if (b > covered) assert.ok(batch.length <= 40, `batch ${b} not doubled`);
    }
    const byKey = new Map<string, number[]>();
    for (const r of records) byKey.set(text(r.key)!, [...(byKey.get(text(r.key)!) ?? []), Number(text(r.value)!.replace(":", "."))]);
    for (const [key, sequence] of byKey) assert.deepEqual(sequence, [...sequence].sort((a, b) => a - b), `order of ${key}`);
  } finally {
    await reopened.close();
  }
}

async function readAll(log: TopicLog, topic: string): Promise<StoredRecord[]> {
  const consumer = await log.consumer(`contract.read.${randomBytes(4).toString("hex")}`, [topic]);
  try {
    return await readToEnd(log, consumer, [topic]);
  } finally {
    await consumer.close();
  }
}

export interface CrashWriterArgs {
  readonly deployment: string;
  readonly topics: TopicsConfig;
  readonly topic: string;
  readonly source: string;
  readonly recordsPerBatch: number;
}

/** Starts crash-writer.ts, lets it acknowledge a random number of batches, kills it with SIGKILL at a random moment. */
async function runAndKillWriter(args: CrashWriterArgs): Promise<{ lastAcked: number }> {
  const script = fileURLToPath(new URL("./crash-writer.ts", import.meta.url));
  const child = spawn(process.execPath, [script, JSON.stringify(args)], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const killAfter = 5 + Math.floor(Math.random() * 25);
  let lastAcked = -1;
  const lines = createInterface({ input: child.stdout });
  for await (const line of lines) {
    const match = /^acked (\d+)$/.exec(line);
    if (!match) continue;
    lastAcked = Number(match[1]);
    if (lastAcked + 1 >= killAfter) break;
  }
  if (lastAcked < 0) throw new Error(`crash writer acknowledged nothing: ${stderr}`);
  await new Promise((resolve) => setTimeout(resolve, Math.random() * 30));
  child.kill("SIGKILL");
  // Acknowledgements printed before the kill landed still count.
  for await (const line of lines) {
    const match = /^acked (\d+)$/.exec(line);
    if (match) lastAcked = Number(match[1]);
  }
  await exited;
  assert.equal(child.signalCode, "SIGKILL", `the writer was killed, not finished: ${stderr}`);
  return { lastAcked };
}
