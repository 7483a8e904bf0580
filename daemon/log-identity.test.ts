import assert from "node:assert/strict";
import { test } from "node:test";
import { checkStoredOffsets, logMismatchError, partitionKey } from "./log-identity.ts";

const topic = "shop.pg.public.orders";
const ids = new Map([[topic, "log-b/3@1700000000000"]]);
const ranges = new Map([[partitionKey(topic, 0), { start: 0n, end: 50n }], [partitionKey(topic, 1), { start: 0n, end: 8n }]]);

test("offsets of the topic as the log holds it now pass; offsets without identity are adopted", () => {
  const check = checkStoredOffsets(
    [
      { topic, partition: 0, offset: 50n, topicId: "log-b/3@1700000000000" },
      { topic, partition: 1, offset: 3n, topicId: null },
    ],
    ids,
    ranges,
  );
  assert.deepEqual(check.mismatches, []);
  assert.deepEqual(check.adopted, [{ topic, partition: 1, offset: 3n, topicId: null }]);
});

test("another identity, or an offset past the partition's end, is a mismatch", () => {
  const check = checkStoredOffsets(
    [
      { topic, partition: 0, offset: 10n, topicId: "log-a/3@1600000000000" },
      // no identity (older Sluice), but past the end: these offsets cannot be this topic's
      { topic, partition: 1, offset: 9n, topicId: null },
    ],
    ids,
    ranges,
  );
  assert.deepEqual(check.adopted, []);
  assert.deepEqual(check.mismatches, [
    { topic, partition: 0, offset: 10n, expected: "log-a/3@1600000000000", found: "log-b/3@1700000000000", end: 50n },
    { topic, partition: 1, offset: 9n, expected: null, found: "log-b/3@1700000000000", end: 8n },
  ]);
});

test("a stored identity where the log has none recorded is a mismatch; none on both sides is left alone", () => {
  const none = new Map<string, string>();
  assert.equal(checkStoredOffsets([{ topic, partition: 0, offset: 1n, topicId: "log-a/1@1" }], none, ranges).mismatches.length, 1);
  const check = checkStoredOffsets([{ topic, partition: 0, offset: 1n, topicId: null }], none, ranges);
  assert.deepEqual(check, { adopted: [], mismatches: [] });
});

test("the refusal names the sink, the topic, both identities and the rebuild command", () => {
  const error = logMismatchError("warehouse", [{ topic, partition: 0, offset: 10n, expected: "log-a/3@1", found: "log-b/3@2", end: 50n }]);
  assert.equal(error.code, "SINK_LOG_MISMATCH");
  assert.deepEqual(
    { sink: error.context["sink"], topic: error.context["topic"], expected: error.context["expectedTopicId"], found: error.context["foundTopicId"] },
    { sink: "warehouse", topic, expected: "log-a/3@1", found: "log-b/3@2" },
  );
  assert.match(error.message, /shop\.pg\.public\.orders partition 0: offset 10 was stored for topic identity log-a\/3@1, the log's topic is log-b\/3@2/);
  assert.match(error.message, /Rebuild the table of this topic from the log as it is now: sluice replay -c CONFIG --sink warehouse --from-beginning --rebuild --table shop\.pg\.public\.orders --execute/);
});

test("the refusal's rebuild names only the tables of the topics refused (one deleted and created again), and every table when the log's own topics or many are refused", () => {
  const mismatch = (t: string) => ({ topic: t, partition: 0, offset: 10n, expected: "a", found: "b", end: 50n });
  const two = logMismatchError("warehouse", [mismatch("shop.pg.public.orders"), mismatch("shop.pg.public.orders"), mismatch("shop.pg.public.items")]);
  assert.match(two.message, /--rebuild --table shop\.pg\.public\.orders --table shop\.pg\.public\.items --execute/);
  assert.match(two.message, /its other tables keep what they hold/);
  const own = logMismatchError("warehouse", [mismatch("shop.sluice.control")]);
  assert.match(own.message, /Rebuild it from the log as it is now: sluice replay -c CONFIG --sink warehouse --from-beginning --rebuild --execute/);
  const many = logMismatchError("warehouse", Array.from({ length: 6 }, (_, i) => mismatch(`shop.pg.public.t${i}`)));
  assert.match(many.message, /--from-beginning --rebuild --execute/);
  assert.doesNotMatch(many.message, /--table/);
});
