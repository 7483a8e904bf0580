import assert from "node:assert/strict";
import { test } from "node:test";
import { commitNotVisibleError } from "./commit-not-visible.ts";
import { partitionKey } from "./stable-offsets.ts";

const hidden = [
  { topic: "dep.sluice.checkpoints", partition: 0, offset: 34n },
  { topic: "dep.src.public.items", partition: 2, offset: 355n },
];

test("a commit never visible names each partition, its stuck last stable offset and the command that aborts what holds it", () => {
  const stableEnds = new Map([
    [partitionKey("dep.sluice.checkpoints", 0), 34n],
    [partitionKey("dep.src.public.items", 2), 333n],
  ]);
  const error = commitNotVisibleError({ hidden, stableEnds, failure: null, brokers: ["k1:9092", "k2:9092"], transactionalId: "dep.sluice", waitedMs: 10_000 });
  assert.equal(error.code, "KAFKA_COMMIT_NOT_VISIBLE");
  assert.equal(error.retriable, true);
  assert.match(error.message, /after 10 s: dep\.sluice\.checkpoints partition 0 \(record at offset 34, last stable offset stuck at 34\), dep\.src\.public\.items partition 2 \(record at offset 355, last stable offset stuck at 333\)/);
  assert.match(error.message, /transaction left open on these partitions .*another writer's, or one Kafka left hanging/);
  assert.match(error.message, /transactional id dep\.sluice\) is completed by its next commit to the partition/);
  assert.match(error.message, /find it with kafka-transactions\.sh --bootstrap-server k1:9092,k2:9092 find-hanging --topic dep\.sluice\.checkpoints; kafka-transactions\.sh --bootstrap-server k1:9092,k2:9092 find-hanging --topic dep\.src\.public\.items \(/);
  assert.match(error.message, /kafka-transactions\.sh --bootstrap-server k1:9092,k2:9092 describe --transactional-id dep\.sluice/);
  assert.match(error.message, /abort --topic dep\.sluice\.checkpoints --partition 0 --start-offset 34; kafka-transactions\.sh --bootstrap-server k1:9092,k2:9092 abort --topic dep\.src\.public\.items --partition 2 --start-offset 333$/);
});

test("when the last stable offsets could not be asked for, the error says why and gives no abort command", () => {
  const error = commitNotVisibleError({ hidden, stableEnds: new Map(), failure: new Error("Connection timeout"), brokers: ["k1:9092"], transactionalId: "dep.sluice", waitedMs: 10_000 });
  assert.equal(error.retriable, true);
  assert.match(error.message, /partition 0 \(record at offset 34, last stable offset unknown\)/);
  assert.match(error.message, /asking for the partitions' last stable offsets failed: Connection timeout/);
  assert.doesNotMatch(error.message, /abort --topic/);
});
