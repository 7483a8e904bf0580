import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { ChangeEvent, SinkChange, StoredRecord, TopicPartitionOffset } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { OffsetWriteResult, StagedWrite, StagingSink, StoredSinkOffset } from "../connectors/sinks/contract.ts";
import { markPersonalValues, PERSONAL_VALUE } from "../connectors/sinks/personal-values.ts";
import { SinkRunner } from "./sink-runner.ts";
import { event, jsonDecoder, jsonRecord, MemoryTransactionalSink, runnerDefaults, silent } from "./sink-runner-test-support.ts";

const ROWS = 5_000;
const TOPIC = "pg.public.people";
const emailOf = (id: number) => `person-${id}.secret@example.com`;

/** A target that refuses every row, quoting its value and, as a server may, another row's (the next one's). */
class RefusingSink extends MemoryTransactionalSink {
  calls = 0;
  override async write(changes: readonly SinkChange[], _signal: AbortSignal, _offsets?: readonly TopicPartitionOffset[]): Promise<OffsetWriteResult> {
    this.calls++;
    const failures = changes.map(({ event: e }, index) => {
      const id = Number(e.key["id"]);
      return { index, error: new Error(`Duplicate key "email: ${emailOf(id)}" (next ${emailOf(id + 1)})`), retriable: false };
    });
    return { failures, offsetsStored: false };
  }
}

test("a batch of 5,000 rows all refused: each refusal is redacted with its own row's personal values only, and every row is dead-lettered", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-personal-")), "log.db"), logger: silent });
  for (const name of [TOPIC, "t.dlq.mem"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const events = Array.from({ length: ROWS }, (_v, i) => {
    const e = event("people", i + 1);
    (e.after as Record<string, unknown>)["email"] = emailOf(i + 1);
    return e;
  });
  await log.produce(events.map((e) => jsonRecord(TOPIC, e)));
  // The decryptor's marking, as the sinks' decoder does with a personal column `email`.
  const decoder = {
    decode: async (r: StoredRecord) => {
      const e = await jsonDecoder.decode(r);
      if (e !== null) markPersonalValues(e, [String(e.after?.["email"])]);
      return e;
    },
  };
  const sink = new RefusingSink("mem");
  const runner = new SinkRunner({
    ...runnerDefaults,
    decoder,
    sink,
    log,
    group: "t.sink.mem",
    topics: async () => [TOPIC],
    batch: { maxRows: ROWS, maxBytes: 64 << 20, maxWaitMs: 50 },
    onError: "dead-letter",
    deadLetterTopic: "t.dlq.mem",
  });
  const stop = new AbortController();
  const running = runner.run(stop.signal);
  const dlq = await log.consumer("reader", ["t.dlq.mem"]);
  const dead: StoredRecord[] = [];
  try {
    // Every row settled once the offsets past the last one are stored.
    for (let i = 0; i < 3_000 && (sink.offsets[0]?.offset ?? 0) < ROWS; i++) await new Promise((res) => setTimeout(res, 10));
    for (let i = 0; i < 100 && dead.length < ROWS; i++) dead.push(...(await dlq.poll({ maxRecords: ROWS, maxBytes: 64 << 20, maxWaitMs: 50 })));
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await dlq.close();
    await log.close();
  }
  assert.equal(dead.length, ROWS);
  for (const record of dead) {
    const id = Number(Buffer.from(record.key!).toString());
    const error = Buffer.from(record.headers!["sluice.error"]!).toString();
    assert.ok(!error.includes(emailOf(id)), `row ${id}'s value is in: ${error}`);
    assert.ok(error.includes(`"email: ${PERSONAL_VALUE}"`), error);
    // Only its own row's values were looked for: the other row's value it quotes was not (rows x values of work before).
    assert.ok(error.includes(emailOf(id + 1)), `row ${id}'s refusal was redacted with other rows' values: ${error}`);
  }
});

/** A sink whose staged write succeeds and whose first storing of offsets fails, quoting a value of the batch. */
class OffsetsRefusingSink implements StagingSink {
  readonly name = "mem";
  readonly offsetsAtomic = false;
  #refused = false;
  async open(): Promise<void> {}
  async close(): Promise<void> {}
  useTopicIds(): void {}
  async committedOffsets(): Promise<StoredSinkOffset[]> {
    return [];
  }
  async storeOffsets(): Promise<void> {
    if (this.#refused) return;
    this.#refused = true;
    throw new Error(`offsets not stored: the batch's row (email ${emailOf(1)}) was refused`);
  }
  async write(): Promise<OffsetWriteResult> {
    return { failures: [], offsetsStored: false };
  }
  stagedWrite(): StagedWrite {
    return { stage: (_e: ChangeEvent) => true, write: async () => false };
  }
}

test("a staged write whose offsets fail to be stored throws its error without the batch's personal values", async () => {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-personal-")), "log.db"), logger: silent });
  await log.createTopic({ name: TOPIC, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const e = event("people", 1);
  (e.after as Record<string, unknown>)["email"] = emailOf(1);
  await log.produce([jsonRecord(TOPIC, e)]);
  const decoder = {
    decode: async (r: StoredRecord) => {
      const decoded = await jsonDecoder.decode(r);
      if (decoded !== null) markPersonalValues(decoded, [String(decoded.after?.["email"])]);
      return decoded;
    },
  };
  const runner = new SinkRunner({ ...runnerDefaults, decoder, sink: new OffsetsRefusingSink(), log, group: "t.sink.mem", topics: async () => [TOPIC], batch: { maxRows: 10, maxBytes: 1 << 20, maxWaitMs: 20 }, deadLetterTopic: "t.dlq.mem" });
  const stop = new AbortController();
  const failed = runner.run(stop.signal).then(
    () => null,
    (error: unknown) => error as Error,
  );
  const timer = setTimeout(() => stop.abort(new Error("stop")), 5_000);
  try {
    const error = await failed;
    assert.ok(error !== null, "the run ended without the failure");
    for (const text of [error.message, error.stack ?? ""]) assert.ok(!text.includes(emailOf(1)), `the value is in: ${text}`);
    assert.ok(error.message.includes(`(email ${PERSONAL_VALUE}) was refused`), error.message);
  } finally {
    clearTimeout(timer);
    await log.close();
  }
});
