/**
 * Table-driven check of migrations, both dialects: for each migration, the verdict at BACKWARD,
 * FORWARD, FULL and NONE against a table registered as capture registers it. Expectation strings
 * list the levels in that order: y compatible (exit 0), n incompatible (exit 1), ? not checked (2).
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import type { ColumnSchema, SourceKind, TableSchema } from "../../connectors/contracts.ts";
import { ChangeEventEncoder } from "../event-codec.ts";
import { LocalRegistry } from "../local-registry.ts";
import { openMemoryStore } from "../log-store.ts";
import { checkMigration } from "./check-migration.ts";
import type { MigrationReport } from "./check-migration.ts";

const LEVELS = ["BACKWARD", "FORWARD", "FULL", "NONE"] as const;
const PREFIX = "dep.shop";

function table(kind: SourceKind, schema: string, columns: ColumnSchema[], key: string[]): TableSchema {
  return { source: "shop", database: kind === "postgres" ? "shop" : schema, schema, table: "orders", sourceKind: kind, columns, key };
}

const PG_ORDERS = table(
  "postgres",
  "public",
  [
    { name: "id", dbType: "integer", nullable: false, default: null, primaryKeyIndex: 1 },
    { name: "status", dbType: "text", nullable: true, default: null },
    { name: "qty", dbType: "integer", nullable: false, default: null },
    { name: "price", dbType: "numeric(10,2)", nullable: true, default: null },
    { name: "big", dbType: "bigint", nullable: false, default: null },
    { name: "mood", dbType: "enum", nullable: true, default: null },
  ],
  ["id"],
);

const MY_ORDERS = table(
  "mysql",
  "app",
  [
    { name: "id", dbType: "int", nullable: false, primaryKeyIndex: 1 },
    { name: "status", dbType: "varchar(20)", nullable: true },
    { name: "qty", dbType: "int", nullable: false },
    { name: "big", dbType: "bigint", nullable: false },
    { name: "kind", dbType: "enum('a','b')", nullable: true },
  ],
  ["id"],
);

const POSTGRES_CASES: readonly [string, string, string][] = [
  ["add a nullable column", "ALTER TABLE orders ADD COLUMN note text;", "yyyy"],
  ["add NOT NULL with a literal default", "ALTER TABLE orders ADD COLUMN flag boolean NOT NULL DEFAULT false;", "yyyy"],
  ["add NOT NULL with a negative default", "ALTER TABLE public.orders ADD COLUMN delta integer NOT NULL DEFAULT -1;", "yyyy"],
  ["add NOT NULL without a default", "ALTER TABLE orders ADD COLUMN code integer NOT NULL;", "nyny"],
  ["add NOT NULL with an expression default", "ALTER TABLE orders ADD COLUMN at timestamptz NOT NULL DEFAULT now();", "nyny"],
  ["add a nullable array column", "ALTER TABLE orders ADD COLUMN tags text[];", "yyyy"],
  ["add a serial column", "ALTER TABLE orders ADD COLUMN seq bigserial;", "nyny"],
  ["drop a nullable column", "ALTER TABLE orders DROP COLUMN status;", "yyyy"],
  ["drop a NOT NULL column", "ALTER TABLE orders DROP COLUMN qty;", "ynny"],
  ["drop a column that is not there, IF EXISTS", "ALTER TABLE orders DROP COLUMN IF EXISTS nothing;", "yyyy"],
  ["rename a nullable column", "ALTER TABLE orders RENAME COLUMN status TO state;", "yyyy"],
  ["rename a NOT NULL column", "ALTER TABLE orders RENAME COLUMN qty TO quantity;", "nnny"],
  ["widen integer to bigint", "ALTER TABLE orders ALTER COLUMN qty TYPE bigint;", "ynny"],
  ["narrow bigint to integer", "ALTER TABLE orders ALTER COLUMN big TYPE integer;", "nyny"],
  ["integer to text", "ALTER TABLE orders ALTER COLUMN qty TYPE text USING qty::text;", "nnny"],
  ["text to varchar(20)", "ALTER TABLE orders ALTER COLUMN status TYPE varchar(20);", "yyyy"],
  ["numeric to text (Avro bytes to string)", "ALTER TABLE orders ALTER COLUMN price TYPE text;", "yyyy"],
  ["widen numeric(10,2) to numeric(12,2)", "ALTER TABLE orders ALTER COLUMN price TYPE numeric(12,2);", "yyyy"],
  ["integer to real", "ALTER TABLE orders ALTER COLUMN qty TYPE real;", "ynny"],
  ["SET NOT NULL", "ALTER TABLE orders ALTER COLUMN status SET NOT NULL;", "nyny"],
  ["DROP NOT NULL", "ALTER TABLE orders ALTER COLUMN qty DROP NOT NULL;", "ynny"],
  ["add then SET NOT NULL in one migration", "ALTER TABLE orders ADD COLUMN note text;\nUPDATE orders SET note = '';\nALTER TABLE orders ALTER COLUMN note SET NOT NULL;", "nyny"],
  ["enum column of a new enum type", "CREATE TYPE mood2 AS ENUM ('a', 'b');\nALTER TABLE orders ADD COLUMN m mood2;", "yyyy"],
  ["add an enum label", "ALTER TYPE mood ADD VALUE 'ecstatic';", "yyyy"],
  ["rename an enum label", "ALTER TYPE mood RENAME VALUE 'sad' TO 'blue';", "yyyy"],
  ["new table", "CREATE TABLE public.items (id serial PRIMARY KEY, name text NOT NULL, at timestamptz DEFAULT now());", "yyyy"],
  ["new partitioned table and a partition", "CREATE TABLE public.events (id bigint, at date, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);\nCREATE TABLE public.events_2026 PARTITION OF public.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');", "yyyy"],
  ["new table in a schema that is not captured", "CREATE TABLE other.t (id int NOT NULL);\nALTER TABLE other.t ADD COLUMN x int NOT NULL;", "yyyy"],
  ["drop the table", "DROP TABLE orders;", "yyyy"],
  ["rename the table", "ALTER TABLE orders RENAME TO orders_old;", "yyyy"],
  ["new primary key with a NOT NULL column", "ALTER TABLE orders DROP CONSTRAINT orders_pkey, ADD PRIMARY KEY (id, qty);", "nyny"],
  ["index, comment and grant only", "CREATE INDEX orders_qty ON orders (qty);\nCOMMENT ON TABLE orders IS 'x';\nGRANT SELECT ON orders TO PUBLIC;", "yyyy"],
  ["set a literal default", "ALTER TABLE orders ALTER COLUMN qty SET DEFAULT 1;", "yyyy"],
  ["not understood: DO block", "DO $$ BEGIN EXECUTE 'ALTER TABLE orders ADD COLUMN x int NOT NULL'; END $$;", "????"],
  ["not understood: REPLICA IDENTITY", "ALTER TABLE orders REPLICA IDENTITY FULL;", "????"],
  ["not understood: CREATE TABLE AS", "CREATE TABLE public.copy AS SELECT * FROM orders;", "????"],
  ["not understood: INHERITS", "CREATE TABLE public.child (extra int) INHERITS (orders);", "????"],
  ["syntax error", "ALTER TABLE orders ADD COLUMN;", "????"],
  ["not understood beside an incompatible change", "ALTER TABLE orders ADD COLUMN code integer NOT NULL;\nCREATE RULE r AS ON INSERT TO orders DO NOTHING;", "????"],
  ["column that does not exist", "ALTER TABLE orders ALTER COLUMN nothing TYPE bigint;", "????"],
];

const MYSQL_CASES: readonly [string, string, string][] = [
  ["add a nullable column", "ALTER TABLE orders ADD COLUMN note TEXT;", "yyyy"],
  ["add NOT NULL with an integer default (the source reports it)", "ALTER TABLE orders ADD COLUMN code INT NOT NULL DEFAULT 0;", "yyyy"],
  ["add NOT NULL with a decimal default (not reported: the server reformats it)", "ALTER TABLE orders ADD COLUMN rate DECIMAL(5,2) NOT NULL DEFAULT 1.5;", "nyny"],
  ["add NOT NULL with a string default (MySQL reports it unquoted, like an expression)", "ALTER TABLE orders ADD COLUMN tier VARCHAR(9) NOT NULL DEFAULT 'basic';", "nyny"],
  ["add NOT NULL without a default", "ALTER TABLE orders ADD COLUMN code INT NOT NULL AFTER id;", "nyny"],
  ["add two nullable columns", "ALTER TABLE orders ADD COLUMN (a INT, b VARCHAR(3));", "yyyy"],
  ["drop a nullable column", "ALTER TABLE orders DROP COLUMN status;", "yyyy"],
  ["drop a NOT NULL column", "ALTER TABLE orders DROP COLUMN qty;", "ynny"],
  ["widen INT to BIGINT", "ALTER TABLE orders MODIFY qty BIGINT NOT NULL;", "ynny"],
  ["widen INT to INT UNSIGNED", "ALTER TABLE orders MODIFY qty INT UNSIGNED NOT NULL;", "ynny"],
  ["narrow BIGINT to INT", "ALTER TABLE orders MODIFY big INT NOT NULL;", "nyny"],
  ["INT to VARCHAR", "ALTER TABLE orders MODIFY qty VARCHAR(10) NOT NULL;", "nnny"],
  ["widen VARCHAR(20) to VARCHAR(200)", "ALTER TABLE orders MODIFY status VARCHAR(200);", "yyyy"],
  ["add an ENUM value", "ALTER TABLE orders MODIFY kind ENUM('a','b','c');", "yyyy"],
  ["remove an ENUM value", "ALTER TABLE orders MODIFY kind ENUM('a');", "yyyy"],
  ["rename a nullable column with CHANGE", "ALTER TABLE orders CHANGE status state VARCHAR(20);", "yyyy"],
  ["rename a NOT NULL column", "ALTER TABLE orders RENAME COLUMN qty TO quantity;", "nnny"],
  ["make a column NOT NULL", "ALTER TABLE orders MODIFY status VARCHAR(20) NOT NULL;", "nyny"],
  ["make a column nullable", "ALTER TABLE orders MODIFY qty INT NULL;", "ynny"],
  ["new table", "CREATE TABLE app.items (id INT PRIMARY KEY, name VARCHAR(10) NOT NULL) ENGINE=InnoDB;", "yyyy"],
  ["new partitioned table", "CREATE TABLE app.events (id BIGINT NOT NULL, at DATE NOT NULL, PRIMARY KEY (id, at)) PARTITION BY RANGE (YEAR(at)) (PARTITION p0 VALUES LESS THAN (2030));", "yyyy"],
  ["USE then an unqualified new table", "USE app;\nCREATE TABLE items (id INT PRIMARY KEY);", "yyyy"],
  ["drop the table", "DROP TABLE IF EXISTS orders;", "yyyy"],
  ["index only", "CREATE INDEX orders_qty ON orders (qty);", "yyyy"],
  ["convert to another character set (text stays text)", "ALTER TABLE orders CONVERT TO CHARACTER SET latin1;", "yyyy"],
  ["not understood: CONVERT TO CHARACTER SET DEFAULT", "ALTER TABLE orders CONVERT TO CHARACTER SET DEFAULT;", "????"],
  ["not understood: CREATE TABLE ... SELECT", "CREATE TABLE app.copy SELECT * FROM orders;", "????"],
  ["not understood: unknown statement", "FROBNICATE orders;", "????"],
  ["not understood: DELIMITER", "DELIMITER //\nCREATE PROCEDURE p() BEGIN END //", "????"],
  ["column that does not exist", "ALTER TABLE orders MODIFY nothing INT;", "????"],
];

async function run(kind: SourceKind, base: TableSchema, level: (typeof LEVELS)[number], sql: string): Promise<MigrationReport> {
  const registry = new LocalRegistry(await openMemoryStore());
  await registry.setConfig(null, level);
  await ChangeEventEncoder.register(registry, base, { topic: `${PREFIX}.${base.schema}.${base.table}`, name: PREFIX });
  const schema = kind === "postgres" ? "public" : "app";
  return checkMigration([{ name: "m.sql", text: sql }], {
    source: { name: "shop", kind, database: "shop", captures: (s) => s === schema },
    topicPrefix: PREFIX,
    numericMode: "precise",
    registry,
    ...(kind === "mysql" ? { defaultNamespace: "app" } : {}),
  });
}

const SYMBOL = { 0: "y", 1: "n", 2: "?" } as const;

for (const [kind, base, cases] of [["postgres", PG_ORDERS, POSTGRES_CASES], ["mysql", MY_ORDERS, MYSQL_CASES]] as const) {
  for (const [name, sql, expected] of cases) {
    test(`${kind}: ${name}`, async () => {
      let got = "";
      const reports: MigrationReport[] = [];
      for (const level of LEVELS) {
        const report = await run(kind, base, level, sql);
        reports.push(report);
        got += SYMBOL[report.exitCode];
      }
      assert.equal(got, expected, `verdicts at ${LEVELS.join("/")}: ${JSON.stringify(reports[0]?.tables)} ${JSON.stringify(reports[0]?.statements.map((s) => s.effect))} ${reports[0]?.errors}`);
      for (const report of reports) {
        for (const table of report.tables) {
          for (const problem of table.problems) assert.ok(problem.suggestion.length > 0 && problem.rule.length > 0);
        }
      }
    });
  }
}

test("an incompatible column names the column, the rule and a suggestion", async () => {
  const report = await run("postgres", PG_ORDERS, "BACKWARD", "ALTER TABLE orders ADD COLUMN code integer NOT NULL;");
  const orders = report.tables.find((t) => t.table === "public.orders");
  assert.equal(orders?.verdict, "incompatible");
  const problem = orders?.problems[0];
  assert.equal(problem?.column, "code");
  assert.match(problem?.rule ?? "", /^BACKWARD: READER_FIELD_MISSING_DEFAULT_VALUE/);
  assert.match(problem?.suggestion ?? "", /DEFAULT/);
  assert.equal(problem?.subject, "dep.shop.public.orders-value");
});

test("the suggestion follows what cannot be read: a type changed is told to keep its type, a column made NOT NULL to stay nullable", async () => {
  // Found by the live probe: VARCHAR to INT, both nullable, said "rows already written have nulls in this column: keep it nullable",
  // and a YEAR column made INT NOT NULL was told "the new type cannot hold the values already written" for its nulls.
  const report = await run("mysql", MY_ORDERS, "BACKWARD", "ALTER TABLE orders MODIFY status INT;");
  const problem = report.tables.find((t) => t.table === "app.orders")?.problems.find((p) => p.column === "status");
  assert.match(problem?.rule ?? "", /MISSING_UNION_BRANCH/);
  assert.doesNotMatch(problem?.suggestion ?? "", /nullable|nulls/);
  assert.match(problem?.suggestion ?? "", /new type cannot hold the values already written/);
  const nulls = await run("mysql", MY_ORDERS, "BACKWARD", "ALTER TABLE orders MODIFY status VARCHAR(20) NOT NULL;");
  assert.match(nulls.tables.find((t) => t.table === "app.orders")?.problems[0]?.suggestion ?? "", /keep it nullable/, "a column made NOT NULL is told to stay nullable");
  const forward = await run("mysql", MY_ORDERS, "FORWARD", "ALTER TABLE orders MODIFY qty INT NULL;");
  assert.match(forward.tables.find((t) => t.table === "app.orders")?.problems[0]?.suggestion ?? "", /expect no nulls/, "a column made nullable, under FORWARD");
});

test("a statement that is not understood is reported with its file and line", async () => {
  const report = await run("postgres", PG_ORDERS, "BACKWARD", "ALTER TABLE orders ADD COLUMN note text;\n\nALTER TABLE orders REPLICA IDENTITY FULL;");
  const statement = report.statements[1];
  assert.equal(statement?.line, 3);
  assert.equal(statement?.effect.kind, "not-understood");
  assert.equal(report.exitCode, 2);
});

test("at least 40 migrations are checked across both dialects", () => {
  assert.ok(POSTGRES_CASES.length + MYSQL_CASES.length >= 40);
});
