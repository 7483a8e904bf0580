/**
 * `sluice replay --rebuild` run as a command (no daemon) on Kafka holds the sink's consumer group
 * while it works, so another process sees it: here an `--abandon-rebuild --execute` run from a
 * second process while the rebuild reads, which would otherwise drop the rebuild's half-built
 * tables under it (the command joined no group, so the abandon found no other process). Real
 * Kafka, real ClickHouse (a sink several processes may share). And a sink process starting while
 * such a command holds the group waits for it to leave before it opens the sink.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import type { SpawnSyncReturns } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import { createDuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { createKafkaClient } from "../connectors/kafka/kafka-client.ts";
import type { KafkaTopicsConfig } from "../connectors/kafka/kafka-client.ts";
import { holdClientIdPart, KafkaGroupHold } from "../connectors/kafka/kafka-group-hold.ts";
import { KafkaTopicLog } from "../connectors/kafka/kafka-log.ts";
import { testSinkConfig } from "../connectors/sinks/test-config.ts";
import { captureLeaseTopic } from "../connectors/topics/names.ts";
import { deleteKafkaDeployment, testDeployment } from "../connectors/kafka/kafka-test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { createLogger } from "../runtime/logger.ts";
import { AvroChangeEncoder } from "../schema-registry/index.ts";
import { dropClickHouseDatabase, randomName } from "../test/e2e/helpers.ts";
import { clickhouse, kafka } from "../test/services/ports.ts";
import { createSink, dataTopicPrefix, openRegistry } from "./components.ts";
import { runRebuildCommand } from "./rebuild-command.ts";
import { runningSinkSharing } from "./rebuild-sharing.ts";
import { SinkRunner } from "./sink-runner.ts";

const deployment = testDeployment("rbhold");
const database = randomName("rbhold_ch");
const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-hold-"));
const logger = createLogger("silent");
after(async () => {
  await deleteKafkaDeployment(deployment);
  await dropClickHouseDatabase(database);
  rmSync(dir, { recursive: true, force: true });
});

const configFile = join(dir, "sluice.yaml");
const configText = `name: ${deployment}
http: { listen: "127.0.0.1:1" }
sources:
  - { name: pg, kind: postgres, database: app, user: u, tables: [app.*] }
topics: { kind: kafka, brokers: [${kafka.brokers.join(", ")}], partitions: 1 }
sinks:
  - { kind: clickhouse, name: ch, url: "${clickhouse.url}", user: ${clickhouse.username}, password: ${clickhouse.password}, database: ${database} }
`;
writeFileSync(configFile, configText);
const config = loadConfigText(configFile, configText, { env: {} });
const SLUICE = join(import.meta.dirname, "sluice.js");

test("Kafka: an --abandon-rebuild --execute from another process is refused while a command-run rebuild of the sink reads; the rebuild swaps in", { timeout: 120_000 }, async () => {
  const orders = new Events(tableSchema("orders", [["id", "integer"], ["note", "text"]], ["id"], { source: "pg", database: "app", schema: "app" }));
  const log = await KafkaTopicLog.open({ config: config.topics as never, deployment, logger });
  try {
    const encoder = new AvroChangeEncoder({ registry: (await openRegistry(config, log)).registry, topicPrefix: (source) => dataTopicPrefix(deployment, source) });
    const records = [];
    for (let id = 1; id <= 5; id++) records.push(...(await encoder.encode(orders.insert(BigInt(id), { id, note: `n${id}` }).event)));
    await log.createTopic({ name: records[0]!.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce(records);
  } finally {
    await log.close();
  }
  // The sink has run before: its live table holds a row (stale), so its catalog knows whose table the rebuild's new one is.
  const sink = await createSink(config.sinks[0]!, logger);
  await sink.open(AbortSignal.timeout(30_000));
  await sink.write([orders.insert(1n, { id: 1, note: "stale" })], AbortSignal.timeout(30_000));
  await sink.close();

  let abandon: SpawnSyncReturns<string> | null = null;
  const io = {
    out: "",
    err: "",
    stdout: (text: string) => void (io.out += text),
    stderr: (text: string) => void (io.err += text),
    progress: (progress: { state: string }) => {
      // The new tables exist: another process's abandon runs now (this process waits for it, as if elsewhere).
      if (progress.state !== "reading" || abandon !== null) return;
      abandon = spawnSync(process.execPath, [SLUICE, "replay", "-c", configFile, "--sink", "ch", "--abandon-rebuild", "--execute"], { encoding: "utf8", timeout: 60_000 });
    },
  };
  const code = await runRebuildCommand(config, "ch", true, io, logger);
  const other = abandon as SpawnSyncReturns<string> | null;
  assert.ok(other !== null, "the abandon ran while the rebuild read");
  assert.equal(other.status, 1, `the abandon is refused: ${other.stdout}${other.stderr}`);
  assert.match(other.stderr, /abandoning the interrupted rebuild of sink "ch" refused: another process runs sink "ch" \(consumer group .*: process \d+ on [^,]+, running sluice replay --rebuild on the sink\)/);
  assert.equal(code, 0, io.err);
  assert.match(io.out, /Done: rebuilt 1 table \(app\.orders\) from 5 records, swapped in\./);
});

test("Kafka: a sink starting while another process's command holds its group (a rebuild) waits, and opens the sink once the hold left", { timeout: 60_000 }, async () => {
  // From here on the least session the broker takes: members heartbeat (and so learn of a rebalance) every 1.2 s.
  // Not for the first test: its rebuild's member does not heartbeat while it waits for the other process.
  process.env["SLUICE_KAFKA_SESSION_MS"] = "6000";
  const group = `${deployment}.sink.wh`;
  const topic = `${deployment}.pg.app.items`;
  const log = await KafkaTopicLog.open({ config: config.topics as never, deployment, logger });
  await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const hold = await holdFromElsewhere(group);
  const { runner, opened, stop } = startSink(log, group, topic, "wh");
  const waitUntil = waiter(runner);
  try {
    await waitUntil("the sink tells what it waits for", () => /process 4242 on .*running sluice replay --rebuild on the sink/.test(runner.waitingFor() ?? ""));
    assert.equal(opened(), 0, "not opened while the command holds the group");
    await hold.close();
    await waitUntil("the sink opens once the hold left", () => opened() === 1 && runner.waitingFor() === null);
  } finally {
    await hold.close();
    await stop();
    await log.close();
  }
});

test("Kafka: a sink whose open took a while, during which another process's command began holding its group, waits for it and opens the sink again", { timeout: 60_000 }, async () => {
  const group = `${deployment}.sink.wh3`;
  const topic = `${deployment}.pg.app.lines`;
  const log = await KafkaTopicLog.open({ config: config.topics as never, deployment, logger });
  await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  let hold: KafkaGroupHold | null = null;
  // The rebuild began while the sink opened: the tables the sink loaded may be swapped under it.
  const { runner, opened, stop } = startSink(log, group, topic, "wh3", async (times) => {
    if (times === 1) hold = await holdFromElsewhere(group);
  });
  const waitUntil = waiter(runner);
  try {
    await waitUntil("the sink waits for the command", () => /process 4242 on .*running sluice replay --rebuild on the sink/.test(runner.waitingFor() ?? ""));
    assert.equal(opened(), 1);
    await hold!.close();
    await waitUntil("the sink is opened again once the hold left", () => opened() === 2 && runner.waitingFor() === null);
  } finally {
    await (hold as KafkaGroupHold | null)?.close();
    await stop();
    await log.close();
  }
});

test("Kafka: a rebuild asked of a sink process sees another process that joined its group and left again, and not the sink's own consumer opened again for a new topic", { timeout: 60_000 }, async () => {
  const group = `${deployment}.sink.wh2`;
  const topic = `${deployment}.pg.app.parts`;
  const added = `${deployment}.pg.app.added`;
  const log = await KafkaTopicLog.open({ config: config.topics as never, deployment, logger });
  await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  const topics = [topic];
  const { runner, stop } = startSink(log, group, topic, "wh2", undefined, async () => [...topics]);
  const waitUntil = waiter(runner);
  try {
    await waitUntil("the sink reads its partitions", () => runner.assignment().length === 2);
    const sharing = runningSinkSharing(log, group, () => runner.otherGroupMembersSeen());
    // A source adds a table: the sink closes its consumer and opens one reading the new topic too.
    const members = async () => ((await log.groupActivity(group)).clients ?? []).map((client) => client.memberId);
    const before = await members();
    topics.push(added);
    await log.createTopic({ name: added, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await waitUntil("the sink reads the new topic", () => runner.assignment().length === 3);
    const now = await members();
    assert.ok(now.some((member) => !before.includes(member)), `its consumer joined again, as a new member (a change of the group's joins, which a rebuild compared before: refused): ${before} then ${now}`);
    assert.deepEqual(await sharing.others(), []);
    assert.equal(sharing.changed(), false);
    // Another process joins and leaves before the rebuild's next look at the group.
    const member = await log.consumer(group, [topic]);
    await member.close();
    await waitUntil("the sink's member saw the other one", () => sharing.changed());
    assert.deepEqual(await sharing.others(), []);
  } finally {
    await stop();
    await log.close();
  }
});

function startSink(log: KafkaTopicLog, group: string, topic: string, name: string, afterOpen?: (times: number) => Promise<void>, topics?: () => Promise<string[]>) {
  const sink = createDuckDbSink(testSinkConfig("duckdb", { name, path: join(dir, `${name}.duckdb`) }), { logger });
  let opened = 0;
  const open = sink.open.bind(sink);
  sink.open = async (signal) => {
    opened++;
    await open(signal);
    await afterOpen?.(opened);
  };
  const runner = new SinkRunner({
    sink,
    log,
    group,
    topics: topics ?? (async () => [topic]),
    decoder: { decode: async () => null },
    batch: { maxRows: 10, maxBytes: 1 << 20, maxWaitMs: 20 },
    onError: "halt",
    deadLetterTopic: `${deployment}.dlq.${name}`,
    retry: { initialMs: 20, maxMs: 200 },
    logger,
    owner: "test",
  });
  const controller = new AbortController();
  const running = runner.run(controller.signal);
  running.catch(() => undefined);
  return {
    runner,
    opened: () => opened,
    stop: async () => {
      controller.abort();
      await running.catch(() => undefined);
    },
  };
}

/** A rebuild command's hold from another machine (its client id as holdGroup makes it there). */
function holdFromElsewhere(group: string): Promise<KafkaGroupHold> {
  const elsewhere = `sluice.${holdClientIdPart("rebuild")}.p4242s7n4026531836b00000000-0000-0000-0000-00000000abcd`;
  return KafkaGroupHold.join({ kafka: createKafkaClient({ ...(config.topics as KafkaTopicsConfig), client_id: elsewhere }, logger), group, topic: captureLeaseTopic(deployment), brokers: kafka.brokers, logger });
}

function waiter(runner: SinkRunner) {
  return async (what: string, done: () => boolean) => {
    const deadline = Date.now() + 20_000;
    while (!done()) {
      if (Date.now() > deadline) assert.fail(`${what}; the sink waits for: ${runner.waitingFor()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
}
