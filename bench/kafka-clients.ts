/**
 * kafkajs (Sluice's client, configured as connectors/kafka/ configures it) against
 * @platformatic/kafka on the same workload: Sluice-sized Avro records (the capture-drain table's
 * rows encoded once, before timing, by Sluice's own AvroChangeEncoder with the Debezium envelope,
 * keys included) produced to a 3-partition topic by an idempotent, transactional producer, one
 * transaction per batch of `--batch` records (begin → send → commit, as capture does, one after
 * another), then read back by a read_committed consumer group.
 *
 *   node bench/kafka-clients.ts [--records 150000] [--batch 4096] [--rounds 3] [--no-consume] [--node-flags="..."]
 *
 * --node-flags="...": V8 flags for the clients' processes, e.g. the heap the capture daemon gives its main
 * thread by default ("--max-old-space-size=112 --max-semi-space-size=8" with memory: 256MB).
 *
 * Each client runs in its own process (so peak RSS is its own), one after the other, in
 * alternating order (round 2 reverses round 1), each round with fresh topics and transactional
 * ids, deleted at the end. Per client and round: records/s and CPU-seconds per 100k records
 * (process.cpuUsage, from the first timed transaction to the last commit; an untimed first one
 * connects and registers the transactional id), p50/p99 of a transaction's commit (EndTxn) round
 * trip and of the whole transaction, AddPartitionsToTxn requests per transaction (more than 1:
 * refused with CONCURRENT_TRANSACTIONS while the previous commit's markers were being written, and
 * retried), peak RSS (VmHWM) after producing and at the end, with its growth over the RSS before
 * the client connected; consuming: records/s and CPU from the first record read to the last.
 * Last, a check of @platformatic/kafka's transactional id fencing (what capture's terms rely on).
 *
 * Kafka runs against the broker of test/services/ (bash test/services/up).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { EachBatchPayload, Message } from "kafkajs";
import type { ChangeEvent, ColumnValue, Row } from "../connectors/contracts.ts";
import { testDeployment, testKafkaConfig } from "../connectors/kafka/kafka-test-config.ts";
import { COLUMNS, ITEMS_SCHEMA, itemText } from "./items-workload.ts";

const { values: args } = parseArgs({
  options: {
    records: { type: "string", default: "150000" },
    batch: { type: "string", default: "4096" },
    rounds: { type: "string", default: "3" },
    "no-consume": { type: "boolean", default: false },
    child: { type: "string" },
    topic: { type: "string" },
    workload: { type: "string" },
    "node-flags": { type: "string", default: "" },
  },
});
const RECORDS = Number(args.records);
const BATCH = Number(args.batch);
const PARTITIONS = 3;
/** Distinct pre-encoded records, cycled through (the same for both clients; bounded memory). */
const POOL = 16_384;
type Client = "kafkajs" | "platformatic";
const CLIENTS: readonly Client[] = ["kafkajs", "platformatic"];
// Modules are loaded where they are used (dynamic imports): a client's process holds only that client.
const newKafkajsClient = async () => {
  const [{ createKafkaClient }, { createLogger }] = await Promise.all([import("../connectors/kafka/kafka-client.ts"), import("../runtime/logger.ts")]);
  return createKafkaClient(kafkaConfig, createLogger("warn"));
};

const kafkaConfig = testKafkaConfig({ client_id: "sluice-bench-clients", partitions: PARTITIONS });

// ---------------------------------------------------------------------------------------------
// The workload: bench/capture-drain.ts's 8-column table, two thirds inserts and one third updates,
// as capture encodes them (the column values through the pgoutput text decoders).


interface EncodedRecord {
  readonly key: Buffer;
  readonly value: Buffer;
  readonly partition: number;
}

