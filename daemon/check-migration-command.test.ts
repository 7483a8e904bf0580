/**
 * `sluice schema check-migration` as a command: choosing the source, the default database of
 * unqualified MySQL names, text and JSON output, exit codes.
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import { ChangeEventEncoder } from "../schema-registry/event-codec.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { runCheckMigration } from "./check-migration-command.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-check-migration-"));
const migration = join(dir, "0002_orders.sql");
// DECIMAL: the MySQL source reports no decimal defaults (the server reformats them), so NOT NULL ... DEFAULT is refused under BACKWARD.
writeFileSync(migration, "-- orders get a code\nALTER TABLE orders ADD COLUMN code DECIMAL(10,2) NOT NULL DEFAULT 0;\n");

function config(tables: string, extraSource = "") {
  return loadConfigText(
    "test.yaml",
    `name: dep
sources:
  - kind: mysql
    name: shop
    user: u
    server_id: 7
    tables: [${tables}]
${extraSource}`,
  );
}

async function registry() {
  const r = new LocalRegistry(await openMemoryStore());
  await ChangeEventEncoder.register(
    r,
    { source: "shop", database: "app", schema: "app", table: "orders", sourceKind: "mysql", columns: [{ name: "id", dbType: "int", nullable: false, primaryKeyIndex: 1 }], key: ["id"] },
    { topic: "dep.shop.app.orders", name: "dep.shop" },
  );
  return r;
}

function output() {
  const out = { stdout: "", stderr: "" };
  return { out, io: { stdout: (t: string) => void (out.stdout += t), stderr: (t: string) => void (out.stderr += t) } };
}

test("unqualified MySQL names take the one database the source's tables name; text output names the column, rule and suggestion; exit 1", async () => {
  const { out, io } = output();
  const code = await runCheckMigration(config('"app.*"'), await registry(), { files: [migration], json: false }, io);
  assert.equal(code, 1, out.stderr + out.stdout);
  assert.match(out.stdout, /app\.orders: INCOMPATIBLE \(dep\.shop\.app\.orders-key BACKWARD, 1 version\(s\); dep\.shop\.app\.orders-value BACKWARD, 1 version\(s\)\)/);
  assert.match(out.stdout, /column code: BACKWARD: READER_FIELD_MISSING_DEFAULT_VALUE/);
  assert.match(out.stdout, /suggestion: add the column as nullable/);
  assert.match(out.stdout, /0002_orders\.sql:2/);
  assert.match(out.stdout, /result: incompatible \(exit 1\)/);
});

test("--json prints the report; --database overrides; a wildcard database leaves unqualified names not understood (exit 2)", async () => {
  const json = output();
  assert.equal(await runCheckMigration(config('"*.*"'), await registry(), { files: [migration], json: true, database: "app" }, json.io), 1);
  const report = JSON.parse(json.out.stdout) as { exitCode: number; tables: { table: string; verdict: string; problems: { column: string }[] }[] };
  assert.deepEqual(report.tables.map((t) => [t.table, t.verdict, t.problems[0]?.column]), [["app.orders", "incompatible", "code"]]);
  const unqualified = output();
  assert.equal(await runCheckMigration(config('"*.*"'), await registry(), { files: [migration], json: false }, unqualified.io), 2);
  assert.match(unqualified.out.stdout, /NOT UNDERSTOOD: a table without a database name/);
});

test("several sources need --source; an unreadable file or unknown source is exit 2", async () => {
  const two = config('"app.*"', "  - kind: mysql\n    name: other\n    user: u\n    server_id: 8\n    tables: [\"b.*\"]\n");
  const many = output();
  assert.equal(await runCheckMigration(two, await registry(), { files: [migration], json: false }, many.io), 2);
  assert.match(many.out.stderr, /2 sources \(shop, other\): name one with --source/);
  assert.equal(await runCheckMigration(two, await registry(), { files: [migration], json: false, source: "shop" }, output().io), 1);
  const unknown = output();
  assert.equal(await runCheckMigration(two, await registry(), { files: [migration], json: false, source: "nope" }, unknown.io), 2);
  const missing = output();
  assert.equal(await runCheckMigration(config('"app.*"'), await registry(), { files: [join(dir, "nope.sql")], json: false }, missing.io), 2);
  assert.match(missing.out.stderr, /cannot read/);
});

test("--mariadb: a quoted text default counts as the Avro default (MariaDB reports it), so NOT NULL DEFAULT 'x' passes BACKWARD; on MySQL it does not", async () => {
  const textDefault = join(dir, "0003_orders.sql");
  writeFileSync(textDefault, "ALTER TABLE app.orders ADD COLUMN label VARCHAR(10) NOT NULL DEFAULT 'none';\n");
  assert.equal(await runCheckMigration(config('"app.*"'), await registry(), { files: [textDefault], json: false, mariadb: true }, output().io), 0);
  assert.equal(await runCheckMigration(config('"app.*"'), await registry(), { files: [textDefault], json: false }, output().io), 1);
});
