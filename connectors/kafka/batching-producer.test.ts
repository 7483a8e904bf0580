/**
 * The batching producer's own logic (linger, batch bounds, retries, failure containment) over a
 * scripted stand-in for kafkajs's producer; Kafka itself is exercised in kafka.int.test.ts.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { Writable } from "node:stream";
import { test } from "node:test";
import type { Kafka, ProducerBatch } from "kafkajs";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import { BatchingProducer, REQUEST_LIMIT_READ_EVERY_MS } from "./batching-producer.ts";
import type { BatchingProducerOptions, OutgoingMessage } from "./batching-producer.ts";

class ScriptedKafka {
  readonly batches: ProducerBatch[] = [];
  /** Errors the next sendBatch calls throw, in order. */
  readonly failures: Error[] = [];
  producers = 0;
  /** Transactions committed. */
  commits = 0;
  /** Next offset per partition ("topic:partition"), for the base offsets sendBatch answers with. */
  private readonly ends = new Map<string, number>();

  producer() {
    this.producers++;
    const sendBatch = async (batch: ProducerBatch) => {
      const failure = this.failures.shift();
      if (failure) throw failure;
      this.batches.push(batch);
      return batch.topicMessages!.flatMap(({ topic, messages }) => {
        const counts = new Map<number, number>();
        for (const m of messages) counts.set(m.partition ?? 0, (counts.get(m.partition ?? 0) ?? 0) + 1);
        return [...counts].map(([partition, count]) => {
          const baseOffset = this.ends.get(`${topic}:${partition}`) ?? 0;
          this.ends.set(`${topic}:${partition}`, baseOffset + count);
          return { topicName: topic, partition, errorCode: 0, baseOffset: String(baseOffset) };
        });
      });
    };
    return {
      connect: async () => undefined,
      disconnect: async () => undefined,
      sendBatch,
      transaction: async () => ({ sendBatch, commit: async () => void this.commits++, abort: async () => undefined }),
    };
  }
}

function connectionError(): Error {
  const error = new Error("Connection error: connect ECONNREFUSED 127.0.0.1:59092");
  error.name = "KafkaJSConnectionError";
  return error;
}

function message(topic: string, value: string, partition = 0): OutgoingMessage {
  return { topic, key: Buffer.from("k"), value: Buffer.from(value), partition, size: 100 };
}

function producerWith(kafka: ScriptedKafka, overrides: Partial<BatchingProducerOptions> = {}) {
  const lines: Record<string, unknown>[] = [];
  const readiness: boolean[] = [];
  const logger = createLogger("info", new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString()) as Record<string, unknown>), done()) }));
  const producer = new BatchingProducer({
    kafka: kafka as unknown as Kafka,
    brokers: ["127.0.0.1:59092"],
    lingerMs: 5,
    batchBytes: 1000,
    maxInFlight: 2,
    compression: 0,
    transactionalId: null,
    retry: { initialMs: 1, maxMs: 2 },
    logger,
    onReadyChange: (ready) => readiness.push(ready),
    ...overrides,
  });
  return { producer, lines, readiness };
}

const values = (kafka: ScriptedKafka) => kafka.batches.flatMap((b) => b.topicMessages!.flatMap((t) => t.messages.map((m) => `${t.topic}:${String(m.value)}`)));

test("calls within the linger time go out together; the checkpoint after the records it covers", async () => {
  const kafka = new ScriptedKafka();
  const { producer } = producerWith(kafka);
  await Promise.all([
    producer.send([message("t", "a")]),
    producer.send([message("t", "b")], { source: "s", message: message("cp", "1") }),
    producer.send([message("t", "c")], { source: "s", message: message("cp", "2") }),
  ]);
  assert.deepEqual(kafka.batches.map((b) => b.topicMessages!.map((t) => t.topic)), [["t"], ["cp"]]);
  assert.deepEqual(values(kafka), ["t:a", "t:b", "t:c", "cp:2"], "only the latest checkpoint per source is written");
  await producer.close();
});