/** Encodes the pool and writes it to `file`: per record a u16 key length, the key, a u32 value length, the value, a u8 partition. */
async function writeWorkload(file: string): Promise<number> {
  const [{ BUILTIN_SCALAR_DECODERS, asText }, { AvroChangeEncoder }, { LocalRegistry }, { openMemoryStore }, { partitionForKey }] = await Promise.all([
    import("../connectors/postgres/values/scalars.ts"),
    import("../schema-registry/change-encoder.ts"),
    import("../schema-registry/local-registry.ts"),
    import("../schema-registry/log-store.ts"),
    import("../connectors/topics/partitioner.ts"),
  ]);
  const schema = ITEMS_SCHEMA;
  const encoder = new AvroChangeEncoder({ registry: new LocalRegistry(await openMemoryStore()), topicPrefix: (source) => `bench.${source}` });
  const parts: Buffer[] = [];
  let bytes = 0;
  for (let g = 1; g <= POOL; g++) {
    const update = g % 3 === 0;
    const text = itemText(g, update, "2026-12-05 10:00:00.123+00");
    const row: Record<string, ColumnValue> = {};
    COLUMNS.forEach(([name, oid], i) => (row[name] = (BUILTIN_SCALAR_DECODERS.get(oid) ?? asText)(text[i]!)));
    const event: ChangeEvent = {
      op: update ? "u" : "c",
      key: { id: row["id"]! } as Row,
      before: null,
      after: row as Row,
      source: { connector: "postgres", name: "bench", db: "app", schema: "bench", table: "items", position: { commit: BigInt(g), change: BigInt(g) }, txId: String(1000 + Math.floor(g / 1000)), commitTimeMs: 1_764_928_800_000, snapshot: false },
      schema,
    } as ChangeEvent;
    for (const { key, value } of await encoder.encode(event)) {
      const head = Buffer.alloc(2);
      head.writeUInt16BE(key!.length);
      const middle = Buffer.alloc(4);
      middle.writeUInt32BE(value!.length);
      parts.push(head, Buffer.from(key!), middle, Buffer.from(value!), Buffer.of(partitionForKey(key!, PARTITIONS)));
      bytes += key!.length + value!.length;
    }
  }
  writeFileSync(file, Buffer.concat(parts));
  return bytes / POOL;
}

/** The records of writeWorkload's file, as views of one buffer. */
function readWorkload(file: string): EncodedRecord[] {
  const data = readFileSync(file);
  const records: EncodedRecord[] = [];
  for (let at = 0; at < data.length; ) {
    const keyLength = data.readUInt16BE(at);
    const key = data.subarray(at + 2, at + 2 + keyLength);
    at += 2 + keyLength;
    const valueLength = data.readUInt32BE(at);
    const value = data.subarray(at + 4, at + 4 + valueLength);
    at += 4 + valueLength;
    records.push({ key, value, partition: data[at++]! });
  }
  return records;
}

// ---------------------------------------------------------------------------------------------
// One client, in a child process.

interface ChildResult {
  readonly client: Client;
  readonly produceSeconds: number;
  readonly produceCpuSeconds: number;
  readonly commitMs: readonly number[];
  readonly transactionMs: readonly number[];
  readonly consumeSeconds: number | null;
  readonly consumeCpuSeconds: number | null;
  readonly consumed: number;
  /** AddPartitionsToTxn requests per timed transaction (1: never refused). */
  readonly addPartitionsPerTransaction: number;
  readonly rssBeforeMiB: number;
  /** VmHWM after producing, and at the end (after consuming too). */
  readonly producePeakRssMiB: number;
  readonly peakRssMiB: number;
}

/** Begins, sends and commits one transaction; returns the commit's round trip in ms. */
type Transact = (batch: readonly EncodedRecord[], timestamp: number) => Promise<number>;

interface ClientUnderTest {
  readonly transact: Transact;
  /** Reads the topic from the start (read_committed) until `count` records came; calls `first` at the first one. */
  readonly consume: (count: number, first: () => void) => Promise<number>;
  readonly close: () => Promise<void>;
  /** AddPartitionsToTxn requests sent so far, retries included (the broker refuses one with CONCURRENT_TRANSACTIONS while it still writes the previous commit's markers). */
  readonly addPartitionsRequests: () => number;
}

