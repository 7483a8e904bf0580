/** A topic the Kafka log created is usable at once, against the real broker from test/services/. */
import assert from "node:assert/strict";
import { after, test } from "node:test";
import kafkajs, { Kafka } from "kafkajs";
import type { Admin } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import { captureLeaseTopic, checkpointTopic, instancesTopic, registryTopic, schemaHistoryTopic, TOPIC_NAME_INVALID, topicIdsTopic } from "../topics/names.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { assertConnectionsClosed, testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("warn");
const deployment = testDeployment("tcreate");

after(async () => {
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

// The broker's metadata names a new partition's leader a moment before that broker serves it:
// ListOffsets (endOffsets, every read) was refused with NOT_LEADER_FOR_PARTITION in that moment.
test("each partition of a topic just created answers offset requests at once", async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  try {
    for (let i = 0; i < 15; i++) {
      const topic = `${deployment}.t${i}`;
      await log.createTopic({ name: topic, partitions: 3, retentionMs: null, retentionBytes: null, compacted: false });
      assert.deepEqual((await log.endOffsets(topic)).map((o) => [o.partition, o.offset]), [[0, 0n], [1, 0n], [2, 0n]]);
    }
  } finally {
    await log.close();
  }
});

// A first start created the five internal topics one CreateTopics request after another (each a
// turn of the broker's controller); the missing ones are created in one request now, beside one that exists.
test("a first open creates the missing internal topics in one request, and takes one that exists as it is", async () => {
  const first = testDeployment("tinternal");
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  // Every admin client kafkajs makes meanwhile (the log's own among them) reports its CreateTopics requests here.
  let createRequests = 0;
  const makeAdmin = Kafka.prototype.admin;
  Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka["admin"]>) {
    const made = makeAdmin.apply(this, args);
    made.on(made.events.REQUEST, (event) => {
      if (event.payload.apiName === "CreateTopics") createRequests++;
    });
    return made;
  };
  try {
    await admin.createTopics({ topics: [{ topic: checkpointTopic(first), numPartitions: 1, configEntries: [{ name: "cleanup.policy", value: "compact" }] }] });
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment: first, logger });
    try {
      assert.equal(createRequests, 1);
      const internal = [[checkpointTopic(first), true], [registryTopic(first), false], [schemaHistoryTopic(first), false], [topicIdsTopic(first), true], [instancesTopic(first), true], [captureLeaseTopic(first), true]] as const;
      const specs = new Map((await log.listTopics(internal.map(([topic]) => topic))).map((t) => [t.name, t]));
      for (const [topic, compacted] of internal) {
        assert.equal(specs.get(topic)?.compacted, compacted, topic);
        assert.deepEqual((await log.endOffsets(topic)).map((o) => [o.partition, o.offset]), [[0, 0n]], topic);
      }
    } finally {
      await log.close();
    }
    // A restart finds them all: nothing to create.
    const again = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment: first, logger });
    await again.close();
    assert.equal(createRequests, 1);
  } finally {
    Kafka.prototype.admin = makeAdmin;
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${first}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    await admin.disconnect();
  }
});

/** Resolves once Kafka neither describes `topic` nor has metadata for it: DeleteTopics is answered a moment before that (at load 25, 2 in 20 describes right after it still answered). */
async function untilGone(admin: Admin, topic: string): Promise<void> {
  const gone = (error: unknown) => (error as { type?: string }).type === "UNKNOWN_TOPIC_OR_PARTITION";
  for (let i = 0; i < 500; i++) {
    const configs = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] }).then(() => false, gone);
    const metadata = await admin.fetchTopicMetadata({ topics: [topic] }).then(() => false, gone);
    if (configs && metadata) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error(`topic ${topic} still described 10 s after its deletion`);
}