test("a unit larger than batch_bytes is split into requests of at most batch_bytes", async () => {
  const kafka = new ScriptedKafka();
  const { producer } = producerWith(kafka);
  await producer.send(Array.from({ length: 25 }, (_, i) => message("t", String(i))));
  assert.deepEqual(kafka.batches.map((b) => b.topicMessages![0]!.messages.length), [10, 10, 5]);
  assert.deepEqual(values(kafka), Array.from({ length: 25 }, (_, i) => `t:${i}`));
  await producer.close();
});

test("a request holds up to batch_bytes per partition, and up to four times batch_bytes in all", async () => {
  const kafka = new ScriptedKafka();
  const { producer } = producerWith(kafka);
  // 100-byte messages, batch_bytes 1000: ten per partition and request, forty per request.
  await producer.send(Array.from({ length: 60 }, (_, i) => message("t", String(i), i % 3)));
  assert.deepEqual(kafka.batches.map((b) => b.topicMessages![0]!.messages.length), [30, 30], "three partitions: ten of each per request");
  kafka.batches.length = 0;
  await producer.send(Array.from({ length: 60 }, (_, i) => message("t", String(i), i % 6)));
  assert.deepEqual(kafka.batches.map((b) => b.topicMessages![0]!.messages.length), [40, 20], "six partitions: the request's own bound");
  assert.deepEqual(values(kafka).sort(), Array.from({ length: 60 }, (_, i) => `t:${i}`).sort(), "every message once");
  await producer.close();
});

test("with transactions, the checkpoint goes in the transaction's first request", async () => {
  const kafka = new ScriptedKafka();
  const { producer } = producerWith(kafka, { transactionalId: "tx" });
  await producer.send(Array.from({ length: 25 }, (_, i) => message("t", String(i))), { source: "s", message: message("cp", "1") });
  assert.deepEqual(kafka.batches.map((b) => b.topicMessages!.map((t) => `${t.topic}:${t.messages.length}`)), [["t:10", "cp:1"], ["t:10"], ["t:5"]]);
  assert.equal(kafka.commits, 2, "the connect's empty transaction, then the unit's");
  await producer.close();
});

test("a partition's batch stays within its topic's record limit (max.message.bytes) when that is below batch_bytes", async () => {
  const kafka = new ScriptedKafka();
  // Topic "small" takes batches of at most 300 bytes (Kafka refuses a larger batch whole, MESSAGE_TOO_LARGE); "t" has no known limit.
  const { producer } = producerWith(kafka, { batchLimitOf: (topic) => (topic === "small" ? 300 : undefined) });
  await producer.send([...Array.from({ length: 7 }, (_, i) => message("small", String(i))), ...Array.from({ length: 7 }, (_, i) => message("t", String(i)))]);
  const perRequest = kafka.batches.map((b) => b.topicMessages!.map((t) => `${t.topic}:${t.messages.length}`));
  assert.deepEqual(perRequest, [["small:3"], ["small:3"], ["small:1", "t:7"]]);
  assert.equal(values(kafka).length, 14, "every message once");
  await producer.close();
});

test("a request stays below Kafka's default socket.request.max.bytes (100 MiB) when batch_bytes is large", async () => {
  const kafka = new ScriptedKafka();
  const MiB = 2 ** 20;
  const { producer } = producerWith(kafka, { batchBytes: 40 * MiB });
  // Four partitions of 40 MiB each: one request of 160 MiB would be cut off by the broker (the connection closed, retried forever).
  const big = (partition: number, i: number): OutgoingMessage => ({ ...message("t", `${partition}.${i}`, partition), size: 10 * MiB });
  await producer.send(Array.from({ length: 16 }, (_, i) => big(i % 4, i)));
  const requestBytes = kafka.batches.map((b) => b.topicMessages!.reduce((sum, t) => sum + t.messages.length, 0) * 10 * MiB);
  assert.ok(requestBytes.every((bytes) => bytes <= 64 * MiB), `requests of ${requestBytes.map((b) => b / MiB).join(", ")} MiB`);
  assert.equal(values(kafka).length, 16, "every message once");
  await producer.close();
});

