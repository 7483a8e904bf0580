/**
 * Schema changes against the real MariaDB: a changed table yields a new schema for the events
 * after the change, the schema history records every change, and the definitions Sluice derives
 * from DDL statements equal what information_schema says after them.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import pino from "pino";
import { readDefinitions } from "./catalog.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, sourceConfig, testLogger } from "./int-test-support.ts";
import { binlogAt, binlogFileIndex } from "./positions.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";
import { SchemaTracker } from "./schema/schema-tracker.ts";
import { CollationTable } from "./values/charsets.ts";
import { sqlOf } from "./sql-connection.ts";
import { currentPosition } from "./catalog.ts";

describe("MySQL source: DDL and schema history", () => {
  const database = randomName("s_ddl");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("gives the events after a primary key change the new key", async () => {
    await admin.query("CREATE TABLE rekeyed (id INT PRIMARY KEY, v INT NOT NULL, w VARCHAR(20))");
    const source = newSource(sourceConfig({ tables: [`${database}.rekeyed`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { schemaHistory: new MemorySchemaHistoryStore() });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("INSERT INTO rekeyed VALUES (1, 1, 'before')");
      await admin.query("ALTER TABLE rekeyed DROP PRIMARY KEY, ADD PRIMARY KEY (id, v)");
      await admin.query("INSERT INTO rekeyed VALUES (1, 2, 'same id, another v')");
      await admin.query("ALTER TABLE rekeyed DROP PRIMARY KEY, ADD PRIMARY KEY (v)");
      await admin.query("INSERT INTO rekeyed VALUES (2, 3, 'keyed by v')");
      const { events } = await readUntil(source, (c) => c.events.length >= 3);
      assert.deepEqual(events.map((e) => e.schema.key), [["id"], ["id", "v"], ["v"]]);
      assert.deepEqual(events.map((e) => e.key), [{ id: 1 }, { id: 1, v: 2 }, { v: 3 }]);
    } finally {
      await source.close();
    }
  });

  it("a table dropped and created again under its name (CREATE, ... LIKE, ... SELECT, CREATE OR REPLACE) is emptied at the CREATE, before its new rows", async () => {
    // Found on a live deployment: DROP TABLE events; CREATE TABLE events ...; 700 rows: the sinks kept the 300 rows of the dropped table the new one lacked.
    await admin.query("CREATE TABLE recreated (id INT PRIMARY KEY, v INT)");
    await admin.query("CREATE TABLE recreated_like (id INT PRIMARY KEY, v INT)");
    await admin.query("CREATE TABLE recreated_ctas (id INT PRIMARY KEY, v INT)");
    const source = newSource(sourceConfig({ tables: [`${database}.recreated*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { schemaHistory: new MemorySchemaHistoryStore() });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("INSERT INTO recreated VALUES (1, 1), (2, 2)");
      await admin.query("DROP TABLE recreated, recreated_like, recreated_ctas");
      await admin.query("CREATE TABLE recreated (id INT PRIMARY KEY, v INT, w INT)");
      await admin.query("INSERT INTO recreated VALUES (1, 10, 10)");
      await admin.query("CREATE TABLE recreated_like LIKE recreated");
      await admin.query("CREATE TABLE recreated_ctas (PRIMARY KEY (id)) SELECT id, v FROM recreated");
      await admin.query("CREATE TABLE IF NOT EXISTS recreated (id INT PRIMARY KEY)");
      await admin.query("CREATE OR REPLACE TABLE recreated (id INT PRIMARY KEY, v INT, w INT)");
      await admin.query("INSERT INTO recreated VALUES (2, 20, 20)");
      const { events } = await readUntil(source, (c) => c.events.filter((e) => e.op === "c").length >= 5);
      assert.deepEqual(
        events.map((e) => [e.source.table, e.op, e.op === "t" ? null : (e.after?.["v"] ?? null)]),
        [
          ["recreated", "c", 1],
          ["recreated", "c", 2],
          ["recreated", "t", null],
          ["recreated", "c", 10],
          ["recreated_like", "t", null],
          ["recreated_ctas", "t", null],
          ["recreated_ctas", "c", 10],
          ["recreated", "t", null],
          ["recreated", "c", 20],
        ],
      );
    } finally {
      await source.close();
    }
  });

  it("gives the events after a DDL the new schema: add, drop, modify, change and rename", async () => {
    await admin.query("CREATE TABLE t (id INT PRIMARY KEY, a VARCHAR(10), b INT)");
    const history = new MemorySchemaHistoryStore();
    const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { schemaHistory: history });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("INSERT INTO t VALUES (1, 'x', 10)");
      await admin.query("ALTER TABLE t ADD COLUMN c DECIMAL(10,2) NOT NULL DEFAULT 1.5 AFTER a");
      await admin.query("INSERT INTO t VALUES (2, 'y', 2.25, 20)");
      await admin.query("ALTER TABLE t DROP COLUMN b");
      await admin.query("INSERT INTO t VALUES (3, 'z', 3.5)");
      await admin.query("ALTER TABLE t MODIFY a VARCHAR(50) CHARACTER SET latin1");
      await admin.query("INSERT INTO t VALUES (4, 'é', 4)");
      await admin.query("RENAME TABLE t TO u");
      await admin.query("INSERT INTO u VALUES (5, 'u', 5)");
      await admin.query("ALTER TABLE u CHANGE c c2 BIGINT UNSIGNED NOT NULL");
      await admin.query("INSERT INTO u VALUES (6, 'v', 18446744073709551615)");
      const { events } = await readUntil(source, (c) => c.events.length >= 6);
      const shape = (i: number) => [events[i]!.source.table, events[i]!.schema.columns.map((c) => `${c.name} ${c.dbType}`).join(", ")];
      assert.deepEqual(shape(0), ["t", "id int, a varchar(10), b int"]);
      assert.deepEqual(shape(1), ["t", "id int, a varchar(10), c decimal(10,2), b int"]);
      assert.deepEqual(shape(2), ["t", "id int, a varchar(10), c decimal(10,2)"]);
      assert.deepEqual(shape(3), ["t", "id int, a varchar(50), c decimal(10,2)"]);
      assert.deepEqual(shape(4), ["u", "id int, a varchar(50), c decimal(10,2)"]);
      assert.deepEqual(shape(5), ["u", "id int, a varchar(50), c2 bigint unsigned"]);
      assert.deepEqual(events.map((e) => e.after), [
        { id: 1, a: "x", b: 10 },
        { id: 2, a: "y", c: "2.25", b: 20 },
        { id: 3, a: "z", c: "3.50" },
        { id: 4, a: "é", c: "4.00" },
        { id: 5, a: "u", c: "5.00" },
        { id: 6, a: "v", c2: 18446744073709551615n },
      ]);
      assert.deepEqual(events[0]!.schema.key, ["id"]);
      const ddl = history.entries.filter((e) => e.cause === "ddl");
      assert.deepEqual(
        ddl.map((e) => [e.table.split(".")[1], e.definition?.columns.map((c) => c.name).join(",") ?? null]),
        [
          ["t", "id,a,c,b"],
          ["t", "id,a,c"],
          ["t", "id,a,c"],
          ["t", null],
          ["u", "id,a,c"],
          ["u", "id,a,c2"],
        ],
      );
      assert.equal(ddl[2]!.definition!.columns[1]!.charset, "latin1");
      const now = await readDefinitions(sqlOf(admin), [{ database, table: "u" }]);
      assert.deepEqual(ddl.at(-1)!.definition, now.get(`${database}.u`), "the parsed definition equals information_schema's");
    } finally {
      await source.close();
    }
  });

  it("follows MariaDB's two-phase ALTER (binlog_alter_two_phase): the table changes at COMMIT ALTER, and not at all at ROLLBACK ALTER", async () => {
    await admin.query("CREATE TABLE two_phase (id INT PRIMARY KEY, c VARCHAR(10), u INT) DEFAULT CHARSET=utf8mb4");
    await admin.query("INSERT INTO two_phase VALUES (1, 'a', 1), (2, 'b', 1)");
    const history = new MemorySchemaHistoryStore();
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const source = newSource(sourceConfig({ tables: [`${database}.two_phase`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { schemaHistory: history, logger });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await readUntil(source, (c) => c.batches.length > 0);
      // The server logs START ALTER when an ALTER begins and COMMIT ALTER or ROLLBACK ALTER when it ends, each with the statement.
      await admin.query("SET SESSION binlog_alter_two_phase = ON");
      await assert.rejects(admin.query("ALTER TABLE two_phase MODIFY c VARCHAR(10) CHARACTER SET latin1, ADD UNIQUE KEY (u)"), /Duplicate entry/);
      await admin.query("ALTER TABLE two_phase ADD COLUMN w INT NOT NULL DEFAULT 7");
      await admin.query("SET SESSION binlog_alter_two_phase = DEFAULT");
      await admin.query("INSERT INTO two_phase VALUES (3, 'é', 3, 8)");
      const { events } = await readUntil(source, (c) => c.events.some((e) => e.key["id"] === 3));
      assert.deepEqual(events.at(-1)!.after, { id: 3, c: "é", u: 3, w: 8 });
      const tracked = history.entries.filter((e) => e.table === `${database}.two_phase`);
      const server = await readDefinitions(sqlOf(admin), [{ database, table: "two_phase" }]);
      assert.deepEqual(tracked.at(-1)?.definition, server.get(`${database}.two_phase`), "the table as information_schema shows it");
      assert.deepEqual(tracked.map((e) => [e.cause, e.statement?.split(" ").slice(3, 5).join(" ")]), [["catalog", undefined], ["ddl", "ADD COLUMN"]]);
      assert.deepEqual(lines.filter((l) => String(l["msg"]).includes("re-reading")), [], "no statement was applied to a definition it did not fit");
    } finally {
      await source.close();
    }
  });

  it("follows ALTER TABLE ... CONVERT TO CHARACTER SET from the statement, not from the catalog, which may show later DDL already", async () => {
    const sql = sqlOf(admin);
    const history = new MemorySchemaHistoryStore();
    const tracker = new SchemaTracker({
      store: history,
      catalog: { readDefinitions: (names) => readDefinitions(sql, names), databaseCharset: async () => "utf8mb4" },
      matches: (db) => db === database,
      binding: { sourceName: "t", collations: CollationTable.builtIn(), zeroDates: "null", mariadb: true },
      logger: testLogger(),
      context: {},
    });
    const create = "CREATE TABLE converted (id INT PRIMARY KEY, tt TINYTEXT, t TEXT, mt MEDIUMTEXT, v VARCHAR(100), e ENUM('x','y'), b BLOB, vb VARBINARY(4)) DEFAULT CHARSET=latin1";
    const widen = "ALTER TABLE converted CONVERT TO CHARACTER SET utf8mb4";
    const narrow = "ALTER TABLE converted CONVERT TO CHARSET latin1 COLLATE latin1_bin";
    const later = "ALTER TABLE converted ADD COLUMN later INT";
    const positions: bigint[] = [];
    const definitions = [];
    // Capture reads each statement after the server ran the next ones (as when it is behind).
    for (const statement of [create, widen, narrow]) {
      await admin.query(statement);
      const here = await currentPosition(sql, "mariadb");
      positions.push(binlogAt(binlogFileIndex(here.file), here.offset));
      definitions.push((await readDefinitions(sql, [{ database, table: "converted" }])).get(`${database}.converted`));
    }
    await admin.query(later);
    for (const [i, statement] of [create, widen, narrow].entries()) {
      await tracker.applyQuery(statement, database, positions[i]!);
      assert.deepEqual(tracker.definition(database, "converted"), definitions[i], statement);
    }
    assert.deepEqual(history.entries.map((e) => e.cause), ["ddl", "ddl", "ddl"]);
  });

  it("derives the same definitions from DDL as information_schema shows, and re-reads what it cannot parse", async () => {
    const sql = sqlOf(admin);
    const history = new MemorySchemaHistoryStore();
    const collations = CollationTable.builtIn();
    const tracker = new SchemaTracker({
      store: history,
      catalog: { readDefinitions: (names) => readDefinitions(sql, names), databaseCharset: async () => "utf8mb4" },
      matches: (db) => db === database,
      binding: { sourceName: "t", collations, zeroDates: "null", mariadb: true },
      logger: testLogger(),
      context: {},
    });
    const statements = [
      "CREATE TABLE k1 (id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT, `key` VARCHAR(20) CHARACTER SET latin1 COLLATE latin1_bin NOT NULL, amount DEC(12,4) DEFAULT '0.0000', flag BOOL, js JSON, e ENUM('x','Y z') NOT NULL DEFAULT 'x', PRIMARY KEY (id, `key`), UNIQUE KEY (amount)) DEFAULT CHARSET=utf8mb4",
      "ALTER TABLE k1 ADD COLUMN (n1 INT(11) ZEROFILL, n2 DOUBLE PRECISION), ADD INDEX i1 (n1), ALGORITHM=INPLACE",
      "ALTER TABLE k1 DROP PRIMARY KEY, ADD PRIMARY KEY (id)",
      "ALTER TABLE k1 RENAME COLUMN n2 TO ratio, MODIFY COLUMN flag TINYINT(1) UNSIGNED NOT NULL FIRST",
      "CREATE TABLE k2 LIKE k1",
      "ALTER TABLE k2 CONVERT TO CHARACTER SET latin1",
      "CREATE TABLE k3 AS SELECT id, amount FROM k1",
      "ALTER TABLE k3 ADD COLUMN t TIMESTAMP(3) NULL, ADD COLUMN s SET('a','b') CHARACTER SET ascii",
      "CREATE TABLE k4 (a SERIAL, b NATIONAL VARCHAR(10), c VARCHAR(10) BINARY, d CHAR(3) CHARACTER SET binary, e BIT, f FLOAT(30), g LONG VARCHAR)",
      // Key columns without NOT NULL of their own: the server makes them NOT NULL.
      "CREATE TABLE k5 (a INT, `B` VARCHAR(10), v INT, CONSTRAINT pk PRIMARY KEY (a, b))",
      "CREATE TABLE k6 (a INT, v INT)",
      "ALTER TABLE k6 ADD PRIMARY KEY (A)",
      "ALTER TABLE k6 ALTER COLUMN v SET DEFAULT -4",
      "ALTER TABLE k6 ALTER v DROP DEFAULT, ALTER a SET DEFAULT 2",
      // MODIFY and CHANGE do not carry a column's character set forward: the column takes the table's default, the
      // one the same statement sets if it does.
      "CREATE TABLE k7 (id INT PRIMARY KEY, a VARCHAR(10) CHARACTER SET latin1, b VARCHAR(10) CHARACTER SET latin1, c CHAR(3) CHARACTER SET ascii) DEFAULT CHARSET=utf8mb4",
      "ALTER TABLE k7 MODIFY a VARCHAR(20), CHANGE b bb VARCHAR(20)",
      "ALTER TABLE k7 ADD COLUMN d VARCHAR(10), MODIFY c CHAR(3), CHARACTER SET latin1",
    ];
    for (const statement of statements) {
      await admin.query(statement);
      const here = await currentPosition(sql, "mariadb");
      await tracker.applyQuery(statement, database, binlogAt(binlogFileIndex(here.file), here.offset));
    }
    const tables = ["k1", "k2", "k3", "k4", "k5", "k6", "k7"].map((table) => ({ database, table }));
    const server = await readDefinitions(sql, tables);
    for (const { table } of tables) assert.deepEqual(tracker.definition(database, table), server.get(`${database}.${table}`), `${table} as information_schema shows it`);
    assert.deepEqual(
      history.entries.map((e) => [e.table.split(".")[1], e.cause]),
      [["k1", "ddl"], ["k1", "ddl"], ["k1", "ddl"], ["k1", "ddl"], ["k2", "ddl"], ["k2", "ddl"], ["k3", "catalog"], ["k3", "ddl"], ["k4", "ddl"], ["k5", "ddl"], ["k6", "ddl"], ["k6", "ddl"], ["k6", "ddl"], ["k6", "ddl"], ["k7", "ddl"], ["k7", "ddl"], ["k7", "ddl"]],
    );
  });
});

describe("MySQL source: MariaDB sequences", () => {
  const database = randomName("seq21_");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("a sequence's updates (logged as row events) give no event, whether it was there at start or made later; a table's rows still do", async () => {
    // Found on a live deployment: NEXTVAL on a sequence of a captured database gave it a topic, and every sink halted on it (no key).
    await admin.query("CREATE SEQUENCE seq_before");
    await admin.query("CREATE TABLE items (id INT PRIMARY KEY, v INT)");
    const source = newSource(sourceConfig({ tables: [`${database}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { schemaHistory: new MemorySchemaHistoryStore() });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("SELECT NEXTVAL(seq_before)");
      await admin.query("CREATE SEQUENCE seq_live START WITH 5");
      await admin.query("SELECT NEXTVAL(seq_live)");
      await admin.query("CREATE TABLE seq_table (next_not_cached_value BIGINT NOT NULL, minimum_value BIGINT NOT NULL, maximum_value BIGINT NOT NULL, start_value BIGINT NOT NULL, increment BIGINT NOT NULL, cache_size BIGINT UNSIGNED NOT NULL, cycle_option TINYINT UNSIGNED NOT NULL, cycle_count BIGINT NOT NULL) SEQUENCE=1");
      await admin.query("SELECT NEXTVAL(seq_table)");
      await admin.query("ALTER SEQUENCE seq_before RESTART WITH 100");
      await admin.query("SELECT NEXTVAL(seq_before)");
      await admin.query("INSERT INTO items VALUES (1, 1)");
      const { events } = await readUntil(source, (c) => c.events.some((e) => e.source.table === "items"));
      assert.deepEqual(events.map((e) => [e.source.table, e.op]), [["items", "c"]]);
    } finally {
      await source.close();
    }
  });
});
