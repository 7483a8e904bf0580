/** What Sluice advises an operator to set for a Kafka record limit, and which broker's limit a topic is held to (record-limits.ts). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { brokerLimitsOf, describedRecordLimit, raisedConfigValue } from "./record-limits.ts";

test("the segment.bytes advised holds many records of the size needed (Kafka's default 1 GiB at least, within an int32); max.message.bytes is the size itself", () => {
  assert.equal(raisedConfigValue("max.message.bytes", 1_500_000), 1_500_000);
  assert.equal(raisedConfigValue("segment.bytes", 1_500_000), 2 ** 30);
  assert.equal(raisedConfigValue("segment.bytes", 100 * 2 ** 20), 16 * 100 * 2 ** 20);
  assert.equal(raisedConfigValue("segment.bytes", 512 * 2 ** 20), 2 ** 31 - 1);
});

test("the segment.bytes advised is no larger than the topic's retention.bytes, unless a record needs more (and never below Kafka's 1 MiB)", () => {
  // A 1 GiB segment under retention.bytes of 100 MB kept each partition at up to 1 GiB: Kafka never deletes the segment written to.
  assert.equal(raisedConfigValue("segment.bytes", 1_500_000, 100_000_000), 100_000_000);
  assert.equal(raisedConfigValue("segment.bytes", 16 * 2 ** 20, 10_000_000), 16 * 2 ** 20);
  assert.equal(raisedConfigValue("segment.bytes", 500_000, 600_000), 2 ** 20);
  // No retention by size (-1, or none under compaction): as before.
  assert.equal(raisedConfigValue("segment.bytes", 1_500_000, -1), 2 ** 30);
  assert.equal(raisedConfigValue("segment.bytes", 1_500_000, null), 2 ** 30);
  assert.equal(raisedConfigValue("max.message.bytes", 1_500_000, 100_000), 1_500_000);
});

const broker = (entries: Record<string, string>) => ({ configEntries: Object.entries(entries).map(([configName, configValue]) => ({ configName, configValue })) });
/** DescribeConfigs' ConfigSource: 1 the topic's own (TOPIC_CONFIG); inherited: 2 DYNAMIC_BROKER_CONFIG, 3 DYNAMIC_DEFAULT_BROKER_CONFIG, 4 STATIC_BROKER_CONFIG, 5 DEFAULT_CONFIG. */
const own = (value: string) => ({ value, source: 1 });
const inherited = (value: string) => ({ value, source: 5 });

test("the brokers' own limits are the lowest over every broker described, each config on its own", () => {
  const limits = brokerLimitsOf([
    broker({ "socket.request.max.bytes": "104857600", "message.max.bytes": "1048588", "log.segment.bytes": "1073741824" }),
    broker({ "socket.request.max.bytes": "300000", "message.max.bytes": "5000000", "log.segment.bytes": "2097152" }),
    broker({ "message.max.bytes": "" }),
  ]);
  assert.deepEqual(limits, { socketRequestMaxBytes: 300_000, messageMaxBytes: 1_048_588, logSegmentBytes: 2_097_152 });
  assert.deepEqual(brokerLimitsOf([]), {});
});

test("a topic that takes a broker-level limit is held to the lowest broker's, not the one that answered its describe; its own values are its own", () => {
  // Broker 1 answered the describe (1 GiB segments); broker 2, leading a partition, has log.segment.bytes 2 MiB.
  const brokers = { messageMaxBytes: 1_048_588, logSegmentBytes: 2 * 2 ** 20 };
  const takesBrokers = describedRecordLimit("t", own("16777216"), inherited("1073741824"), brokers);
  assert.equal(takesBrokers?.bytes, 2 * 2 ** 20);
  assert.equal(takesBrokers?.config, "segment.bytes");
  assert.match(takesBrokers?.setting ?? "", /^log\.segment\.bytes of the brokers, which topic t takes/);
  // Its own segment.bytes and max.message.bytes: the brokers' do not apply.
  assert.equal(describedRecordLimit("t", own("16777216"), own("1073741824"), brokers)?.bytes, 16_777_216);
  // message.max.bytes lower on a broker than on the one described, for a topic without its own.
  const message = describedRecordLimit("t", inherited("5000000"), inherited("1073741824"), { messageMaxBytes: 3000 });
  assert.equal(message?.bytes, 3000);
  assert.match(message?.setting ?? "", /^message\.max\.bytes of the brokers/);
  // The brokers' not read (no DescribeConfigs on the cluster): the described values, as before.
  assert.equal(describedRecordLimit("t", inherited("5000000"), inherited("1073741824"))?.bytes, 5_000_000);
});