test("unreachable broker: the unit is retried with a fresh producer until it goes through; not ready meanwhile; logged with the brokers", async () => {
  const kafka = new ScriptedKafka();
  kafka.failures.push(connectionError(), connectionError(), connectionError());
  const { producer, lines, readiness } = producerWith(kafka);
  await producer.send([message("t", "a")], { source: "s", message: message("cp", "1") });
  assert.deepEqual(values(kafka), ["t:a", "cp:1"]);
  assert.deepEqual(readiness, [false, false, false, true]);
  assert.equal(kafka.producers, 4, "each retry starts from a new producer");
  const warnings = lines.filter((l) => l["msg"] === "Kafka unavailable; retrying the batch");
  assert.equal(warnings.length, 3);
  assert.deepEqual(warnings[0]!["brokers"], ["127.0.0.1:59092"]);
  assert.match(String((warnings[0]!["err"] as { cause?: string }).cause), /ECONNREFUSED/);
  await producer.close();
});

test("a topic Kafka does not know (deleted by an operator): before each retry the unit's topics are handed to onUnknownTopic (which creates a deleted one again); other failures do not call it", async () => {
  const kafka = new ScriptedKafka();
  const unknown = Object.assign(new Error("This server does not host this topic-partition"), { name: "KafkaJSProtocolError", type: "UNKNOWN_TOPIC_OR_PARTITION", retriable: true });
  kafka.failures.push(connectionError(), unknown);
  const asked: string[][] = [];
  const { producer } = producerWith(kafka, { onUnknownTopic: async (topics) => void asked.push([...topics]) });
  await producer.send([message("t", "a"), message("u", "b")], { source: "s", message: message("cp", "1") });
  assert.deepEqual(asked, [["t", "u", "cp"]], "once, for the unknown topic's failure, with every topic of the unit");
  assert.deepEqual(values(kafka), ["t:a", "u:b", "cp:1"]);
  await producer.close();
});

test("onUnknownTopic failing for good fails the unit instead of retrying it; a topic that cannot be written as it is (a deleted internal topic, one with another layout: retriable) is waited for, readiness naming it, as is a passing failure of the look", async () => {
  const unknown = () => Object.assign(new Error("This server does not host this topic-partition"), { name: "KafkaJSProtocolError", type: "UNKNOWN_TOPIC_OR_PARTITION", retriable: true });
  const kafka = new ScriptedKafka();
  kafka.failures.push(unknown());
  const deleted = new SluiceError("topic d.sluice.schemas was deleted while capture wrote to it", { code: "TOPIC_DELETED" });
  const readiness: [boolean, string | undefined][] = [];
  const { producer } = producerWith(kafka, { lingerMs: 0, onUnknownTopic: async () => Promise.reject(deleted), onReadyChange: (ready, problem) => void readiness.push([ready, problem]) });
  await assert.rejects(producer.send([message("d.sluice.schemas", "a")]), { code: "TOPIC_DELETED" });
  assert.deepEqual(values(kafka), [], "not retried into the topic");
  assert.deepEqual(readiness.at(-1), [false, deleted.message], "readiness names the permanent failure, not the unknown topic");
  await producer.close();

  const again = new ScriptedKafka();
  again.failures.push(unknown());
  let looks = 0;
  const { producer: retrying } = producerWith(again, { lingerMs: 0, onUnknownTopic: async () => (looks++, Promise.reject(new SluiceError("Kafka unavailable", { code: "KAFKA_UNAVAILABLE", retriable: true }))) });
  await retrying.send([message("t", "a")]);
  assert.equal(looks, 1);
  assert.deepEqual(values(again), ["t:a"]);
  await retrying.close();

  // A registry topic Kafka answered as unknown, its retention set back by the operator before the next try: written then.
  const waited = new ScriptedKafka();
  waited.failures.push(unknown(), unknown());
  const replaced = new SluiceError("topic d.sluice.schemas does not have the layout capture writes it with", { code: "TOPIC_REPLACED", retriable: true });
  const told: [boolean, string | undefined][] = [];
  let tries = 0;
  const { producer: waiting } = producerWith(waited, { lingerMs: 0, onUnknownTopic: async () => (tries++ === 0 ? Promise.reject(replaced) : undefined), onReadyChange: (ready, problem) => void told.push([ready, problem]) });
  await waiting.send([message("d.sluice.schemas", "a")]);
  assert.equal(tries, 2);
  assert.deepEqual(values(waited), ["d.sluice.schemas:a"]);
  assert.ok(told.some(([ready, problem]) => !ready && problem === replaced.message), `readiness named the layout: ${JSON.stringify(told)}`);
  assert.deepEqual(told.at(-1), [true, undefined]);
  await waiting.close();
});

