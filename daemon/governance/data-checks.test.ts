import assert from "node:assert/strict";
import { test } from "node:test";
import pino from "pino";
import type { ChangeEvent, ProducedRecord, TableSchema } from "../../connectors/contracts.ts";
import { SluiceError } from "../../connectors/errors.ts";
import type { GovernanceConfig } from "../../config/governance.ts";
import { DataChecks, withDataChecks } from "./data-checks.ts";

const schema: TableSchema = {
  source: "pg",
  database: "db",
  schema: "app",
  table: "orders",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 },
    { name: "email", dbType: "text", nullable: true },
    { name: "amount", dbType: "numeric(10,2)", nullable: true },
    { name: "day", dbType: "date", nullable: true },
    { name: "status", dbType: "text", nullable: true },
    { name: "code", dbType: "text", nullable: true },
  ],
};

function event(after: Record<string, unknown> | null, op: "c" | "d" = "c"): ChangeEvent {
  return {
    op,
    key: { id: (after?.["id"] as number | undefined) ?? 0 },
    before: null,
    after,
    schema,
    source: { connector: "postgres", name: "pg", db: "db", schema: "app", table: "orders", position: { commit: 1n, change: 1n }, txId: null, commitTimeMs: 0, snapshot: false },
  } as unknown as ChangeEvent;
}

function logged(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  return { logger, lines };
}

function config(checks: unknown[], freshness?: number): GovernanceConfig {
  return { tables: { "app.orders": { transforms: {}, checks } }, ...(freshness ? { freshness: { max_quiet: freshness } } : {}) } as GovernanceConfig;
}

test("each check: a failing value is counted and logged with table, key, column and check, never the value", async () => {
  const { logger, lines } = logged();
  const failures: string[] = [];
  let checked = 0;
  const checks = new DataChecks(
    "pg",
    config([
      { check: "not_null", column: "email", action: "warn" },
      { check: "range", column: "amount", min: 0, max: 1000, action: "warn" },
      { check: "range", column: "day", min: "2020-01-01", action: "warn" },
      { check: "regex", column: "code", pattern: "^[A-Z]{3}$", action: "warn" },
      { check: "one_of", column: "status", values: ["new", "paid"], action: "warn" },
      { check: "max_length", column: "status", length: 4, action: "warn" },
      { check: "unique_in_batch", column: "code", action: "warn" },
    ]),
    logger,
    { onFailure: (table, check) => failures.push(`${table}:${check}`), onRowsChecked: (_t, n) => (checked += n) },
  );
  const good = { id: 1, email: "a@b.c", amount: "10.50", day: 19_000, status: "paid", code: "ABC" };
  assert.equal(checks.inspect(event(good)), null);
  assert.deepEqual(failures, []);
  checks.startBatch();
  assert.equal(checks.inspect(event({ id: 2, email: "secret-address@x.y", amount: "1000.01", day: 10, status: "shipped", code: "abcd" })), null);
  assert.equal(checks.inspect(event({ id: 3, email: null, amount: "-1", day: null, status: null, code: "abcd" })), null);
  assert.deepEqual(failures.sort(), [
    "app.orders:max_length",
    "app.orders:not_null",
    "app.orders:one_of",
    "app.orders:range",
    "app.orders:range",
    "app.orders:range",
    "app.orders:regex",
    "app.orders:regex",
    "app.orders:unique_in_batch",
  ]);
  // Rows checked are reported once the synchronous run of inspections is over.
  await Promise.resolve();
  assert.equal(checked, 3);
  const warnings = lines.filter((l) => l["check"] !== undefined);
  assert.ok(warnings.every((l) => l["table"] === "app.orders" && typeof l["key"] === "string" && typeof l["column"] === "string"));
  const text = JSON.stringify(lines);
  for (const value of ["secret-address", "shipped", "abcd", "1000.01"]) assert.ok(!text.includes(value), `the value ${value} was logged`);
  const report = checks.failures().find((f) => f.check === "unique_in_batch");
  assert.deepEqual({ ...report, lastAt: "" }, { table: "app.orders", check: "unique_in_batch", column: "code", action: "warn", failures: 1, lastKey: '{"id":3}', lastAt: "" });
});

test("rows checked are reported once per run of inspections (one increment of the labelled counter per batch, not per row)", async () => {
  const reports: [string, number][] = [];
  const checks = new DataChecks("pg", config([{ check: "not_null", column: "email", action: "warn" }]), logged().logger, { onRowsChecked: (table, rows) => void reports.push([table, rows]) });
  for (let id = 1; id <= 3; id++) checks.inspect(event({ id, email: "e" }));
  checks.inspect(event(null, "d"));
  assert.deepEqual(reports, []);
  await Promise.resolve();
  assert.deepEqual(reports, [["app.orders", 3]]);
  checks.inspect(event({ id: 4, email: null }));
  await Promise.resolve();
  assert.deepEqual(reports, [["app.orders", 3], ["app.orders", 1]]);
});

test("unique_in_batch starts over with each source batch; deletes are not checked", () => {
  const checks = new DataChecks("pg", config([{ check: "unique_in_batch", column: "code", action: "warn" }, { check: "not_null", column: "email", action: "warn" }]), logged().logger);
  checks.startBatch();
  checks.inspect(event({ id: 1, code: "X", email: "e" }));
  checks.startBatch();
  checks.inspect(event({ id: 2, code: "X", email: "e" }));
  checks.inspect(event(null, "d"));
  assert.deepEqual(checks.failures(), []);
});

