import assert from "node:assert/strict";
import { test } from "node:test";
import type { TopicConsumer } from "../connectors/topics/contract.ts";
import { createLogger } from "../runtime/logger.ts";
import { InstanceDirectory } from "./instances.ts";
import type { AnnouncingLog, InstanceReport } from "./instances.ts";

const report: InstanceReport = { id: "host:1", host: "host", pid: 1, version: "0", roles: ["all"], startedAt: "", at: 0, sources: [], sinks: [] };

/** A log whose consumer waits (a poll) until closed, and that records what is announced. */
class RecordingLog implements AnnouncingLog {
  readonly announced: (string | null)[] = [];
  async announce(_key: string, value: string | null): Promise<void> {
    this.announced.push(value);
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