// Listing describes each topic after naming it: one deleted meanwhile (another process, another test) made its configs
// request fail with UNKNOWN_TOPIC_OR_PARTITION, and the whole listing with it.
test("a topic deleted while the topics are listed is left out of the list", async () => {
  const doomed = `${deployment}.doomed`;
  const kept = `${deployment}.kept`;
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  let deleted = false;
  const makeAdmin = Kafka.prototype.admin;
  Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka["admin"]>) {
    const made = makeAdmin.apply(this, args);
    const describeConfigs = made.describeConfigs.bind(made);
    made.describeConfigs = async (request) => {
      if (!deleted && request.resources.some((r) => r.name === doomed)) {
        deleted = true;
        // Deleted by another process before this request, so as Kafka shows it once the deletion is through (the test
        // deleted and asked at once: Kafka sometimes still described the topic, and it was listed).
        await admin.deleteTopics({ topics: [doomed] });
        await untilGone(admin, doomed);
      }
      return describeConfigs(request);
    };
    return made;
  };
  try {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      for (const name of [doomed, kept]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      assert.deepEqual((await log.listTopics([doomed, kept])).map((t) => t.name), [kept]);
      assert.ok(deleted, "the topic was deleted while listed");
      // The log's admin had looked the deleted topic up (its leaders, at creation): its later requests still work.
      assert.deepEqual((await log.listTopics()).map((t) => t.name).filter((n) => n === doomed || n === kept), [kept]);
      assert.deepEqual((await log.endOffsets(kept)).map((o) => o.offset), [0n]);
    } finally {
      await log.close();
    }
  } finally {
    Kafka.prototype.admin = makeAdmin;
    await admin.disconnect();
  }
});

// Kafka's metadata can show a deleted topic a moment after its configs are gone (seen 1 in 20 right after a deletion at
// load 25): the listing asked the configs again on a new admin, failed with UNKNOWN_TOPIC_OR_PARTITION, and so did the
// whole listing. The broker's own answer from before the deletion is given once to the log's metadata request to place
// that moment, which cannot be had at will.
test("a topic whose deletion Kafka's metadata shows after its configs is left out of the list", async () => {
  const doomed = `${deployment}.lagging`;
  const kept = `${deployment}.kept-too`;
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  await admin.createTopics({ waitForLeaders: true, topics: [doomed, kept].map((topic) => ({ topic, numPartitions: 1 })) });
  const before = await admin.fetchTopicMetadata({ topics: [doomed] });
  let deleted = false;
  let stale = false;
  const makeAdmin = Kafka.prototype.admin;
  Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka["admin"]>) {
    const made = makeAdmin.apply(this, args);
    const describeConfigs = made.describeConfigs.bind(made);
    made.describeConfigs = async (request) => {
      if (!deleted && request.resources.some((r) => r.name === doomed)) {
        deleted = true;
        await admin.deleteTopics({ topics: [doomed] });
        await untilGone(admin, doomed);
      }
      return describeConfigs(request);
    };
    const fetchTopicMetadata = made.fetchTopicMetadata.bind(made);
    made.fetchTopicMetadata = async (request) => {
      if (deleted && !stale && request?.topics?.includes(doomed)) {
        stale = true;
        return before;
      }
      return fetchTopicMetadata(request);
    };
    return made;
  };
  try {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      assert.deepEqual((await log.listTopics([doomed, kept])).map((t) => t.name), [kept]);
      assert.ok(stale, "the metadata request after the deletion was answered as before it");
    } finally {
      await log.close();
    }
  } finally {
    Kafka.prototype.admin = makeAdmin;
    await admin.disconnect();
  }
});

// The log's admin refreshes every topic it has looked up, so one another process deleted fails its configs request with
// UNKNOWN_TOPIC_OR_PARTITION whatever topic it asks about; only a new admin tells which. When a new one could not be
// connected, the request was asked again on the old one, and its answer (about the deleted topic) left an existing
// topic out of the list. The new admin's connection is refused once to place that moment.
test("a topic is not left out of the list when the admin that failed on another, deleted topic cannot be renewed", async () => {
  const doomed = `${deployment}.looked-up`;
  const kept = `${deployment}.kept-stale`;
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  let refuse = false;
  let refused = 0;
  const makeAdmin = Kafka.prototype.admin;
  Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka["admin"]>) {
    const made = makeAdmin.apply(this, args);
    const connect = made.connect.bind(made);
    made.connect = async () => {
      if (refuse) {
        refuse = false;
        refused++;
        throw new Error("connection refused by the test");
      }
      return connect();
    };
    return made;
  };
  try {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      // The log's admin looks both up (the leaders' wait), then another process deletes one.
      for (const name of [doomed, kept]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      await admin.deleteTopics({ topics: [doomed] });
      await untilGone(admin, doomed);
      refuse = true;
      await assert.rejects(log.listTopics([kept]), (error: unknown) => error instanceof SluiceError && error.retriable, "the listing fails for now, without leaving the topic out");
      assert.equal(refused, 1, "a new admin was asked for and refused");
      assert.deepEqual((await log.listTopics([kept])).map((t) => t.name), [kept]);
      assert.equal(log.ready(), true);
    } finally {
      await log.close();
    }
  } finally {
    Kafka.prototype.admin = makeAdmin;
    await admin.disconnect();
  }
});

