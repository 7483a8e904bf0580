/**
 * The embedded log's compaction (maintenance.ts) as data topics use it: tombstones a consumer
 * group has not read yet stay, young records stay, the first offset never moves, bounded reads,
 * and a topic created uncompacted is switched in place without losing a key's only record.
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
import { FOLD_AT } from "./key-index.ts";
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

test("keys pending across a fold within an append and a reopen keep each key's last record; compaction folds what is pending", async () => {
  let now = 10_000_000;
  let log = open("key-folds", () => now);
  await log.createTopic(compacted("t"));
  const keys = 5_000;
  const last = new Map<string, [string, bigint]>();
  let offset = 0;
  const produce = async (count: number, prefix: string) => {
    for (let start = 0; start < count; start += 4_096) {
      const call = Array.from({ length: Math.min(4_096, count - start) }, (_, i) => rec("t", `k${(start + i) % keys}`, `${prefix}${start + i}`, now));
      await log.produce(call);
      for (const r of call) last.set(decoder.decode(r.key!), [decoder.decode(r.value!), BigInt(offset++)]);
    }
  };
  await produce(FOLD_AT + 1_000, "v"); // one fold inside an append, then keys pending
  await log.close();
  log = open("key-folds", () => now);
  await produce(2_345, "w"); // newer records of the pending keys, after a reopen
  now += 60_000;
  compactFully(log);
  const expected = [...last].map(([key, [value, offset]]): [string, string, bigint] => [key, value, offset]).sort((a, b) => Number(a[2] - b[2]));
  assert.deepEqual(await contents(log, "t"), expected);
  await log.close();
  const db = new DatabaseSync(join(dir, "key-folds.db"), { readOnly: true });
  assert.equal((db.prepare("SELECT count(*) AS n FROM pending_keys").get() as { n: number }).n, 0, "compaction folded every pending key");
  assert.equal((db.prepare("SELECT count(*) AS n FROM latest_keys").get() as { n: number }).n, keys);
  db.close();
});

test("a key left pending never moves the index back from a newer entry (a file an older Sluice wrote to in between)", async () => {
  let now = 10_000_000;
  const path = join(dir, "key-older.db");
  let log = open("key-older", () => now);
  await log.createTopic(compacted("t"));
  await log.produce([rec("t", "a", "a0", now), rec("t", "a", "a1", now)]);
  await log.close();
  // An older Sluice indexed offset 1 straight into latest_keys; offset 0's key was left pending.
  const db = new DatabaseSync(path);
  db.exec("DELETE FROM pending_keys WHERE offset = 1; INSERT INTO latest_keys (topic_id, partition, key, offset) SELECT topic_id, partition, key, 1 FROM pending_keys");
  db.close();
  log = open("key-older", () => now);
  now += 60_000;
  compactFully(log);
  assert.deepEqual(await contents(log, "t"), [["a", "a1", 1n]]);
  await log.close();
});

test("long keys are folded by their bytes, long before the key count is reached, and keep each key's last record", async () => {
  let now = 10_000_000;
  const log = open("key-bytes", () => now);
  await log.createTopic(compacted("t"));
  const long = "k".repeat(300);
  const last = new Map<string, [string, bigint]>();
  for (let call = 0; call < 4; call++) {
    const records = Array.from({ length: 2_500 }, (_, i) => rec("t", `${long}${i % 3_000}`, `v${call}-${i}`, now));
    await log.produce(records);
    records.forEach((r, i) => last.set(decoder.decode(r.key!), [decoder.decode(r.value!), BigInt(call * 2_500 + i)]));
  }
  const db = new DatabaseSync(join(dir, "key-bytes.db"), { readOnly: true });
  const pending = (db.prepare("SELECT count(*) AS n FROM pending_keys").get() as { n: number }).n;
  db.close();
  assert.ok(pending < 5_000 && FOLD_AT > 10_000, `${pending} of 10,000 keys of 330 bytes still pending: not folded by bytes`);
  now += 60_000;
  compactFully(log);
  const expected = [...last].map(([key, [value, offset]]): [string, string, bigint] => [key, value, offset]).sort((a, b) => Number(a[2] - b[2]));
  assert.deepEqual(await contents(log, "t"), expected);
  await log.close();
});
