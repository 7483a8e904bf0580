/**
 * The DuckDB sink on a keyed table of more rows than its memory_limit comfortably holds: upserts
 * over every key after a restart. DuckDB 1.5 keeps what such upserts load of the primary-key index
 * (and what they change of it until a checkpoint) in memory it does not evict; the sink must not be
 * stuck on SINK_OUT_OF_MEMORY for ever (docs/operations.md#memory, bench/duckdb-keys.ts at scale).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { SinkChange } from "../contracts.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { DuckDbSink } from "./duckdb-sink.ts";
import { ident } from "./sql.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-duckdb-memory-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const KEYS = 1_500_000;
const BATCH = 100_000;

test("at a 16 MiB memory_limit, upserts over all 1.5 million keys of a table after a restart all commit", { timeout: 600_000 }, async () => {
  const config = testSinkConfig("duckdb", { name: `d_${randomTableName("mem")}`, path: join(dir, "keys.duckdb"), target: "{table}", memory_limit: 16 * 2 ** 20, threads: 1 });
  const schema = tableSchema(randomTableName("keys"), [["id", "bigint"], ["v", "text"]]);
  const events = new Events(schema);
  const signal = () => AbortSignal.timeout(300_000);
  let sink = new DuckDbSink(config, { logger: testLogger() });
  await sink.open(signal());
  try {
    // The table through the sink, its rows in bulk (what a snapshot leaves behind, quickly).
    await sink.write([events.insert(1n, { id: 0, v: "first" }, "r")], signal());
    const [{ physical }] = (await sink.query(`SELECT physical FROM _sluice.tables`)) as [{ physical: string }];
    for (let start = 1; start < KEYS; start += 250_000) {
      await sink.query(`INSERT INTO _sluice.${ident(physical)} SELECT i, 'value ' || i, 2, false FROM range(${start}, ${Math.min(KEYS, start + 250_000)}) r(i)`);
      await sink.query("CHECKPOINT");
    }
    await sink.close();
    sink = new DuckDbSink(config, { logger: testLogger() });
    await sink.open(signal());
    assert.deepEqual(await sink.query("SELECT current_setting('checkpoint_threshold') AS wal"), [{ wal: "2.0 MiB" }]);
    let version = 10n;
    for (let start = 0; start < KEYS; start += BATCH) {
      const batch: SinkChange[] = [];
      for (let id = start; id < start + BATCH; id++) batch.push(events.update(++version, { id, v: `new ${id}` }));
      await sink.write(batch, signal());
    }
    const [row] = await sink.query(`SELECT count(*)::INT AS n, count(*) FILTER (WHERE v LIKE 'new %')::INT AS updated FROM main.${ident(schema.table)}`);
    assert.deepEqual(row, { n: KEYS, updated: KEYS });
  } finally {
    await sink.close();
  }
});

test("at a 16 MiB memory_limit, a write of 20,000 rows DuckDB cannot hold in one transaction commits (in smaller transactions), its offsets with it", { timeout: 120_000 }, async () => {
  const config = testSinkConfig("duckdb", { name: `d_${randomTableName("split")}`, path: join(dir, "split.duckdb"), target: "{table}", memory_limit: 16 * 2 ** 20, threads: 1 });
  const schema = tableSchema(randomTableName("split"), [["id", "bigint"], ["v", "text"]]);
  const events = new Events(schema);
  const signal = () => AbortSignal.timeout(60_000);
  const sink = new DuckDbSink(config, { logger: testLogger() });
  await sink.open(signal());
  try {
    // Before: SINK_OUT_OF_MEMORY (15.7 MiB/16.0 MiB used) at every retry of this write, for ever.
    const batch = Array.from({ length: 20_000 }, (_, i) => events.insert(BigInt(i + 1), { id: i + 1, v: `${i}`.padEnd(100, "x") }));
    const result = await sink.write(batch, signal(), [{ topic: events.topic, partition: 0, offset: 20_000n }]);
    assert.deepEqual(result, { failures: [], offsetsStored: true });
    assert.deepEqual(await sink.query(`SELECT count(*)::INT AS n FROM main.${ident(schema.table)}`), [{ n: 20_000 }]);
    assert.deepEqual((await sink.committedOffsets()).map((o) => [o.topic, o.partition, o.offset]), [[events.topic, 0, 20_000n]]);
  } finally {
    await sink.close();
  }
});

test("on_error: halt, a write split for memory: a table with a poison row in the first half gets nothing of the second half after it, other tables all of theirs", { timeout: 120_000 }, async () => {
  const config = testSinkConfig("duckdb", { name: `d_${randomTableName("split")}`, path: join(dir, "split-halt.duckdb"), target: "{table}", memory_limit: 16 * 2 ** 20, threads: 1, on_error: "halt" });
  const halted = new Events(tableSchema(randomTableName("halted"), [["id", "bigint"], ["big", "bigint"], ["v", "text"]]));
  const other = new Events(tableSchema(randomTableName("other"), [["id", "bigint"], ["big", "bigint"], ["v", "text"]]));
  const signal = () => AbortSignal.timeout(60_000);
  const sink = new DuckDbSink(config, { logger: testLogger() });
  await sink.open(signal());
  try {
    // 30,000 changes of one table (the poison at index 10,000, in the first half), then 10,000 of another.
    const batch = Array.from({ length: 40_000 }, (_, i) => {
      const events = i < 30_000 ? halted : other;
      return events.insert(BigInt(i + 1), { id: i + 1, big: i === 10_000 ? "not a number" : BigInt(i), v: `${i}`.padEnd(100, "x") });
    });
    const result = await sink.write(batch, signal(), [{ topic: halted.topic, partition: 0, offset: 30_000n }]);
    assert.deepEqual(result.failures.map((f) => f.index), [10_000]);
    assert.equal(result.offsetsStored, false);
    const count = async (events: Events) => (await sink.query(`SELECT count(*)::INT AS n, max(id)::INT AS last FROM main.${ident(events.schema.table)}`))[0];
    assert.deepEqual(await count(halted), { n: 10_000, last: 10_000 });
    assert.deepEqual(await count(other), { n: 10_000, last: 40_000 });
    assert.deepEqual(await sink.committedOffsets(), []);
  } finally {
    await sink.close();
  }
});