// The new topic's leaders' wait asks the log's admin for its offsets, which kafkajs refreshes for every topic the admin has
// looked up: one another process deleted meanwhile failed the wait (the admin was renewed only after it), so the
// creation of a topic failed. The deletion is placed right after the topic's CreateTopics request.
test("a new topic's leaders' wait is not failed by another topic the log's admin had looked up, deleted meanwhile", async () => {
  const doomed = `${deployment}.deleted-meanwhile`;
  const created = `${deployment}.created-after`;
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  let deleted = false;
  const makeAdmin = Kafka.prototype.admin;
  Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka["admin"]>) {
    const made = makeAdmin.apply(this, args);
    const createTopics = made.createTopics.bind(made);
    made.createTopics = async (request) => {
      const answer = await createTopics(request);
      if (!deleted && request.topics.some((t) => t.topic === created)) {
        deleted = true;
        await admin.deleteTopics({ topics: [doomed] });
        await untilGone(admin, doomed);
      }
      return answer;
    };
    return made;
  };
  try {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      await log.createTopic({ name: doomed, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      await log.createTopic({ name: created, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
      assert.ok(deleted, "the other topic was deleted while the topic was created");
      assert.deepEqual((await log.endOffsets(created)).map((o) => [o.partition, o.offset]), [[0, 0n], [1, 0n]]);
      assert.equal(log.ready(), true);
    } finally {
      await log.close();
    }
  } finally {
    Kafka.prototype.admin = makeAdmin;
    await admin.disconnect();
  }
});

// A data topic's identity goes in before the topic. One with no identity recorded gets a new one whether it exists or
// not, so that is written while the topic is described (it waited for the description: a round trip of every first start).
test("a new data topic's identity is recorded while the topic is described, before the topic is created", async () => {
  const topic = `${deployment}.described`;
  let release = (): void => undefined;
  const held = new Promise<void>((resolve) => (release = resolve));
  let holding = false;
  const makeAdmin = Kafka.prototype.admin;
  Kafka.prototype.admin = function (this: Kafka, ...args: Parameters<Kafka["admin"]>) {
    const made = makeAdmin.apply(this, args);
    const fetchTopicMetadata = made.fetchTopicMetadata.bind(made);
    made.fetchTopicMetadata = async (request) => {
      if (!holding && request?.topics?.includes(topic)) {
        holding = true;
        await held;
      }
      return fetchTopicMetadata(request);
    };
    return made;
  };
  try {
    const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
    try {
      const creating = log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      creating.catch(() => undefined);
      await new Promise((resolve) => setTimeout(resolve, 1_000));
      const recorded = (await log.topicIds([topic])).has(topic);
      assert.ok(holding, "the topic's description was held");
      assert.ok(recorded, "the identity is recorded while the topic is described");
      release();
      await creating;
      assert.equal((await log.topicIds([topic])).size, 1);
      assert.deepEqual((await log.endOffsets(topic)).map((o) => o.offset), [0n]);
      // Described again (it exists, with its identity): nothing new recorded.
      const id = (await log.topicIds([topic])).get(topic);
      await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      assert.equal((await log.topicIds([topic])).get(topic), id);
    } finally {
      release();
      await log.close();
    }
  } finally {
    Kafka.prototype.admin = makeAdmin;
  }
});

// Announcements and topic identities go through one plain producer, made at its first use: two first uses at once each
// made one, and the first stayed connected after close (the process did not exit).
test("two announcements at once leave no connection open once the log is closed", async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  await assertConnectionsClosed(
    async () => void (await Promise.all([log.announce("first", "{}"), log.announce("second", "{}")])),
    () => log.close(),
    "the announcements",
  );
});

// Table names become topic names: one Kafka cannot take was a failure of the whole source (KAFKA_ERROR), now TOPIC_NAME_INVALID, which capture turns into a halt of that table.
test("a topic name Kafka cannot take, or one colliding with another in '.' versus '_', is TOPIC_NAME_INVALID naming it", async () => {
  const log = await KafkaTopicLog.open({ config: testKafkaConfig(), deployment, logger });
  const spec = (name: string) => ({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const invalid = (name: string) => (error: unknown) => error instanceof SluiceError && error.code === TOPIC_NAME_INVALID && error.context["topic"] === name && error.message.includes(JSON.stringify(name));
  try {
    for (const name of [`${deployment}.public.sp ace`, `${deployment}.public.üñí`, `${deployment}.public.q"u'o\`te;--`]) await assert.rejects(log.createTopic(spec(name)), invalid(name));
    await log.createTopic(spec(`${deployment}.public.a_b`));
    await assert.rejects(log.createTopic(spec(`${deployment}.public.a.b`)), invalid(`${deployment}.public.a.b`));
  } finally {
    await log.close();
  }
});

/** The configs a topic has of its own (not the broker's defaults), by name. */
async function ownConfigs(admin: Admin, topic: string): Promise<Map<string, string>> {
  const { resources } = await admin.describeConfigs({ includeSynonyms: false, resources: [{ type: kafkajs.ConfigResourceTypes.TOPIC, name: topic }] });
  return new Map(resources[0]!.configEntries.filter((e) => e.configSource === kafkajs.ConfigSource.TOPIC_CONFIG).map((e) => [e.configName, e.configValue]));
}

// Kafka never compacts the active segment (7 days or 1 GiB by default), where capture leaves a checkpoint per transaction:
// the topic kept every record of days of capture, all read at every start.
test("the checkpoint and instance topics roll and compact within minutes, created so or set at start when an earlier version created them", async () => {
  const fresh = testDeployment("tcompact");
  const earlier = testDeployment("tcompactold");
  const admin = new Kafka({ brokers: testKafkaConfig().brokers, logLevel: 0 }).admin();
  await admin.connect();
  const rolls = (configs: Map<string, string>) => [configs.get("segment.ms"), configs.get("max.compaction.lag.ms")];
  try {
    await (await KafkaTopicLog.open({ config: testKafkaConfig(), deployment: fresh, logger })).close();
    for (const topic of [checkpointTopic(fresh), instancesTopic(fresh)]) assert.deepEqual(rolls(await ownConfigs(admin, topic)), ["600000", "600000"], topic);
    assert.deepEqual(rolls(await ownConfigs(admin, topicIdsTopic(fresh))), [undefined, undefined]);

    // As an earlier version created them; the instance topic with a segment.ms of the operator's.
    await admin.createTopics({
      topics: [
        { topic: checkpointTopic(earlier), numPartitions: 1, configEntries: [{ name: "cleanup.policy", value: "compact" }, { name: "max.message.bytes", value: "2000000" }, { name: "delete.retention.ms", value: "1234" }] },
        { topic: instancesTopic(earlier), numPartitions: 1, configEntries: [{ name: "cleanup.policy", value: "compact" }, { name: "segment.ms", value: "3600000" }] },
      ],
    });
    // A read-only open alters nothing.
    await (await KafkaTopicLog.open({ config: testKafkaConfig(), deployment: earlier, logger, access: "read-only" })).close();
    assert.deepEqual(rolls(await ownConfigs(admin, checkpointTopic(earlier))), [undefined, undefined]);
    await (await KafkaTopicLog.open({ config: testKafkaConfig(), deployment: earlier, logger, access: "command" })).close();
    const checkpoints = await ownConfigs(admin, checkpointTopic(earlier));
    assert.deepEqual(rolls(checkpoints), ["600000", "600000"]);
    // Its other configs are kept (AlterConfigs replaces them all).
    assert.deepEqual([checkpoints.get("cleanup.policy"), checkpoints.get("max.message.bytes"), checkpoints.get("delete.retention.ms")], ["compact", "2000000", "1234"]);
    assert.deepEqual(rolls(await ownConfigs(admin, instancesTopic(earlier))), ["3600000", "600000"]);
  } finally {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${fresh}.`) || t.startsWith(`${earlier}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics });
    await admin.disconnect();
  }
});