test("a permanent failure rejects that unit and every later one, so no later checkpoint skips lost records", async () => {
  const kafka = new ScriptedKafka();
  const tooLarge = Object.assign(new Error("The request included a message larger than the max message size the server will accept"), { name: "KafkaJSProtocolError", type: "MESSAGE_TOO_LARGE", retriable: false });
  kafka.failures.push(tooLarge);
  const { producer } = producerWith(kafka, { lingerMs: 0 });
  const first = producer.send([message("t", "a")], { source: "s", message: message("cp", "1") });
  const second = producer.send([message("t", "b")], { source: "s", message: message("cp", "2") });
  await assert.rejects(first, { code: "KAFKA_MESSAGE_TOO_LARGE" });
  await assert.rejects(second, { code: "KAFKA_MESSAGE_TOO_LARGE" });
  assert.deepEqual(values(kafka), [], "nothing written after the failed unit");
  await producer.send([message("t", "c")]);
  assert.deepEqual(values(kafka), ["t:c"], "the producer works again for the caller's retry");
  await producer.close();
});

test("with retry.maxAttempts 1 (a command), a batch refused over a lowered max.message.bytes is still written again within the new limit once", async () => {
  const kafka = new ScriptedKafka();
  const tooLarge = () => Object.assign(new Error("The request included a message larger than the max message size the server will accept"), { name: "KafkaJSProtocolError", type: "MESSAGE_TOO_LARGE", retriable: false });
  kafka.failures.push(tooLarge());
  const asked: string[][] = [];
  const { producer } = producerWith(kafka, {
    lingerMs: 0,
    retry: { initialMs: 1, maxMs: 2, maxAttempts: 1 },
    onMessageTooLarge: async (topics) => void (asked.push([...topics]), producer.limitLowered({ topic: "t", was: 1000, now: 500 })),
  });
  await producer.send([message("t", "a"), message("t", "b")]);
  assert.deepEqual(values(kafka), ["t:a", "t:b"]);
  assert.deepEqual(asked, [["t"]]);
  // A second refusal in the same delivery is counted: the re-cut is free once, not again.
  kafka.failures.push(tooLarge(), tooLarge());
  await assert.rejects(producer.send([message("t", "c")]), { code: "KAFKA_MESSAGE_TOO_LARGE" });
  await producer.close();
});

test("a connection a broker closed under a request over its socket.request.max.bytes: the limit read again, requests cut within it; a record over it fails the unit as retriable", async () => {
  const kafka = new ScriptedKafka();
  const closed = () => Object.assign(new Error("Closed connection"), { name: "KafkaJSConnectionClosedError" });
  let requestLimit: number | undefined;
  let reads = 0;
  let clockMs = 0;
  const { producer } = producerWith(kafka, {
    lingerMs: 0,
    batchBytes: 10_000,
    retry: { initialMs: 1, maxMs: 2, maxAttempts: 1 },
    clock: () => (clockMs += REQUEST_LIMIT_READ_EVERY_MS),
    requestLimit: () => requestLimit,
    onConnectionClosed: async () => void (reads++, (requestLimit = 300), producer.limitLowered({ was: null, now: 300, setting: "socket.request.max.bytes of the brokers (1324) less 1024 bytes of request framing" })),
  });
  kafka.failures.push(closed());
  // Three records of 100 counted bytes went in one request; within 300 with their partition's framing, two do.
  await producer.send([message("t", "a"), message("t", "b"), message("t", "c")]);
  assert.equal(reads, 1);
  assert.deepEqual(kafka.batches.map((b) => b.topicMessages!.flatMap((t) => t.messages.map((m) => String(m.value)))), [["a", "b"], ["c"]]);
  // A record the new limit cannot carry: the unit fails as retriable (its writer writes again, and its record check halts the table).
  kafka.failures.push(closed());
  requestLimit = undefined;
  const big = { ...message("t", "big"), size: 900 };
  await assert.rejects(producer.send([big]), (error: Error & { code?: string; retriable?: boolean }) => error.code === "KAFKA_REQUEST_LIMIT_LOWERED" && error.retriable === true && /socket\.request\.max\.bytes.*halts its table/.test(error.message));
  await producer.close();
});

