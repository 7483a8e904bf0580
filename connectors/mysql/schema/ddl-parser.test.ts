import assert from "node:assert/strict";
import { test } from "node:test";
import { parseDdl } from "./ddl-parser.ts";

const parse = (sql: string, mariadb = false) => parseDdl(sql, { defaultDatabase: "app", mariadb });

test("CREATE TABLE: columns in normal form, charsets, nullability, the primary key, the default charset", () => {
  const statement = parse(
    "CREATE TABLE IF NOT EXISTS `app`.`Orders` (`id` BIGINT(20) UNSIGNED NOT NULL AUTO_INCREMENT, `note` VARCHAR(30) CHARACTER SET latin1 DEFAULT 'it''s' COMMENT 'x', " +
      "total DEC(10,2) NOT NULL DEFAULT 0, state ENUM('New','Paid, late') NOT NULL, created TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3), " +
      "doc JSON, raw VARBINARY(16), PRIMARY KEY (`id`), KEY by_state (state), CONSTRAINT fk FOREIGN KEY (id) REFERENCES other (id) ON DELETE CASCADE) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_bin /* generated */",
  );
  assert.equal(statement.kind, "create-table");
  if (statement.kind !== "create-table") return;
  assert.deepEqual(statement.table, { database: "app", table: "Orders" });
  assert.deepEqual(
    statement.columns.map((c) => [c.name, c.dbType, c.nullable, c.charset]),
    [
      ["id", "bigint unsigned", false, null],
      ["note", "varchar(30)", true, "latin1"],
      ["total", "decimal(10,2)", false, null],
      ["state", "enum('New','Paid, late')", false, null],
      ["created", "timestamp(3)", false, null],
      ["doc", "json", true, null],
      ["raw", "varbinary(16)", true, "binary"],
    ],
  );
  assert.deepEqual(statement.primaryKey, ["id"]);
  assert.equal(statement.defaultCharset, "utf8mb4");
  const mariadb = parse("CREATE TABLE t (doc JSON)", true);
  assert.equal(mariadb.kind === "create-table" && mariadb.columns[0]!.dbType, "longtext");
});

test("ALTER TABLE: each column action with its place, keys, renames and ignorable clauses", () => {
  const statement = parse(
    "ALTER TABLE t ADD COLUMN IF NOT EXISTS a INT FIRST, ADD b TEXT AFTER a, DROP COLUMN c, MODIFY d CHAR(2) NOT NULL, CHANGE e f DOUBLE, RENAME COLUMN g TO h, " +
      "ADD PRIMARY KEY (a, b(10)), DROP INDEX i, ADD UNIQUE KEY u (a), ALTER COLUMN a SET DEFAULT 1, ENGINE=InnoDB, ALGORITHM=INSTANT, LOCK=NONE",
  );
  assert.equal(statement.kind, "alter-table");
  if (statement.kind !== "alter-table") return;
  assert.deepEqual(
    statement.actions.map((a) => [a.kind, "column" in a ? a.column.name : "from" in a ? a.from : "columns" in a ? a.columns.join(",") : null, "place" in a ? a.place : null]),
    [
      ["add-column", "a", { first: true }],
      ["add-column", "b", { after: "a" }],
      ["drop-column", null, null],
      ["modify-column", "d", null],
      ["change-column", "f", null],
      ["rename-column", "g", null],
      ["add-primary-key", "a,b", null],
      ["column-default", null, null],
    ],
  );
  const rename = parse("ALTER TABLE t RENAME TO other.u");
  assert.deepEqual(rename.kind === "alter-table" && rename.actions, [{ kind: "rename-table", to: { database: "other", table: "u" } }]);
});

