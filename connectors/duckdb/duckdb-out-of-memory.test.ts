/**
 * The DuckDB sink's writes that run out of memory_limit (#writeFitting): split in halves, one change
 * tried a bounded number of times. DuckDB's own failure is made here by refusing COMMIT with the
 * message DuckDB gives ('Failed to commit: failed to pin block'): a real one depends on the
 * machine's memory and on what the write holds, and does not come for a write of no changes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DuckDBConnection } from "@duckdb/node-api";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { DuckDbSink } from "./duckdb-sink.ts";
import type { DiskSpaceOf } from "./spill-room.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-duckdb-oom-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Runs `body` with the next `refusals` COMMITs failing as DuckDB's out of memory does (or with `message`); returns how many were refused. */
async function withCommitsRefused(refusals: number, body: () => Promise<void>, message = "TransactionContext Error: Failed to commit: failed to pin block of size 256.0 KiB (24.0 MiB/24.0 MiB used)"): Promise<number> {
  const run = DuckDBConnection.prototype.run;
  let refused = 0;
  DuckDBConnection.prototype.run = function (this: DuckDBConnection, ...args: Parameters<typeof run>) {
    if (args[0] === "COMMIT" && refused < refusals) {
      refused++;
      return Promise.reject(new Error(message));
    }
    return run.apply(this, args);
  };
  try {
    await body();
  } finally {
    DuckDBConnection.prototype.run = run;
  }
  return refused;
}

async function openSink(name: string, logger = testLogger(), diskSpace?: DiskSpaceOf): Promise<DuckDbSink> {
  const sink = new DuckDbSink(testSinkConfig("duckdb", { name, path: join(dir, `${name}.duckdb`), on_error: "halt" }), { logger, ...(diskSpace ? { diskSpace } : {}) });
  await sink.open(AbortSignal.timeout(30_000));
  return sink;
}

// Neither way out of the loop applied to a write of no changes: it reopened the database and tried again for ever, with no backoff.
test("offsets alone that run out of memory_limit are tried a bounded number of times, then fail as SINK_OUT_OF_MEMORY for the runner's backoff", async () => {
  const sink = await openSink("offsets_only");
  try {
    let failure: unknown = null;
    const refused = await withCommitsRefused(20, async () => {
      failure = await sink.write([], AbortSignal.timeout(30_000), [{ topic: "src.public.t", partition: 0, offset: 5n }]).then(
        () => null,
        (error: unknown) => error,
      );
    });
    assert.ok(failure instanceof SluiceError, `the write fails: ${String(failure)}`);
    assert.equal(failure.code, "SINK_OUT_OF_MEMORY");
    assert.equal(failure.retriable, true);
    assert.equal(refused, 3, "tried 3 times");
    assert.deepEqual((await sink.write([], AbortSignal.timeout(30_000), [{ topic: "src.public.t", partition: 0, offset: 5n }])).failures, [], "applies once memory allows");
  } finally {
    await sink.close();
  }
});

// Found on a live deployment with the DuckDB file on a full disk: DuckDB reported the spill it could not write as out of
// memory, the sink halved the write and advised raising memory; one change refused so 3 times halted its table.
const NO_SPILL_ROOM =
  "Out of Memory Error: failed to offload data block of size 256.0 KiB (4.3 MiB/4.5 MiB used).\nThis limit was set by the 'max_temp_directory_size' setting.\nBy default, this setting utilizes the available disk space on the drive where the 'temp_directory' is located.";

const GiB = 2 ** 30;
const fullDisk: DiskSpaceOf = () => ({ free: 3 * 2 ** 20, size: 30 * 2 ** 20 });
const roomyDisk: DiskSpaceOf = () => ({ free: 40 * GiB, size: 100 * GiB });

test("a write whose spill finds no room in the temp directory (a full disk) is retried as an outage: not halved, no table halted, applied once there is room", async () => {
  const sink = await openSink("no_spill_room", testLogger(), fullDisk);
  try {
    const events = new Events(tableSchema(randomTableName("spill"), [["id", "integer"], ["v", "text"]]));
    let failure: unknown = null;
    const refused = await withCommitsRefused(
      20,
      async () => {
        failure = await sink.write([events.insert(1n, { id: 1, v: "a" })], AbortSignal.timeout(30_000)).then(
          (result) => result,
          (error: unknown) => error,
        );
      },
      NO_SPILL_ROOM,
    );
    assert.ok(failure instanceof SluiceError, `the write fails as an outage, not per change: ${JSON.stringify(failure)}`);
    assert.equal(failure.code, "SINK_IO");
    assert.equal(failure.retriable, true);
    assert.match(failure.message, /cannot spill to its temp directory .*the disk is full: 3\.0 MiB free of 30\.0 MiB/);
    assert.equal(refused, 1, "tried once: the runner's backoff retries it");
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], AbortSignal.timeout(30_000))).failures, [], "applies once there is room");
  } finally {
    await sink.close();
  }
});