test("a request over socket.request.max.bytes reset on a real network (kafkajs: 'Connection error: write EPIPE' / 'read ECONNRESET') reads the limit again too; a refused connection does not", async () => {
  const kafka = new ScriptedKafka();
  const dropped = (code: string) => Object.assign(new Error(`Connection error: ${code === "EPIPE" ? "write" : "read"} ${code}`), { name: "KafkaJSConnectionError", code });
  let requestLimit: number | undefined;
  let reads = 0;
  let clockMs = 0;
  const { producer } = producerWith(kafka, {
    lingerMs: 0,
    batchBytes: 10_000,
    retry: { initialMs: 1, maxMs: 2, maxAttempts: 1 },
    clock: () => (clockMs += REQUEST_LIMIT_READ_EVERY_MS),
    requestLimit: () => requestLimit,
    onConnectionClosed: async () => void (reads++, (requestLimit = 300), producer.limitLowered({ was: null, now: 300 })),
  });
  for (const code of ["EPIPE", "ECONNRESET"]) {
    requestLimit = undefined;
    kafka.batches.length = 0;
    kafka.failures.push(dropped(code));
    await producer.send([message("t", "a"), message("t", "b"), message("t", "c")]);
    assert.deepEqual(kafka.batches.map((b) => b.topicMessages!.flatMap((t) => t.messages.map((m) => String(m.value)))), [["a", "b"], ["c"]], code);
  }
  assert.equal(reads, 2);
  kafka.failures.push(connectionError());
  await assert.rejects(producer.send([message("t", "d")]), { code: "KAFKA_UNAVAILABLE" });
  assert.equal(reads, 2, "ECONNREFUSED is no request the broker closed");
  await producer.close();
});

test("a rolling restart's closed connections read the brokers' socket.request.max.bytes at most once in REQUEST_LIMIT_READ_EVERY_MS", async () => {
  const kafka = new ScriptedKafka();
  const closed = () => Object.assign(new Error("Closed connection"), { name: "KafkaJSConnectionClosedError" });
  let reads = 0;
  let clockMs = 0;
  const { producer } = producerWith(kafka, { lingerMs: 0, clock: () => clockMs, onConnectionClosed: async () => (reads++, undefined) });
  kafka.failures.push(closed(), closed(), closed());
  await producer.send([message("t", "a")]);
  assert.equal(reads, 1);
  clockMs += REQUEST_LIMIT_READ_EVERY_MS;
  kafka.failures.push(closed());
  await producer.send([message("t", "b")]);
  assert.equal(reads, 2);
  await producer.close();
});

test("a limit found lower by another read (a refusal's re-read, a halted table's retry) while a unit is queued: the unit's dropped request fails it for a record over it, though the read at the drop finds nothing lower", async () => {
  const kafka = new ScriptedKafka();
  const closed = () => Object.assign(new Error("Closed connection"), { name: "KafkaJSConnectionClosedError" });
  const limits: { request?: number } = {};
  let reads = 0;
  const { producer } = producerWith(kafka, {
    lingerMs: 20,
    batchBytes: 10_000,
    batchLimitOf: () => limits.request,
    requestLimit: () => limits.request,
    // The read at the drop: nothing lower than known any more (the other read took it).
    onConnectionClosed: async () => (reads++, undefined),
  });
  kafka.failures.push(closed(), closed(), closed());
  const sent = producer.send([{ ...message("t", "big"), size: 900 }]);
  // While it lingers: the other read finds the brokers' limit lower and tells the producer.
  limits.request = 300;
  producer.limitLowered({ was: 100 * 2 ** 20, now: 300, setting: "socket.request.max.bytes of the brokers (1324) less 1024 bytes of request framing" });
  await assert.rejects(sent, (error: Error & { code?: string; retriable?: boolean }) => error.code === "KAFKA_REQUEST_LIMIT_LOWERED" && error.retriable === true && /socket\.request\.max\.bytes.*halts its table/.test(error.message));
  assert.equal(reads, 1);
  // Taken once: a later unit's drop is an outage again (retried), not the lowered limit told before it was queued.
  kafka.failures.push(closed());
  await producer.send([message("t", "a")]);
  assert.deepEqual(values(kafka), ["t:a"]);
  await producer.close();
});