const statusMiB = (field: string) => Number(/\d+/.exec(readFileSync("/proc/self/status", "utf8").split("\n").find((line) => line.startsWith(field))!)![0]) / 1024;
const cpuSeconds = (since: NodeJS.CpuUsage) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1e6;
};

/** kafkajs as connectors/kafka/ sets it up: the client of kafka-client.ts, the producer options and request shape of batching-producer.ts, the consumer options of kafka-consumer.ts. */
async function kafkajsClient(topic: string, transactionalId: string): Promise<ClientUnderTest> {
  const [kafka, { Partitioners }, { withLinearPartitionGrouping }] = await Promise.all([newKafkajsClient(), import("kafkajs"), import("../connectors/kafka/partition-grouping.ts")]);
  const producer = kafka.producer({
    idempotent: true,
    maxInFlightRequests: kafkaConfig.max_in_flight,
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    retry: { initialRetryTime: 10, maxRetryTime: 5_000, retries: 10 },
    transactionalId,
    transactionTimeout: 60_000,
  });
  let addPartitionsRequests = 0;
  producer.on(producer.events.REQUEST, ({ payload }) => {
    if (payload.apiName === "AddPartitionsToTxn") addPartitionsRequests++;
  });
  await producer.connect();
  return {
    addPartitionsRequests: () => addPartitionsRequests,
    transact: async (batch, timestamp) => {
      const stamp = String(timestamp);
      const messages = batch.map((r): Message & { partition: number } => ({ key: r.key, value: r.value, timestamp: stamp, partition: r.partition }));
      const transaction = await producer.transaction();
      await transaction.sendBatch({ topicMessages: [{ topic, messages: withLinearPartitionGrouping(messages) }], acks: -1 });
      const started = performance.now();
      await transaction.commit();
      return performance.now() - started;
    },
    consume: async (count, first) => {
      const consumer = kafka.consumer({
        groupId: `${transactionalId}.reader`,
        readUncommitted: false,
        allowAutoTopicCreation: false,
        sessionTimeout: 30_000,
        heartbeatInterval: 3_000,
        maxBytesPerPartition: 2 ** 20,
        maxBytes: 8 * 2 ** 20,
        maxWaitTimeInMs: 500,
      });
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      let consumed = 0;
      let done!: () => void;
      const all = new Promise<void>((resolve) => (done = resolve));
      await consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }: EachBatchPayload) => {
          if (consumed === 0 && batch.messages.length > 0) first();
          consumed += batch.messages.length;
          if (consumed >= count) done();
        },
      });
      await all;
      await consumer.disconnect();
      return consumed;
    },
    close: () => producer.disconnect(),
  };
}

