import assert from "node:assert/strict";
import { test } from "node:test";
import type { StoredRecord, TopicConsumer, TopicPartitionOffset } from "../connectors/topics/contract.ts";
import { createLogger } from "../runtime/logger.ts";
import { announcedHalts, DROP_INTERVALS, HALTS_PER_REPORT, InstanceDirectory, STALE_INTERVALS } from "./instances.ts";
import type { AnnouncingLog, InstanceReport } from "./instances.ts";

const report: InstanceReport = { id: "host:1", host: "host", pid: 1, version: "0", roles: ["all"], startedAt: "", at: 0, sources: [], sinks: [] };

/** A log whose consumer waits (a poll) until closed, and that records what is announced. */
class RecordingLog implements AnnouncingLog {
  readonly announced: (string | null)[] = [];
  async announce(_key: string, value: string | null): Promise<void> {
    this.announced.push(value);
  }
  async endOffsets(): Promise<TopicPartitionOffset[]> {
    return [];
  }
  async consumer(): Promise<TopicConsumer> {
    let closed: () => void = () => undefined;
    const closing = new Promise<void>((resolve) => (closed = resolve));
    return {
      poll: async (options: { signal?: AbortSignal }) => {
        await Promise.race([closing, new Promise((resolve) => options.signal?.addEventListener("abort", resolve, { once: true }))]);
        return [];
      },
      close: async () => closed(),
    } as unknown as TopicConsumer;
  }
}

test("close waits for an announcement under way: the removal is the last write, and nothing uses the topic log after close", async () => {
  const log = new RecordingLog();
  let finishReport: () => void = () => undefined;
  const slowReport = new Promise<void>((resolve) => (finishReport = resolve));
  const directory = new InstanceDirectory({
    log,
    deployment: "dep",
    id: report.id,
    // The first report (at start) is slow, as one that asks a loaded Kafka for the sinks' lag.
    report: async () => {
      await slowReport;
      return report;
    },
    intervalMs: 60_000,
    logger: createLogger("silent"),
  });
  directory.start();
  let closed = false;
  const closing = directory.close().then(() => (closed = true));
  await new Promise((resolve) => setTimeout(resolve, 50));
  assert.equal(closed, false, "close waits for the announcement under way");
  finishReport();
  await closing;
  assert.deepEqual(log.announced, [JSON.stringify(report), null], "the report, then its removal, and nothing after close");
});

test("a report lists at most HALTS_PER_REPORT halts per sink and counts the rest: thousands of halts (an Elasticsearch write block) stay far below Kafka's 1 MB message limit", () => {
  const halts = Array.from({ length: 5_000 }, (_, i) => ({ table: `tenant_${i}.${"orders_with_a_long_name_".repeat(4)}${i}`, at: `deployment.pg.tenant_${i}.orders:11:${10_000_000 + i}` }));
  const capped = announcedHalts(halts);
  assert.equal(capped.halted?.length, HALTS_PER_REPORT);
  assert.equal(capped.haltedMore, 5_000 - HALTS_PER_REPORT);
  assert.deepEqual(capped.halted?.[0], halts[0], "the first ones, as they are");
  const sinks = ["es", "ch", "pg"].map((name) => ({ name, ready: false, partitions: ["deployment.pg.x:0"], lagRecords: null, ...announcedHalts(halts) }));
  assert.ok(Buffer.byteLength(JSON.stringify({ ...report, sinks })) < 200_000, "three sinks of 5,000 halts each");
  assert.deepEqual(announcedHalts(halts.slice(0, 3)), { halted: halts.slice(0, 3) }, "no count when all are listed");
});

