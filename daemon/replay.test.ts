import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { configSchema } from "../config/schema.ts";
import type { SluiceConfig } from "../config/schema.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { createLogger } from "../runtime/logger.ts";
import { formatPlan, runReplayCommand } from "./replay.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-replay-"));
const path = join(dir, "sluice.db");
const group = "shop.sink.warehouse";
const topic = "shop.pg.public.orders";
const t0 = Date.parse("2024-05-01T00:00:00Z");

const config: SluiceConfig = configSchema.parse({
  name: "shop",
  sources: [{ name: "pg", kind: "postgres", user: "u", database: "shop", tables: ["public.*"] }],
  topics: { kind: "embedded", path },
  sinks: [{ name: "warehouse", kind: "duckdb" }],
});

function run(args: string[]) {
  const out = { stdout: "", stderr: "" };
  const io = { stdout: (text: string) => (out.stdout += text), stderr: (text: string) => (out.stderr += text) };
  return runReplayCommand(args, config, io, logger).then((code) => ({ code, ...out }));
}

async function committed(): Promise<bigint[]> {
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  const offsets = (await log.committedOffsets(group)).map((o) => o.offset);
  await log.close();
  return offsets;
}

before(async () => {
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  await log.createTopic({ name: "shop.sluice.parked", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  await log.produce(Array.from({ length: 20 }, (_, i) => ({ topic, key: Buffer.from(`k${i % 4}`), value: Buffer.from(`v${i}`), timestamp: t0 + i * 60_000 })));
  await log.setCommittedOffsets(group, (await log.endOffsets(topic)));
  await log.close();
});
after(() => rmSync(dir, { recursive: true, force: true }));

test("a dry run prints the plan and changes nothing", async () => {
  const before = await committed();
  const result = await run(["--sink", "warehouse", "--from-beginning"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /Replay of sink "warehouse" \(consumer group shop\.sink\.warehouse\) from the beginning:/);
  assert.match(result.stdout, /TOPIC\s+PARTITION\s+COMMITTED\s+TARGET\s+CHANGE/);
  assert.match(result.stdout, /shop\.pg\.public\.orders\s+0\s+\d+\s+0\s+replay \d+/);
  assert.doesNotMatch(result.stdout, /sluice\.parked/, "internal topics are not replayed");
  assert.match(result.stdout, /Dry run: nothing changed/);
  assert.deepEqual(await committed(), before);
});

test("--execute moves the group's offsets to the plan's targets", async () => {
  const result = await run(["--sink", "warehouse", "--from-time", "2024-05-01T00:10:00Z", "--execute"]);
  assert.equal(result.code, 0, result.stderr);
  assert.match(result.stdout, /from 2024-05-01T00:10:00\.000Z/);
  assert.match(result.stdout, /Done: moved 2 partition offsets/);
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  const consumer = await log.consumer(group, [topic]);
  const replayed = await consumer.poll({ maxRecords: 100, maxBytes: 2 ** 20, maxWaitMs: 0 });
  await log.close();
  assert.deepEqual(replayed.map((r) => r.timestamp).sort((a, b) => a - b), Array.from({ length: 10 }, (_, i) => t0 + (i + 10) * 60_000));
});

test("--from-offset moves one partition", async () => {
  const result = await run(["--sink", "warehouse", "--from-offset", `${topic}:1:2`, "--execute"]);
  assert.equal(result.code, 0, result.stderr);
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  assert.equal((await log.committedOffsets(group)).find((o) => o.partition === 1)?.offset, 2n);
  await log.close();
});

test("refused with exit 1 while the sink runs elsewhere (holds its lease); nothing changes", async () => {
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  assert.equal(await log.acquireLease(group, "sink-host-1 pid 42", 60_000), true);
  const before = await committed();
  const result = await run(["--sink", "warehouse", "--from-beginning", "--execute"]);
  assert.equal(result.code, 1);
  assert.match(result.stderr, /refused: sink "warehouse" is running \(consumer group shop\.sink\.warehouse, members: sink-host-1 pid 42\)/);
  assert.deepEqual(await committed(), before);
  const dry = await run(["--sink", "warehouse", "--from-beginning"]);
  assert.equal(dry.code, 0);
  assert.match(dry.stderr, /is running/);
  await log.releaseLease(group, "sink-host-1 pid 42");
  await log.close();
});

test("bad usage exits 2 with the reason and the usage line", async () => {
  const cases: [string[], RegExp][] = [
    [["--from-beginning"], /missing --sink NAME/],
    [["--sink", "nope", "--from-beginning"], /no sink "nope" in deployment "shop"; sinks: "warehouse"/],
    [["--sink", "warehouse"], /say where to replay from/],
    [["--sink", "warehouse", "--from-beginning", "--from-time", "2024-01-01"], /choose one of --from-beginning, --from-time/],
    [["--sink", "warehouse", "--from-time", "yesterday"], /not an ISO 8601 time/],
    // Found live: Date.parse took 2024-02-30 as March 1st, and the replay started a day later than asked.
    [["--sink", "warehouse", "--from-time", "2024-02-30"], /2024-02 has no day 30/],
    [["--sink", "warehouse", "--from-time", "2023-02-29T10:00:00Z"], /2023-02 has no day 29/],
    [["--sink", "warehouse", "--from-offset", "orders:x:1"], /not TOPIC:PARTITION:OFFSET/],
    [["--sink", "warehouse", "--from-offset", "shop.pg.public.nope:0:1"], /topic "shop\.pg\.public\.nope" is not read by group/],
    [["--sink", "warehouse", "--from-offset", `${topic}:0:999`], /offset 999 is outside shop\.pg\.public\.orders:0/],
    [["--sink", "warehouse", "--from-beginning", "--bogus"], /Unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const result = await run(args);
    assert.equal(result.code, 2, `${args.join(" ")}: ${result.stderr}`);
    assert.match(result.stderr, message, args.join(" "));
  }
});

test("formatPlan aligns columns and names what each partition will do", () => {
  const text = formatPlan({
    group: "g",
    target: { kind: "beginning" },
    partitions: [
      { topic: "a.b", partition: 0, current: 10n, target: 0n },
      { topic: "a.b", partition: 1, current: null, target: 0n },
      { topic: "a.b", partition: 2, current: 3n, target: 7n },
    ],
  });
  assert.equal(text, ["TOPIC  PARTITION  COMMITTED  TARGET  CHANGE", "a.b    0          10         0       replay 10", "a.b    1          -          0       from start", "a.b    2          3          7       skip 4", ""].join("\n"));
});
