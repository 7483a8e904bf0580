/**
 * The ClickHouse sink against the real server from test/services/ (18.16): the shared
 * conformance suite, then ClickHouse specifics (the view before and after merges, truncate
 * versions, exact types on an old server, floats bit for bit). Each run uses its own database,
 * dropped at the end.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { clickhouse } from "../../test/services/ports.ts";
import type { ChangeEvent, TableSchema } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import type { SluiceError } from "../errors.ts";
import { sinkConformanceSuite, TARGET_TEMPLATE } from "../sinks/conformance.ts";
import type { VisibleRow } from "../sinks/conformance.ts";
import { logicalType } from "../sinks/logical-type.ts";
import { renderTarget } from "../sinks/naming.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { ClickHouseSink } from "./clickhouse-sink.ts";
import { createViewSql, ident, qualified } from "./ddl.ts";
import { RowBinaryReader } from "./rowbinary.ts";
import { parseTsv, unescapeField } from "./tsv.ts";

const database = `sluice_test_${randomBytes(4).toString("hex")}`;
const admin = createClient({
  url: clickhouse.url,
  username: clickhouse.username,
  password: clickhouse.password,
  compression: { request: false, response: false },
  log: { level: ClickHouseLogLevel.OFF },
});

async function sql(query: string): Promise<string> {
  const result = await admin.exec({ query });
  const chunks: Buffer[] = [];
  for await (const chunk of result.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** A query's RowBinary output: exact bytes, unlike any text form. */