test("two brokers dropping a send's requests at once (kafkajs sends to each leader together): both wait for the one read of the limit and both end kafkajs's retries", async () => {
  const { prototype: broker } = createRequire(import.meta.url)("kafkajs/src/broker/index.js") as { prototype: { produce(this: unknown, request: unknown): Promise<unknown> } };
  const closed = () => Object.assign(new Error("Closed connection"), { name: "KafkaJSConnectionClosedError" });
  // A broker whose produce's connection closes (kafkajs's Broker.produce, which dropped-requests.ts wraps, over a stand-in connection).
  const dropping = { lookupRequest: () => { throw closed(); } };
  const rejections: string[] = [];
  const kafka = new ScriptedKafka();
  const scripted = kafka.producer.bind(kafka);
  let dropped = false;
  kafka.producer = () => {
    const inner = scripted();
    return {
      ...inner,
      sendBatch: async (batch: ProducerBatch) => {
        if (dropped) return inner.sendBatch(batch);
        dropped = true;
        // As kafkajs: one produce request per leader in a Promise.all; the first rejection settles the send.
        await Promise.all([broker.produce.call(dropping, {}), broker.produce.call(dropping, {})]).catch((error: Error) => {
          rejections.push(error.name);
          throw error;
        });
        return inner.sendBatch(batch);
      },
    };
  };
  let requestLimit: number | undefined;
  let reads = 0;
  const { producer } = producerWith(kafka, {
    lingerMs: 0,
    batchBytes: 10_000,
    requestLimit: () => requestLimit,
    onConnectionClosed: async () => {
      reads++;
      await new Promise((resolve) => setTimeout(resolve, 20));
      requestLimit = 300;
      producer.limitLowered({ was: null, now: 300 });
    },
  });
  await producer.send([message("t", "a"), message("t", "b"), message("t", "c")]);
  assert.equal(reads, 1);
  // Before, the second drop found the read rate-limited and gave kafkajs's retrier the plain closed connection first.
  assert.deepEqual(rejections, ["RequestDropped"]);
  assert.deepEqual(kafka.batches.map((b) => b.topicMessages!.flatMap((t) => t.messages.map((m) => String(m.value)))), [["a", "b"], ["c"]]);
  await producer.close();
});