test("ALTER TABLE partition operations that move rows with no row event are told, with the table exchanged with; the others are ignored", () => {
  const actions = (sql: string) => {
    const statement = parse(sql, true);
    assert.equal(statement.kind, "alter-table", sql);
    return statement.kind === "alter-table" ? statement.actions : [];
  };
  const changed = (what: string, other: { database: string; table: string } | null = null, partitions: string[] | null = null) => [{ kind: "rows-changed", what, other, partitions }];
  assert.deepEqual(actions("ALTER TABLE t TRUNCATE PARTITION p0, `P1`"), changed("TRUNCATE PARTITION", null, ["p0", "P1"]));
  assert.deepEqual(actions("ALTER TABLE t TRUNCATE PARTITION ALL"), changed("TRUNCATE PARTITION"));
  assert.deepEqual(actions("ALTER TABLE t DROP PARTITION IF EXISTS p0, p1"), changed("DROP PARTITION", null, ["p0", "p1"]));
  assert.deepEqual(actions("ALTER TABLE t DROP PARTITION p20261101"), changed("DROP PARTITION", null, ["p20261101"]));
  assert.deepEqual(actions("ALTER TABLE t EXCHANGE PARTITION p0 WITH TABLE other.u WITHOUT VALIDATION"), changed("EXCHANGE PARTITION", { database: "other", table: "u" }));
  assert.deepEqual(actions("ALTER TABLE t CONVERT PARTITION p0 TO TABLE u"), changed("CONVERT PARTITION", { database: "app", table: "u" }));
  assert.deepEqual(actions("ALTER TABLE t CONVERT TABLE u TO PARTITION p9 VALUES LESS THAN (90)"), changed("CONVERT TABLE ... TO PARTITION"));
  assert.deepEqual(actions("ALTER TABLE t IMPORT TABLESPACE"), changed("IMPORT TABLESPACE"));
  for (const sql of ["ALTER TABLE t ADD PARTITION (PARTITION p3 VALUES LESS THAN (40))", "ALTER TABLE t REORGANIZE PARTITION p0, p1 INTO (PARTITION p01 VALUES LESS THAN (20))", "ALTER TABLE t COALESCE PARTITION 2", "ALTER TABLE t REBUILD PARTITION p0, p1", "ALTER TABLE t REMOVE PARTITIONING", "ALTER TABLE t DISCARD TABLESPACE"]) {
    assert.deepEqual(actions(sql), [], sql);
  }
});

test("ALTER IGNORE TABLE reads the table again only when it may drop rows (a UNIQUE or PRIMARY key) or convert values (a redefinition), or is not known to be harmless", () => {
  const readsAgain = (sql: string) => {
    const statement = parse(sql, true);
    assert.equal(statement.kind, "alter-table", sql);
    return statement.kind === "alter-table" && statement.actions.some((a) => a.kind === "rows-changed" && a.what === "ALTER IGNORE TABLE");
  };
  for (const sql of [
    "ALTER IGNORE TABLE t ADD COLUMN c INT NULL",
    "ALTER ONLINE IGNORE TABLE t ADD COLUMN IF NOT EXISTS c VARCHAR(10) DEFAULT 'x' AFTER b, ALGORITHM=INPLACE, LOCK=NONE",
    "ALTER IGNORE TABLE t ADD (c INT, d INT, INDEX (c)), ADD INDEX i (d), ADD FULLTEXT KEY f (e), DROP INDEX j, DROP FOREIGN KEY fk",
    "ALTER IGNORE TABLE t ALTER COLUMN c SET DEFAULT 3, RENAME COLUMN c TO `unique`, RENAME INDEX a TO b, DROP PRIMARY KEY, DEFAULT CHARSET=utf8mb4, COMMENT='x'",
    "ALTER IGNORE TABLE t RENAME TO u",
  ]) {
    assert.equal(readsAgain(sql), false, sql);
  }
  for (const sql of [
    "ALTER IGNORE TABLE t ADD UNIQUE KEY (code)",
    "ALTER IGNORE TABLE t ADD CONSTRAINT u UNIQUE (code)",
    "ALTER IGNORE TABLE t ADD PRIMARY KEY (id)",
    "ALTER IGNORE TABLE t ADD COLUMN c INT NOT NULL DEFAULT 0 UNIQUE",
    "ALTER IGNORE TABLE t ADD COLUMN c INT KEY",
    "ALTER IGNORE TABLE t ADD (c INT, UNIQUE (c))",
    "ALTER IGNORE TABLE t ADD COLUMN c INT CHECK (c > 0)",
    "ALTER IGNORE TABLE t ADD COLUMN c INT NULL, MODIFY amount DECIMAL(10,2)",
    "ALTER IGNORE TABLE t CHANGE a a VARCHAR(3)",
    "ALTER IGNORE TABLE t CONVERT TO CHARACTER SET latin1",
    "ALTER IGNORE TABLE t DROP COLUMN b",
    "ALTER IGNORE TABLE t ADD CHECK (a > 0)",
    "ALTER IGNORE TABLE t FORCE",
    "ALTER IGNORE TABLE t ENGINE=InnoDB",
  ]) {
    assert.equal(readsAgain(sql), true, sql);
  }
  assert.equal(readsAgain("ALTER TABLE t ADD UNIQUE KEY (code)"), false, "without IGNORE a duplicate fails the statement");
  const unparsed = parse("ALTER ONLINE IGNORE TABLE t ADD UNIQUE KEY (code), CONVERT TO CHARACTER SET binary", true);
  assert.deepEqual(unparsed.kind === "unparsed" && [unparsed.tables, unparsed.rowsChanged], [[{ database: "app", table: "t" }], "ALTER IGNORE TABLE"], "not understood: read again");
  const plain = parse("ALTER TABLE t CONVERT TO CHARACTER SET binary", true);
  assert.equal(plain.kind === "unparsed" && plain.rowsChanged, undefined);
});