async function binary(query: string): Promise<Buffer> {
  const result = await admin.exec({ query: `${query} FORMAT RowBinary` });
  const chunks: Buffer[] = [];
  for await (const chunk of result.stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function rows(query: string): Promise<Record<string, string | null>[]> {
  const [header, ...body] = parseTsv(Buffer.from(await sql(`${query} FORMAT TabSeparatedWithNames`)));
  const names = (header ?? []).map((f) => f.toString("utf8"));
  return body.map((fields) => Object.fromEntries(names.map((name, i) => [name, fields[i]?.toString() === "\\N" ? null : unescapeField(fields[i] ?? Buffer.alloc(0)).toString("utf8")])));
}

before(async () => {
  await sql(`CREATE DATABASE IF NOT EXISTS ${ident(database)}`);
});
after(async () => {
  await sql(`DROP DATABASE IF EXISTS ${ident(database)}`);
  await admin.close();
});

const createSink = (name: string, onError: "halt" | "dead-letter" = "halt") =>
  new ClickHouseSink(
    testSinkConfig("clickhouse", { name, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: TARGET_TEMPLATE, on_error: onError }),
    { logger: testLogger() },
  );

/** Booleans are UInt8 in ClickHouse: shown as "true"/"false" like the other sinks. */
async function visibleRows(target: string, schema: TableSchema): Promise<VisibleRow[]> {
  const booleans = new Set(schema.columns.filter((c) => logicalType(c.dbType, schema.sourceKind).kind === "boolean").map((c) => c.name));
  return (await rows(`SELECT * FROM ${qualified(database, target)}`)).map((row) =>
    Object.fromEntries(Object.entries(row).map(([k, v]) => [k, booleans.has(k) && v !== null ? String(v === "1") : v])),
  );
}

sinkConformanceSuite({ kind: "clickhouse", createSink, visibleRows, cleanup: async () => undefined, haltsAtFirstFailure: true });

describe("ClickHouse sink specifics", () => {
  const signal = () => AbortSignal.timeout(60_000);
  let sink: ClickHouseSink;
  before(async () => {
    sink = createSink(`ch_${randomTableName("s")}`);
    await sink.open(signal());
  });
  after(() => sink.close());

  test("the view shows current rows before and after merges (OPTIMIZE TABLE … FINAL), also under a user's filter", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    const view = qualified(database, target);
    const physical = qualified(database, `${target}__v1`);
    // one insert per write: every version sits in its own part until a merge, and background
    // merges are held off so the "before merges" state is really observed
    await sink.write([events.insert(1n, { id: 1, v: "a" })], signal());
    await sql(`SYSTEM STOP MERGES ${physical}`);
    for (const change of [
      events.insert(2n, { id: 2, v: "b" }),
      events.update(3n, { id: 1, v: "a2" }),
      events.delete(4n, { id: 2 }),
      events.insert(5n, { id: 3, v: "c" }),
    ]) {
      await sink.write([change], signal());
    }
    // a replayed old version lands in yet another part
    await sink.write([events.insert(2n, { id: 2, v: "b" }), events.insert(1n, { id: 1, v: "a" })], signal());
    const expected = [
      { id: "1", v: "a2" },
      { id: "3", v: "c" },
    ];
    assert.ok(Number((await sql(`SELECT count() FROM ${physical} FORMAT TabSeparated`)).trim()) > 3, "several versions stored, unmerged");
    assert.deepEqual(await rows(`SELECT * FROM ${view} ORDER BY id`), expected);
    // a filter that would match the old version of a deleted or updated row must not see it
    assert.deepEqual(await rows(`SELECT * FROM ${view} WHERE v = 'b' OR v = 'a'`), []);
    await sql(`SYSTEM START MERGES ${physical}`);
    await sql(`OPTIMIZE TABLE ${physical} FINAL`);
    assert.deepEqual(await rows(`SELECT * FROM ${view} ORDER BY id`), expected);
    // after the merge the tombstone of id 2 is still there, so replaying its insert again changes nothing
    assert.deepEqual(await rows(`SELECT id, _sluice_deleted FROM ${physical} ORDER BY id`), [
      { id: "1", _sluice_deleted: "0" },
      { id: "2", _sluice_deleted: "1" },
      { id: "3", _sluice_deleted: "0" },
    ]);
    await sink.write([events.insert(2n, { id: 2, v: "b" })], signal());
    assert.deepEqual(await rows(`SELECT * FROM ${view} ORDER BY id`), expected);
  });

  test("a live table whose view is missing (a crash after the catalog was saved, before the view was made) gets its view back on open", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    await sink.write([events.insert(1n, { id: 1, v: "a" })], signal());
    await sql(`DROP TABLE ${qualified(database, target)}`);
    const reopened = createSink(`ch_${randomTableName("s")}`);
    await reopened.open(signal());
    try {
      assert.deepEqual(await rows(`SELECT * FROM ${qualified(database, target)}`), [{ id: "1", v: "a" }]);
    } finally {
      await reopened.close();
    }
  });

  test("a table an operator drops, or a column of it, while the sink runs fails that table's changes as a catalog mismatch naming it, not a write failure that stops the daemon; other tables apply", async () => {
    for (const ddl of ["drop table", "drop column"] as const) {
      const changed = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      const other = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([changed.insert(1n, { id: 1, v: "a" }), other.insert(2n, { id: 1, v: "a" })], signal())).failures, []);
      const physical = qualified(database, `${renderTarget(TARGET_TEMPLATE, changed.schema)}__v1`);
      await sql(ddl === "drop table" ? `DROP TABLE ${physical}` : `ALTER TABLE ${physical} DROP COLUMN v`);
      const result = await sink.write([changed.insert(3n, { id: 2, v: "b" }), other.insert(4n, { id: 2, v: "b" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_CATALOG_MISMATCH"]], ddl);
      assert.ok(result.failures[0]!.error.message.includes(changed.schema.table), "names the table");
      assert.match(result.failures[0]!.error.message, ddl === "drop table" ? /table is missing on the server/ : /column is missing on the server/);
      assert.deepEqual((await visibleRows(renderTarget(TARGET_TEMPLATE, other.schema), other.schema)).map((r) => r["id"]), ["1", "2"], "the other table applies");
    }
  });

  test("a table an operator renamed away, or a column of it dropped, and put back while the sink runs: the halted table's next write (sluice halted retry) reads it from the server again and applies", async () => {
    for (const ddl of ["rename table", "drop column"] as const) {
      const changed = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([changed.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      const target = renderTarget(TARGET_TEMPLATE, changed.schema);
      const physical = qualified(database, `${target}__v1`);
      const aside = qualified(database, `${target}_aside`);
      await sql(ddl === "rename table" ? `RENAME TABLE ${physical} TO ${aside}` : `ALTER TABLE ${physical} DROP COLUMN v`);
      const halted = await sink.write([changed.insert(2n, { id: 2, v: "b" })], signal());
      assert.deepEqual(halted.failures.map((f) => (f.error as SluiceError).code), ["SINK_CATALOG_MISMATCH"], ddl);
      if (ddl === "rename table") assert.match(halted.failures[0]!.error.message, /if renamed, rename it back/);
      await sql(ddl === "rename table" ? `RENAME TABLE ${aside} TO ${physical}` : `ALTER TABLE ${physical} ADD COLUMN v Nullable(String)`);
      const retried = await sink.write([changed.insert(2n, { id: 2, v: "b" })], signal());
      assert.deepEqual(retried.failures, [], `${ddl}: put back, the table applies again`);
      assert.deepEqual((await visibleRows(target, changed.schema)).map((r) => [r["id"], r["v"]]), [["1", ddl === "rename table" ? "a" : null], ["2", "b"]]);
    }
  });

  test("a table dropped and created again empty by hand (its saved DDL) while the sink runs is not taken for put back: the retry halts it saying to rebuild it", async () => {
    const changed = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    assert.deepEqual((await sink.write([changed.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    const target = renderTarget(TARGET_TEMPLATE, changed.schema);
    const physical = qualified(database, `${target}__v1`);
    const [{ statement }] = (await rows(`SELECT create_table_query AS statement FROM system.tables WHERE database = '${database}' AND name = '${target}__v1'`)) as [{ statement: string }];
    await sql(`DROP TABLE ${physical}`);
    assert.deepEqual((await sink.write([changed.insert(2n, { id: 2, v: "b" })], signal())).failures.map((f) => (f.error as SluiceError).code), ["SINK_CATALOG_MISMATCH"]);
    await sql(statement);
    for (let retry = 0; retry < 2; retry++) {
      const retried = await sink.write([changed.insert(2n, { id: 2, v: "b" })], signal());
      assert.deepEqual(retried.failures.map((f) => (f.error as SluiceError).code), ["SINK_CATALOG_MISMATCH"], "re-created empty: halted again, not written with row 1 missing");
      assert.match(retried.failures[0]!.error.message, /dropped and created again.*none of the rows written to it.*--rebuild --table T/);
    }
    assert.deepEqual(await rows(`SELECT id FROM ${physical}`), []);
  });

  test("a halted table put back emptied (TRUNCATE TABLE, not created again): the retry's halt names that case and --force; the sink takes it as it is only when told (acceptTargetAsIs)", async () => {
    const emptied = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    assert.deepEqual((await sink.write([emptied.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    const target = renderTarget(TARGET_TEMPLATE, emptied.schema);
    const physical = qualified(database, `${target}__v1`);
    const aside = qualified(database, `${target}__aside`);
    await sql(`RENAME TABLE ${physical} TO ${aside}`);
    assert.deepEqual((await sink.write([emptied.insert(2n, { id: 2, v: "b" })], signal())).failures.map((f) => (f.error as SluiceError).code), ["SINK_CATALOG_MISMATCH"]);
    await sql(`TRUNCATE TABLE ${aside}`);
    await sql(`RENAME TABLE ${aside} TO ${physical}`);
    const retried = await sink.write([emptied.insert(2n, { id: 2, v: "b" })], signal());
    assert.deepEqual(retried.failures.map((f) => (f.error as SluiceError).code), ["SINK_CATALOG_MISMATCH"]);
    const halt = retried.failures[0]!.error;
    assert.match(halt.message, /or emptied \(TRUNCATE TABLE, every partition dropped .*DROP PARTITION.*TTL.*emptied on purpose .*sluice halted retry --sink NAME --table T --force --execute/);
    assert.equal(sink.acceptTargetAsIs(halt, false), true, "a dry run: it could take it");
    assert.equal(sink.acceptTargetAsIs(new Error("value out of range"), true), false, "another halt is not the sink's to overrule");
    assert.deepEqual((await sink.write([emptied.insert(2n, { id: 2, v: "b" })], signal())).failures.map((f) => (f.error as SluiceError).code), ["SINK_CATALOG_MISMATCH"], "still halted after the dry run");
    assert.equal(sink.acceptTargetAsIs(halt, true), true);
    assert.deepEqual((await sink.write([emptied.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    assert.deepEqual(await rows(`SELECT id FROM ${physical}`), [{ id: "2" }]);
  });

  test("a table dropped with its view while the sink is stopped: the sink opens, that table halts as a catalog mismatch saying to rebuild it, the other tables apply; a rebuild brings it back", async () => {
    const dropped = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const other = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const name = `ch_${randomTableName("s")}`;
    const first = createSink(name);
    await first.open(signal());
    assert.deepEqual((await first.write([dropped.insert(1n, { id: 1, v: "a" }), other.insert(2n, { id: 1, v: "a" })], signal())).failures, []);
    await first.close();
    const target = renderTarget(TARGET_TEMPLATE, dropped.schema);
    await sql(`DROP TABLE ${qualified(database, target)}`);
    await sql(`DROP TABLE ${qualified(database, `${target}__v1`)}`);
    const reopened = createSink(name);
    await reopened.open(signal());
    try {
      const result = await reopened.write([dropped.insert(3n, { id: 2, v: "b" }), other.insert(4n, { id: 2, v: "b" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_CATALOG_MISMATCH"]]);
      assert.ok(result.failures[0]!.error.message.includes(dropped.schema.table), "names the table");
      assert.match(result.failures[0]!.error.message, /table is missing on the server/);
      assert.match(result.failures[0]!.error.message, /sluice replay --sink NAME --from-beginning --rebuild --table T/);
      assert.deepEqual((await visibleRows(renderTarget(TARGET_TEMPLATE, other.schema), other.schema)).map((r) => r["id"]), ["1", "2"], "the other table applies");
      // The rebuild the error names: the whole history into a new generation, swapped in; live writes go on after it.
      await reopened.prepareRebuild(dropped.schema, signal());
      assert.deepEqual((await reopened.writeRebuild([dropped.insert(1n, { id: 1, v: "a" }), dropped.insert(3n, { id: 2, v: "b" })], signal())).failures, []);
      // The rebuild's row-count check before the swap: no live table to compare with (it failed with UNKNOWN_TABLE, refusing the rebuild).
      assert.deepEqual(await reopened.rebuildRowCounts(dropped.schema, signal()), { live: null, shadow: 2 });
      await reopened.swap(dropped.schema, signal());
      assert.deepEqual((await reopened.write([dropped.insert(5n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual((await visibleRows(target, dropped.schema)).map((r) => r["id"]).sort(), ["1", "2", "3"]);
    } finally {
      await reopened.close();
    }
  });

  test("a rebuild's swap stopped between its view switch and its catalog save (kill -9, or a failed save and the rebuild's abort) is finished: the table the view reads is kept through later rebuilds and aborts", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    const view = qualified(database, target);
    const name = `ch_${randomTableName("s")}`;
    /** The swap's view switch alone (the RENAME of #replaceView), the catalog still calling `physical` the shadow. */
    const switchView = async (physical: string) => {
      const [entry] = await rows(`SELECT argMax(columns, _seq) AS columns FROM ${qualified(database, "_sluice_tables")} WHERE physical = '${physical}'`);
      await sql(createViewSql(database, `${target}__view_next_test`, physical, JSON.parse(entry!["columns"]!)));
      await sql(`RENAME TABLE ${view} TO ${qualified(database, `${target}__view_old_test`)}, ${qualified(database, `${target}__view_next_test`)} TO ${view}`);
      await sql(`DROP TABLE ${qualified(database, `${target}__view_old_test`)}`);
    };
    const inUse = () =>
      rows(
        `SELECT physical, argMax(role, _seq) AS role FROM ${qualified(database, "_sluice_tables")} WHERE target = '${target}' ` +
          "GROUP BY physical HAVING argMax(dropped, _seq) = 0 ORDER BY physical",
      );
    const ids = async () => (await rows(`SELECT id FROM ${view} ORDER BY id`)).map((r) => r["id"]);
    const first = createSink(name);
    await first.open(signal());
    assert.deepEqual((await first.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    await first.prepareRebuild(events.schema, signal());
    assert.deepEqual((await first.writeRebuild([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    await switchView(`${target}__v2`);
    await first.close(); // killed before the catalog save
    const restarted = createSink(name);
    await restarted.open(signal());
    try {
      assert.deepEqual(await inUse(), [{ physical: `${target}__v2`, role: "live" }], "the swap is finished at open");
      assert.deepEqual((await restarted.write([events.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
      assert.deepEqual(await ids(), ["1", "2"]);
      // The next rebuild drops no table the view reads, nor does its abort.
      await restarted.prepareRebuild(events.schema, signal());
      assert.deepEqual(await ids(), ["1", "2"]);
      assert.deepEqual((await restarted.write([events.insert(3n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual(await ids(), ["1", "2", "3"]);
      await restarted.abortRebuild(events.schema, signal());
      assert.deepEqual(await ids(), ["1", "2", "3"]);
      assert.deepEqual(await inUse(), [{ physical: `${target}__v2`, role: "live" }]);
      // In a running process: the view switched, the catalog save failed, and the rebuild aborts (daemon/rebuild.ts aborts on any failure).
      await restarted.prepareRebuild(events.schema, signal());
      const history = [events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" }), events.insert(3n, { id: 3, v: "c" })];
      assert.deepEqual((await restarted.writeRebuild(history, signal())).failures, []);
      await switchView(`${target}__v4`);
      await restarted.abortRebuild(events.schema, signal());
      assert.deepEqual(await inUse(), [{ physical: `${target}__v4`, role: "live" }], "the abort finishes the swap the view shows");
      assert.deepEqual((await restarted.write([events.insert(4n, { id: 4, v: "d" })], signal())).failures, []);
      assert.deepEqual(await ids(), ["1", "2", "3", "4"]);
    } finally {
      await restarted.close();
    }
  });

  /**
   * A rebuild's swap stopped between its view switch's two catalog saves, as an older Sluice left it: the view reads
   * __v2, both __v1 and __v2 recorded live. Row 1 is at version 20: 'a' in __v1, 'b' (the rebuild's) in __v2.
   */
  async function leaveTwoLive(events: Events, target: string, name: string): Promise<void> {
    const view = qualified(database, target);
    const tables = qualified(database, "_sluice_tables");
    const first = createSink(name);
    await first.open(signal());
    try {
      assert.deepEqual((await first.write([events.insert(20n, { id: 1, v: "a" })], signal())).failures, []);
      await first.prepareRebuild(events.schema, signal());
      assert.deepEqual((await first.writeRebuild([events.insert(20n, { id: 1, v: "b" })], signal())).failures, []);
      // The swap's view switch and its first save (the new table live; before, the old table's drop was a second save), then killed.
      const [entry] = await rows(`SELECT argMax(columns, _seq) AS columns FROM ${tables} WHERE physical = '${target}__v2'`);
      await sql(createViewSql(database, `${target}__view_next_test`, `${target}__v2`, JSON.parse(entry!["columns"]!)));
      await sql(`RENAME TABLE ${view} TO ${qualified(database, `${target}__view_old_test`)}, ${qualified(database, `${target}__view_next_test`)} TO ${view}`);
      await sql(`DROP TABLE ${qualified(database, `${target}__view_old_test`)}`);
      await sql(
        `INSERT INTO ${tables} (target, physical, role, generation, columns, dropped, _seq) SELECT target, physical, 'live', argMax(generation, _seq), argMax(columns, _seq), 0, max(_seq) + 1 ` +
          `FROM ${tables} WHERE physical = '${target}__v2' GROUP BY target, physical`,
      );
    } finally {
      await first.close();
    }
  }

  const inUse = (target: string) =>
    rows(`SELECT physical, argMax(role, _seq) AS role FROM ${qualified(database, "_sluice_tables")} WHERE target = '${target}' GROUP BY physical HAVING argMax(dropped, _seq) = 0 ORDER BY physical`);

  test("a rebuild's swap stopped between its view switch's two catalog saves (the new table live, the old one not yet dropped): the sink opened over two live tables keeps the one the view reads, copies into it the rows only the other holds and the other's truncate, and writes there", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    const view = qualified(database, target);
    const name = `ch_${randomTableName("s")}`;
    await leaveTwoLive(events, target, name);
    // An older Sluice then wrote (and acknowledged) a row into the other table only, and applied a source TRUNCATE at version 8 there:
    // the repair must not drop the row with its table, nor show again the kept table's rows the truncate hid (6, at version 6).
    await sql(`INSERT INTO ${qualified(database, `${target}__v1`)} (id, v, _sluice_version, _sluice_deleted) VALUES (5, 'only in v1', 25, 0)`);
    await sql(`INSERT INTO ${qualified(database, `${target}__v2`)} (id, v, _sluice_version, _sluice_deleted) VALUES (6, 'in v2 below the truncate', 6, 0)`);
    await sql(`INSERT INTO ${qualified(database, "_sluice_truncates")} (physical, version) VALUES ('${target}__v1', 8)`);
    const restarted = createSink(name);
    await restarted.open(signal());
    try {
      assert.deepEqual(await inUse(target), [{ physical: `${target}__v2`, role: "live" }], "the table the view reads is kept, the other dropped");
      for (let id = 10; id < 15; id++) assert.deepEqual((await restarted.write([events.insert(BigInt(id), { id, v: `new ${id}` })], signal())).failures, []);
      assert.deepEqual(
        (await rows(`SELECT id, v FROM ${view} ORDER BY id`)).map((r) => `${r["id"]} ${r["v"]}`),
        ["1 b", "5 only in v1", "10 new 10", "11 new 11", "12 new 12", "13 new 13", "14 new 14"],
        "the other table's row it lacked was copied (its same change, 1 a, was not), its truncate hides 6, and the writes went where the view reads",
      );
    } finally {
      await restarted.close();
    }
  });

  test("two live tables whose key columns differ in type (a rebuild for a sorting-key type change): the other's rows are copied as the kept table's types; rows that cannot be converted leave the other table on the server, out of the catalog, and the sink starts", async () => {
    for (const [value, copied] of [["7", true], ["x7", false]] as const) {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      const target = renderTarget(TARGET_TEMPLATE, events.schema);
      const view = qualified(database, target);
      const other = qualified(database, `${target}__v1`);
      const name = `ch_${randomTableName("s")}`;
      await leaveTwoLive(events, target, name);
      // The older table keyed by text: its rows '1' (the change __v2 holds as 1) and one only it holds.
      const [v] = await rows(`SELECT type FROM system.columns WHERE database = '${database}' AND table = '${target}__v1' AND name = 'v'`);
      await sql(`DROP TABLE ${other}`);
      await sql(`CREATE TABLE ${other} (id String, v ${v!["type"]}, _sluice_version UInt64, _sluice_deleted UInt8) ENGINE = ReplacingMergeTree(_sluice_version) ORDER BY (id)`);
      await sql(`INSERT INTO ${other} (id, v, _sluice_version, _sluice_deleted) VALUES ('1', 'a', 20, 0), ('${value}', 'only in v1', 25, 0)`);
      const restarted = createSink(name);
      await restarted.open(signal());
      try {
        assert.deepEqual(await inUse(target), [{ physical: `${target}__v2`, role: "live" }]);
        assert.deepEqual(
          (await rows(`SELECT id, v FROM ${view} ORDER BY id`)).map((r) => `${r["id"]} ${r["v"]}`),
          copied ? ["1 b", "7 only in v1"] : ["1 b"],
        );
        const left = await rows(`SELECT count() AS n FROM system.tables WHERE database = '${database}' AND name = '${target}__v1'`);
        assert.deepEqual(left, [{ n: copied ? "0" : "1" }], copied ? "copied, then dropped" : "not convertible: kept on the server");
        assert.deepEqual((await restarted.write([events.insert(30n, { id: 2, v: "new" })], signal())).failures, []);
      } finally {
        await restarted.close();
      }
    }
  });

  test("a view dropped by hand while the sink runs is made again by a later write, not only at the next open; a table dropped with it is left to halt", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const gone = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const checking = new ClickHouseSink(
      testSinkConfig("clickhouse", { name: `ch_${randomTableName("s")}`, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: TARGET_TEMPLATE, on_error: "halt" }),
      { logger: testLogger(), viewCheckMs: 0 },
    );
    await checking.open(signal());
    try {
      assert.deepEqual((await checking.write([events.insert(1n, { id: 1, v: "a" }), gone.insert(2n, { id: 1, v: "a" })], signal())).failures, []);
      const target = renderTarget(TARGET_TEMPLATE, events.schema);
      const goneTarget = renderTarget(TARGET_TEMPLATE, gone.schema);
      await sql(`DROP TABLE ${qualified(database, target)}`);
      await sql(`DROP TABLE ${qualified(database, goneTarget)}`);
      await sql(`DROP TABLE ${qualified(database, `${goneTarget}__v1`)}`);
      const result = await checking.write([events.insert(3n, { id: 2, v: "b" }), gone.insert(4n, { id: 2, v: "b" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, (f.error as SluiceError).code]), [[1, "SINK_CATALOG_MISMATCH"]], "the table dropped with its view halts; the write goes on");
      assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["id"]).sort(), ["1", "2"]);
      // The staged write's path too.
      await sql(`DROP TABLE ${qualified(database, target)}`);
      const staged = checking.stagedWrite(signal());
      assert.ok(staged);
      assert.equal(await staged.stage(events.insert(5n, { id: 3, v: "c" }).event), true);
      await staged.write(signal());
      assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["id"]).sort(), ["1", "2", "3"]);
    } finally {
      await checking.close();
    }
  });

  test("a table dropped by hand while the sink runs halts at a change whose unchanged-TOAST values are read from it, as at an insert, instead of stopping the sink", async () => {
    const gone = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"], ["n", "integer"]]));
    const other = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const sink = new ClickHouseSink(
      testSinkConfig("clickhouse", { name: `ch_${randomTableName("s")}`, url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: TARGET_TEMPLATE, on_error: "halt" }),
      { logger: testLogger() },
    );
    await sink.open(signal());
    try {
      assert.deepEqual((await sink.write([gone.insert(1n, { id: 1, v: "a", n: 1 }), other.insert(2n, { id: 1, v: "a" })], signal())).failures, []);
      const goneTarget = renderTarget(TARGET_TEMPLATE, gone.schema);
      await sql(`DROP TABLE ${qualified(database, goneTarget)}`);
      await sql(`DROP TABLE ${qualified(database, `${goneTarget}__v1`)}`);
      // The update's unchanged value is read from the stored row, in the dropped table.
      const result = await sink.write([gone.update(3n, { id: 1, v: UNCHANGED, n: 2 }), other.insert(4n, { id: 2, v: "b" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, (f.error as SluiceError).code]), [[0, "SINK_CATALOG_MISMATCH"]], "the dropped table halts; the write goes on");
      assert.deepEqual((await visibleRows(renderTarget(TARGET_TEMPLATE, other.schema), other.schema)).map((r) => r["id"]).sort(), ["1", "2"]);
    } finally {
      await sink.close();
    }
  });

  test("a truncate is recorded by version; the mutation removes older rows; replays stay hidden", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    await sink.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" })], signal());
    await sink.write([events.truncate(10n), events.insert(11n, { id: 3, v: "c" })], signal());
    assert.deepEqual(await rows(`SELECT max(version) AS v FROM ${qualified(database, "_sluice_truncates")} WHERE physical = '${target}__v1'`), [{ v: "10" }]);
    await sink.write([events.insert(2n, { id: 2, v: "b" })], signal());
    assert.deepEqual(await rows(`SELECT * FROM ${qualified(database, target)}`), [{ id: "3", v: "c" }]);
  });

  test("exact values on ClickHouse 18.16: decimals, 64-bit integers, timestamps and dates as integers, bytes, arrays; out-of-range values rejected", async () => {
    const events = new Events(
      tableSchema(randomTableName(), [
        ["id", "integer"],
        ["d", "numeric(38,10)"],
        ["n", "numeric"],
        ["big", "bigint"],
        ["ts", "timestamp with time zone"],
        ["day", "date"],
        ["uid", "uuid"],
        ["raw", "bytea"],
        ["tags", "text[]"],
        ["small", "smallint"],
      ]),
    );
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    const result = await sink.write(
      [
        events.insert(1n, {
          id: 1,
          d: "1234567890123456789012345678.0123456789",
          n: "NaN",
          big: -9223372036854775808n,
          ts: -1234567890123456n,
          day: -3650,
          uid: "6F1C8E36-6B4E-4D2E-9E3E-0C1C8D8C8C8C",
          raw: new Uint8Array([0, 9, 10, 39, 92, 255]),
          tags: ["a'b", null, "tab\there"],
          small: 7,
        }),
        events.insert(2n, { id: 2, d: null, n: null, big: null, ts: null, day: null, uid: null, raw: null, tags: null, small: 40_000 }),
      ],
      signal(),
    );
    assert.equal(result.failures.length, 1);
    assert.equal(result.failures[0]?.index, 1);
    assert.match(result.failures[0]!.error.message, /small.*40000 is out of range/s);
    // (18.16's toString() garbles wide Decimal128 values; its TSV output is right)
    const [row] = await rows(
      `SELECT d, n, big, ts, day, toString(uid) AS uid, hex(raw) AS raw, length(tags) AS n_tags, tags[1] AS t1, isNull(tags[2]) AS t2, tags[3] AS t3 FROM ${qualified(database, target)}`,
    );
    assert.deepEqual(row, {
      d: "1234567890123456789012345678.0123456789",
      n: "NaN",
      big: "-9223372036854775808",
      ts: "-1234567890123456",
      day: "-3650",
      uid: "6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c",
      raw: "00090A275CFF",
      n_tags: "3",
      t1: "a'b",
      t2: "1",
      t3: "tab\there",
    });
  });

  test("unchanged-TOAST columns are re-inserted byte for byte from the stored row, for composite keys too", async () => {
    const events = new Events(tableSchema(randomTableName(), [["tenant", "text"], ["id", "bigint"], ["blob", "bytea"], ["v", "integer"]], ["tenant", "id"]));
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    const bytes = new Uint8Array([0, 1, 2, 9, 10, 13, 92, 39, 200, 255]);
    await sink.write([events.insert(1n, { tenant: "t'1", id: 5n, blob: bytes, v: 1 })], signal());
    await sink.write([events.update(2n, { tenant: "t'1", id: 5n, blob: UNCHANGED, v: 2 })], signal());
    assert.deepEqual(await rows(`SELECT tenant, id, hex(blob) AS blob, v FROM ${qualified(database, target)}`), [
      { tenant: "t'1", id: "5", blob: Buffer.from(bytes).toString("hex").toUpperCase(), v: "2" },
    ]);
  });

  test("floats arrive bit for bit: random Float64 and Float32 bit patterns, -0, subnormals and extremes", async (t) => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["d", "double precision"], ["r", "real"]]));
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    const doubles = [-0, Number.MIN_VALUE, -Number.MIN_VALUE, 2.225073858507201e-308, 2.2250738585072014e-308, Number.MAX_VALUE, -Number.MAX_VALUE, 4.747873547021299e-8];
    const floats = [-0, 2 ** -149, 1.1754942106924411e-38, 1.1754943508222875e-38, 3.4028234663852886e38, -3.4028234663852886e38];
    const bits = Buffer.alloc(8);
    while (doubles.length < 4_000) {
      bits.set(randomBytes(8));
      const n = bits.readDoubleLE(0);
      if (Number.isFinite(n)) doubles.push(n);
    }
    while (floats.length < 4_000) {
      bits.set(randomBytes(4));
      const n = bits.readFloatLE(0);
      if (Number.isFinite(n)) floats.push(n);
    }
    const result = await sink.write(doubles.map((d, i) => events.insert(BigInt(i + 1), { id: i, d, r: floats[i] as number })), signal());
    assert.deepEqual(result.failures, []);
    const reader = new RowBinaryReader(await binary(`SELECT id, d, r FROM ${qualified(database, target)} ORDER BY id`));
    const hex64 = (n: number) => (bits.writeDoubleLE(n), bits.toString("hex"));
    const hex32 = (n: number) => (bits.writeFloatLE(n), bits.toString("hex", 0, 4));
    for (let i = 0; i < doubles.length; i++) {
      assert.equal(reader.int32(), i);
      assert.equal(reader.uint8(), 0);
      assert.equal(hex64(reader.float64()), hex64(doubles[i] as number), `double ${doubles[i]}`);
      assert.equal(reader.uint8(), 0);
      assert.equal(hex32(reader.float32()), hex32(floats[i] as number), `float ${floats[i]}`);
    }
    assert.ok(reader.done);
    // how many of these the server's own text parser would have changed (the old TabSeparated inserts)
    const [changed] = await rows(`SELECT countIf(toFloat64(toString(d)) != d) AS n FROM ${qualified(database, target)}`);
    t.diagnostic(`${changed?.["n"]} of ${doubles.length} doubles change when ClickHouse parses their text`);
  });

  test("unchanged-TOAST columns of every type are re-inserted exactly, under a float key", async () => {
    const events = new Events(
      tableSchema(
        randomTableName(),
        [
          ["k", "double precision"],
          ["f4", "real"],
          ["f8", "double precision"],
          ["dec", "numeric(38,10)"],
          ["small", "numeric(9,2)"],
          ["n", "numeric"],
          ["u", "uuid"],
          ["ts", "timestamp with time zone"],
          ["day", "date"],
          ["tags", "text[]"],
          ["nums", "double precision[]"],
          ["blob", "bytea"],
          ["v", "integer"],
        ],
        ["k"],
      ),
    );
    const view = qualified(database, renderTarget(TARGET_TEMPLATE, events.schema));
    const k = 4.747873547021299e-8; // a key 18.16 would not find again from its text
    const values = {
      f4: Math.fround(-2.3671320903417836e-8),
      f8: -2.906308874953538e-12,
      dec: "-1234567890123456789012345678.0123456789",
      small: "-1.50",
      n: "NaN",
      u: "6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c",
      ts: -1234567890123456n,
      day: -3650,
      tags: ["a'b", null, "tab\there"],
      nums: [-0, null, Number.MIN_VALUE],
      blob: new Uint8Array([0, 1, 9, 10, 92, 39, 255]),
    };
    const columns = Object.keys(values).map(ident).join(", ");
    await sink.write([events.insert(1n, { k, ...values, v: 1 })], signal());
    const stored = await binary(`SELECT ${columns} FROM ${view}`);
    const unchanged = Object.fromEntries(Object.keys(values).map((name) => [name, UNCHANGED]));
    const result = await sink.write([events.update(2n, { k, ...unchanged, v: 2 })], signal());
    assert.deepEqual(result.failures, []);
    assert.deepEqual(await rows(`SELECT v FROM ${view}`), [{ v: "2" }]);
    assert.deepEqual(await binary(`SELECT ${columns} FROM ${view}`), stored);
  });

  test("an unchanged-TOAST value goes into a rebuild's shadow whose column is wider than the live one's", async () => {
    const name = randomTableName();
    const narrow = new Events(tableSchema(name, [["id", "integer"], ["n", "integer"], ["note", "text"]]));
    const wide = new Events(tableSchema(name, [["id", "integer"], ["n", "bigint"], ["note", "text"]]));
    const view = qualified(database, renderTarget(TARGET_TEMPLATE, narrow.schema));
    await sink.write([narrow.insert(1n, { id: 1, n: -7, note: "a" })], signal());
    await sink.prepareRebuild(narrow.schema, signal());
    assert.deepEqual((await sink.writeRebuild([wide.insert(1n, { id: 1, n: -7, note: "a" })], signal())).failures, []);
    // the live table reads n (Int32) from its stored row; the shadow's n is Int64 by now
    assert.deepEqual((await sink.write([narrow.update(2n, { id: 1, n: UNCHANGED, note: "b" })], signal())).failures, []);
    await sink.swap(narrow.schema, signal());
    assert.deepEqual(await rows(`SELECT id, n, note, toTypeName(n) AS type FROM ${view}`), [{ id: "1", n: "-7", note: "b", type: "Nullable(Int64)" }]);
  });

  test("every column type goes in as RowBinary: integer widths at their limits, decimals, floats, times, JSON, bytes, arrays, NULLs", async () => {
    const mysql = new Events(
      tableSchema(
        randomTableName(),
        [
          ["id", "int"],
          ["i8", "tinyint"],
          ["u8", "tinyint unsigned"],
          ["i16", "smallint"],
          ["u16", "smallint unsigned"],
          ["i24", "mediumint"],
          ["u24", "mediumint unsigned"],
          ["i32", "int"],
          ["u32", "int unsigned"],
          ["i64", "bigint"],
          ["u64", "bigint unsigned"],
          ["d18", "decimal(18,4)"],
          ["d5", "decimal(5,2)"],
          ["f", "float"],
          ["bit", "bit(1)"],
          ["j", "json"],
          ["dur", "time"],
          ["dt", "datetime"],
          ["bin", "varbinary(10)"],
        ],
        ["id"],
        { sourceKind: "mysql" },
      ),
    );
    const low = { i8: -128, u8: 0, i16: -32_768, u16: 0, i24: -8_388_608, u24: 0, i32: -2_147_483_648, u32: 0, i64: -9_223_372_036_854_775_808n, u64: 0n };
    const high = { i8: 127, u8: 255, i16: 32_767, u16: 65_535, i24: 8_388_607, u24: 16_777_215, i32: 2_147_483_647, u32: 4_294_967_295, i64: 9_223_372_036_854_775_807n, u64: 18_446_744_073_709_551_615n };
    const rest = { d18: "-99999999999999.9999", d5: "999.99", f: -1.5, bit: true, j: '{"a": [1, "x"]}', dur: -3_020_399_000_000n, dt: 1_700_000_000_123_456n, bin: new Uint8Array([0, 10, 255]) };
    const nulls = Object.fromEntries([...Object.keys(high), ...Object.keys(rest)].map((k) => [k, null]));
    const written = await sink.write([mysql.insert(1n, { id: 1, ...low, ...rest }), mysql.insert(2n, { id: 2, ...high, ...rest }), mysql.insert(3n, { id: 3, ...nulls })], signal());
    assert.deepEqual(written.failures, []);
    const restText = { d18: "-99999999999999.9999", d5: "999.99", f: "-1.5", bit: "1", j: '{"a": [1, "x"]}', dur: "-3020399000000", dt: "1700000000123456", bin: "000AFF" };
    const listed = [...Object.keys(high), ...Object.keys(rest).filter((k) => k !== "bin")].map(ident).join(", ");
    assert.deepEqual(await rows(`SELECT id, ${listed}, hex(bin) AS bin FROM ${qualified(database, renderTarget(TARGET_TEMPLATE, mysql.schema))} ORDER BY id`), [
      { id: "1", ...Object.fromEntries(Object.entries(low).map(([k, v]) => [k, String(v)])), ...restText },
      { id: "2", ...Object.fromEntries(Object.entries(high).map(([k, v]) => [k, String(v)])), ...restText },
      { id: "3", ...nulls, bin: null },
    ]);

    const arrays = new Events(
      tableSchema(randomTableName(), [
        ["id", "bigint"],
        ["ints", "integer[]"],
        ["decs", "numeric(10,2)[]"],
        ["uids", "uuid[]"],
        ["flags", "boolean[]"],
        ["days", "date[]"],
        ["blobs", "bytea[]"],
        ["t", "time"],
        ["small", "smallint"],
      ]),
    );
    const result = await sink.write(
      [
        arrays.insert(1n, {
          id: 1n,
          ints: [1, null, -2_147_483_648],
          decs: ["-12345678.99", null],
          uids: ["6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c"],
          flags: [true, false, null],
          days: [-1, 19_000],
          blobs: [new Uint8Array([0, 39, 92])],
          t: 86_400_000_000n,
          small: -1,
        }),
        arrays.insert(2n, { id: 2n, ints: null, decs: [], uids: null, flags: null, days: null, blobs: null, t: null, small: null }),
      ],
      signal(),
    );
    assert.deepEqual(result.failures, []);
    assert.deepEqual(
      await rows(
        `SELECT id, ints, decs, arrayMap(u -> toString(u), uids) AS uids, flags, days, arrayMap(b -> hex(b), blobs) AS blobs, t, small FROM ${qualified(database, renderTarget(TARGET_TEMPLATE, arrays.schema))} ORDER BY id`,
      ),
      [
        { id: "1", ints: "[1,NULL,-2147483648]", decs: "[-12345678.99,NULL]", uids: "['6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c']", flags: "[1,0,NULL]", days: "[-1,19000]", blobs: "['00275C']", t: "86400000000", small: "-1" },
        { id: "2", ints: "[]", decs: "[]", uids: "[]", flags: "[]", days: "[]", blobs: "[]", t: null, small: null },
      ],
    );
  });

  test("a staged batch leaves what the write leaves: each key's newest change (versions out of order, ties in batch order), deletes, offsets", async () => {
    const columns = [["id", "integer"], ["v", "text"], ["n", "numeric(12,2)"], ["at", "timestamptz"]] as const;
    const staged = new Events(tableSchema(randomTableName(), columns));
    const written = new Events(tableSchema(randomTableName(), columns));
    const batch = (events: Events) => [
      events.insert(2n, { id: 2, v: "b", n: "2.00", at: 1_700_000_000_000_000n }),
      events.update(5n, { id: 1, v: "a5", n: "-0.05", at: null }),
      events.update(3n, { id: 1, v: "a3", n: "3.00", at: null }),
      events.delete(6n, { id: 2 }),
      events.insert(7n, { id: 3, v: "c", n: null, at: -1n }),
      events.insert(7n, { id: 3, v: "c again", n: null, at: -2n }),
      events.insert(7n, { id: 4, v: "d", n: "4.00", at: 0n }),
      events.update(8n, { id: 4, v: "d8", n: "4.08", at: 8n }),
    ];
    for (const events of [staged, written]) assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a", n: "1.00", at: 1n })], signal())).failures, []);
    const write = sink.stagedWrite(signal());
    assert.ok(write);
    for (const { event } of batch(staged)) assert.equal(write.stage(event), true);
    const offsets = [{ topic: staged.topic, partition: 0, offset: 9n }];
    assert.equal(await write.write(signal(), offsets), true);
    assert.deepEqual((await sink.write(batch(written), signal())).failures, []);
    const contents = async (events: Events) => {
      const target = renderTarget(TARGET_TEMPLATE, events.schema);
      return {
        view: await rows(`SELECT * FROM ${qualified(database, target)} ORDER BY id`),
        stored: await rows(`SELECT * FROM ${qualified(database, `${target}__v1`)} ORDER BY id, _sluice_version`),
      };
    };
    const expected = await contents(written);
    assert.deepEqual(expected.view.map((r) => r["v"]), ["a5", "c again", "d8"]);
    assert.deepEqual(await contents(staged), expected, "the same rows, the same versions stored");
    assert.ok((await sink.committedOffsets(signal())).some((o) => o.topic === staged.topic && o.offset === 9n), "the offsets stored after the rows");
  });

  test("a staged write takes the plain case, creating or evolving a table for the first change of it; a table changed since its rows were staged fails the staged write", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"], ["small", "smallint"]]));
    const added = new Events({ ...events.schema, columns: [...events.schema.columns, { name: "extra", dbType: "text", nullable: true, defaultValue: "dflt" }] });
    const more = new Events({ ...added.schema, columns: [...added.schema.columns, { name: "more", dbType: "text", nullable: true }] });
    const target = renderTarget(TARGET_TEMPLATE, events.schema);
    /** One change staged by a staged write of its own. */
    const stage = async (change: { event: ChangeEvent }) => sink.stagedWrite(signal())!.stage(change.event);
    const created = sink.stagedWrite(signal())!;
    assert.equal(await created.stage(events.insert(2n, { id: 1, v: "a", small: 1 }).event), true, "a table not created yet is created for it");
    assert.equal(await created.stage(events.insert(1n, { id: 0, v: "older", small: 0 }).event), true, "an older change (another partition's) without a column given a default");
    assert.equal(await created.write(signal()), false, "no offsets given, none stored");
    assert.equal(await stage(events.insert(2n, { id: 2, v: "b", small: 2 })), true);
    assert.equal(await stage(events.truncate(3n)), false, "a truncate");
    assert.equal(await stage(events.update(3n, { id: 1, v: UNCHANGED, small: 1 })), false, "an unchanged-TOAST value");
    assert.equal(await stage(events.update(3n, { id: 5, v: "moved", small: 1 }, { id: 1, v: "a", small: 1 })), false, "an update that moves the key");
    assert.equal(await stage(events.insert(3n, { id: 3, v: "c", small: 70_000 })), false, "a value the column cannot hold");
    const columns = async () => (await rows(`SELECT name FROM system.columns WHERE database = '${database}' AND table = '${target}__v1' ORDER BY name`)).map((r) => r["name"]);
    // A schema the table must evolve for, after rows were staged under its columns: not staged, and nothing altered.
    const underRows = sink.stagedWrite(signal())!;
    assert.equal(await underRows.stage(events.insert(4n, { id: 4, v: "d", small: 4 }).event), true);
    assert.equal(await underRows.stage(added.insert(5n, { id: 5, v: "e", small: 5, extra: "x" }).event), false);
    assert.ok(!(await columns()).includes("extra"));
    // First in its batch: the table evolves, then changes older than that one are not staged (the column's default is theirs).
    const evolved = sink.stagedWrite(signal())!;
    assert.equal(await evolved.stage(added.insert(6n, { id: 6, v: "f", small: 6, extra: "y" }).event), true);
    assert.ok((await columns()).includes("extra"));
    assert.equal(await evolved.stage(added.insert(5n, { id: 7, v: "g", small: 7, extra: "w" }).event), false, "with the column, older than the evolution");
    assert.equal(await evolved.stage(events.insert(5n, { id: 11, v: "k", small: 11 }).event), true, "without the column, older: the column's default");
    assert.equal(await evolved.stage(events.insert(8n, { id: 8, v: "h", small: 8 }).event), true, "an older schema's change after it");
    assert.equal(await evolved.write(signal()), false);
    // The table evolves between staging and writing (another write): the rows were encoded for its old columns.
    const stale = sink.stagedWrite(signal())!;
    assert.equal(await stale.stage(added.insert(9n, { id: 9, v: "i", small: 9, extra: "z" }).event), true);
    assert.deepEqual((await sink.write([more.insert(10n, { id: 10, v: "j", small: 10, extra: null, more: "m" })], signal())).failures, []);
    await assert.rejects(stale.write(signal()), /changed while a batch was staged/);
    assert.deepEqual(await rows(`SELECT id, extra FROM ${qualified(database, target)} ORDER BY id`), [
      { id: "0", extra: "dflt" },
      { id: "1", extra: "dflt" },
      { id: "6", extra: "y" },
      { id: "8", extra: null },
      { id: "10", extra: null },
      { id: "11", extra: "dflt" },
    ]);
  });
});

describe("ClickHouse offsets written before Sluice recorded topic identities", () => {
  const legacy = `${database}_legacy`;
  after(async () => {
    await sql(`DROP DATABASE IF EXISTS ${ident(legacy)}`);
  });

  test("an offsets table without topic_id keeps its offsets (no identity) and gets the column on first use", async () => {
    await sql(`CREATE DATABASE IF NOT EXISTS ${ident(legacy)}`);
    await sql(
      `CREATE TABLE ${qualified(legacy, "_sluice_offsets")} (sink String, topic String, \`partition\` UInt32, \`offset\` Int64, _seq UInt64) ENGINE = ReplacingMergeTree(_seq) ORDER BY (sink, topic, \`partition\`)`,
    );
    await sql(`INSERT INTO ${qualified(legacy, "_sluice_offsets")} VALUES ('old', 'dep.src.public.t', 0, 42, 1)`);
    const sink = new ClickHouseSink(
      testSinkConfig("clickhouse", { name: "old", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: legacy, native_deletes: false, target: TARGET_TEMPLATE }),
      { logger: testLogger() },
    );
    const signal = AbortSignal.timeout(30_000);
    await sink.open(signal);
    try {
      assert.deepEqual(await sink.committedOffsets(signal), [{ topic: "dep.src.public.t", partition: 0, offset: 42n, topicId: null }]);
      sink.useTopicIds(new Map([["dep.src.public.t", "log-1/7"]]));
      await sink.storeOffsets([{ topic: "dep.src.public.t", partition: 0, offset: 43n }], signal);
      assert.deepEqual(await sink.committedOffsets(signal), [{ topic: "dep.src.public.t", partition: 0, offset: 43n, topicId: "log-1/7" }]);
    } finally {
      await sink.close();
    }
  });

});
