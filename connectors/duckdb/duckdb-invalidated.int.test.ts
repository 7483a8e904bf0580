/**
 * The DuckDB sink after a fatal DuckDB error, against the real DuckDB: such an error invalidates the
 * database instance, and every later statement on it fails with "database has been invalidated"
 * (quoting the first error) until the file is opened again. Two real fatal errors: a checkpoint
 * that cannot write the file (here this process's RLIMIT_FSIZE, as a full disk does), and a
 * transaction whose rollback runs out of memory_limit on another connection of the same database.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { DuckDBInstance } from "@duckdb/node-api";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import { testSinkConfig } from "../sinks/test-config.ts";
import { tableLabel } from "../sinks/naming.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { DuckDbSink } from "./duckdb-sink.ts";
import { ident } from "./sql.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-duckdb-fatal-"));
after(() => rmSync(dir, { recursive: true, force: true }));

const signal = () => AbortSignal.timeout(60_000);

interface LogLine {
  level: string;
  msg: string;
  [key: string]: unknown;
}

function openSink(name: string, memoryLimit: number): { sink: DuckDbSink; path: string; logs: LogLine[] } {
  const logs: LogLine[] = [];
  const logger = createLogger("info", { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const path = join(dir, `${name}.duckdb`);
  const sink = new DuckDbSink(testSinkConfig("duckdb", { name, path, target: "{table}", memory_limit: memoryLimit, threads: 1, on_error: "halt" }), { logger });
  return { sink, path, logs };
}

async function failureOf(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    (result) => assert.fail(`expected the write to fail, it gave ${JSON.stringify(result, (_, v: unknown) => (typeof v === "bigint" ? String(v) : v instanceof Error ? v.message : v))}`),
    (error: unknown) => error,
  );
}

function assertInvalidated(error: unknown): asserts error is SluiceError {
  assert.ok(error instanceof SluiceError, String(error));
  assert.equal(error.code, "SINK_DATABASE_INVALIDATED", error.message);
  assert.equal(error.retriable, true);
  assert.doesNotMatch(error.message, /raise memory|memory_limit\b.*docs\/operations/, "no memory advice");
}

/** The error logged for the fatal error: the original DuckDB error, with the table and the position the write began at. */
function fatalLogged(logs: readonly LogLine[], original: RegExp, table: string): LogLine {
  const line = logs.find((l) => l.level === "error" && typeof l["error"] === "string" && original.test(l["error"]));
  assert.ok(line, `an error line with the original fatal error, got: ${JSON.stringify(logs.filter((l) => l.level !== "info"))}`);
  assert.deepEqual(line["tables"], [table]);
  assert.equal(typeof line["position"], "string");
  return line;
}

// Before: the COMMIT's 'FATAL Error: Failed to create checkpoint ...' was hidden by the catalog reload after it
// ('database has been invalidated'), read as disk full (SINK_IO), and every later write failed the same way: the
// database was never opened again, so the sink stayed stuck after room came back, until the daemon restarted.
test("a checkpoint that cannot write the file invalidates the database: the write fails as a retriable outage, the fatal error is logged, and once there is room the next write opens the file again and commits", { timeout: 120_000 }, async () => {
  const { sink, path, logs } = openSink(`d_${randomTableName("ckpt")}`, 16 * 2 ** 20);
  const events = new Events(tableSchema(randomTableName("ckpt"), [["id", "integer"], ["v", "text"]]));
  const table = tableLabel(events.schema);
  const setFileSizeLimit = (limit: string) => execFileSync("prlimit", ["--pid", String(process.pid), `--fsize=${limit}:`]);
  await sink.open(signal());
  try {
    await sink.write([events.insert(1n, { id: 0, v: "first" })], signal(), [{ topic: events.topic, partition: 0, offset: 1n }]);
    // Rows already checkpointed into the file, so that it is larger than the batch's WAL.
    const [{ physical }] = (await sink.query("SELECT physical FROM _sluice.tables")) as [{ physical: string }];
    await sink.query(`INSERT INTO _sluice.${ident(physical)} SELECT i, md5(i::VARCHAR) || md5((i + 1)::VARCHAR), 1, false FROM range(1, 100000) r(i)`);
    await sink.query("CHECKPOINT");
    // Its WAL (~3 MiB) is past checkpoint_threshold (2 MiB at this memory_limit): its commit checkpoints.
    const batch = Array.from({ length: 30_000 }, (_, i) => events.insert(BigInt(i + 2), { id: 100_000 + i, v: randomBytes(40).toString("hex") }));
    const offsets = [{ topic: events.topic, partition: 0, offset: 30_001n }];
    // The WAL fits under the limit, the checkpoint's growth of the file does not (node ignores SIGXFSZ: EFBIG).
    setFileSizeLimit(String(statSync(path).size + 256 * 1024));
    let error: unknown;
    try {
      error = await failureOf(sink.write(batch, signal(), offsets));
    } finally {
      setFileSizeLimit("unlimited");
    }
    assertInvalidated(error);
    assert.match(error.message, /Failed to create checkpoint.*File too large/);
    fatalLogged(logs, /^FATAL Error: Failed to create checkpoint/, table);
    assert.deepEqual((await sink.committedOffsets()).map((o) => o.offset), [1n], "the offsets stay at the last commit");
    assert.deepEqual(await sink.write(batch, signal(), offsets), { failures: [], offsetsStored: true });
    assert.deepEqual(await sink.query(`SELECT count(*)::INT AS n FROM main.${ident(events.schema.table)}`), [{ n: 130_000 }]);
    assert.deepEqual((await sink.committedOffsets()).map((o) => o.offset), [30_001n]);
  } finally {
    setFileSizeLimit("unlimited");
    await sink.close();
  }
});