test("halt throws DATA_CHECK_FAILED (a table-halting code) naming table, key and column but not the value", () => {
  const checks = new DataChecks("pg", config([{ check: "regex", column: "code", pattern: "^[0-9]+$", action: "halt" }]), logged().logger);
  assert.throws(
    () => checks.inspect(event({ id: 9, code: "hidden-value" })),
    (error: unknown) =>
      error instanceof SluiceError && error.code === "DATA_CHECK_FAILED" && error.context["table"] === "app.orders" && error.context["column"] === "code" && /key \{"id":9\}/.test(error.message) && !error.message.includes("hidden-value"),
  );
});

test("dead-letter: the change becomes one record of the dead-letter topic instead of its own records", async () => {
  const checks = new DataChecks("pg", config([{ check: "not_null", column: "email", action: "dead-letter" }]), logged().logger);
  let created = 0;
  const inner = { encode: async (): Promise<ProducedRecord[]> => [{ topic: "data", key: null, value: Buffer.from("v"), timestamp: 0 }] };
  const encoder = withDataChecks(checks, inner, "dep.dlq.pg", async () => void created++);
  assert.deepEqual((await encoder.encode(event({ id: 1, email: "x" }))).map((r) => r.topic), ["data"]);
  const [record, ...rest] = await encoder.encode(event({ id: 2, email: null }));
  assert.equal(rest.length, 0);
  assert.equal(record!.topic, "dep.dlq.pg");
  assert.equal(Buffer.from(record!.headers!["sluice.check"]!).toString(), "not_null");
  assert.equal(Buffer.from(record!.headers!["sluice.table"]!).toString(), "app.orders");
  assert.equal(created, 1);
});

test("the promise-free path (encodeNow): every change is checked exactly once, whether encodeNow takes it or leaves it to encode; a dead letter before its topic exists goes through encode", async () => {
  let rows = 0;
  const checks = new DataChecks("pg", config([{ check: "not_null", column: "email", action: "dead-letter" }, { check: "unique_in_batch", column: "code", action: "warn" }]), logged().logger, { onRowsChecked: (_table, n) => void (rows += n) });
  let created = 0;
  const data = (): ProducedRecord[] => [{ topic: "data", key: null, value: Buffer.from("v"), timestamp: 0 }];
  // The inner encoder takes changes now except those with id 3 (a table not ready yet).
  const inner = { encode: async () => data(), encodeNow: (e: ChangeEvent) => (e.key["id"] === 3 ? undefined : data()) };
  const encoder = withDataChecks(checks, inner, "dep.dlq.pg", async () => void created++);
  // As capture does it: encodeNow first, encode (with the same event) when it answers undefined.
  const encode = async (e: ChangeEvent) => encoder.encodeNow!(e) ?? (await encoder.encode(e));
  encoder.startBatch();
  assert.deepEqual((await encode(event({ id: 1, email: "x", code: "A" }))).map((r) => r.topic), ["data"]);
  assert.deepEqual((await encode(event({ id: 2, email: null, code: "B" }))).map((r) => r.topic), ["dep.dlq.pg"], "before its topic exists: through encode");
  assert.equal(encoder.encodeNow!(event({ id: 4, email: null, code: "C" }))![0]!.topic, "dep.dlq.pg", "once it exists: at once");
  assert.deepEqual((await encode(event({ id: 3, email: "y", code: "D" }))).map((r) => r.topic), ["data"]);
  assert.equal(rows, 4, "each change checked once");
  assert.deepEqual(checks.failures().map((f) => [f.check, f.failures]), [["not_null", 2]], "unique_in_batch saw each code once");
  assert.equal(created, 1);
});

test("freshness: a source quiet for longer than max_quiet is one failure per quiet stretch", async () => {
  const failures: string[] = [];
  const checks = new DataChecks("pg", config([], 200), logged().logger, { onFailure: (table, check) => failures.push(`${table}:${check}`) });
  try {
    const deadline = Date.now() + 20_000;
    while (failures.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    assert.deepEqual(failures, ["*:freshness"]);
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(failures.length, 1, "one failure for one quiet stretch");
    checks.inspect(event({ id: 1 }));
    const again = Date.now() + 20_000;
    while (failures.length === 1 && Date.now() < again) await new Promise((r) => setTimeout(r, 50));
    assert.equal(failures.length, 2, "a new quiet stretch after a change counts again");
  } finally {
    checks.close();
  }
});

test("a check whose column the table no longer has (renamed at the source) says once that it does not run", () => {
  // Found on a live deployment: after RENAME COLUMN credit TO crd a range check on credit let -7 through without a word.
  const { logger, lines } = logged();
  const checks = new DataChecks("pg", config([{ check: "range", column: "amount", min: 0, action: "halt" }, { check: "not_null", column: "email", action: "warn" }]), logger);
  assert.throws(() => checks.inspect(event({ id: 1, amount: "-1", email: "a" })), /fails data check range of column amount/);
  const renamed: TableSchema = { ...schema, columns: schema.columns.map((c) => (c.name === "amount" ? { ...c, name: "total" } : c)) };
  const renamedEvent = (id: number) => ({ ...event({ id, total: "-5", email: "a" }), schema: renamed });
  for (let id = 2; id < 5; id++) assert.equal(checks.inspect(renamedEvent(id)), null);
  const told = lines.filter((l) => /does not run/.test(String(l["msg"])));
  assert.equal(told.length, 1, "said once");
  assert.equal(told[0]!["column"], "amount");
  assert.equal(told[0]!["level"], 40);
  assert.match(String(told[0]!["msg"]), /data check range of column amount does not run: table app\.orders has no column amount \(renamed or dropped at the source, or misspelt in the config\)/);
  // A schema of its own (another table version) with the column: nothing more said.
  checks.inspect({ ...event({ id: 6, amount: "1", email: "a" }), schema: { ...schema } });
  assert.equal(lines.filter((l) => /does not run/.test(String(l["msg"]))).length, 1);
});
