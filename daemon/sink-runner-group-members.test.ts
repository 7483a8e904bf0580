/**
 * A rebuild asked of a running sink is refused when another process joined the sink's group while
 * it ran (rebuild-sharing.ts runningSinkSharing). This process's own consumer opened again (a new
 * topic: a table a source added; a retried failure) is not another process, and must not refuse it.
 * The consumers here tell their joins as a Kafka member does (TopicConsumer.groupMembersSeen).
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { GroupMembersSeen } from "../connectors/kafka/group-members-seen.ts";
import type { Sink, SinkWriteResult, TopicConsumer, TopicLog } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { runningSinkSharing } from "./rebuild-sharing.ts";
import { SinkRunner } from "./sink-runner.ts";
import { runnerDefaults } from "./sink-runner-test-support.ts";

const FIRST = "pg.public.first";
const ADDED = "pg.public.added";

class NullSink implements Sink {
  readonly name = "mem";
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  async write(): Promise<SinkWriteResult> {
    return { failures: [] };
  }
}

/** The embedded log, as Kafka: each consumer is a new member, and what it saw at its join is set by the test. */
function kafkaLike(log: EmbeddedTopicLog, consumers: { members: GroupMembersSeen; consumer: TopicConsumer }[]): TopicLog {
  return new Proxy(log, {
    get(target, property, receiver) {
      if (property === "kind") return "kafka";
      // Only this process runs the sink: the group's coordinator lists its member alone.
      if (property === "groupActivity") return async () => ({ active: true, members: [], clients: [] });
      if (property === "consumer")
        return async (group: string, topics: readonly string[]) => {
          const inner = await target.consumer(group, topics);
          const members = new GroupMembersSeen();
          const memberId = `own-${consumers.length + 1}`;
          members.joined({ memberId, leaderId: memberId, isLeader: false });
          const consumer = Object.assign(Object.create(inner) as TopicConsumer, {
            groupMembersSeen: () => ({ own: members.ownMembers(), seen: members.members() }),
            keepGroupMembersSeen: (keep: boolean) => members.keep(keep),
          });
          consumers.push({ members, consumer });
          return consumer;
        };
      const value: unknown = Reflect.get(target, property, receiver);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as unknown as TopicLog;
}

/** A sink runner on the embedded log seen as Kafka (kafkaLike), running until `stop`; `consumers` are those it opened. */
async function runningSink(group: string) {
  const embedded = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-members-")), "log.db"), logger: runnerDefaults.logger });
  await embedded.createTopic({ name: FIRST, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const consumers: { members: GroupMembersSeen; consumer: TopicConsumer }[] = [];
  const log = kafkaLike(embedded, consumers);
  const runner = new SinkRunner({
    ...runnerDefaults,
    sink: new NullSink(),
    log,
    group,
    topics: async () => (await embedded.topicNames()).filter((topic) => topic.startsWith("pg.")),
    batch: { maxRows: 10, maxBytes: 1 << 20, maxWaitMs: 10 },
    deadLetterTopic: "t.dlq.mem",
  });
  const controller = new AbortController();
  const running = runner.run(controller.signal);
  const stop = async () => {
    controller.abort();
    await running.catch(() => undefined);
    await embedded.close();
  };
  await until(() => consumers.length === 1, "the sink's consumer").catch(async (error: unknown) => {
    await stop();
    throw error;
  });
  return {
    runner,
    log,
    consumers,
    /** A source adds a table: the sink closes its consumer and opens one that reads the new topic too (a new member). */
    addTopic: async () => {
      await embedded.createTopic({ name: ADDED, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      await until(() => consumers.length === 2, "the consumer opened again for the new topic");
    },
    stop,
  };
}

async function until(done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 4000 && !done(); i++) await new Promise((resolve) => setTimeout(resolve, 5));
  assert.ok(done(), `timed out waiting for ${what}`);
}

test("a rebuild asked of a running sink: its own consumer opened again for a new topic is no change of the group; another process's member seen at a join is", async () => {
  const { runner, log, consumers, addTopic, stop } = await runningSink("t.sink.members");
  try {
    const sharing = runningSinkSharing(log, "t.sink.members", () => runner.otherGroupMembersSeen());
    await addTopic();
    assert.deepEqual(consumers.map((c) => c.members.ownMembers()), [["own-1"], ["own-2"]], "the consumer opened again joined as a new member (what a rebuild compared before: the joins)");
    assert.deepEqual(await sharing.others(), []);
    assert.equal(sharing.changed(), false, "the sink's own consumer opened again is not another process");
    // Another process's member joined and is gone again: the sink's consumer saw it lead a generation.
    consumers[1]!.members.joined({ memberId: "own-2", leaderId: "elsewhere-1", isLeader: false });
    assert.deepEqual([...runner.otherGroupMembersSeen()], ["elsewhere-1"]);
    assert.equal(sharing.changed(), true);
  } finally {
    await stop();
  }
});

test("the members a sink's consumers saw are kept only while a rebuild watches the group: not every peer restart's for the process's life, and one that joined and left during the rebuild still seen", async () => {
  const { runner, log, consumers, addTopic, stop } = await runningSink("t.sink.members-bounded");
  try {
    // A peer restarting 100 times, no rebuild running: each restart is a new member id leading a generation.
    for (let i = 1; i <= 100; i++) consumers[0]!.members.joined({ memberId: "own-1", leaderId: `peer-${i}`, isLeader: false });
    assert.deepEqual([...runner.otherGroupMembersSeen()], ["peer-100"], "only the last join's members are kept");
    const watch = runner.watchGroupMembers();
    const sharing = runningSinkSharing(log, "t.sink.members-bounded", watch.seen);
    // During the rebuild another process joins and leads, then leaves; the sink's consumer opens again for a new topic.
    consumers[0]!.members.joined({ memberId: "own-1", leaderId: "elsewhere-1", isLeader: false });
    consumers[0]!.members.joined({ memberId: "own-1", leaderId: "own-1", isLeader: true });
    await addTopic();
    assert.ok(runner.otherGroupMembersSeen().has("elsewhere-1"));
    assert.equal(sharing.changed(), true, "the process that joined and left during the rebuild is seen");
    watch.end();
    assert.deepEqual([...runner.otherGroupMembersSeen()], [], "once no rebuild watches, what the closed consumer saw is forgotten");
  } finally {
    await stop();
  }
});

test("while nothing watches, a member keeps the last join's members and its recent own member ids", () => {
  const seen = new GroupMembersSeen();
  seen.keep(false);
  for (let i = 1; i <= 40; i++) seen.joined({ memberId: `own-${i}`, leaderId: `other-${i}`, isLeader: false });
  assert.deepEqual(seen.members(), ["other-40"]);
  assert.equal(seen.ownMembers().length, 16);
  assert.equal(seen.ownMembers().at(-1), "own-40");
  seen.keep(true);
  seen.joined({ memberId: "own-40", leaderId: "other-41", isLeader: false });
  seen.joined({ memberId: "own-40", leaderId: "other-42", isLeader: false });
  assert.deepEqual(seen.members(), ["other-40", "other-41", "other-42"]);
  seen.keep(false);
  assert.deepEqual(seen.members(), ["other-42"]);
});

test("a member sees every member of a generation it leads, and the leader of one it does not; its own member ids are told apart", () => {
  const seen = new GroupMembersSeen();
  const assigner = seen.assigner({ cluster: { findTopicPartitionMetadata: () => [] } as never, groupId: "g", logger: {} as never });
  assert.equal(assigner.name, "RoundRobinAssigner", "the protocol other members (kafkajs's default) agree on");
  return (async () => {
    await assigner.assign({ members: [{ memberId: "own-1", memberMetadata: Buffer.alloc(0) }, { memberId: "other-1", memberMetadata: Buffer.alloc(0) }], topics: [] });
    seen.joined({ memberId: "own-1", leaderId: "own-1", isLeader: true });
    seen.joined({ memberId: "own-2", leaderId: "other-2", isLeader: false });
    assert.deepEqual(seen.ownMembers(), ["own-1", "own-2"]);
    assert.deepEqual([...seen.members()].sort(), ["other-1", "other-2", "own-1"]);
  })();
});
