import assert from "node:assert/strict";
import { mkdtemp, appendFile, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { pino } from "pino";
import { CollationTable } from "../values/charsets.ts";
import { FileSchemaHistoryStore, JournalSchemaHistoryStore, MemorySchemaHistoryStore } from "./schema-history.ts";
import type { SchemaHistoryEntry } from "./schema-history.ts";
import { SchemaTracker } from "./schema-tracker.ts";
import type { TableDefinition } from "./table-definition.ts";

const definition = (columns: string[]): TableDefinition => ({
  database: "d",
  table: "t",
  columns: columns.map((name) => ({ name, dbType: "int", nullable: false, charset: null })),
  key: [columns[0]!],
  defaultCharset: "utf8mb4",
});

test("the file store appends JSON lines, survives a torn last line, and loads what it stored", async () => {
  const path = join(await mkdtemp(join(tmpdir(), "sluice-history-")), "history.jsonl");
  const store = new FileSchemaHistoryStore(path);
  assert.deepEqual(await store.load(), []);
  const first: SchemaHistoryEntry = { at: "100", table: "d.t", definition: definition(["a"]), cause: "snapshot" };
  await store.append([first]);
  await appendFile(path, '{"at":"2'); // a crash mid-write
  const second: SchemaHistoryEntry = { at: "200", table: "d.t", definition: null, cause: "ddl", statement: "DROP TABLE t" };
  await store.append([second]);
  assert.deepEqual(await new FileSchemaHistoryStore(path).load(), [first, second]);
  assert.equal((await readFile(path, "utf8")).split("\n").filter((l) => l !== "").length, 2);
  await appendFile(path, '{"at":"3');
  assert.deepEqual(await store.load(), [first, second], "a torn last line is ignored on load");
});

test("the tracker restores the definitions in force at a position, follows DDL, and stores a replayed DDL once", async () => {
  const store = new MemorySchemaHistoryStore();
  const options = {
    store,
    catalog: null,
    matches: (db: string) => db === "d",
    binding: { sourceName: "s", collations: CollationTable.builtIn(), zeroDates: "null" as const, mariadb: true },
    logger: pino({ level: "silent" }),
    context: {},
  };
  const tracker = new SchemaTracker(options);
  await tracker.record(100n, [definition(["a"])], "snapshot");
  await tracker.applyQuery("ALTER TABLE t ADD COLUMN b INT NOT NULL", "d", 200n);
  await tracker.applyQuery("ALTER TABLE t ADD COLUMN c INT NOT NULL", "d", 300n);
  assert.deepEqual(tracker.definition("d", "t")!.columns.map((c) => c.name), ["a", "b", "c"]);
  assert.deepEqual(store.entries.map((e) => e.at), ["100", "201", "301"]);

  const atStart = new SchemaTracker(options);
  await atStart.restore(100n);
  assert.deepEqual(atStart.definition("d", "t")!.columns.map((c) => c.name), ["a"]);
  const between = new SchemaTracker(options);
  await between.restore(250n);
  assert.deepEqual(between.definition("d", "t")!.columns.map((c) => c.name), ["a", "b"]);
  // Resuming before the second ALTER reads it again: applied, not stored twice.
  await between.applyQuery("ALTER TABLE t ADD COLUMN c INT NOT NULL", "d", 300n);
  assert.deepEqual(between.definition("d", "t")!.columns.map((c) => c.name), ["a", "b", "c"]);
  assert.equal(store.entries.length, 3);
  // A resume point exactly at a DDL's event start reads the DDL again, so its entry must not apply.
  const atDdl = new SchemaTracker(options);
  await atDdl.restore(200n);
  assert.deepEqual(atDdl.definition("d", "t")!.columns.map((c) => c.name), ["a"]);
});

test("a name the history holds as a table at the resume position is captured though the catalog lists a sequence under it today", async () => {
  // DROP TABLE t; CREATE SEQUENCE t after the checkpoint: before, the start's catalog made t a sequence for the whole replay, and t's row events before the DROP were skipped (silent loss).
  const store = new MemorySchemaHistoryStore();
  const options = {
    store,
    catalog: null,
    matches: (db: string) => db === "d",
    binding: { sourceName: "s", collations: CollationTable.builtIn(), zeroDates: "null" as const, mariadb: true },
    logger: pino({ level: "silent" }),
    context: {},
  };
  await new SchemaTracker(options).record(100n, [definition(["a"])], "snapshot");
  const resumed = new SchemaTracker({ ...options, sequences: [{ database: "d", table: "t" }, { database: "d", table: "seq" }] });
  await resumed.restore(150n);
  assert.equal(resumed.captured("d", "t"), true, "a table at the resume position");
  assert.equal(resumed.captured("d", "seq"), false, "a sequence the history never held as a table");
  // A sequence an earlier version bound as a table (its definition in the history has a sequence's columns) stays a sequence.
  const sequenceColumns = ["next_not_cached_value", "minimum_value", "maximum_value", "start_value", "increment", "cache_size", "cycle_option", "cycle_count"];
  await new SchemaTracker(options).record(120n, [{ ...definition(sequenceColumns), table: "seq" }], "catalog");
  const upgraded = new SchemaTracker({ ...options, sequences: [{ database: "d", table: "seq" }] });
  await upgraded.restore(150n);
  assert.equal(upgraded.captured("d", "seq"), false, "bound as a table by an earlier version: still a sequence");
  await resumed.applyQuery("DROP TABLE t", "d", 200n);
  await resumed.applyQuery("CREATE SEQUENCE t", "d", 300n);
  assert.equal(resumed.captured("d", "t"), false, "a sequence from its statement on");
});

test("a column renamed, dropped and added again under its name, or added with values the sinks cannot know asks for the table's rows again; a new name with a literal default or NULL, or a new table, does not", async () => {
  const options = {
    store: new MemorySchemaHistoryStore(),
    catalog: null,
    matches: (db: string) => db === "d",
    binding: { sourceName: "s", collations: CollationTable.builtIn(), zeroDates: "null" as const, mariadb: true },
    logger: pino({ level: "silent" }),
    context: {},
  };
  const tracker = new SchemaTracker(options);
  await tracker.record(100n, [definition(["a", "b", "c"])], "snapshot");
  const reread = async (statement: string, at: bigint) => (await tracker.applyQuery(statement, "d", at)).reread ?? [];
  assert.deepEqual(await reread("ALTER TABLE t ADD COLUMN n INT", 200n), [], "a new name holds its default");
  assert.deepEqual(await reread("ALTER TABLE t DROP COLUMN c", 300n), []);
  assert.deepEqual(await reread("ALTER TABLE t ADD COLUMN C INT", 400n), [{ table: "d.t", columns: ["C"] }], "the dropped column's name again");
  assert.deepEqual(await reread("ALTER TABLE t RENAME COLUMN b TO b2", 500n), [{ table: "d.t", columns: ["b2"] }]);
  assert.deepEqual(await reread("ALTER TABLE t CHANGE b2 b3 BIGINT", 600n), [{ table: "d.t", columns: ["b3"] }]);
  assert.deepEqual(await reread("ALTER TABLE t MODIFY b3 INT, CHANGE n n BIGINT", 700n), [{ table: "d.t", columns: ["b3"] }], "a narrower type may clamp the values; a wider one keeps them");
  assert.deepEqual(await reread("ALTER TABLE t MODIFY a BIGINT", 710n), [], "the key column widened");
  assert.deepEqual(await reread("ALTER TABLE t MODIFY a BIGINT NOT NULL", 720n), [], "a key column held no NULL, whatever the last MODIFY said");
  assert.deepEqual(await reread("ALTER TABLE t DROP COLUMN n, ADD COLUMN n INT", 800n), [{ table: "d.t", columns: ["n"] }], "dropped and added in one statement");
  // Added with values the sinks cannot know: generated, an expression default, a literal not carried, NOT NULL's implicit one.
  assert.deepEqual(await reread("ALTER TABLE t ADD COLUMN g INT AS (a * 2) VIRTUAL, ADD COLUMN ts TIMESTAMP DEFAULT CURRENT_TIMESTAMP", 810n), [{ table: "d.t", columns: ["g", "ts"] }]);
  assert.deepEqual(await reread("ALTER TABLE t ADD COLUMN dt DATETIME DEFAULT '2020-01-01', ADD COLUMN z INT NOT NULL", 820n), [{ table: "d.t", columns: ["dt", "z"] }]);
  assert.deepEqual(await reread("ALTER TABLE t ADD COLUMN i INT NOT NULL DEFAULT 3, ADD COLUMN s VARCHAR(3) DEFAULT 'x', ADD COLUMN nn INT DEFAULT NULL", 830n), [], "literal defaults the sinks fill, and NULL");
  assert.deepEqual(await reread("ALTER TABLE t MODIFY g INT AS (a * 3) VIRTUAL, MODIFY dt DATETIME NOT NULL", 840n), [{ table: "d.t", columns: ["g", "dt"] }], "a new expression; NOT NULL turns NULLs into zero dates without strict mode");

  // Restored from the history, the names the table had are known again.
  const restored = new SchemaTracker(options);
  await restored.restore(840n);
  assert.deepEqual((await restored.applyQuery("ALTER TABLE t DROP COLUMN b3", "d", 900n)).reread ?? [], []);
  assert.deepEqual(restored.definition("d", "t")!.columns.map((c) => c.name), ["a", "C", "n", "g", "ts", "dt", "z", "i", "s", "nn"]);
  assert.deepEqual((await restored.applyQuery("ALTER TABLE t ADD COLUMN b INT", "d", 1000n)).reread, [{ table: "d.t", columns: ["b"] }], "b was renamed away at 500");

  // A table dropped and created again starts without the old table's names.
  await restored.applyQuery("DROP TABLE t", "d", 1100n);
  await restored.applyQuery("CREATE TABLE t (a INT PRIMARY KEY)", "d", 1200n);
  assert.deepEqual((await restored.applyQuery("ALTER TABLE t ADD COLUMN c INT", "d", 1300n)).reread ?? [], []);
});

test("a column-level UNIQUE KEY is not the primary key: made nullable and NOT NULL again (NULLs turned into zeros without strict mode), the column is read again", async () => {
  const tracker = new SchemaTracker({
    store: new MemorySchemaHistoryStore(),
    catalog: null,
    matches: (db: string) => db === "d",
    binding: { sourceName: "s", collations: CollationTable.builtIn(), zeroDates: "null" as const, mariadb: true },
    logger: pino({ level: "silent" }),
    context: {},
  });
  await tracker.record(100n, [], "snapshot");
  const reread = async (statement: string, at: bigint) => (await tracker.applyQuery(statement, "d", at)).reread ?? [];
  assert.deepEqual(await reread("CREATE TABLE u (u INT NOT NULL UNIQUE KEY, v INT UNIQUE, w INT KEY)", 200n), []);
  const created = tracker.definitionOf("d.u")!;
  assert.deepEqual(created.key, ["w"], "KEY alone is PRIMARY KEY; UNIQUE [KEY] is not");
  assert.deepEqual(created.columns.map((c) => [c.name, c.nullable]), [["u", false], ["v", true], ["w", false]]);
  assert.deepEqual(await reread("ALTER TABLE u MODIFY u INT NULL", 300n), []);
  assert.deepEqual(await reread("ALTER TABLE u MODIFY u INT NOT NULL", 400n), [{ table: "d.u", columns: ["u"] }], "the NULLs it held are zeros now");
});

test("ALTER IGNORE TABLE: a nullable column added reads nothing; a UNIQUE key added, a narrowing MODIFY or a statement not understood reads the whole table again", async () => {
  const tracker = new SchemaTracker({
    store: new MemorySchemaHistoryStore(),
    catalog: null,
    matches: (db: string) => db === "d",
    binding: { sourceName: "s", collations: CollationTable.builtIn(), zeroDates: "null" as const, mariadb: true },
    logger: pino({ level: "silent" }),
    context: {},
  });
  await tracker.record(100n, [definition(["a", "b", "c"])], "snapshot");
  const reread = async (statement: string, at: bigint) => (await tracker.applyQuery(statement, "d", at)).reread ?? [];
  const wholeTable = (columns: string[] = []) => [{ table: "d.t", columns, rowsChanged: { what: "ALTER IGNORE TABLE", database: "d", table: "t", partitioned: true, partitions: null } }];
  assert.deepEqual(await reread("ALTER IGNORE TABLE t ADD COLUMN n INT NULL", 200n), []);
  assert.deepEqual(await reread("ALTER IGNORE TABLE t ADD UNIQUE KEY (b)", 300n), wholeTable(), "the duplicates it dropped");
  assert.deepEqual(await reread("ALTER IGNORE TABLE t MODIFY b TINYINT", 400n), [{ table: "d.t", columns: ["b"] }, ...wholeTable()], "values clamped, and rows a unique key then finds duplicated");
  assert.deepEqual(await reread("ALTER IGNORE TABLE t ADD UNIQUE KEY (c), CONVERT TO CHARACTER SET binary", 500n), wholeTable(), "not understood: read again");
});

test("the journal store keeps each source's entries apart, in order, in records of at most 256 KiB", async () => {
  const records: unknown[] = [];
  const journal = { append: async (entry: unknown) => void records.push(JSON.parse(JSON.stringify(entry))), loadAll: async () => [...records] };
  const mine = new JournalSchemaHistoryStore(journal, "m");
  const other = new JournalSchemaHistoryStore(journal, "n");
  const wide = definition(Array.from({ length: 400 }, (_, i) => `column_with_a_long_name_${i}`));
  const snapshot: SchemaHistoryEntry[] = Array.from({ length: 40 }, (_, i) => ({ at: "100", table: `d.t${i}`, definition: { ...wide, table: `t${i}` }, cause: "snapshot" }));
  await mine.append(snapshot);
  await other.append([{ at: "5", table: "d.x", definition: definition(["a"]), cause: "snapshot" }]);
  await mine.append([{ at: "200", table: "d.t0", definition: null, cause: "ddl", statement: "DROP TABLE t0" }]);
  assert.ok(records.length > 2 && records.every((r) => JSON.stringify(r).length <= 256 * 1024 + 100), `${records.length} records, each within the bound`);
  assert.deepEqual(await mine.load(), [...snapshot, { at: "200", table: "d.t0", definition: null, cause: "ddl", statement: "DROP TABLE t0" }]);
  assert.deepEqual((await other.load()).map((e) => e.table), ["d.x"]);
});
