/**
 * Unit tests of when a snapshot reset may apply (snapshot-reset-gate.ts), with the topic log and
 * consumer reduced to the offsets the gate reads. The same behaviour against real Kafka and the
 * embedded log: snapshot-reset-partitions.int.test.ts.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ChangeEvent, PartitionOffsets, SinkChange, StoredRecord, TopicPartitionOffset } from "../connectors/contracts.ts";
import type { TopicConsumer } from "../connectors/topics/contract.ts";
import { isSnapshotReset, SnapshotResetGate } from "./snapshot-reset-gate.ts";

const topic = "d.pg.public.items";
const key = (t: string, p: number) => `${t}\u0000${p}`;

function reset(partition: number, offset: bigint): { record: StoredRecord; change: SinkChange } {
  const event = {
    op: "t",
    key: {},
    before: null,
    after: null,
    source: { connector: "postgres", name: "pg", db: "db", schema: "public", table: "items", position: { commit: 9n, change: 9n }, txId: null, commitTimeMs: 0, snapshot: true },
  } as unknown as ChangeEvent;
  return { record: { topic, partition, offset, key: null, value: null, timestamp: 0 }, change: { event, origin: { topic, partition, offset } } };
}

class FakeLog {
  ranges: PartitionOffsets[] = [];
  committed: TopicPartitionOffset[] = [];
  ids = new Map<string, string>();
  async topicIds(topics: readonly string[]): Promise<Map<string, string>> {
    return new Map(topics.flatMap((t) => (this.ids.has(t) ? [[t, this.ids.get(t)!] as const] : [])));
  }
  async partitionOffsets(): Promise<PartitionOffsets[]> {
    return this.ranges;
  }
  async committedOffsets(): Promise<TopicPartitionOffset[]> {
    return this.committed;
  }
}

class FakeConsumer {
  assigned: number[] = [0, 1, 2];
  positions = new Map<number, bigint>();
  assignment() {
    return this.assigned.map((partition) => ({ topic, partition }));
  }
  position(_topic: string, partition: number): bigint | null {
    return this.positions.get(partition) ?? null;
  }
}

const asConsumer = (c: FakeConsumer) => c as unknown as TopicConsumer;
const never = () => false;

test("only a truncate read with the snapshot flag is a snapshot reset", () => {
  const { change } = reset(0, 0n);
  assert.equal(isSnapshotReset(change.event), true);
  assert.equal(isSnapshotReset({ ...change.event, source: { ...change.event.source, snapshot: false } }), false);
  assert.equal(isSnapshotReset({ ...change.event, op: "r" }), false);
});

test("a topic of one partition applies the reset with its batch", async () => {
  const log = new FakeLog();
  log.ranges = [{ topic, partition: 0, start: 0n, end: 10n }];
  const gate = new SnapshotResetGate(log, "g");
  const { record, change } = reset(0, 9n);
  assert.equal(await gate.hold(record, change), false);
  assert.equal(gate.size, 0);
});

test("the reset waits until every other partition holding records is applied up to its end offset when the reset was read", async () => {
  const log = new FakeLog();
  log.ranges = [
    { topic, partition: 0, start: 0n, end: 5n },
    { topic, partition: 1, start: 0n, end: 100n },
    { topic, partition: 2, start: 40n, end: 40n }, // emptied by retention: nothing to wait for
  ];
  const gate = new SnapshotResetGate(log, "g");
  const consumer = new FakeConsumer();
  const { record, change } = reset(0, 4n);
  assert.equal(await gate.hold(record, change), true);
  consumer.positions.set(0, 5n);
  consumer.positions.set(1, 99n);
  assert.deepEqual(await gate.due(asConsumer(consumer), never), []);
  // The end moved on since (later records): only the end at the time the reset was read counts.
  log.ranges = log.ranges.map((r) => ({ ...r, end: r.end + 50n }));
  consumer.positions.set(1, 100n);
  const due = await gate.due(asConsumer(consumer), never);
  assert.deepEqual(
    due.map((d) => d.record.offset),
    [4n],
  );
  assert.equal(gate.size, 0);
});

test("while it waits, its partition's stored offset stays at the reset; other partitions are not held", async () => {
  const log = new FakeLog();
  log.ranges = [0, 1].map((partition) => ({ topic, partition, start: 0n, end: 10n }));
  const gate = new SnapshotResetGate(log, "g");
  const { record, change } = reset(0, 7n);
  await gate.hold(record, change);
  const offsets = new Map<string, TopicPartitionOffset>([
    [key(topic, 0), { topic, partition: 0, offset: 10n }],
    [key(topic, 1), { topic, partition: 1, offset: 4n }],
  ]);
  gate.holdOffsets(offsets, key);
  assert.equal(offsets.get(key(topic, 0))!.offset, 7n);
  assert.equal(offsets.get(key(topic, 1))!.offset, 4n);
});

test("partitions another member of the group reads count by the group's committed offsets", async () => {
  const log = new FakeLog();
  log.ranges = [0, 1, 2].map((partition) => ({ topic, partition, start: 0n, end: 20n }));
  const gate = new SnapshotResetGate(log, "g");
  const consumer = new FakeConsumer();
  consumer.assigned = [0, 1];
  consumer.positions.set(0, 20n);
  consumer.positions.set(1, 20n);
  const { record, change } = reset(0, 3n);
  await gate.hold(record, change);
  log.committed = [{ topic, partition: 2, offset: 19n }];
  assert.deepEqual(await gate.due(asConsumer(consumer), never), []);
  log.committed = [{ topic, partition: 2, offset: 20n }];
  await new Promise((resolve) => setTimeout(resolve, 1_100)); // the group's offsets are asked for at most once a second
  assert.equal((await gate.due(asConsumer(consumer), never)).length, 1);
});

test("a halted table's reset waits; a reset whose partition moved to another member is left to it", async () => {
  const log = new FakeLog();
  log.ranges = [0, 1].map((partition) => ({ topic, partition, start: 0n, end: 8n }));
  const gate = new SnapshotResetGate(log, "g");
  const consumer = new FakeConsumer();
  consumer.assigned = [0, 1];
  consumer.positions.set(0, 8n);
  consumer.positions.set(1, 8n);
  const { record, change } = reset(0, 2n);
  await gate.hold(record, change);
  assert.equal(await gate.hold(record, change), true, "read again (after a rebalance): still waiting, once");
  assert.equal(gate.size, 1);
  assert.deepEqual(await gate.due(asConsumer(consumer), () => true), []);
  assert.equal(gate.size, 1);
  consumer.assigned = [1];
  assert.deepEqual(await gate.due(asConsumer(consumer), never), []);
  assert.equal(gate.size, 0);
});

test("a control record (in the control topic) waits for every partition of its table's data topic, even a data topic of one partition, and for halted tables", async () => {
  const control = "d.sluice.control";
  const log = new FakeLog();
  log.ranges = [{ topic, partition: 0, start: 0n, end: 7n }];
  const gate = new SnapshotResetGate(log, "g");
  const positions = new Map<string, bigint>();
  const consumer = {
    assignment: () => [{ topic, partition: 0 }, { topic: control, partition: 0 }],
    position: (t: string, p: number) => positions.get(key(t, p)) ?? null,
  } as unknown as TopicConsumer;
  const { change } = reset(0, 0n);
  const record: StoredRecord = { topic: control, partition: 0, offset: 3n, key: Buffer.from("k"), value: null, timestamp: 0 };
  assert.equal(await gate.hold(record, { ...change, origin: { topic: control, partition: 0, offset: 3n } }, topic), true, "held although the data topic has one partition");
  positions.set(key(topic, 0), 6n);
  assert.deepEqual(await gate.due(consumer, never), [], "the data topic's partition 0 is not applied up to offset 7 yet");
  positions.set(key(topic, 0), 7n);
  assert.deepEqual(await gate.due(consumer, (t) => t === topic), [], "its table is halted");
  const due = await gate.due(consumer, never);
  assert.deepEqual(due.map((r) => [r.record.topic, r.dataTopic]), [[control, topic]]);
  const offsets = new Map([[key(control, 0), { topic: control, partition: 0, offset: 4n }]]);
  gate.holdOffsets(offsets, key);
  assert.equal(offsets.get(key(control, 0))!.offset, 4n, "nothing waits: the control topic's offset moves on");
});

test("a data topic created again drops the resets whose barrier was taken against the deleted topic, not those taken against the new one", async () => {
  const control = "d.sluice.control";
  const log = new FakeLog();
  log.ranges = [{ topic, partition: 0, start: 0n, end: 7n }];
  log.ids.set(topic, "old");
  const gate = new SnapshotResetGate(log, "g");
  const { change } = reset(0, 0n);
  const controlRecord = (offset: bigint): StoredRecord => ({ topic: control, partition: 0, offset, key: Buffer.from("k"), value: null, timestamp: 0 });
  assert.equal(await gate.hold(controlRecord(1n), change, topic), true);
  // Deleted and created again; a TRUNCATE made after that is read before the sink's next identity check.
  log.ids.set(topic, "new");
  log.ranges = [{ topic, partition: 0, start: 0n, end: 100n }];
  assert.equal(await gate.hold(controlRecord(2n), change, topic), true);
  gate.forgetTopics([topic], new Map([[topic, "new"]]));
  assert.equal(gate.size, 1, "the reset read against the old topic is dropped");
  const positions = new Map([[key(topic, 0), 99n]]);
  const consumer = {
    assignment: () => [{ topic, partition: 0 }, { topic: control, partition: 0 }],
    position: (t: string, p: number) => positions.get(key(t, p)) ?? null,
  } as unknown as TopicConsumer;
  assert.deepEqual(await gate.due(consumer, never), [], "the one read against the new topic waits for the new topic's end");
  positions.set(key(topic, 0), 100n);
  assert.deepEqual((await gate.due(consumer, never)).map((r) => r.record.offset), [2n]);
  assert.equal(await gate.hold(controlRecord(3n), change, topic), true);
  gate.forgetTopics([control], new Map([[topic, "new"], [control, "c2"]]));
  assert.equal(gate.size, 0, "the control topic created again is read again from its first record");
});