/** @platformatic/kafka with the settings above: idempotent, transactional, acks=all, no compression, 5 requests in flight, the same retry backoff, a 60 s transaction timeout. */
async function platformaticClient(topic: string, transactionalId: string): Promise<ClientUnderTest> {
  // Loaded only in its own process, so the kafkajs process's RSS does not hold it.
  const { Consumer, FetchIsolationLevels, ProduceAcks, Producer } = await import("@platformatic/kafka");
  const common = {
    clientId: kafkaConfig.client_id,
    bootstrapBrokers: [...kafkaConfig.brokers],
    connectTimeout: 5_000,
    requestTimeout: 30_000,
    maxInflights: kafkaConfig.max_in_flight,
    retries: 10,
    retryDelay: (_client: unknown, _operation: string, attempt: number) => Math.min(5_000, 10 * 2 ** (attempt - 1)),
    autocreateTopics: false,
  };
  // `timeout` is also the transaction timeout it registers with InitProducerId. producerId/Epoch -1: a new
  // producer; without them it sends 0/0 and the broker refuses a transactional id used before (see checkFencing).
  const producer = new Producer({ ...common, timeout: 60_000, idempotent: true, transactionalId, acks: ProduceAcks.ALL, producerId: -1n, producerEpoch: -1 });
  let addPartitionsRequests = 0;
  producer.on("client:performWithRetry", (operation: string) => {
    if (operation === "addPartitionsToTransaction") addPartitionsRequests++;
  });
  return {
    addPartitionsRequests: () => addPartitionsRequests,
    transact: async (batch, timestamp) => {
      const stamp = BigInt(timestamp);
      const messages = batch.map((r) => ({ topic, key: r.key, value: r.value, timestamp: stamp, partition: r.partition }));
      const transaction = await producer.beginTransaction();
      await transaction.send({ messages });
      const started = performance.now();
      await transaction.commit();
      return performance.now() - started;
    },
    consume: async (count, first) => {
      const consumer = new Consumer({ ...common, timeout: 30_000, groupId: `${transactionalId}.reader`, sessionTimeout: 30_000, heartbeatInterval: 3_000 });
      const stream = await consumer.consume({
        topics: [topic],
        mode: "earliest",
        autocommit: false,
        isolationLevel: FetchIsolationLevels.READ_COMMITTED,
        maxBytesPerPartition: 2 ** 20,
        maxBytes: 8 * 2 ** 20,
        maxWaitTime: 500,
      });
      let consumed = 0;
      await new Promise<void>((resolve, reject) => {
        stream.on("error", reject);
        stream.on("data", () => {
          if (consumed++ === 0) first();
          if (consumed >= count) resolve();
        });
      });
      await stream.close();
      await consumer.close(true);
      return consumed;
    },
    close: () => producer.close(),
  };
}

async function runChild(client: Client, topic: string, workload: string): Promise<ChildResult> {
  const pool = readWorkload(workload);
  const transactionalId = topic;
  const rssBeforeMiB = statusMiB("VmRSS:");
  const underTest = client === "kafkajs" ? await kafkajsClient(topic, transactionalId) : await platformaticClient(topic, transactionalId);
  // A first, untimed transaction: connection, metadata and InitProducerId (which kafkajs does lazily) out of the figures.
  await underTest.transact(pool.slice(0, 1), Date.now());
  const requestsBefore = underTest.addPartitionsRequests();
  const commitMs: number[] = [];
  const transactionMs: number[] = [];
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let sent = 0, at = 0; sent < RECORDS; ) {
    const size = Math.min(BATCH, RECORDS - sent);
    const batch = at + size <= pool.length ? pool.slice(at, at + size) : [...pool.slice(at), ...pool.slice(0, size - (pool.length - at))];
    at = (at + size) % pool.length;
    const begun = performance.now();
    commitMs.push(await underTest.transact(batch, Date.now()));
    transactionMs.push(performance.now() - begun);
    sent += size;
  }
  const produceSeconds = (performance.now() - started) / 1000;
  const produceCpuSeconds = cpuSeconds(cpu);
  const addPartitionsPerTransaction = (underTest.addPartitionsRequests() - requestsBefore) / commitMs.length;
  const producePeakRssMiB = statusMiB("VmHWM:");
  let consumeSeconds: number | null = null;
  let consumeCpuSeconds: number | null = null;
  let consumed = 0;
  if (!args["no-consume"]) {
    let firstAt = 0;
    let firstCpu: NodeJS.CpuUsage = process.cpuUsage();
    consumed = await underTest.consume(RECORDS + 1, () => {
      firstAt = performance.now();
      firstCpu = process.cpuUsage();
    });
    consumeSeconds = (performance.now() - firstAt) / 1000;
    consumeCpuSeconds = cpuSeconds(firstCpu);
  }
  await underTest.close();
  return { client, produceSeconds, produceCpuSeconds, commitMs, transactionMs, consumeSeconds, consumeCpuSeconds, consumed, addPartitionsPerTransaction, rssBeforeMiB, producePeakRssMiB, peakRssMiB: statusMiB("VmHWM:") };
}

