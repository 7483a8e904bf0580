import assert from "node:assert/strict";
import { test } from "node:test";
import { pino } from "pino";
import { encodeResume } from "./incremental-snapshot-state.ts";
import type { SnapshotTask } from "./incremental-snapshot-state.ts";
import { backfillChangedRows, backfillColumns, backfillRenamed, backfillRolledBackXa, OnlineSnapshotRunner } from "./online-snapshot-runner.ts";
import { ambiguousLabel } from "./table-label.ts";
import { SluiceError } from "../errors.ts";

test("progress shows the snapshots a checkpoint carries while no engine runs (the server away), as pending with their rows read", () => {
  const task: SnapshotTask = {
    id: "t1",
    table: "shop.orders",
    where: null,
    lastKey: ["6707"],
    rowsDone: 6707,
    rowsEstimated: 200000,
    resetVersion: "5",
    requestedAtMs: 1,
    startedAtMs: 2,
    origin: "cli",
  };
  const runner = new OnlineSnapshotRunner({ logger: pino({ level: "silent" }), context: {} });
  runner.restore({ source: "s", position: { commit: 10n, change: 10n, resume: encodeResume(undefined, [task]) } } as never);
  assert.deepEqual(runner.progress(), [
    { table: "shop.orders", state: "pending", rowsDone: 6707, rowsEstimated: 200000, rowsPerSecond: 0, startedAtMs: 2, finishedAtMs: null },
  ]);
});

test("a reconnect keeps a request the checkpoint does not carry from its start: the rows it handed on were in batches not stored", () => {
  const runner = new OnlineSnapshotRunner({ logger: pino({ level: "silent" }), context: {} });
  const asked: SnapshotTask = { id: "t2", table: "shop.items", where: null, lastKey: null, rowsDone: 0, rowsEstimated: null, resetVersion: null, requestedAtMs: 1, startedAtMs: null, origin: "table-renamed" };
  runner.ledger.add(asked);
  // A chunk of 500 rows handed on in a batch the connection dropped before it was stored.
  runner.ledger.record({ commit: 20n, change: 20n }, "t2", { ...asked, lastKey: ["500"], rowsDone: 500, resetVersion: "18", startedAtMs: 2 });
  runner.restore({ source: "s", position: { commit: 10n, change: 10n } } as never);
  assert.deepEqual(runner.ledger.tasks, [asked]);
});

test("a table read again: under snapshot.mode never it is said and not asked for; one that cannot be read online is named, in each case's words", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const asked: string[] = [];
  const refused = async (table?: string) => {
    asked.push(table ?? "?");
    throw new SluiceError("no key", { code: "SNAPSHOT_NO_CHUNK_KEY", retriable: false });
  };
  // What each says after its own warning (the first line).
  const after = async (call: (mode: string) => Promise<void>, mode: string) => {
    lines.length = 0;
    await call(mode);
    return lines.slice(1).map(({ level, msg, table, tables, err }) => ({ level, msg, table, tables, err }));
  };
  const renamed = (mode: string) => backfillRenamed("s.old", "s.new", mode, refused, logger, "0/1");
  const columns = (mode: string) => backfillColumns("s.t", ["a"], mode, () => refused("s.t"), logger, "0/1");
  const rows = (mode: string) => backfillChangedRows("s.t", "TRUNCATE PARTITION p0", mode, () => refused("s.t"), logger, "0/1", {}, false);
  const xa = (mode: string) => backfillRolledBackXa("x1", ["s.a", "s.b"], mode, refused, logger, "0/1");
  const warn = 40;
  const error = 50;
  const table = (name: string) => ({ level: warn, msg: `the table is not read again (snapshot.mode never): sluice snapshot --table ${name} --execute reads it`, table: name, tables: undefined, err: undefined });
  assert.deepEqual(await after(renamed, "never"), [{ level: warn, msg: "the renamed table is not read again (snapshot.mode never): sluice snapshot --table s.new --execute reads it", table: "s.new", tables: undefined, err: undefined }]);
  assert.deepEqual(await after(columns, "never"), [table("s.t")]);
  assert.deepEqual(await after(rows, "never"), [table("s.t")]);
  assert.deepEqual(await after(xa, "never"), [{ level: warn, msg: "not read again (snapshot.mode never): sluice snapshot --table T --execute reads each", table: undefined, tables: ["s.a", "s.b"], err: undefined }]);
  assert.deepEqual(asked, []);
  const cannot = (name: string) => ({ level: error, msg: `the table cannot be read online: read it with sluice snapshot --table ${name} --execute`, table: name, tables: undefined, err: "no key" });
  assert.deepEqual(await after(renamed, "initial"), [{ level: error, msg: "the renamed table cannot be read online (its changes are captured from now on): read it with sluice snapshot --table s.new --execute", table: "s.new", tables: undefined, err: "no key" }]);
  assert.deepEqual(await after(columns, "initial"), [cannot("s.t")]);
  assert.deepEqual(await after(rows, "initial"), [cannot("s.t")]);
  assert.deepEqual(await after(xa, "initial"), [cannot("s.a"), cannot("s.b")]);
  assert.deepEqual(asked, ["s.new", "s.t", "s.t", "s.a", "s.b"]);
});

test("a table read again that the server no longer has (dropped since, as pt-online-schema-change drops the table it renamed away) is a warning that there is nothing to read, not an error asking for a snapshot of it", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const gone = async () => {
    throw new SluiceError("table s._orders_old does not exist on the server", { code: "SNAPSHOT_TABLE_UNKNOWN", retriable: false });
  };
  await backfillRenamed("s.orders", "s._orders_old", "initial", gone, logger, "0/1");
  const [, said] = lines;
  assert.equal(lines.length, 2);
  assert.equal(said?.["level"], 40);
  assert.equal(said?.["table"], "s._orders_old");
  assert.doesNotMatch(String(said?.["msg"]), /sluice snapshot --table s\._orders_old --execute$/);
  assert.match(String(said?.["msg"]), /no longer has s\._orders_old/);
});

test("a table read again whose label names two tables (a dot in a schema name) stays an error with the command, not 'the server no longer has it'", async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const twoTables = async () => {
    throw ambiguousLabel("a.b.c", [{ schema: "a", table: "b.c" }, { schema: "a.b", table: "c" }], { source: "pg" });
  };
  await backfillRenamed("a.b.old", "a.b.c", "initial", twoTables, logger, "0/1");
  const said = lines.at(-1);
  assert.notEqual(ambiguousLabel("a.b.c", [], {}).code, "SNAPSHOT_TABLE_UNKNOWN");
  assert.equal(said?.["level"], 50);
  assert.match(String(said?.["msg"]), /sluice snapshot --table a\.b\.c --execute/);
  assert.doesNotMatch(String(said?.["msg"]), /no longer has/);
});