// Review of 7131bb4: the same words come when the disk has room but one write's spill exceeds max_temp_directory_size
// (90% of the free room): memory_limit too small for the table's work. Waited out as a full disk, it never fit, and every
// table of the sink waited behind it for ever while df showed gigabytes free.
test("a spill that does not fit while the disk has room goes the out-of-memory way: halved, then the change's table halts", async () => {
  const sink = await openSink("spill_too_large", testLogger(), roomyDisk);
  try {
    const events = new Events(tableSchema(randomTableName("spill"), [["id", "integer"], ["v", "text"]]));
    let failures: readonly { index: number; error: Error }[] = [];
    const refused = await withCommitsRefused(
      20,
      async () => {
        ({ failures } = await sink.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" })], AbortSignal.timeout(30_000)));
      },
      NO_SPILL_ROOM,
    );
    assert.deepEqual(failures.map((f) => [f.index, (f.error as SluiceError).code]), [[0, "SINK_TARGET_BLOCKED"]]);
    assert.match(failures[0]!.error.message, /does not fit DuckDB's memory_limit/);
    assert.match(((failures[0]!.error as Error).cause as Error).message, /its spill does not fit max_temp_directory_size either .*disk has 40\.0 GiB free of 100\.0 GiB/);
    assert.equal(refused, 4, "the whole write once, then its first change 3 times");
  } finally {
    await sink.close();
  }
});

// Review of baccfc3: "full" was less than 64 MiB or 2% of the disk free, so on a 1 TiB disk with 15 GiB free a spill that
// filled DuckDB's limit (90% of those 15 GiB) was waited out for ever, every table of the sink behind it, though what
// DuckDB refused was a spill larger than the room it had, not a disk it could not spill to.
const TERABYTE_DISK_SPILL =
  "Out of Memory Error: failed to offload data block of size 256.0 KiB (13.5 GiB/13.5 GiB used).\nThis limit was set by the 'max_temp_directory_size' setting.\nBy default, this setting utilizes the available disk space on the drive where the 'temp_directory' is located.";

test("a spill that filled DuckDB's limit on a large disk with gigabytes free (15 GiB of 1 TiB) goes the out-of-memory way, not waited out as a full disk", async () => {
  const sink = await openSink("spill_big_disk", testLogger(), () => ({ free: 15 * GiB, size: 1024 * GiB }));
  try {
    const events = new Events(tableSchema(randomTableName("spill"), [["id", "integer"], ["v", "text"]]));
    let failures: readonly { index: number; error: Error }[] = [];
    const refused = await withCommitsRefused(
      20,
      async () => {
        ({ failures } = await sink.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" })], AbortSignal.timeout(30_000)));
      },
      TERABYTE_DISK_SPILL,
    );
    assert.deepEqual(failures.map((f) => [f.index, (f.error as SluiceError).code]), [[0, "SINK_TARGET_BLOCKED"]]);
    assert.match(((failures[0]!.error as Error).cause as Error).message, /max_temp_directory_size .*13\.5 GiB.*15\.0 GiB free of 1\.0 TiB/);
    assert.equal(refused, 4, "the whole write once, then its first change 3 times");
  } finally {
    await sink.close();
  }
});

test("a change that does not fit alone halts its table; the later change of the table held behind it leaves nothing to write", async () => {
  const sink = await openSink("held_rest");
  try {
    const events = new Events(tableSchema(randomTableName("oom"), [["id", "integer"], ["v", "text"]]));
    let failures: readonly { index: number; error: Error }[] = [];
    const refused = await withCommitsRefused(20, async () => {
      ({ failures } = await sink.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" })], AbortSignal.timeout(30_000)));
    });
    assert.deepEqual(failures.map((f) => [f.index, (f.error as SluiceError).code]), [[0, "SINK_TARGET_BLOCKED"]]);
    assert.equal(refused, 4, "the whole write once, then its first change 3 times; nothing for the held second change");
  } finally {
    await sink.close();
  }
});

const ROLLBACK_FATAL =
  "FATAL Error: Failed to rollback transaction. Cannot continue operation.\nOriginal Error: Out of Memory Error: failed to pin block of size 256.0 KiB (23.8 MiB/24.0 MiB used)\n\nPossible solutions:\n* Increasing the memory limit (SET memory_limit='...GB')";

/** COMMITs fail as DuckDB's out of memory does and the ROLLBACK after each fails fatally (invalidating the database), `times` times; returns the counts. */
function commitsAndRollbacksFail(times: number): { commits: number; rollbacks: number; restore: () => void } {
  const run = DuckDBConnection.prototype.run;
  const counts = { commits: 0, rollbacks: 0, restore: () => void (DuckDBConnection.prototype.run = run) };
  let failing = false;
  DuckDBConnection.prototype.run = function (this: DuckDBConnection, ...args: Parameters<typeof run>) {
    if (args[0] === "COMMIT" && counts.commits++ < times) {
      failing = true;
      return Promise.reject(new Error("Out of Memory Error: failed to pin block of size 256.0 KiB (23.8 MiB/24.0 MiB used)"));
    }
    if (args[0] === "ROLLBACK" && failing) {
      failing = false;
      counts.rollbacks++;
      return Promise.reject(new Error(ROLLBACK_FATAL));
    }
    return run.apply(this, args);
  };
  return counts;
}

// What DuckDB gives when a transaction that ran out of memory cannot be rolled back either (duckdb-invalidated.int
// makes a real one, which invalidates the database; here the database stays usable). Before: the ROLLBACK's fatal
// error was dropped unseen; the database is now opened anew (not from the cache) and the write goes the way of one
// that ran out of memory: tried again, halved, and one change that never fits halts its table, not the whole sink.
test("a rollback that fails fatally after a write ran out of memory: the rollback's error is logged, the database opened anew, and the write applied on the retry", async () => {
  const logs: Record<string, unknown>[] = [];
  const sink = await openSink("rollback_fatal", createLogger("info", { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) }));
  const counts = commitsAndRollbacksFail(1);
  const events = new Events(tableSchema(randomTableName("fatal"), [["id", "integer"], ["v", "text"]]));
  try {
    const result = await sink.write([events.insert(1n, { id: 1, v: "a" })], AbortSignal.timeout(30_000), [{ topic: events.topic, partition: 0, offset: 1n }]);
    assert.deepEqual(result, { failures: [], offsetsStored: true });
    assert.equal(counts.commits, 2, "tried again once the database was opened anew");
    const logged = logs.find((line) => line["level"] === "error");
    assert.equal(logged?.["code"], "SINK_DATABASE_INVALIDATED");
    assert.match(String(logged?.["error"]), /^FATAL Error: Failed to rollback transaction/);
    assert.equal((await sink.committedOffsets()).length, 1, "the write's offsets committed with it");
  } finally {
    counts.restore();
    await sink.close();
  }
});

// Before: taken as an outage, the same write failed fatally at every retry for ever, and the sink's other tables with it.
test("a change whose rollback fails fatally every time it runs out of memory halts its table after the bounded attempts, with the memory advice", async () => {
  const sink = await openSink("rollback_fatal_always");
  const counts = commitsAndRollbacksFail(20);
  const events = new Events(tableSchema(randomTableName("fatal"), [["id", "integer"], ["v", "text"]]));
  try {
    const { failures } = await sink.write([events.insert(1n, { id: 1, v: "a" })], AbortSignal.timeout(30_000));
    assert.deepEqual(failures.map((f) => [f.index, (f.error as SluiceError).code]), [[0, "SINK_TARGET_BLOCKED"]]);
    assert.match(failures[0]!.error.message, /does not fit DuckDB's memory_limit/);
    assert.equal(counts.commits, 3, "one change tried the bounded number of times");
    assert.equal(counts.rollbacks, 3);
  } finally {
    counts.restore();
    await sink.close();
  }
});

test("an in-memory database invalidated by a fatal error is gone with its rows: the write fails as SINK_TARGET_REPLACED, so the runner opens the sink again and reads the topics from the beginning", async () => {
  const sink = new DuckDbSink(testSinkConfig("duckdb", { name: "memory_fatal", path: ":memory:", on_error: "halt" }), { logger: testLogger() });
  await sink.open(AbortSignal.timeout(30_000));
  const events = new Events(tableSchema(randomTableName("fatal"), [["id", "integer"], ["v", "text"]]));
  const write = () => sink.write([events.insert(1n, { id: 1, v: "a" })], AbortSignal.timeout(30_000), [{ topic: events.topic, partition: 0, offset: 1n }]);
  const run = DuckDBConnection.prototype.run;
  DuckDBConnection.prototype.run = function (this: DuckDBConnection, ...args: Parameters<typeof run>) {
    if (args[0] === "COMMIT") return Promise.reject(new Error(ROLLBACK_FATAL));
    return run.apply(this, args);
  };
  try {
    const failure = await write().then(() => null, (error: unknown) => error);
    DuckDBConnection.prototype.run = run;
    assert.ok(failure instanceof SluiceError, String(failure));
    assert.equal(failure.code, "SINK_TARGET_REPLACED", failure.message);
    assert.equal((await write().then(() => null, (error: unknown) => error) as SluiceError | null)?.code, "SINK_TARGET_REPLACED", "refused until opened again");
    await sink.close();
    await sink.open(AbortSignal.timeout(30_000));
    assert.deepEqual(await sink.committedOffsets(), [], "a new database: the runner reads from the beginning");
    assert.deepEqual(await write(), { failures: [], offsetsStored: true });
  } finally {
    DuckDBConnection.prototype.run = run;
    await sink.close();
  }
});