/**
 * What capture's terms rely on (connectors/kafka/writer-terms.int.test.ts checks it for kafkajs): a
 * new producer on a transactional id registers it again, which aborts the previous holder's open
 * transaction and refuses that holder's next request. Checked for @platformatic/kafka, once with its
 * defaults and once with producerId/producerEpoch -1 (what a new producer should send).
 */
async function checkFencing(topic: string): Promise<string[]> {
  const { Producer } = await import("@platformatic/kafka");
  const outcome = async (step: () => Promise<unknown>) => {
    try {
      await step();
      return "ok";
    } catch (error) {
      const causes = (error as { errors?: { apiId?: string; message: string }[] }).errors ?? [];
      return `refused (${causes.map((cause) => cause.apiId ?? cause.message).join(", ") || (error as Error).message})`;
    }
  };
  const lines: string[] = [];
  for (const newProducer of [false, true]) {
    const id = `${topic}.fencing.${newProducer ? "minus-one" : "default"}`;
    const open = () => new Producer({ clientId: "sluice-bench-fencing", bootstrapBrokers: [...kafkaConfig.brokers], idempotent: true, transactionalId: id, autocreateTopics: false, retries: 1, ...(newProducer ? { producerId: -1n, producerEpoch: -1 } : {}) });
    const message = (value: string) => ({ messages: [{ topic, key: Buffer.from("k"), value: Buffer.from(value), partition: 0 }] });
    const first = open();
    const done = await first.beginTransaction();
    await done.send(message("first"));
    await done.commit();
    await first.close();
    // A restart: the same id again, after the first producer committed and closed.
    const older = open();
    const restarted = await outcome(async () => {
      const transaction = await older.beginTransaction();
      await transaction.send(message("restarted"));
      await transaction.commit();
    });
    // A new term while the older one has a transaction open.
    let fenced = "not reached";
    let newer = "not reached";
    if (restarted === "ok") {
      const open1 = await older.beginTransaction();
      await open1.send(message("older, open"));
      const next = open();
      newer = await outcome(async () => {
        const transaction = await next.beginTransaction();
        await transaction.send(message("newer"));
        await transaction.commit();
      });
      fenced = await outcome(() => open1.commit());
      await next.close();
    }
    await older.close().catch(() => undefined);
    lines.push(`${newProducer ? "producerId/producerEpoch -1" : "defaults"}: same id after a clean close: ${restarted}; a newer producer while the older has a transaction open: ${newer}; the older's commit then: ${fenced}`);
  }
  return lines;
}

// ---------------------------------------------------------------------------------------------
// The orchestrator.