test("DROP, RENAME, TRUNCATE, DROP DATABASE and CREATE … LIKE", () => {
  assert.deepEqual(parse("DROP TABLE IF EXISTS a, `b`.c /* generated by server */"), { kind: "drop-tables", tables: [{ database: "app", table: "a" }, { database: "b", table: "c" }] });
  assert.deepEqual(parse("RENAME TABLE a TO b, x.c TO x.d"), {
    kind: "rename-tables",
    renames: [
      { from: { database: "app", table: "a" }, to: { database: "app", table: "b" } },
      { from: { database: "x", table: "c" }, to: { database: "x", table: "d" } },
    ],
  });
  assert.deepEqual(parse("truncate `t`"), { kind: "truncate", table: { database: "app", table: "t" } });
  assert.deepEqual(parse("DROP DATABASE IF EXISTS app2"), { kind: "drop-database", database: "app2" });
  assert.deepEqual(parse("CREATE TABLE t2 LIKE t1"), { kind: "create-table-like", table: { database: "app", table: "t2" }, like: { database: "app", table: "t1" }, ifNotExists: false });
});

test("statements it does not follow name the tables they touch; others are not DDL", () => {
  const select = parse("CREATE TABLE t3 AS SELECT * FROM t1");
  assert.equal(select.kind, "unparsed");
  assert.deepEqual(select.kind === "unparsed" && select.tables, [{ database: "app", table: "t3" }]);
  const convert = parse("ALTER TABLE t CONVERT TO CHARACTER SET DEFAULT");
  assert.deepEqual(convert.kind === "unparsed" && convert.tables, [{ database: "app", table: "t" }]);
  // The server makes character columns BINARY/VARBINARY/BLOB (bytes), which the catalog shows.
  for (const sql of ["ALTER TABLE t CONVERT TO CHARACTER SET binary", "ALTER TABLE t CONVERT TO CHARSET = BINARY", "ALTER TABLE t CONVERT TO CHARACTER SET `binary` COLLATE binary"]) {
    const binary = parse(sql);
    assert.deepEqual(binary.kind === "unparsed" && binary.tables, [{ database: "app", table: "t" }], sql);
  }
  for (const sql of ["INSERT INTO t VALUES (1)", "GRANT ALL ON *.* TO x", "CREATE TEMPORARY TABLE tmp (a INT)", "CREATE VIEW v AS SELECT 1", "ALTER USER 'root' IDENTIFIED BY 'x'", "BEGIN"]) {
    assert.deepEqual(parse(sql), { kind: "none" }, sql);
  }
});