// Before: the sink's next statement got 'database has been invalidated ... Original error: ... Out of Memory Error',
// took it for running out of memory and opened the database again from DuckDB's instance cache, which gave back the
// same invalidated database (another user of the file in this process held it): SINK_OPEN_FAILED, at every write.
test("a database invalidated by another connection of this process (a rollback that ran out of memory): the sink logs the error that invalidated it, opens a fresh database, not the invalidated one the instance cache still holds, and applies its write; no table halts", { timeout: 120_000 }, async () => {
  const { sink, path, logs } = openSink(`d_${randomTableName("other")}`, 24 * 2 ** 20);
  const events = new Events(tableSchema(randomTableName("narrow"), [["id", "integer"], ["v", "text"]]));
  const table = tableLabel(events.schema);
  await sink.open(signal());
  const other = await DuckDBInstance.fromCache(path);
  const connection = await other.connect();
  try {
    await sink.write([events.insert(1n, { id: 1, v: "a" })], signal(), [{ topic: events.topic, partition: 0, offset: 1n }]);
    // 100 text columns: a commit holds a 256 KiB block per column; rolling it back runs out of the 24 MiB too.
    const columns = Array.from({ length: 100 }, (_, i) => `c${i}`);
    await connection.run(`CREATE TABLE wide (id INTEGER PRIMARY KEY, ${columns.map((c) => `${c} VARCHAR`).join(", ")})`);
    let fatal: string | null = null;
    for (let round = 0; round < 6 && fatal === null; round++) {
      const values = columns.map((_, i) => (i % 7 === round ? "repeat('y', 50000)" : "'v' || i")).join(", ");
      try {
        await connection.run("BEGIN TRANSACTION");
        await connection.run(`INSERT INTO wide SELECT i + ${round * 200}, ${values} FROM range(200) r(i)`);
        await connection.run("COMMIT");
      } catch (error) {
        if (/^FATAL Error/.test((error as Error).message)) fatal = (error as Error).message;
        else await connection.run("ROLLBACK").catch(() => undefined);
      }
    }
    assert.match(fatal ?? "no fatal error", /^FATAL Error: Failed to rollback transaction[^]*Out of Memory Error/);
    // The sink's write finds the database invalidated, quoting the other connection's out of memory: it opens a fresh database and applies the write there.
    assert.deepEqual(await sink.write([events.insert(2n, { id: 2, v: "b" })], signal(), [{ topic: events.topic, partition: 0, offset: 2n }]), { failures: [], offsetsStored: true });
    fatalLogged(logs, /database has been invalidated[^]*Original error: "Failed to rollback transaction/, table);
    assert.deepEqual(await sink.query(`SELECT count(*)::INT AS n FROM main.${ident(events.schema.table)}`), [{ n: 2 }]);
    assert.deepEqual((await sink.committedOffsets()).map((o) => o.offset), [2n]);
    // Closed and opened again (as the runner does after a replaced file) while the cache still holds the invalidated database.
    await sink.close();
    await sink.open(signal());
    assert.ok(logs.some((l) => l.level === "warn" && /invalidated by a fatal error; opening the file anew/.test(l.msg)), "not the cached instance");
    assert.deepEqual((await sink.committedOffsets()).map((o) => o.offset), [2n]);
  } finally {
    connection.closeSync();
    other.closeSync();
    await sink.close();
  }
});

// Before: any error quoting DuckDB's words counted as fatal, so a read-only query could make the writer drop and open the database again.
test("a query whose own error quotes 'database has been invalidated' is not a fatal error: the database is not opened again", async () => {
  const { sink, logs } = openSink(`d_${randomTableName("quote")}`, 64 * 2 ** 20);
  await sink.open(signal());
  const events = new Events(tableSchema(randomTableName("quoted"), [["id", "integer"], ["v", "text"]]));
  try {
    await sink.write([events.insert(1n, { id: 1, v: "a" })], signal(), [{ topic: events.topic, partition: 0, offset: 1n }]);
    await assert.rejects(sink.readQuery("SELECT 'FATAL Error: database has been invalidated'::INTEGER AS n"), /Conversion Error/);
    assert.deepEqual(await sink.write([events.insert(2n, { id: 2, v: "b" })], signal(), [{ topic: events.topic, partition: 0, offset: 2n }]), { failures: [], offsetsStored: true });
    assert.deepEqual(logs.filter((l) => /opened again|fatal/i.test(l.msg)).map((l) => l.msg), []);
  } finally {
    await sink.close();
  }
});