function spawnChild(client: Client, topic: string, workload: string): Promise<ChildResult> {
  const flags = args["node-flags"].split(" ").filter((flag) => flag !== "");
  const child = spawn(process.execPath, [...flags, import.meta.filename, "--child", client, "--topic", topic, "--workload", workload, "--records", String(RECORDS), "--batch", String(BATCH), ...(args["no-consume"] ? ["--no-consume"] : [])], { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  child.stdout.on("data", (chunk: Buffer) => (out += chunk.toString()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 180_000);
  return new Promise((resolve, reject) =>
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(JSON.parse(out.trim().split("\n").pop()!) as ChildResult);
      else reject(new Error(`${client} bench process ended with ${signal ?? `code ${code}`}`));
    }),
  );
}

const percentile = (values: readonly number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
};
const fmt = (n: number) => Math.round(n).toLocaleString("en-US");

async function orchestrate(): Promise<void> {
  const run = testDeployment("bench_clients");
  const rounds = Number(args.rounds);
  const admin = (await newKafkajsClient()).admin();
  await admin.connect();
  const topics: string[] = [];
  const dir = mkdtempSync(join(tmpdir(), "sluice-bench-clients-"));
  try {
    const workload = join(dir, "records");
    const recordBytes = await writeWorkload(workload);
    process.stdout.write(`${fmt(RECORDS)} records per client and round (Avro, Debezium envelope), ${PARTITIONS} partitions, one transaction per ${fmt(BATCH)} records, acks=all, idempotent; node ${process.version} ${args["node-flags"]}\n`);
    process.stdout.write("| round | client | produce records/s | CPU-s / 100k | commit p50 / p99 | transaction p50 / p99 | AddPartitionsToTxn per tx | peak RSS producing / +consuming (growth) | consume records/s | consume CPU-s / 100k | load |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    const results: ChildResult[] = [];
    for (let round = 1; round <= rounds; round++) {
      for (const client of round % 2 === 1 ? CLIENTS : [...CLIENTS].reverse()) {
        const topic = `${run}.${client}.${round}`;
        await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
        topics.push(topic);
        const load = loadavg()[0]!;
        const r = await spawnChild(client, topic, workload);
        results.push(r);
        // The topic holds the untimed first transaction's record too.
        if (!args["no-consume"] && r.consumed !== RECORDS + 1) throw new Error(`${client} read ${r.consumed} records back, ${RECORDS + 1} were committed`);
        const per100k = (cpu: number) => ((cpu * 100_000) / RECORDS).toFixed(2);
        const consume = r.consumeSeconds === null ? "| | " : `| ${fmt(RECORDS / r.consumeSeconds)} | ${per100k(r.consumeCpuSeconds!)} `;
        process.stdout.write(
          `| ${round} | ${client} | ${fmt(RECORDS / r.produceSeconds)} | ${per100k(r.produceCpuSeconds)} | ${percentile(r.commitMs, 50).toFixed(1)} / ${percentile(r.commitMs, 99).toFixed(1)} ms | ${percentile(r.transactionMs, 50).toFixed(1)} / ${percentile(r.transactionMs, 99).toFixed(1)} ms | ${r.addPartitionsPerTransaction.toFixed(2)} | ${fmt(r.producePeakRssMiB)} / ${fmt(r.peakRssMiB)} MiB (+${fmt(r.producePeakRssMiB - r.rssBeforeMiB)} / +${fmt(r.peakRssMiB - r.rssBeforeMiB)}) ${consume}| ${load.toFixed(1)} |\n`,
        );
      }
    }
    process.stdout.write(`(records: ${recordBytes.toFixed(0)} B of key + value on average; commit = the EndTxn round trip; transaction = begin → send → commit)\n`);
    const ratio = (pick: (r: ChildResult) => number) =>
      Array.from({ length: rounds }, (_, i) => {
        const [a, b] = [results[2 * i]!, results[2 * i + 1]!];
        const [kafkajs, platformatic] = a.client === "kafkajs" ? [a, b] : [b, a];
        return (pick(platformatic) / pick(kafkajs)).toFixed(2);
      }).join(", ");
    process.stdout.write(`@platformatic/kafka / kafkajs per round: produce CPU per record ${ratio((r) => r.produceCpuSeconds)}; produce records/s ${ratio((r) => 1 / r.produceSeconds)}; peak RSS producing ${ratio((r) => r.producePeakRssMiB)}`);
    if (!args["no-consume"]) process.stdout.write(`; consume CPU per record ${ratio((r) => r.consumeCpuSeconds!)}; consume records/s ${ratio((r) => 1 / r.consumeSeconds!)}`);
    process.stdout.write("\n");
    const fencingTopic = `${run}.fencing`;
    await admin.createTopics({ waitForLeaders: true, topics: [{ topic: fencingTopic, numPartitions: 1, replicationFactor: 1 }] });
    topics.push(fencingTopic);
    for (const line of await checkFencing(fencingTopic)) process.stdout.write(`@platformatic/kafka transactional id fencing, ${line}\n`);
  } finally {
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch((error: unknown) => process.stderr.write(`deleting the bench topics failed: ${String(error)}\n`));
    const groups = topics.map((topic) => `${topic}.reader`);
    if (!args["no-consume"] && groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
    await admin.disconnect();
    rmSync(dir, { recursive: true, force: true });
  }
}

if (args.child !== undefined) {
  const result = await runChild(args.child as Client, args.topic!, args.workload!);
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
} else {
  await orchestrate();
}
