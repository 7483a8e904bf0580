/**
 * The embedded log's compaction (maintenance.ts) as data topics use it: tombstones a consumer
 * group has not read yet stay, young records stay, the first offset never moves, bounded reads,
 * a topic created uncompacted is switched in place without losing a key's only record, and the key
 * index, built by compaction from the stored records, is never ahead of what it judges.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import { missedHistory } from "../../daemon/missed-history.ts";
import type { ProducedRecord, TopicSpec } from "../topics/contract.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";
import { KeyIndex } from "./key-index.ts";
import { Maintenance } from "./maintenance.ts";
import { LARGE_VALUE_BYTES } from "../../runtime/large-values.ts";
import type { EmbeddedLogOptions } from "./embedded-log.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-compaction-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const rec = (topic: string, key: string, value: string | null, timestamp: number): ProducedRecord => ({ topic, key: encoder.encode(key), value: value === null ? null : encoder.encode(value), timestamp });
const compacted = (name: string, extra: Partial<TopicSpec> = {}): TopicSpec => ({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true, ...extra });

function open(name: string, clock: () => number, options: Partial<EmbeddedLogOptions> = {}): EmbeddedTopicLog {
  return EmbeddedTopicLog.open({ path: join(dir, `${name}.db`), logger, maintenanceIntervalMs: 0, clock, tombstoneRetentionMs: 1_000, ...options });
}

async function contents(log: EmbeddedTopicLog, topic: string): Promise<[string, string | null, bigint][]> {
  const consumer = await log.consumer(`read-${Math.random()}`, [topic]);
  const records = await readToEnd(log, consumer, [topic]);
  await consumer.close();
  return records.map((r) => [decoder.decode(r.key!), r.value === null ? null : decoder.decode(r.value), r.offset]);
}

function compactFully(log: EmbeddedTopicLog): void {
  for (let i = 0; i < 5; i++) log.runMaintenance();
}

test("a tombstone stays while a consumer group has not read past it, and goes once every group has", async () => {
  let now = 10_000_000;
  const log = open("slow-group", () => now);
  await log.createTopic(compacted("t"));
  await log.produce([rec("t", "a", "a1", now), rec("t", "b", "b1", now)]);
  await log.setCommittedOffsets("dep.sink.slow", [{ topic: "t", partition: 0, offset: 2n }]);
  await log.produce([rec("t", "a", "a-deleted", now), rec("t", "a", null, now)]);
  now += 60_000;
  compactFully(log);
  assert.deepEqual(await contents(log, "t"), [["b", "b1", 1n], ["a", null, 3n]], "the slow group still has a, so it must see the tombstone");
  // A replay's marker group and a rebuild's group stay where they were set: they read nothing on.
  await log.setCommittedOffsets("dep.sink.slow.replay", [{ topic: "t", partition: 0, offset: 0n }]);
  await log.setCommittedOffsets("dep.sink.slow.rebuild", [{ topic: "t", partition: 0, offset: 1n }]);
  await log.setCommittedOffsets("dep.sink.slow", [{ topic: "t", partition: 0, offset: 4n }]);
  await log.setCommittedOffsets("dep.sink.fast", [{ topic: "t", partition: 0, offset: 4n }]);
  compactFully(log);
  assert.deepEqual(await contents(log, "t"), [["b", "b1", 1n]]);
  assert.deepEqual((await log.partitionOffsets("t")).map((p) => [p.start, p.end]), [[0n, 4n]], "compaction never moves the first offset");
  await log.close();
});

test("records younger than the minimum compaction lag stay; older superseded ones go", async () => {
  let now = 10_000_000;
  const log = open("lag", () => now, { minCompactionLagMs: 60_000 });
  await log.createTopic(compacted("t"));
  await log.produce([rec("t", "a", "a1", now), rec("t", "a", "a2", now)]);
  compactFully(log);
  assert.deepEqual(await contents(log, "t"), [["a", "a1", 0n], ["a", "a2", 1n]]);
  now += 61_000;
  compactFully(log);
  assert.deepEqual(await contents(log, "t"), [["a", "a2", 1n]]);
  await log.close();
});

test("compact,delete: retention by age removes old records (the first offset moves: history incomplete), compaction the superseded ones", async () => {
  let now = 10_000_000;
  const log = open("compact-delete", () => now);
  await log.createTopic(compacted("t", { retentionMs: 100_000 }));
  await log.produce([rec("t", "a", "a1", now), rec("t", "b", "b1", now)]);
  now += 200_000;
  await log.produce([rec("t", "c", "c1", now), rec("t", "c", "c2", now)]);
  compactFully(log);
  assert.deepEqual(await contents(log, "t"), [["c", "c2", 3n]]);
  assert.deepEqual(await missedHistory(log, ["t"], []), [{ topic: "t", partition: 0, start: 2n, from: null }], "a new sink would miss a and b");
  assert.deepEqual(await missedHistory(log, ["t"], [{ topic: "t", partition: 0, offset: 2n }]), [], "a sink that read them misses nothing");
  await log.close();
});

test("a topic created uncompacted is switched in place: keys written since are compacted, keys last written before keep their records", async () => {
  let now = 10_000_000;
  const log = open("switch", () => now);
  const legacy = { name: "t", partitions: 1, retentionMs: 100_000, retentionBytes: null, compacted: false };
  await log.createTopic(legacy);
  await log.produce([rec("t", "a", "a1", now), rec("t", "a", "a2", now), rec("t", "b", "b1", now), rec("t", "b", null, now)]);
  await assert.rejects(log.createTopic(compacted("t")), { code: "TOPIC_MISMATCH" }, "without acceptUncompacted the layouts differ");
  await log.createTopic(compacted("t", { acceptUncompacted: true }));
  assert.equal((await log.listTopics()).find((s) => s.name === "t")?.compacted, true);
  assert.equal((await log.listTopics()).find((s) => s.name === "t")?.retentionMs, null, "no more expiry by age");
  await log.produce([rec("t", "a", "a3", now), rec("t", "c", "c1", now)]);
  now += 1_000_000;
  compactFully(log);
  assert.deepEqual(await contents(log, "t"), [["b", "b1", 2n], ["b", null, 3n], ["a", "a3", 4n], ["c", "c1", 5n]]);
  await log.close();
});

test("one run reads a bounded number of bytes: a pass over a large partition takes several runs", async () => {
  let now = 10_000_000;
  const log = open("bounded", () => now, { maxRowBytes: 64 * 1024, maintenanceBudget: 1_000 });
  await log.createTopic(compacted("t"));
  const big = "x".repeat(60 * 1024);
  for (let i = 0; i < 400; i++) await log.produce([rec("t", `k${i % 10}`, `${i}${big}`, now)]);
  now += 10_000;
  const first = log.runMaintenance();
  assert.ok(first.compactedRecords > 0 && first.compactedRecords < 390, `one run compacted ${first.compactedRecords} records`);
  compactFully(log);
  for (let i = 0; i < 100; i++) log.runMaintenance();
  assert.equal((await contents(log, "t")).length, 10);
  await log.close();
});

test("keys added in groups of a produce call (several statements' worth, keys repeated among them) keep each key's last record", async () => {
  let now = 10_000_000;
  const log = open("key-groups", () => now);
  await log.createTopic(compacted("t"));
  // 256 records over 7 keys in one call (two whole groups of key-index.ts), then 128 more over 3 of them, then 140 over 5
  // (a group and single keys): every group holds repeated keys.
  const calls: [count: number, keys: number, prefix: string][] = [[256, 7, "v"], [128, 3, "w"], [140, 5, "x"]];
  const last = new Map<string, [string, bigint]>();
  let offset = 0;
  for (const [count, keys, prefix] of calls) {
    await log.produce(Array.from({ length: count }, (_, i) => rec("t", `k${i % keys}`, `${prefix}${i}`, now)));
    for (let i = 0; i < count; i++) last.set(`k${i % keys}`, [`${prefix}${i}`, BigInt(offset++)]);
  }
  now += 60_000;
  compactFully(log);
  const expected = [...last].map(([key, [value, offset]]): [string, string, bigint] => [key, value, offset]).sort((a, b) => Number(a[2] - b[2]));
  assert.deepEqual(await contents(log, "t"), expected);
  await log.close();
});

const lastPerKey = (last: Map<string, [string, bigint]>): [string, string, bigint][] =>
  [...last].map(([key, [value, offset]]): [string, string, bigint] => [key, value, offset]).sort((a, b) => Number(a[2] - b[2]));

function indexState(path: string): { indexed: number; next: number; keys: number } {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const { indexed, next } = db.prepare("SELECT indexed_offset AS indexed, next_offset AS next FROM partitions").get() as { indexed: number; next: number };
    const { keys } = db.prepare("SELECT count(*) AS keys FROM latest_keys").get() as { keys: number };
    return { indexed, next, keys };
  } finally {
    db.close();
  }
}

test("appends write no keys; compaction indexes them over bounded runs and across a reopen, keeping each key's last record", async () => {
  let now = 10_000_000;
  const path = join(dir, "key-runs.db");
  let log = open("key-runs", () => now, { maintenanceBudget: 3 });
  await log.createTopic(compacted("t"));
  const keys = 3_000;
  const last = new Map<string, [string, bigint]>();
  let offset = 0;
  const produce = async (calls: number, prefix: string) => {
    for (let c = 0; c < calls; c++) {
      const call = Array.from({ length: 1_000 }, (_, i) => rec("t", `k${(offset + i * 7) % keys}`, `${prefix}${offset + i}`, now));
      await log.produce(call);
      for (const r of call) last.set(decoder.decode(r.key!), [decoder.decode(r.value!), BigInt(offset++)]);
    }
  };
  await produce(10, "v");
  assert.deepEqual(indexState(path), { indexed: 0, next: 10_000, keys: 0 }, "appends leave the index alone");
  now += 60_000;
  log.runMaintenance();
  assert.equal(indexState(path).indexed, 3_000, "one run indexes at most its budget of stored batches");
  await log.close();
  log = open("key-runs", () => now, { maintenanceBudget: 3 });
  await produce(4, "w");
  now += 60_000;
  for (let i = 0; i < 40; i++) log.runMaintenance();
  assert.deepEqual(await contents(log, "t"), lastPerKey(last));
  assert.deepEqual(indexState(path), { indexed: 14_000, next: 14_000, keys });
  await log.close();
});

test("compaction judges no record the index has not reached: a key's newer record beyond indexed_offset stays", async () => {
  let now = 10_000_000;
  const path = join(dir, "index-behind.db");
  const log = open("index-behind", () => now);
  await log.createTopic(compacted("t"));
  await log.produce([rec("t", "a", "a0", now), rec("t", "b", "b0", now)]);
  now += 60_000;
  compactFully(log); // indexes a and b at offsets 0 and 1
  await log.produce([rec("t", "a", "a1", now), rec("t", "b", "b1", now)]);
  await log.close();
  // A run whose indexing gets no further (as when it is out of budget) must leave a1 and b1 alone:
  // the index still names a0 and b0, so they would look superseded.
  const db = new DatabaseSync(path);
  const stalled = new (class extends KeyIndex {
    override catchUp(_topic: number, _partition: number, indexedOffset: number) {
      return { examined: 0, indexedOffset, largestPayload: 0, latest: new Map<string, number>() };
    }
  })(db);
  new Maintenance(db, stalled, 1_000).run(now + 60_000, 500);
  db.close();
  const reopened = open("index-behind", () => now);
  assert.deepEqual(await contents(reopened, "t"), [["a", "a0", 0n], ["b", "b0", 1n], ["a", "a1", 2n], ["b", "b1", 3n]]);
  now += 60_000;
  compactFully(reopened);
  assert.deepEqual(await contents(reopened, "t"), [["a", "a1", 2n], ["b", "b1", 3n]]);
  await reopened.close();
});

test("keys of any bytes (empty, 0x00 and 0xff, long) are indexed as stored and compacted by them", async () => {
  let now = 10_000_000;
  const log = open("key-bytes", () => now);
  await log.createTopic(compacted("t"));
  const keys = [new Uint8Array(0), Uint8Array.of(0), Uint8Array.of(0, 0), Uint8Array.of(0xff), Uint8Array.of(0xff, 0), Uint8Array.of(0xc3, 0xa9), new Uint8Array(300).fill(0x80)];
  const produce = (round: number) => log.produce(keys.map((key, i) => ({ topic: "t", key, value: encoder.encode(`${round}-${i}`), timestamp: now })));
  await produce(0);
  await produce(1);
  now += 60_000;
  compactFully(log);
  await produce(2);
  now += 60_000;
  compactFully(log);
  const consumer = await log.consumer("read-bytes", ["t"]);
  const records = await readToEnd(log, consumer, ["t"]);
  await consumer.close();
  assert.deepEqual(records.map((r) => [Buffer.from(r.key!).toString("hex"), decoder.decode(r.value!)]), keys.map((key, i) => [Buffer.from(key).toString("hex"), `2-${i}`]));
  await log.close();
});

test("a kept large record is let go of with a collection when first read, not on every pass compaction scans it again", async () => {
  const now = 10_000_000;
  const log = open("large-kept", () => now);
  await log.createTopic(compacted("t"));
  const large = "x".repeat(LARGE_VALUE_BYTES);
  await log.produce([rec("t", "a", large, now)]);
  await log.produce([rec("t", "b", "b1", now)]);
  const passes = Array.from({ length: 6 }, () => log.runMaintenance().largestPayloadLetGo);
  assert.ok(passes[0]! >= LARGE_VALUE_BYTES, `first pass (the key index reads it): ${passes[0]}`);
  assert.deepEqual(
    passes.slice(1).map((bytes) => bytes >= LARGE_VALUE_BYTES),
    [false, false, false, false, false],
    `compaction scans it again, superseding nothing: ${passes.join(", ")}`,
  );
  await log.produce([rec("t", "a", "a2", now)]);
  const afterSuperseded = Array.from({ length: 5 }, () => log.runMaintenance().largestPayloadLetGo);
  assert.ok(Math.max(...afterSuperseded) >= LARGE_VALUE_BYTES, `superseded: the batch compaction deletes is let go of: ${afterSuperseded.join(", ")}`);
  await log.close();
});
