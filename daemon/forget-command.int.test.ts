/**
 * `sluice forget` with no daemon running: it opens the DuckDB sink itself, nulls the subject's
 * personal columns (both tables, every row of the subject), destroys the key and audits every
 * step; a second run is harmless. The daemon path is in test/e2e/governance-erasure.int.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import type { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { createLogger } from "../runtime/logger.ts";
import { createSink } from "./components.ts";
import { runForgetCommand } from "./forget-command.ts";
import { ErasureAudit } from "./governance/erasure.ts";
import { MasterKey, SubjectKeyStore, subjectKeyTopic } from "./governance/subject-keys.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-forget-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");
writeFileSync(join(dir, "master.key"), "ef".repeat(32));

const config = loadConfigText(
  join(dir, "c.yaml"),
  `name: dep
personal_data: { master_key_file: ${join(dir, "master.key")} }
http: { listen: "127.0.0.1:1" }
sources:
  - { name: pg, kind: postgres, database: app, user: u, tables: [app.*],
      governance: { tables: { app.customers: { personal: { subject: customer_id, columns: [email, phone] } }, app.orders: { personal: { subject: customer_id, columns: [address] } } } } }
topics: { kind: embedded, path: ${join(dir, "log.db")} }
sinks:
  - { kind: duckdb, name: local, path: ${join(dir, "w.duckdb")} }
`,
  { env: {} },
);

const output = () => {
  const io = { out: "", err: "", stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
};

test("forget without a daemon: the DuckDB sink loses the subject's personal columns in every table, the key is gone, every step is audited, a re-run is harmless", { timeout: 60_000 }, async () => {
  const customers = new Events(tableSchema("customers", [["id", "integer"], ["customer_id", "integer"], ["email", "text"], ["phone", "text"], ["city", "text"]], ["id"], { source: "pg", database: "app", schema: "app" }));
  const orders = new Events(tableSchema("orders", [["id", "integer"], ["customer_id", "integer"], ["address", "text"]], ["id"], { source: "pg", database: "app", schema: "app" }));
  const sink = (await createSink(config.sinks[0]!, logger)) as DuckDbSink;
  await sink.open(AbortSignal.timeout(30_000));
  await sink.write(
    [
      customers.insert(1n, { id: 1, customer_id: 42, email: "ann@example.com", phone: "555", city: "Lyon" }),
      customers.insert(2n, { id: 2, customer_id: 7, email: "bob@example.com", phone: "777", city: "Nice" }),
      orders.insert(3n, { id: 10, customer_id: 42, address: "1 rue Ann" }),
      orders.insert(4n, { id: 11, customer_id: 7, address: "2 rue Bob" }),
    ],
    AbortSignal.timeout(30_000),
  );
  await sink.close();
  const log = await EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const keys = await SubjectKeyStore.open(log, subjectKeyTopic("dep"), MasterKey.fromFile(join(dir, "master.key")));
  await keys.createKeys("pg", ["42", "7"]);
  await keys.close();
  await log.close();

  const dry = output();
  assert.equal(await runForgetCommand(config, { source: "pg", subject: "42", execute: false }, dry, logger), 0, dry.err);
  assert.match(dry.out, /has a key: it would be destroyed/);
  assert.match(dry.out, /table app\.customers: columns email, phone of the rows whose customer_id is "42"/);
  assert.match(dry.out, /sinks that would null them: local\n/);

  const run = output();
  assert.equal(await runForgetCommand(config, { source: "pg", subject: "42", execute: true }, run, logger), 0, run.err);
  assert.match(run.out, /key of subject "42" destroyed/);
  assert.match(run.out, /sink local: personal columns of the subject nulled \(2 rows\)/);

  const check = (await createSink(config.sinks[0]!, logger)) as DuckDbSink;
  await check.open(AbortSignal.timeout(30_000));
  try {
    assert.deepEqual(await check.query(`SELECT id, customer_id, email, phone, city FROM app_customers ORDER BY id`), [
      { id: 1, customer_id: 42, email: null, phone: null, city: "Lyon" },
      { id: 2, customer_id: 7, email: "bob@example.com", phone: "777", city: "Nice" },
    ]);
    assert.deepEqual(await check.query(`SELECT id, address FROM app_orders ORDER BY id`), [
      { id: 10, address: null },
      { id: 11, address: "2 rue Bob" },
    ]);
  } finally {
    await check.close();
  }

  const again = output();
  assert.equal(await runForgetCommand(config, { source: "pg", subject: "42", execute: true }, again, logger), 0, again.err);
  assert.match(again.out, /was already gone/);
  assert.match(again.out, /nulled \(0 rows\)/);

  const read = await EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0, readOnly: true });
  try {
    const entries = await new ErasureAudit(read, "dep").entries({ source: "pg", subject: "42" });
    assert.deepEqual(entries.map((e) => e.event), ["started", "key-destroyed", "sink-erased", "completed", "started", "key-destroyed", "sink-erased", "completed"]);
    assert.deepEqual(entries[3]!.sinks, ["local"]);
    assert.match(entries[0]!.by, /@/);
    const after = await SubjectKeyStore.open(read, subjectKeyTopic("dep"), MasterKey.fromFile(join(dir, "master.key")), { create: false });
    assert.equal(await after.keyIfKnown("pg", "42"), null);
    assert.notEqual(await after.keyIfKnown("pg", "7"), null);
    await after.close();
  } finally {
    await read.close();
  }
});

test("a sink table whose subject column cannot be matched exactly fails the forget, but the sink's other tables and the other sinks are erased", { timeout: 60_000 }, async () => {
  // Before: the first refusal (or any failure) ended the command, so a sink after it, and the tables after it in the same
  // sink, kept the subject's personal values until the refused table was dealt with.
  const own = join(dir, "refused");
  const refusedConfig = loadConfigText(
    join(own, "c.yaml"),
    `name: dep2
personal_data: { master_key_file: ${join(dir, "master.key")} }
http: { listen: "127.0.0.1:1" }
sources:
  - { name: pg, kind: postgres, database: app, user: u, tables: [app.*],
      governance: { tables: { app.customers: { personal: { subject: customer_id, columns: [email] } }, app.orders: { personal: { subject: customer_id, columns: [address] } } } } }
topics: { kind: embedded, path: ${join(own, "log.db")} }
sinks:
  - { kind: duckdb, name: old, path: ${join(own, "old.duckdb")} }
  - { kind: duckdb, name: other, path: ${join(own, "other.duckdb")} }
`,
    { env: {} },
  );
  const table = (name: string, subjectType: string, column: string) =>
    new Events(tableSchema(name, [["id", "integer"], ["customer_id", subjectType], [column, "text"]], ["id"], { source: "pg", database: "app", schema: "app" }));
  // "old" holds customers with a float subject, as a table made before capture refused such a column.
  for (const [index, customersType] of [[0, "double precision"], [1, "integer"]] as const) {
    const sink = (await createSink(refusedConfig.sinks[index]!, logger)) as DuckDbSink;
    await sink.open(AbortSignal.timeout(30_000));
    const customers = table("customers", customersType, "email");
    const orders = table("orders", "integer", "address");
    await sink.write([customers.insert(1n, { id: 1, customer_id: 42, email: "ann@example.com" }), orders.insert(2n, { id: 10, customer_id: 42, address: "1 rue Ann" })], AbortSignal.timeout(30_000));
    await sink.close();
  }
  const run = output();
  assert.equal(await runForgetCommand(refusedConfig, { source: "pg", subject: "42", execute: true }, run, logger), 1, run.out);
  assert.match(run.err, /sink old could not erase: sink old, table pg\.app\.customers: cannot erase the subject's rows: the subject column customer_id \(float\) cannot name a data subject/);
  assert.match(run.err, /sinks confirmed: other; not confirmed: old\./);
  const values = async (index: number) => {
    const sink = (await createSink(refusedConfig.sinks[index]!, logger)) as DuckDbSink;
    await sink.open(AbortSignal.timeout(30_000));
    try {
      return [await sink.query("SELECT email FROM app_customers"), await sink.query("SELECT address FROM app_orders")];
    } finally {
      await sink.close();
    }
  };
  assert.deepEqual(await values(0), [[{ email: "ann@example.com" }], [{ address: null }]], "old: the refused table untouched, its other table erased");
  assert.deepEqual(await values(1), [[{ email: null }], [{ address: null }]], "other: erased");
});