test("executable comments are parsed, plain comments ignored", () => {
  const statement = parse("/*!40101 CREATE TABLE */ t (a INT /* comment */ NOT NULL) -- trailing\n");
  assert.equal(statement.kind === "create-table" && statement.columns[0]!.nullable, false);
});

test("literal defaults of integer and text columns are kept in the form information_schema gives (Avro defaults of added columns); NULL, expressions and other types are not", () => {
  const sql = "CREATE TABLE t (a INT DEFAULT 0, b INT DEFAULT -5, c VARCHAR(9) DEFAULT 'it''s', d DATETIME DEFAULT CURRENT_TIMESTAMP, e INT DEFAULT NULL, f DECIMAL(5,2) DEFAULT 1.50, g INT, h INT DEFAULT '7', i ENUM('x','y') DEFAULT 'x', j VARCHAR(3) DEFAULT 5)";
  const defaults = (mariadb: boolean) => {
    const statement = parse(sql, mariadb);
    return statement.kind === "create-table" ? statement.columns.map((c) => c.default ?? null) : [];
  };
  assert.deepEqual(defaults(true), ["0", "-5", "'it''s'", null, null, null, null, "7", "'x'", "'5'"]);
  assert.deepEqual(defaults(false), ["0", "-5", null, null, null, null, null, "7", null, null], "MySQL reports string defaults unquoted: left out");
});

test("MariaDB sequences: CREATE / ALTER / DROP SEQUENCE and CREATE TABLE ... SEQUENCE=1 are told apart from tables", () => {
  const app = (table: string) => ({ database: "app", table });
  assert.deepEqual(parse("CREATE SEQUENCE seq1", true), { kind: "create-sequence", sequence: app("seq1"), ifNotExists: false });
  assert.deepEqual(parse("CREATE OR REPLACE SEQUENCE IF NOT EXISTS `other`.s START WITH 10 INCREMENT BY 2 NOCACHE", true), {
    kind: "create-sequence",
    sequence: { database: "other", table: "s" },
    ifNotExists: true,
    orReplace: true,
  });
  assert.deepEqual(parse("ALTER SEQUENCE IF EXISTS seq1 RESTART WITH 100", true), { kind: "alter-sequence", sequence: app("seq1") });
  assert.deepEqual(parse("DROP SEQUENCE IF EXISTS seq1, other.s2 /* generated by server */", true), { kind: "drop-sequences", sequences: [app("seq1"), { database: "other", table: "s2" }] });
  assert.deepEqual(
    parse("CREATE TABLE `s3` (`next_not_cached_value` bigint(21) NOT NULL, `minimum_value` bigint(21) NOT NULL, `cycle_count` bigint(21) NOT NULL) ENGINE=InnoDB SEQUENCE=1", true),
    { kind: "create-sequence", sequence: app("s3"), ifNotExists: false },
  );
  assert.equal(parse("CREATE TABLE t (id INT PRIMARY KEY) ENGINE=InnoDB SEQUENCE=0", true).kind, "create-table");
  assert.equal(parse("CREATE TABLE sequence (id INT PRIMARY KEY)", true).kind, "create-table");
});

test("ALTER without COLUMN of a quoted column named index, check or constraint changes its default; bare ALTER INDEX/CHECK/CONSTRAINT are skipped", () => {
  for (const name of ["index", "CHECK", "constraint"]) {
    const set = parse(`ALTER TABLE t ALTER \`${name}\` SET DEFAULT 5`);
    assert.deepEqual(set.kind === "alter-table" && set.actions.map((a) => [a.kind, "name" in a ? a.name : null]), [["column-default", name]], name);
    const drop = parse(`ALTER TABLE t ALTER \`${name}\` DROP DEFAULT`);
    assert.deepEqual(drop.kind === "alter-table" && drop.actions, [{ kind: "column-default", name }], name);
  }
  for (const sql of ["ALTER TABLE t ALTER INDEX i INVISIBLE", "ALTER TABLE t ALTER CHECK c NOT ENFORCED", "ALTER TABLE t ALTER CONSTRAINT c ENFORCED"]) {
    const statement = parse(sql);
    assert.deepEqual(statement.kind === "alter-table" && statement.actions, [], sql);
  }
});