test("a failing announcement is warned once per streak, not at every heartbeat, and again after one succeeded", async () => {
  const outcomes = [false, false, false, true, false, false];
  let calls = 0;
  const log = new RecordingLog();
  log.announce = async () => {
    const ok = outcomes[calls++] ?? true;
    if (!ok) throw new Error("MESSAGE_TOO_LARGE");
  };
  const lines: { level: string; msg: string }[] = [];
  const logger = createLogger("debug", { write: (line: string) => void lines.push(JSON.parse(line) as { level: string; msg: string }) });
  const directory = new InstanceDirectory({ log, deployment: "dep", id: report.id, report: async () => report, intervalMs: 5, logger });
  directory.start();
  while (calls < outcomes.length + 1) await new Promise((resolve) => setTimeout(resolve, 5));
  await directory.close();
  const warnings = lines.filter((l) => l.level === "warn");
  assert.equal(warnings.length, 2, `one warning per streak of failures: ${JSON.stringify(lines)}`);
  assert.match(warnings[0]?.msg ?? "", /announcing this instance failed/);
  assert.ok(lines.some((l) => l.level === "info" && /works again/.test(l.msg)));
});

/** A one-partition topic in memory: what is announced is appended, and the consumer reads it from the beginning. */
class TopicLikeLog implements AnnouncingLog {
  readonly records: Pick<StoredRecord, "key" | "value" | "partition" | "offset">[] = [];
  read = 0;
  /** Polls to fail (the reader then starts a consumer again, which reads from the beginning). */
  failPolls = 0;
  add(key: string, value: string | null): void {
    this.records.push({ key: Buffer.from(key), value: value === null ? null : Buffer.from(value), partition: 0, offset: BigInt(this.records.length) });
  }
  async endOffsets(topic: string): Promise<TopicPartitionOffset[]> {
    return [{ topic, partition: 0, offset: BigInt(this.records.length) }];
  }
  async announce(key: string, value: string | null): Promise<void> {
    this.add(key, value);
  }
  async consumer(): Promise<TopicConsumer> {
    let next = 0;
    return {
      poll: async (options: { signal?: AbortSignal }) => {
        if (this.failPolls > 0) {
          this.failPolls--;
          this.read = 0;
          throw new Error("connection lost");
        }
        if (next === this.records.length) await new Promise((resolve) => setTimeout(resolve, 5));
        if (options.signal?.aborted) return [];
        const batch = this.records.slice(next);
        next += batch.length;
        this.read = next;
        return batch;
      },
      close: async () => undefined,
    } as unknown as TopicConsumer;
  }
}