test("checkpoints that do not fit beside a record near the request limit go in a request of their own, in the same transaction; without transactions they are cut too", async () => {
  const requestLimit = 1000;
  // The bytes a request carries: its records' and each partition's framing (80 bytes and its topic's name) once.
  const requestBytes = (batch: ProducerBatch) =>
    batch.topicMessages!.reduce((sum, t) => sum + t.messages.reduce((s, m) => s + (String(m.value) === "big" ? 850 : String(m.value).startsWith("cp") ? 400 : 100), 0) + new Set(t.messages.map((m) => m.partition)).size * (80 + t.topic.length), 0);
  const big = { ...message("t", "big"), size: 850 };
  const checkpoint = (source: string, partition: number) => ({ source, message: { ...message("cp", `cp${source}`, partition), size: 400 } });

  const kafka = new ScriptedKafka();
  const { producer } = producerWith(kafka, { transactionalId: "tx", lingerMs: 0, batchBytes: 10_000, requestLimit: () => requestLimit });
  await producer.send([big], checkpoint("s", 0));
  const sent = kafka.batches.filter((b) => b.topicMessages!.length > 0);
  assert.deepEqual(sent.map((b) => b.topicMessages!.flatMap((t) => t.messages.map((m) => String(m.value)))), [["big"], ["cps"]]);
  for (const batch of sent) assert.ok(requestBytes(batch) <= requestLimit, `${requestBytes(batch)} bytes in a request`);
  assert.equal(kafka.commits, 2, "the connect's empty transaction and the unit's one");
  await producer.close();

  const plain = new ScriptedKafka();
  const { producer: atLeastOnce } = producerWith(plain, { lingerMs: 50, batchBytes: 10_000, requestLimit: () => requestLimit });
  await Promise.all([atLeastOnce.send([message("t", "a")], checkpoint("1", 0)), atLeastOnce.send([message("t", "b")], checkpoint("2", 1)), atLeastOnce.send([message("t", "c")], checkpoint("3", 2))]);
  for (const batch of plain.batches) assert.ok(requestBytes(batch) <= requestLimit, `${requestBytes(batch)} bytes in a request`);
  assert.deepEqual(plain.batches.map((b) => b.topicMessages!.flatMap((t) => t.messages.map((m) => String(m.value)))), [["a", "b", "c"], ["cp1", "cp2"], ["cp3"]]);
  await atLeastOnce.close();
});

test("checkpoints go beside a transaction's first request up to the request limit exactly, each partition's framing counted once", async () => {
  const requestLimit = 1000;
  const values = (kafka: ScriptedKafka) => kafka.batches.filter((b) => b.topicMessages!.length > 0).map((b) => b.topicMessages!.flatMap((t) => t.messages.map((m) => String(m.value))));
  // 700 + t's framing (81): 781 bytes of the request.
  const record = { ...message("t", "big"), size: 700 };
  const checkpoint = (source: string, size: number) => ({ source, message: { ...message("cp", `cp${source}`), size } });
  const unitWith = async (...checkpoints: { source: string; message: OutgoingMessage }[]) => {
    const kafka = new ScriptedKafka();
    const { producer } = producerWith(kafka, { transactionalId: "tx", lingerMs: 50, batchBytes: 10_000, requestLimit: () => requestLimit });
    await Promise.all(checkpoints.map((cp, i) => producer.send(i === 0 ? [record] : [], cp)));
    await producer.close();
    return values(kafka);
  };
  // 781 + 137 + cp's framing (82) = 1000.
  assert.deepEqual(await unitWith(checkpoint("a", 137)), [["big", "cpa"]]);
  assert.deepEqual(await unitWith(checkpoint("a", 138)), [["big"], ["cpa"]]);
  // Two sources' checkpoints in one partition: its framing once, 781 + 2 x 60 + 82 = 983 (twice: 1065).
  assert.deepEqual(await unitWith(checkpoint("a", 60), checkpoint("b", 60)), [["big", "cpa", "cpb"]]);
});

