/**
 * `sluice dead-letters`: what a record prints (no value without --values), and a sink's dead-letter
 * topic in a real embedded log, its Avro records decoded through the deployment's built-in registry.
 * The source's data-check topic, written by a running daemon, is test/e2e/dead-letters.int.test.ts.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import type { SluiceConfig } from "../config/schema.ts";
import type { ChangeEvent, StoredRecord, TableSchema } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { testLogger } from "../connectors/sinks/test-config.ts";
import { AvroChangeEncoder } from "../schema-registry/index.ts";
import { openRegistry } from "./components.ts";
import { formatDeadLetter, rowJson, runDeadLettersCommand, sourceDeadLetter, summary } from "./dead-letters-command.ts";
import type { DeadLetter } from "./dead-letters-command.ts";
import { serializeEventBytes } from "./event-json.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-dead-letters-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = testLogger();

const TABLE: TableSchema = {
  source: "src",
  database: "app",
  schema: "shop",
  table: "orders",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "email", dbType: "text", nullable: true },
    { name: "code", dbType: "text", nullable: true },
  ],
};

function insert(id: bigint, email: string | null, code: string): ChangeEvent {
  return {
    op: "c",
    key: { id },
    before: null,
    after: { id, email, code },
    source: { connector: "postgres", name: "src", db: "app", schema: "shop", table: "orders", position: { commit: 10n, change: 9n }, txId: "1", commitTimeMs: 1_700_000_000_000, snapshot: false },
    schema: TABLE,
  };
}

const letter: DeadLetter = {
  partition: 0,
  offset: 7n,
  timestamp: Date.UTC(2026, 11, 7, 8, 0, 0),
  table: "shop.orders",
  key: '{"id":"42"}',
  op: "c",
  reason: "data check regex of column code: the value does not match ^[A-Z]+$",
  check: "regex",
  column: "code",
  images: { before: null, after: { id: 42n, code: "secret-code" } },
  personal: ['sealed with the subject\'s key, shown as stored: ["email"]'],
};

describe("formatDeadLetter", () => {
  it("names the offset, time, table, key, check and reason, and no value without --values", () => {
    const text = formatDeadLetter(letter, { values: false });
    assert.equal(
      text,
      'offset 7  2026-12-07T08:00:00.000Z  shop.orders  op c  key {"id":"42"}\n  check regex, column code\n  reason: data check regex of column code: the value does not match ^[A-Z]+$\n',
    );
    assert.ok(!text.includes("secret-code"));
    assert.ok(!text.includes("personal"));
  });

  it("with --values, the row images as JSON and what the headers say of the personal columns", () => {
    const text = formatDeadLetter(letter, { values: true });
    assert.match(text, /\n {2}after: \{"id":"42","code":"secret-code"\}\n/);
    assert.match(text, /\n {2}personal: sealed with the subject's key, shown as stored: \["email"\]\n$/);
  });

  it("a sink's record names its origin; a name with a line break stays on its line", () => {
    const text = formatDeadLetter({ ...letter, table: "shop.bad\nname", check: undefined, column: undefined, origin: "dep.src.shop.orders:0:12", reason: "Decimal out of range" } as DeadLetter, { values: false, partition: true });
    assert.equal(text.split("\n").length, 4);
    assert.match(text, /^partition 0 offset 7 .* shop\.bad\\u000aname /);
    assert.match(text, /\n {2}from dep\.src\.shop\.orders:0:12\n/);
  });

  it("rowJson: bigints as digits, bytes as hex, an unchanged TOAST value named", () => {
    assert.equal(rowJson({ a: 12345678901234567890n, b: new Uint8Array([1, 255]), c: UNCHANGED as never, d: null }), '{"a":"12345678901234567890","b":"\\\\x01ff","c":"(unchanged)","d":null}');
  });

  it("summary: to the end, or how many more and the --from that goes on", () => {
    assert.equal(summary(3, 0, null, false, { partition: 0, offset: 9n }), "3 dead letters, to the end of the topic\n");
    assert.equal(summary(2, 5, { partition: 0, offset: 11n }, false, null), "2 dead letters shown; 5 more from offset 11 (run again with --from 11, or a larger --limit)\n");
    assert.equal(summary(0, 0, null, false, { partition: 0, offset: 2n }), "no dead letters of that table\n");
  });
});

describe("sourceDeadLetter", () => {
  it("reads the key and the images from the JSON change, the check from the headers", () => {
    const record: StoredRecord = {
      topic: "dep.dlq.src",
      partition: 0,
      offset: 3n,
      key: Buffer.from("shop.orders"),
      value: serializeEventBytes(insert(9007199254740993n, "sluice-enc:v2:abc", "lower")),
      headers: { "sluice.reason": Buffer.from("data check regex of column code: the value does not match ^[A-Z]+$"), "sluice.check": Buffer.from("regex"), "sluice.column": Buffer.from("code"), "sluice.table": Buffer.from("shop.orders"), "sluice.personal.sealed": Buffer.from('["email"]') },
      timestamp: 1_700_000_000_000,
    };
    const read = sourceDeadLetter(record);
    assert.equal(read.key, '{"id":"9007199254740993"}');
    assert.equal(read.check, "regex");
    assert.equal(read.table, "shop.orders");
    assert.deepEqual(read.images?.after, { id: 9007199254740993n, email: "sluice-enc:v2:abc", code: "lower" });
    assert.match(formatDeadLetter(read, { values: true }), /"email":"sluice-enc:v2:abc"/);
    const broken = sourceDeadLetter({ ...record, value: Buffer.from("{not json") });
    assert.match(broken.key, /^\(not readable: /);
    assert.equal(broken.table, "shop.orders");
  });
});

describe("runDeadLettersCommand on an embedded log", () => {
  const path = join(dir, "log.db");
  const config = {
    name: "dep",
    topics: { kind: "embedded", path, partitions: 1, max_record_bytes: 16 * 2 ** 20 },
    schema_registry: { kind: "builtin", compatibility: "BACKWARD" },
    sources: [{ name: "src", kind: "postgres", outbox: { tables: ["shop.outbox"], message_prefix: "ev" } }],
    sinks: [{ name: "wh", kind: "duckdb", tables: ["*.*"] }, { name: "search", kind: "elasticsearch", tables: ["*.*"] }, { name: "odd", kind: "duckdb", tables: ["*.*"], dead_letter_topic: "odd-letters" }],
  } as unknown as SluiceConfig;

  async function run(args: Partial<Parameters<typeof runDeadLettersCommand>[1]>): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = "";
    let stderr = "";
    const code = await runDeadLettersCommand(config, { values: false, ...args }, { stdout: (t) => (stdout += t), stderr: (t) => (stderr += t) }, logger);
    return { code, stdout, stderr };
  }

  it("a sink's dead letters: decoded key, reason and origin; values only with --values; the limit says how many more", async () => {
    const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
    try {
      const { registry } = await openRegistry(config, log);
      const encoder = new AvroChangeEncoder({ registry, topicPrefix: (source) => `dep.${source}` });
      await log.createTopic({ name: "dep.dlq.wh", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      // The deployment's data topics: the tables --table may name.
      for (const name of ["dep.src.shop.orders", "dep.src.shop.other"]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      const records = [];
      for (const id of [1n, 2n, 3n]) {
        const [record] = await encoder.encode(insert(id, `secret-mail-${id}`, `CODE${id}`));
        records.push({
          topic: "dep.dlq.wh",
          key: record!.key,
          value: record!.value,
          headers: { ...record!.headers, "sluice.error": Buffer.from(`Decimal out of range (row ${id})`), "sluice.sink": Buffer.from("wh"), "sluice.origin": Buffer.from(`dep.src.shop.orders:0:${10n + id}`) },
          timestamp: 1_700_000_000_000,
        });
      }
      await log.produce(records);
    } finally {
      await log.close();
    }

    const listed = await run({ sink: "wh", limit: "2" });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^sink "wh": dead-letter topic dep\.dlq\.wh \(offsets 0 to 2\); values not shown/);
    assert.match(listed.stdout, /\noffset 0 {2}2023-11-14T22:13:20\.000Z {2}shop\.orders {2}op c {2}key \{"id":"1"\}\n {2}reason: Decimal out of range \(row 1\)\n {2}from dep\.src\.shop\.orders:0:11\n/);
    assert.match(listed.stdout, /\noffset 1 .*key \{"id":"2"\}/);
    assert.ok(!listed.stdout.includes('"id":"3"'), "past the limit");
    assert.match(listed.stdout, /2 dead letters shown; 1 more from offset 2 \(run again with --from 2/);
    assert.ok(!listed.stdout.includes("secret-mail"), "no value without --values");

    const values = await run({ sink: "wh", from: "2", values: true });
    assert.equal(values.code, 0, values.stderr);
    assert.ok(!values.stdout.includes('"id":"1"'), "--from 2");
    assert.match(values.stdout, /\n {2}after: \{"id":"3","email":"secret-mail-3","code":"CODE3"\}\n/);
    assert.match(values.stdout, /1 dead letter, to the end of the topic\n$/);

    const other = await run({ sink: "wh", table: "shop.other" });
    assert.match(other.stdout, /no dead letters of that table\n$/);
    const byTopic = await run({ sink: "wh", table: "dep.src.shop.orders", limit: "1" });
    assert.equal(byTopic.code, 0, byTopic.stderr);
    assert.match(byTopic.stdout, /, table shop\.orders only;.*\noffset 0 .* shop\.orders /s);
  });

  it("--table names a table the sink or source has, else it is refused naming those it has (exit 2; a typo showed 'no dead letters')", async () => {
    const typo = await run({ sink: "wh", table: "shop.order" });
    assert.equal(typo.code, 2);
    assert.equal(typo.stdout, "");
    assert.equal(typo.stderr, 'sluice dead-letters: sink "wh" has no table "shop.order" (give schema.table or its topic; its tables: shop.orders, shop.other)\n');
    const source = await run({ source: "src", table: "shop.nope\u001b[2J" });
    assert.equal(source.code, 2);
    assert.equal(source.stderr, 'sluice dead-letters: source "src" has no table "shop.nope\\u001b[2J" (give schema.table or its topic; its tables: pg_logical_message.ev, shop.orders, shop.other, shop.outbox)\n');
    // The dead-letter topic is no table of the sink's.
    assert.equal((await run({ sink: "wh", table: "dep.dlq.wh" })).code, 2);
    assert.equal((await run({ source: "src", table: "shop.other" })).code, 0);
    // An outbox table and the logical messages' pseudo-table have dead letters (events that are no event) but no data topic.
    assert.equal((await run({ source: "src", table: "shop.outbox" })).code, 0);
    assert.equal((await run({ source: "src", table: "pg_logical_message.ev" })).code, 0);
    assert.equal((await run({ sink: "wh", table: "shop.outbox" })).code, 2);
  });

  it("a record whose schema the registry does not have is listed with why, its table from its origin (dead_letter_topic honoured)", async () => {
    const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
    try {
      await log.createTopic({ name: "odd-letters", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      const unknownSchema = Buffer.from([0, 0, 0, 0, 99, 2, 4]);
      await log.produce([1, 2].map((n) => ({ topic: "odd-letters", key: null, value: unknownSchema, headers: { "sluice.error": Buffer.from("refused"), "sluice.origin": Buffer.from(`dep.src.shop.orders:0:${n}`) }, timestamp: 0 })));
    } finally {
      await log.close();
    }
    const listed = await run({ sink: "odd", values: true });
    assert.equal(listed.code, 0, listed.stderr);
    const lines = listed.stdout.split("\n").filter((line) => line.startsWith("offset "));
    assert.equal(lines.length, 2, listed.stdout);
    for (const line of lines) assert.match(line, /  shop\.orders  key \(not decoded: .*99/);
    assert.match(listed.stdout, /values: \(the record could not be read: see the key\)/);
  });

  it("--table of a table with no data topic but with dead letters reads them: every change dead-lettered, or its topic deleted", async () => {
    const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
    try {
      // A source whose data check dead-lettered every change of shop.checked: its data topic was never created.
      await log.createTopic({ name: "dep.dlq.src", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      const headers = { "sluice.reason": Buffer.from("data check regex of column code"), "sluice.check": Buffer.from("regex"), "sluice.column": Buffer.from("code"), "sluice.table": Buffer.from("shop.checked") };
      await log.produce([{ topic: "dep.dlq.src", key: Buffer.from("shop.checked"), value: serializeEventBytes({ ...insert(5n, null, "lower"), schema: { ...TABLE, table: "checked" } }), headers, timestamp: 0 }]);
      // A sink's dead letter of a table whose data topic was deleted since.
      await log.produce([{ topic: "dep.dlq.wh", key: null, value: Buffer.from([0, 0, 0, 0, 99, 2, 4]), headers: { "sluice.error": Buffer.from("refused"), "sluice.origin": Buffer.from("dep.src.shop.gone:0:7") }, timestamp: 0 }]);
    } finally {
      await log.close();
    }
    const checked = await run({ source: "src", table: "shop.checked" });
    assert.equal(checked.code, 0, checked.stderr);
    assert.match(checked.stdout, /, table shop\.checked only;.*\noffset 0 .* shop\.checked /s);
    const gone = await run({ sink: "wh", table: "shop.gone" });
    assert.equal(gone.code, 0, gone.stderr);
    assert.match(gone.stdout, /\noffset 3 .* shop\.gone /);
    // A name no dead letter has and no topic either is still refused, naming the tables.
    const typo = await run({ source: "src", table: "shop.checkd" });
    assert.equal(typo.code, 2);
    assert.match(typo.stderr, /source "src" has no table "shop\.checkd" \(give schema\.table or its topic; its tables: /);
  });

  it("--messages reads the source's logical messages' dead-letter topic <deployment>.dlq.<source>.messages; it goes with --source only", async () => {
    const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
    try {
      await log.createTopic({ name: "dep.dlq.src.messages", partitions: 1, retentionMs: null, retentionBytes: 2 ** 30, compacted: false });
      const message: TableSchema = { ...TABLE, schema: "pg_logical_message", table: "ev", key: [], columns: [{ name: "content", dbType: "text", nullable: true }] };
      const event: ChangeEvent = { ...insert(1n, null, "x"), key: {}, after: { content: "not json {" }, schema: message };
      const headers = { "sluice.reason": Buffer.from("outbox pg_logical_message.ev: the logical message's content is not JSON"), "sluice.check": Buffer.from("outbox"), "sluice.column": Buffer.from("content"), "sluice.table": Buffer.from("pg_logical_message.ev") };
      await log.produce([{ topic: "dep.dlq.src.messages", key: Buffer.from("pg_logical_message.ev"), value: serializeEventBytes(event), headers, timestamp: 0 }]);
    } finally {
      await log.close();
    }
    const listed = await run({ source: "src", messages: true, table: "pg_logical_message.ev" });
    assert.equal(listed.code, 0, listed.stderr);
    assert.match(listed.stdout, /^source "src": dead-letter topic dep\.dlq\.src\.messages \(offsets 0 to 0\), table pg_logical_message\.ev only;.*\noffset 0 .* pg_logical_message\.ev .*\n {2}check outbox, column content\n {2}reason: outbox pg_logical_message\.ev: the logical message's content is not JSON\n/s);
    const sink = await run({ sink: "wh", messages: true });
    assert.equal(sink.code, 2);
    assert.match(sink.stderr, /--messages goes with --source/);
  });

  it("a topic never written: no dead letters; an unknown name lists the known ones (exit 2)", async () => {
    const none = await run({ sink: "search" });
    assert.equal(none.code, 0, none.stderr);
    assert.equal(none.stdout, 'sink "search": no dead letters (its dead-letter topic dep.dlq.search does not exist yet: nothing was ever dead-lettered)\n');
    const unknown = await run({ sink: "nope" });
    assert.equal(unknown.code, 2);
    assert.equal(unknown.stderr, 'sluice dead-letters: no sink "nope" in the config; sinks: wh, search, odd\n');
    const source = await run({ source: "nope" });
    assert.equal(source.stderr, 'sluice dead-letters: no source "nope" in the config; sources: src\n');
    const both = await run({ sink: "wh", source: "src" });
    assert.equal(both.code, 2);
    assert.match(both.stderr, /give --sink NAME or --source NAME \(one of them\)/);
    const limit = await run({ sink: "wh", limit: "0" });
    assert.equal(limit.code, 2);
    assert.match(limit.stderr, /--limit takes a whole number of records from 1 to 999999999, not "0"/);
    // Found by the live probe: 20 digits were refused as not "above 0".
    const large = await run({ sink: "wh", limit: "99999999999999999999" });
    assert.equal(large.code, 2);
    assert.match(large.stderr, /--limit takes a whole number of records from 1 to 999999999, not "99999999999999999999"/);
  });
});
