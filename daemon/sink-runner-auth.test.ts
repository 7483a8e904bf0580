/**
 * A sink whose server refuses its credentials (SINK_AUTH_FAILED, as the ClickHouse and Elasticsearch
 * sinks type a login or permission refusal) ends the sink only before it first opened: a wrong password
 * at a start is a config error told at once. Once it ran, the refusal (a password rotated on the server)
 * is that sink's outage: it waits with backoff, is opened again (reading a credential file again), applies
 * nothing past its stored offsets meanwhile, says why on /readyz and /status, counts its retries, and
 * applies everything once the server accepts it again. Before the fix, run() failed and the daemon stopped.
 */
import assert from "node:assert/strict";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import type { Sink, SinkChange, SinkWriteResult } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../connectors/errors.ts";
import { AUTH_FAILED } from "../connectors/sinks/errors.ts";
import { serializeEvent } from "./event-json.ts";
import { SluiceMetrics } from "./metrics.ts";
import { SinkRunner } from "./sink-runner.ts";
import { createLogger } from "../runtime/logger.ts";
import { Writable } from "node:stream";
import { event, jsonDecoder, silent } from "./sink-runner-test-support.ts";

const TOPIC = "pg.public.a";
const GROUP = "t.sink.auth";

const refused = () =>
  new SluiceError("ClickHouse http://127.0.0.1:9 refuses the credentials of user sluice (error 193): Wrong password for user sluice", {
    code: AUTH_FAILED,
    context: { component: "sink", sink: "auth" },
  });

/** A server that accepts the sink's login until `rotated`, then refuses it (open and write) until `accepted` again. */
class RotatingSink implements Sink {
  readonly name = "auth";
  readonly rows: string[] = [];
  refusing = false;
  opens = 0;
  async open(): Promise<void> {
    this.opens++;
    if (this.refusing) throw refused();
  }
  async close(): Promise<void> {}
  async write(changes: readonly SinkChange[]): Promise<SinkWriteResult> {
    if (this.refusing) throw refused();
    for (const { event: e } of changes) this.rows.push(String(e.key["id"]));
    return { failures: [] };
  }
}

