/**
 * The ClickHouse sink against the real server from test/services/ (18.16): the shared
 * conformance suite, then ClickHouse specifics (the view before and after merges, truncate
 * versions, exact types on an old server). Each run uses its own database, dropped at the end.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { ClickHouseLogLevel, createClient } from "@clickhouse/client";
import { clickhouse } from "../../test/services/ports.ts";
import type { TableSchema } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { sinkConformanceSuite, TARGET_TEMPLATE } from "../sinks/conformance.ts";
import type { VisibleRow } from "../sinks/conformance.ts";
import { logicalType } from "../sinks/logical-type.ts";
import { renderTarget } from "../sinks/naming.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { ClickHouseSink } from "./clickhouse-sink.ts";
import { ident, qualified } from "./ddl.ts";
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
});