test("a report's staleness is told on the reader's clock: a live process whose clock is 30 s behind is not stale; a dead one whose clock is an hour ahead goes stale, then is left out", async () => {
  const intervalMs = 5_000;
  const log = new TopicLikeLog();
  const other = (id: string, at: number) => JSON.stringify({ ...report, id, at });
  // The topic's backlog: a live process whose clock is 30 s behind this host's, and a dead one whose clock was an hour ahead.
  log.add("live:1", other("live:1", Date.now() - 30_000));
  log.add("dead:1", other("dead:1", Date.now() + 3_600_000));
  const directory = new InstanceDirectory({ log, deployment: "dep", id: report.id, report: async () => ({ ...report, at: Date.now() }), intervalMs, logger: createLogger("silent") });
  const startedAt = performance.now();
  directory.start();
  try {
    while (log.read < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    // The live process's next heartbeat, after this process's own report: it arrives live.
    log.add("live:1", other("live:1", Date.now() - 30_000));
    while (log.read < 4) await new Promise((resolve) => setTimeout(resolve, 5));
    const seen = (list: Awaited<ReturnType<InstanceDirectory["instances"]>>) => Object.fromEntries(list.filter((i) => !i.self).map((i) => [i.id, i.stale]));
    // Before: live:1 stale (its `at` 30 s behind this clock, over 3 intervals), and `sluice status` exited 3.
    assert.deepEqual(seen(await directory.instances()), { "live:1": false, "dead:1": false });
    // No report for 3 intervals and more, on this host's clock: stale, whatever their `at` says.
    const later = performance.now() + STALE_INTERVALS * intervalMs + 1_000;
    assert.deepEqual(seen(await directory.instances(Date.now(), later)), { "live:1": true, "dead:1": true });
    assert.deepEqual(seen(await directory.instances(Date.now(), performance.now() + DROP_INTERVALS * intervalMs + 1_000)), {}, "both left out once older than DROP_INTERVALS");
    // The reader's consumer starts over (2 s later) and reads every report again. No report read again is taken for
    // one that just arrived: 3 intervals after the reader started, the dead process's report is stale, and so is the
    // live one's, whose last heartbeat arrived at the start.
    log.failPolls = 1;
    while (log.failPolls > 0 || log.read < log.records.length) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.deepEqual(seen(await directory.instances(Date.now(), startedAt + STALE_INTERVALS * intervalMs + 1_000)), { "live:1": true, "dead:1": true });
    // The live process's next heartbeat, read by the new consumer: it arrives now.
    log.add("live:1", other("live:1", Date.now() - 30_000));
    while (log.read < log.records.length) await new Promise((resolve) => setTimeout(resolve, 5));
    const live = (await directory.instances()).find((i) => i.id === "live:1");
    assert.deepEqual({ stale: live?.stale, fresh: (live?.ageSeconds ?? Infinity) < 1 }, { stale: false, fresh: true });
  } finally {
    await directory.close();
  }
});

test("reports arriving are aged on the reader's clock though this process's own announcement fails (no write ACL on the topic): a live process 30 s behind is not stale", async () => {
  const intervalMs = 5_000;
  const log = new TopicLikeLog();
  log.announce = async () => {
    throw new Error("TOPIC_AUTHORIZATION_FAILED");
  };
  const other = (id: string, at: number) => JSON.stringify({ ...report, id, at });
  log.add("live:1", other("live:1", Date.now() - 30_000));
  const directory = new InstanceDirectory({ log, deployment: "dep", id: report.id, report: async () => ({ ...report, at: Date.now() }), intervalMs, logger: createLogger("silent") });
  directory.start();
  try {
    while (log.read < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    // Its next heartbeat, written after the reader reached the end of the topic: it arrives now, though this
    // process's own report never comes back. Before: aged from its `at` (30 s behind), STALE.
    log.add("live:1", other("live:1", Date.now() - 30_000));
    while (log.read < 2) await new Promise((resolve) => setTimeout(resolve, 5));
    const others = (await directory.instances()).filter((i) => !i.self).map((i) => ({ id: i.id, stale: i.stale, fresh: i.ageSeconds < 1 }));
    assert.deepEqual(others, [{ id: "live:1", stale: false, fresh: true }]);
  } finally {
    await directory.close();
  }
});

test("a heartbeat written while the reader's consumer was down is aged from the reader's last poll before, not as backlog: a process up for long, its peer 20 s behind, still shows the peer live", async () => {
  const intervalMs = 5_000;
  const log = new TopicLikeLog();
  const other = (id: string, at: number) => JSON.stringify({ ...report, id, at });
  // This process's clock: it has been up for 10 minutes (DROP_INTERVALS is 1 minute) when the log goes out of reach.
  let clockMs = 0;
  const directory = new InstanceDirectory({ log, deployment: "dep", id: report.id, report: async () => ({ ...report, at: Date.now() }), intervalMs, logger: createLogger("silent"), clock: () => clockMs });
  directory.start();
  try {
    while (log.read < 1) await new Promise((resolve) => setTimeout(resolve, 5));
    clockMs = 600_000;
    log.add("live:1", other("live:1", Date.now() - 20_000));
    while (log.read < log.records.length) await new Promise((resolve) => setTimeout(resolve, 5));
    const seen = async () => (await directory.instances(Date.now(), clockMs)).filter((i) => !i.self).map((i) => ({ id: i.id, stale: i.stale }));
    assert.deepEqual(await seen(), [{ id: "live:1", stale: false }]);
    // The reader's consumer fails; while it waits to make another, the peer's next heartbeat is written.
    clockMs += 1_000;
    log.failPolls = 1;
    while (log.failPolls > 0) await new Promise((resolve) => setTimeout(resolve, 5));
    log.add("live:1", other("live:1", Date.now() - 20_000));
    while (log.read < log.records.length) await new Promise((resolve) => setTimeout(resolve, 5));
    clockMs += 2_000;
    // Before: read below the new consumer's end offset, it was aged as backlog, from the process's start (10 minutes):
    // left out, in /status and `sluice halted list`, until its next heartbeat; by its `at`, 20 s behind: stale.
    assert.deepEqual(await seen(), [{ id: "live:1", stale: false }]);
  } finally {
    await directory.close();
  }
});