async function setup() {
  const log = EmbeddedTopicLog.open({ path: join(mkdtempSync(join(tmpdir(), "sluice-sink-auth-")), "log.db"), logger: silent });
  await log.createTopic({ name: TOPIC, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  return log;
}

async function produce(log: EmbeddedTopicLog, ids: number[]) {
  await log.produce(ids.map((id) => ({ topic: TOPIC, key: Buffer.from(String(id)), value: Buffer.from(serializeEvent(event("a", id))), timestamp: 0 })));
}

function runner(log: EmbeddedTopicLog, sink: Sink, metrics?: SluiceMetrics, logger = silent) {
  return new SinkRunner({
    sink,
    log,
    group: GROUP,
    topics: async () => [TOPIC],
    decoder: jsonDecoder,
    batch: { maxRows: 100, maxBytes: 1 << 20, maxWaitMs: 5 },
    onError: "halt",
    deadLetterTopic: "t.dlq.auth",
    retry: { initialMs: 2, maxMs: 10 },
    logger,
    owner: "test",
    ...(metrics ? { metrics } : {}),
  });
}

async function until(condition: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 2000; i++) {
    if (await condition()) return;
    await new Promise((res) => setTimeout(res, 5));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("credentials refused at the first open: the sink fails at once with SINK_AUTH_FAILED (a config error at a start)", async () => {
  const log = await setup();
  const sink = new RotatingSink();
  sink.refusing = true;
  await assert.rejects(runner(log, sink).run(new AbortController().signal), (error: unknown) => error instanceof SluiceError && error.code === AUTH_FAILED);
  assert.equal(sink.opens, 1, "not retried");
  await log.close();
});

test("credentials refused after the sink ran (password rotated): the sink alone waits, opens again with backoff, and applies everything once accepted", async () => {
  const log = await setup();
  const sink = new RotatingSink();
  const metrics = new SluiceMetrics({ processMetrics: false });
  const r = runner(log, sink, metrics);
  const stop = new AbortController();
  let outcome: unknown = "running";
  const running = r.run(stop.signal).then(
    () => (outcome = "returned"),
    (error: unknown) => (outcome = error),
  );
  await produce(log, [1, 2]);
  await until(() => sink.rows.length === 2 && r.ready(), "the first rows");
  const committed = async () => (await log.committedOffsets(GROUP)).find((o) => o.topic === TOPIC)?.offset;
  await until(async () => (await committed()) === 2n, "the first rows' offsets");
  const retries = async () => (await metrics.sinkRetries.get()).values.find((v) => v.labels["sink"] === "auth")?.value ?? 0;

  sink.refusing = true;
  await produce(log, [3, 4]);
  await until(() => sink.opens >= 4, "opens again while refused");
  assert.equal(outcome, "running", "run() neither fails nor returns: the refusal is this sink's outage");
  assert.equal(r.ready(), false, "not ready while refused");
  assert.match(r.waitingFor() ?? "", /its target does not accept writes: ClickHouse .* refuses the credentials of user sluice/);
  assert.equal(await committed(), 2n, "nothing stored past the refused batch");
  assert.deepEqual(sink.rows, ["1", "2"]);
  assert.ok((await retries()) >= 2, "sluice_sink_retries_total counts the waits");

  sink.refusing = false;
  await until(() => sink.rows.length === 4 && r.ready(), "the rows written while refused");
  assert.deepEqual(sink.rows, ["1", "2", "3", "4"]);
  assert.equal(r.waitingFor(), null);
  await until(async () => (await committed()) === 4n, "the offsets after the refusal");
  stop.abort(new Error("stop"));
  await running;
  assert.equal(outcome, "returned");
  await log.close();
});

test("writes refused while the sink opens fine (a role's privileges narrowed): the backoff grows from refusal to refusal, not started over by each successful poll", async () => {
  const log = await setup();
  /** Opens (the login is known), refuses every write. */
  class NarrowedSink extends RotatingSink {
    override async open(): Promise<void> {
      this.opens++;
    }
  }
  const sink = new NarrowedSink();
  const attempts: number[] = [];
  const lines = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split("\n").filter((l) => l !== "")) {
        const entry = JSON.parse(line) as { msg?: string; attempt?: number };
        if (entry.msg?.includes("waits for its server to accept its credentials") && entry.attempt !== undefined) attempts.push(entry.attempt);
      }
      done();
    },
  });
  const r = runner(log, sink, undefined, createLogger("warn", lines));
  const stop = new AbortController();
  const running = r.run(stop.signal).catch(() => undefined);
  await produce(log, [1]);
  await until(() => sink.rows.length === 1, "the first row applied");
  sink.refusing = true;
  await produce(log, [2]);
  await until(() => attempts.length >= 4, "four refusals");
  stop.abort(new Error("stop"));
  await running;
  assert.deepEqual(attempts.slice(0, 4), [0, 1, 2, 3], "each refusal waits longer than the last (its attempt counted on)");
  await log.close();
});

test("credentials refused: sluice_sink_auth_refused is 1 for as long as the sink waits, also when opens succeed and each write is refused, and 0 once a batch is applied", async () => {
  const log = await setup();
  /** Opens (the login is known), refuses every write while `refusing`. */
  class NarrowedSink extends RotatingSink {
    override async open(): Promise<void> {
      this.opens++;
    }
  }
  const sink = new NarrowedSink();
  const metrics = new SluiceMetrics({ processMetrics: false });
  const r = runner(log, sink, metrics);
  const gauge = async () => (await metrics.sinkAuthRefused.get()).values.find((v) => v.labels["sink"] === "auth")?.value;
  const stop = new AbortController();
  const running = r.run(stop.signal).catch(() => undefined);
  try {
    await produce(log, [1]);
    await until(() => sink.rows.length === 1, "the first row applied");
    assert.equal(await gauge(), 0, "the series exists while the server accepts the credentials");
    assert.equal(r.credentialsRefusedSince(), null);

    sink.refusing = true;
    await produce(log, [2]);
    await until(async () => (await gauge()) === 1, "the gauge set at the refusal");
    const since = r.credentialsRefusedSince();
    assert.ok(since !== null);
    // Each cycle opens the sink again (accepted) and is refused at the write: the gauge never reads 0 meanwhile.
    const opens = sink.opens;
    const readings: (number | undefined)[] = [];
    while (sink.opens < opens + 4) {
      readings.push(await gauge());
      await new Promise((res) => setTimeout(res, 1));
    }
    assert.deepEqual([...new Set(readings)], [1], "never 0 between a successful open and the next refused write");
    assert.equal(r.credentialsRefusedSince(), since, "since the first refusal");

    sink.refusing = false;
    await until(() => sink.rows.length === 2, "the row written once accepted");
    await until(async () => (await gauge()) === 0, "the gauge cleared once a batch applied");
    assert.equal(r.credentialsRefusedSince(), null);
  } finally {
    stop.abort(new Error("stop"));
    await running;
    await log.close();
  }
});