test("at most max_in_flight flushed units wait; further calls wait for room", async () => {
  const kafka = new ScriptedKafka();
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  const original = kafka.producer.bind(kafka);
  kafka.producer = () => {
    const p = original();
    return { ...p, sendBatch: async (batch: ProducerBatch) => (await gate, p.sendBatch(batch)) };
  };
  const { producer } = producerWith(kafka, { lingerMs: 0, maxInFlight: 2 });
  const sent = [producer.send([message("t", "1")]), producer.send([message("t", "2")])];
  let thirdAccepted = false;
  const third = producer.send([message("t", "3")]).then(() => (thirdAccepted = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.equal(producer.queuedUnits, 2, "the third call waits outside the queue");
  assert.equal(thirdAccepted, false);
  release();
  await Promise.all([...sent, third]);
  assert.deepEqual(values(kafka), ["t:1", "t:2", "t:3"]);
  await producer.close();
});

test("after a write with a source's checkpoint failed for good, later checkpoints of that source are refused, also those enqueued after the failure, until the caller read the checkpoint again", async () => {
  const kafka = new ScriptedKafka();
  const fenced = Object.assign(new Error("The producer has been fenced"), { name: "KafkaJSProtocolError", type: "INVALID_PRODUCER_EPOCH", retriable: false });
  kafka.failures.push(fenced);
  const { producer } = producerWith(kafka, { lingerMs: 0 });
  const first = producer.send([message("t", "a")], { source: "s", message: message("cp", "1") });
  await assert.rejects(first);
  // Made after the failure, before its caller could react to it: its checkpoint would skip "a".
  await assert.rejects(producer.send([message("t", "b")], { source: "s", message: message("cp", "2") }), /an earlier write of source s's changes failed/);
  await producer.send([message("t", "c")], { source: "other", message: message("cp", "x") });
  await producer.send([message("t", "d")]);
  producer.forgetFailure("s");
  await producer.send([message("t", "e")], { source: "s", message: message("cp", "3") });
  assert.deepEqual(values(kafka), ["t:c", "cp:x", "t:d", "t:e", "cp:3"], "nothing of source s between the failure and the new read of its checkpoint");
  await producer.close();
});

test("a call that was waiting for room when a delivery failed is still delivered (without a checkpoint of the failed source)", async () => {
  const kafka = new ScriptedKafka();
  const tooLarge = Object.assign(new Error("The request included a message larger than the max message size the server will accept"), { name: "KafkaJSProtocolError", type: "MESSAGE_TOO_LARGE", retriable: false });
  kafka.failures.push(tooLarge);
  const { producer } = producerWith(kafka, { lingerMs: 0, maxInFlight: 1 });
  const first = producer.send([message("t", "a")], { source: "s", message: message("cp", "1") });
  const waiting = producer.send([message("t", "b")]);
  await assert.rejects(first);
  const outcome = await Promise.race([waiting.then(() => "delivered"), new Promise((resolve) => setTimeout(() => resolve("stuck"), 2_000))]);
  assert.equal(outcome, "delivered");
  assert.deepEqual(values(kafka), ["t:b"]);
  await producer.close();
});

test("with transactions, a call resolves only once readers see its committed records, not at the commit", async () => {
  const kafka = new ScriptedKafka();
  let visible!: () => void;
  const asked: string[][] = [];
  const { producer } = producerWith(kafka, {
    transactionalId: "tx",
    lingerMs: 0,
    untilVisible: (offsets) => {
      asked.push(offsets.map((o) => `${o.topic}:${o.partition}@${o.offset}`));
      return new Promise<void>((resolve) => (visible = resolve));
    },
  });
  let durable = false;
  const sent = producer.send([message("t", "a"), message("t", "b", 1)], { source: "s", message: message("cp", "1") }).then(() => (durable = true));
  for (let turn = 0; asked.length === 0 && turn < 1000; turn++) await new Promise((resolve) => setImmediate(resolve));
  assert.equal(kafka.commits, 2, "committed (after the connect's empty transaction)");
  assert.deepEqual(asked, [["t:0@0", "t:1@0", "cp:0@0"]], "the last offset of each partition it wrote");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.equal(durable, false, "committed but not visible: not durable yet");
  visible();
  await sent;
  assert.equal(durable, true);
  await producer.close();
});

test("with transactions, a commit whose records never become visible (Kafka skipped its commit markers) rejects its calls and every later one of the source, so no source acknowledges it", async () => {
  const kafka = new ScriptedKafka();
  const hidden = new SluiceError("records of a committed Kafka transaction are not visible to read_committed readers after 10 s", { code: "KAFKA_COMMIT_NOT_VISIBLE", retriable: true });
  let calls = 0;
  const { producer } = producerWith(kafka, { transactionalId: "tx", lingerMs: 0, untilVisible: async () => {
      if (calls++ === 0) throw hidden;
    },
  });
  const first = producer.send([message("t", "a")], { source: "s", message: message("cp", "1") });
  await assert.rejects(first, { code: "KAFKA_COMMIT_NOT_VISIBLE" });
  await assert.rejects(producer.send([message("t", "b")], { source: "s", message: message("cp", "2") }), /an earlier write of source s's changes failed/);
  producer.forgetFailure("s");
  await producer.send([message("t", "c")], { source: "s", message: message("cp", "3") });
  await producer.close();
});
