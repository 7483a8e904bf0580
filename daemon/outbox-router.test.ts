/**
 * The outbox router on its own: which changes become events, what a record carries, Avro
 * payloads under a registered schema, and rows that are no events (a typed error that halts the
 * outbox table in capture).
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import avro from "avsc";
import { loadConfigText } from "../config/load.ts";
import type { ChangeEvent, ProducedRecord, Row, TableSchema, TopicLog, TopicSpec } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { logicalMessageEvent, logicalMessageTable } from "../connectors/postgres/logical-messages.ts";
import { validateSpec } from "../connectors/topics/spec.ts";
import { LocalRegistry } from "../schema-registry/local-registry.ts";
import { openMemoryStore } from "../schema-registry/log-store.ts";
import { unframe } from "../schema-registry/wire-format.ts";
import { deserializeEventBytes } from "./event-json.ts";
import { OutboxRouter } from "./outbox-router.ts";
import type { OutboxDeadLetters } from "./outbox-router.ts";
import { durableWork, runDurableWork } from "./when-durable.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-outbox-"));
const schemaFile = join(dir, "order.avsc");
writeFileSync(schemaFile, JSON.stringify({ type: "record", name: "OrderChanged", fields: [{ name: "total", type: "long" }, { name: "note", type: ["null", "string"], default: null }] }));

function config(outbox: string) {
  return loadConfigText(
    "test.yaml",
    `name: dep
sources:
  - kind: postgres
    name: pg
    user: u
    database: shop
    tables: ["public.*"]
    outbox:
${outbox}
`,
  );
}

const OUTBOX: TableSchema = {
  source: "pg",
  database: "shop",
  schema: "public",
  table: "outbox",
  sourceKind: "postgres",
  columns: ["id", "aggregatetype", "aggregateid", "type", "payload"].map((name) => ({ name, dbType: "text", nullable: name === "payload" })),
  key: ["id"],
};

function change(op: ChangeEvent["op"], after: Row | null, snapshot = false, schema: TableSchema = OUTBOX): ChangeEvent {
  return {
    op,
    key: {},
    before: null,
    after,
    source: { connector: "postgres", name: "pg", db: "shop", schema: schema.schema, table: schema.table, position: { commit: 10n, change: 5n }, txId: "1", commitTimeMs: 1_000, snapshot },
    schema,
  };
}

const row = (payload: string | null): Row => ({ id: "e1", aggregatetype: "order", aggregateid: "o-7", type: "order.paid", payload });

async function router(outbox: string) {
  const created: string[] = [];
  const log = { createTopic: async (spec: { name: string }) => void created.push(spec.name), topicNames: async () => [...created] } as unknown as TopicLog;
  const passed: ChangeEvent[] = [];
  const inner = { encode: async (event: ChangeEvent): Promise<ProducedRecord[]> => (passed.push(event), []) };
  const registry = new LocalRegistry(await openMemoryStore());
  const cfg = config(outbox);
  return { router: new OutboxRouter(cfg, cfg.sources[0] as never, inner, log, registry), created, passed, registry };
}

test("an inserted outbox row becomes one record: topic by aggregate type, key the aggregate id, headers id and type, the JSON payload as it is", async () => {
  const { router: r, created } = await router('      tables: ["public.outbox"]');
  const [record, ...rest] = await r.encode(change("c", row('{"total": 3}')));
  assert.equal(rest.length, 0);
  assert.equal(record?.topic, "dep.outbox.order");
  assert.equal(Buffer.from(record!.key!).toString(), "o-7");
  assert.equal(Buffer.from(record!.value!).toString(), '{"total": 3}');
  assert.equal(Buffer.from(record!.headers!["id"]!).toString(), "e1");
  assert.equal(Buffer.from(record!.headers!["type"]!).toString(), "order.paid");
  assert.equal(record?.timestamp, 1_000);
  assert.deepEqual(created, ["dep.outbox.order"]);
  assert.equal((await r.encode(change("c", row(null))))[0]?.value, null, "a null payload is a tombstone");
});

test("updates, deletes, truncates and snapshot rows of an outbox table are no events; other tables go to the table encoder", async () => {
  const { router: r, passed } = await router('      tables: ["public.outbox"]\n      table_mode: insert-then-delete');
  assert.deepEqual(await r.encode(change("u", row("{}"))), []);
  assert.deepEqual(await r.encode(change("d", null)), []);
  assert.deepEqual(await r.encode(change("t", null)), []);
  assert.deepEqual(await r.encode(change("r", row("{}"), true)), []);
  const other = change("c", { id: 1 }, false, { ...OUTBOX, table: "items" });
  await r.encode(other);
  assert.deepEqual(passed, [other]);
});

test("a logical message with the prefix: its JSON fields are the parts, an object payload is published as JSON", async () => {
  const { router: r } = await router('      message_prefix: outbox\n      topic: "{source}.{aggregate_type}.events"\n      aggregate_types: ["cust omer"]');
  const table = logicalMessageTable("pg", "shop", "outbox");
  const content = Buffer.from(JSON.stringify({ id: "m1", aggregatetype: "cust omer", aggregateid: 42, type: "created", payload: { name: "Ann" } }));
  const [record] = await r.encode(logicalMessageEvent(table, content, { sourceName: "pg", position: { commit: 9n, change: 8n }, txId: "2", commitTimeMs: 5, snapshot: false }));
  assert.equal(record?.topic, "pg.cust_omer.events");
  assert.equal(Buffer.from(record!.key!).toString(), "42");
  assert.deepEqual(JSON.parse(Buffer.from(record!.value!).toString()), { name: "Ann" });
});

test("Avro payloads: encoded with the aggregate type's schema, registered under <topic>-value, Confluent-framed", async () => {
  const { router: r, registry } = await router(`      tables: ["public.outbox"]\n      payload:\n        format: avro\n        schemas:\n          order: ${schemaFile}`);
  const [record] = await r.encode(change("c", row('{"total": 12, "note": "x"}')));
  const { schemaId, payload } = unframe(record!.value!);
  const registered = await registry.getLatest("dep.outbox.order-value");
  assert.equal(registered?.id, schemaId);
  assert.deepEqual({ ...(avro.Type.forSchema(JSON.parse(registered!.schema) as never).fromBuffer(payload) as object) }, { total: 12, note: "x" });
});

test("an Avro schema file that is a device or larger than 4 MiB is refused, naming the file, not read without end", async () => {
  const large = join(dir, "large.avsc");
  writeFileSync(large, `${JSON.stringify({ type: "record", name: "OrderChanged", fields: [{ name: "total", type: "long" }] })}${" ".repeat(4 * 1024 * 1024)}`);
  const { router: r } = await router(`      tables: ["public.outbox"]\n      payload:\n        format: avro\n        schemas:\n          order: ${large}\n          device: /dev/zero`);
  await assert.rejects(r.encode(change("c", row('{"total": 12}'))), /cannot read the Avro schema file .*large\.avsc: .*more than the 4 MiB such a file may hold \(EFBIG\)/);
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "device" })), /cannot read the Avro schema file \/dev\/zero: not a regular file \(a device\) \(ENOTREG\)/);
});

test("a row that is no event (missing aggregate id, payload its schema refuses) fails with OUTBOX_EVENT_INVALID naming the table; an aggregate type with no schema fails with OUTBOX_SCHEMA_MISSING", async () => {
  const { router: r } = await router(`      tables: ["public.outbox"]\n      payload:\n        format: avro\n        schemas:\n          order: ${schemaFile}`);
  const invalid = (error: unknown) => error instanceof SluiceError && error.code === "OUTBOX_EVENT_INVALID" && error.context.table === "public.outbox";
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregateid: null })), (e) => invalid(e) && /aggregate id \(column aggregateid\)/.test((e as Error).message));
  await assert.rejects(r.encode(change("c", row('{"total": "twelve"}'))), (e) => invalid(e) && /does not fit the Avro schema/.test((e as Error).message));
  // The refusal names the field and its type, never the value (it may be personal; a dead letter's reason is not sealed).
  await assert.rejects(r.encode(change("c", row('{"total": "ann.secret@example.com"}'))), (e) => invalid(e) && /field total is not a long/.test((e as Error).message) && !(e as Error).message.includes("ann.secret"));
  await assert.rejects(r.encode(change("c", row('{"total": ann.secret@example.com}'))), (e) => invalid(e) && /the payload is not JSON/.test((e as Error).message) && !(e as Error).message.includes("ann.secret"));
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "invoice" })), (e) => e instanceof SluiceError && e.code === "OUTBOX_SCHEMA_MISSING" && e.context.table === "public.outbox" && /no schema for aggregate type "invoice"\. Change the config and restart: the events wait, parked.*sluice halted skip --source pg --table public\.outbox/.test(e.message) && !/halted retry/.test(e.message));
});

test("an outbox table the source does not capture, or a topic among the sinks' data topics, is refused at start", async () => {
  await assert.rejects(router('      tables: ["other.outbox"]'), (e) => e instanceof SluiceError && /outbox table other.outbox is not among the source's tables/.test(e.message));
  await assert.rejects(router('      tables: ["public.outbox"]\n      topic: "{deployment}.{source}.{aggregate_type}"'), (e) => e instanceof SluiceError && /where sinks read row changes/.test(e.message));
});

test("an aggregate type (a value any writer of the outbox chooses) whose topic is Sluice's own, a source's data topic or one the log refuses is OUTBOX_EVENT_INVALID", async () => {
  const created: string[] = [];
  const log = {
    createTopic: async (spec: TopicSpec) => {
      validateSpec(spec);
      created.push(spec.name);
    },
    topicNames: async () => [...created],
  } as unknown as TopicLog;
  const cfg = config('      tables: ["public.outbox"]\n      topic: "{deployment}.{aggregate_type}"');
  const r = new OutboxRouter(cfg, cfg.sources[0] as never, { encode: async () => [] }, log, new LocalRegistry(await openMemoryStore()));
  const invalid = (pattern: RegExp) => (error: unknown) => error instanceof SluiceError && error.code === "OUTBOX_EVENT_INVALID" && pattern.test(error.message);
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "sluice.checkpoints" })), invalid(/one of Sluice's own topics/));
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "pg.public.users" })), invalid(/row changes of source pg/));
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "a".repeat(300) })), invalid(/topic name the topic log refuses/));
  await r.encode(change("c", row("{}")));
  assert.deepEqual(created, ["dep.order"]);
});

test("a logical message whose payload is nested thousands deep (anyone connected may send one) is OUTBOX_EVENT_INVALID, refused unread, not a stack overflow that stops the source", async () => {
  const { router: r } = await router("      message_prefix: outbox\n      aggregate_types: [x]");
  const deep = "[".repeat(20_000) + "]".repeat(20_000);
  const content = Buffer.from(`{"id":"m1","aggregatetype":"x","aggregateid":${deep},"type":"t","payload":${deep}}`);
  const event = logicalMessageEvent(logicalMessageTable("pg", "shop", "outbox"), content, { sourceName: "pg", position: { commit: 9n, change: 8n }, txId: "2", commitTimeMs: 5, snapshot: false });
  await assert.rejects(r.encode(event), (error: unknown) => error instanceof SluiceError && error.code === "OUTBOX_EVENT_INVALID" && /refused unread: its arrays and objects are nested more than 1000 deep/.test(error.message));
});

/** A router with a dead-letter place, as the daemon makes it; `counted` gets each dead letter's table and reason. */
async function deadLetteringRouter(outbox: string, maxRecordBytes?: number, withoutTypes = false) {
  const created: string[] = [];
  const log = { createTopic: async (spec: { name: string }) => void created.push(spec.name), topicNames: async () => [...created] } as unknown as TopicLog;
  const counted: string[] = [];
  const deadLetters: OutboxDeadLetters = { topic: "dep.dlq.pg", messageTopic: "dep.dlq.pg.messages", create: async (topic) => void created.push(topic), onDeadLetter: (table, reason) => void counted.push(`${table} ${reason}`) };
  const cfg = config(outbox);
  if (maxRecordBytes !== undefined) (cfg.topics as { max_record_bytes: number }).max_record_bytes = maxRecordBytes;
  // The config refuses message_prefix without aggregate_types; the router keeps its own rule for a config built otherwise.
  if (withoutTypes) delete (cfg.sources[0] as { outbox: { aggregate_types?: string[] } }).outbox.aggregate_types;
  const router = new OutboxRouter(cfg, cfg.sources[0] as never, { encode: async () => [] }, log, new LocalRegistry(await openMemoryStore()), undefined, deadLetters);
  // Each encoding written at once, as capture writes a batch: a dead letter is counted once it is durable.
  const encode = async (event: ChangeEvent) => {
    const records = await router.encode(event);
    runDurableWork(durableWork(records));
    return records;
  };
  return { router: { encode }, created, counted };
}

const origin = { sourceName: "pg", position: { commit: 0x16b3750n, change: 0x16b3748n }, txId: "2", commitTimeMs: 5, snapshot: false };
const text = (bytes: Uint8Array | undefined) => (bytes === undefined ? undefined : Buffer.from(bytes).toString("utf8"));

test("on_invalid dead-letter (the default): a message that is no event becomes one record of <deployment>.dlq.<source>.messages, the change kept whole, the reason naming stream, position and why", async () => {
  const { router: r, created, counted } = await deadLetteringRouter('      tables: ["public.outbox"]\n      message_prefix: outbox\n      aggregate_types: [order]');
  const table = logicalMessageTable("pg", "shop", "outbox");
  const [letter, ...rest] = await r.encode(logicalMessageEvent(table, Buffer.from("not json {"), origin));
  assert.equal(rest.length, 0);
  assert.equal(letter?.topic, "dep.dlq.pg.messages", "a logical message's dead letter: the bounded topic of its own");
  assert.deepEqual(created, ["dep.dlq.pg.messages"]);
  assert.deepEqual(counted, ["pg_logical_message.outbox invalid"]);
  const reason = text(letter!.headers!["sluice.reason"]);
  assert.match(reason!, /^outbox pg_logical_message\.outbox: the logical message's content is not JSON; source pg, position 0\/16B3748 \(commit 0\/16B3750\); kept whole$/);
  assert.equal(text(letter!.headers!["sluice.position"]), "0/16B3748 (commit 0/16B3750)");
  assert.equal(text(letter!.headers!["sluice.kept"]), "whole");
  assert.equal(text(letter!.headers!["sluice.bytes"]), "10");
  assert.equal(deserializeEventBytes(letter!.value!).after?.["content"], "not json {");
  // The next message flows (to a topic a row made): nothing halts in the router.
  await r.encode(change("c", row("{}")));
  const [next] = await r.encode(logicalMessageEvent(table, Buffer.from('{"id":"m2","aggregatetype":"order","aggregateid":"o-1","type":"t","payload":{}}'), origin));
  assert.equal(next?.topic, "dep.outbox.order");
  // A row of an outbox table that is no event goes to <deployment>.dlq.<source>, beside the data checks' (kept unless bounded).
  const [rowLetter] = await r.encode(change("c", { ...row("{}"), aggregateid: null }));
  assert.equal(rowLetter?.topic, "dep.dlq.pg");
  assert.deepEqual(created, ["dep.dlq.pg.messages", "dep.outbox.order", "dep.dlq.pg"]);
});

test("a message over max_message_bytes is cut at decoding (its first bytes and its size, never a string of it whole) and dead-lettered too-large with that prefix", async () => {
  const { router: r, counted } = await deadLetteringRouter("      message_prefix: outbox\n      aggregate_types: [order]\n      max_message_bytes: 1KiB");
  // 3000 bytes, "é" (2 bytes) from byte 1023 on: the cut goes back to a character's start.
  const content = Buffer.from(`${"a".repeat(1023)}${"é".repeat(989)}`);
  assert.equal(content.length, 3001);
  const event = logicalMessageEvent(logicalMessageTable("pg", "shop", "outbox"), content, origin, 1024);
  assert.deepEqual(event.after, { prefix: "outbox", content: "a".repeat(1023), content_bytes: 3001 });
  const [letter] = await r.encode(event);
  assert.deepEqual(counted, ["pg_logical_message.outbox too-large"]);
  assert.match(text(letter!.headers!["sluice.reason"])!, /content is 3001 bytes, over outbox.max_message_bytes \(1024\).*kept: its first 1024 of 3001 bytes of content/);
  assert.equal(text(letter!.headers!["sluice.kept"]), "prefix");
  assert.equal(text(letter!.headers!["sluice.bytes"]), "3001");
  assert.equal(deserializeEventBytes(letter!.value!).after?.["content"], "a".repeat(1023));
});

test("a message over max_message_bytes that reaches the router whole (parked by an earlier version) is refused too-large, not parsed", async () => {
  const { router: r, counted } = await deadLetteringRouter("      message_prefix: outbox\n      aggregate_types: [order]\n      max_message_bytes: 1KiB");
  const [letter] = await r.encode(logicalMessageEvent(logicalMessageTable("pg", "shop", "outbox"), Buffer.from(`{"id":"m","pad":"${"z".repeat(5000)}"}`), origin));
  assert.deepEqual(counted, ["pg_logical_message.outbox too-large"]);
  assert.match(text(letter!.headers!["sluice.reason"])!, /content is 5019 bytes, over outbox.max_message_bytes \(1024\).*kept: its first 1024 of 5019 bytes of content$/);
});

test("an outbox row whose payload is over max_message_bytes, or whose record is over topics.max_record_bytes, is dead-lettered with its first bytes; under them it is published", async () => {
  const { router: r, counted } = await deadLetteringRouter('      tables: ["public.outbox"]\n      max_message_bytes: 2KiB', 4096);
  const [big] = await r.encode(change("c", row(`"${"x".repeat(5000)}"`)));
  assert.equal(big?.topic, "dep.dlq.pg");
  assert.match(text(big!.headers!["sluice.reason"])!, /the payload is 5002 bytes, over outbox.max_message_bytes \(2048\).*kept: its first 2048 of 5002 bytes of payload/);
  assert.equal((deserializeEventBytes(big!.value!).after?.["payload"] as string).length, 2048);
  const [wide] = await r.encode(change("c", { ...row("{}"), aggregateid: "k".repeat(5000) }));
  assert.equal(wide?.topic, "dep.dlq.pg");
  assert.match(text(wide!.headers!["sluice.reason"])!, /the event's record is \d+ bytes, over topics.max_record_bytes \(4096\)/);
  assert.ok(wide!.value!.length < 4096, "the dead letter itself fits: every text of the row cut");
  const [fine] = await r.encode(change("c", row(`"${"x".repeat(1000)}"`)));
  assert.equal(fine?.topic, "dep.outbox.order");
  assert.deepEqual(counted, ["public.outbox too-large", "public.outbox too-large"]);
});

test("a text payload is measured in UTF-8 bytes at the bound: three-byte and four-byte characters on either side of it", async () => {
  const { router: r, counted } = await deadLetteringRouter('      tables: ["public.outbox"]\n      max_message_bytes: 1KiB', 8192);
  // The JSON text's quotes are two bytes: 340 euro signs make 1022 (not counted: 342 UTF-16 units, 3 bytes each at most, is 1026).
  const [within] = await r.encode(change("c", row(`"${"€".repeat(340)}"`)));
  assert.equal(within?.topic, "dep.outbox.order");
  const [over] = await r.encode(change("c", row(`"${"€".repeat(341)}"`)));
  assert.match(text(over!.headers!["sluice.reason"])!, /the payload is 1025 bytes, over outbox.max_message_bytes \(1024\)/);
  // Surrogate pairs: 255 emoji are 510 units and 1022 bytes with the quotes, 256 are 1026.
  const [pairs] = await r.encode(change("c", row(`"${"😀".repeat(255)}"`)));
  assert.equal(pairs?.topic, "dep.outbox.order");
  const [pairsOver] = await r.encode(change("c", row(`"${"😀".repeat(256)}"`)));
  assert.match(text(pairsOver!.headers!["sluice.reason"])!, /the payload is 1026 bytes, over/);
  assert.deepEqual(counted, ["public.outbox too-large", "public.outbox too-large"]);
});

test("outbox.max_message_bytes not set is the deployment's topics.max_record_bytes: a row or a message of 5 MiB (over the 4 MiB default of 84bc496) is published under the 16 MiB default, and one over a lower topics.max_record_bytes is refused naming where the bound came from", async () => {
  const { router: r, counted } = await deadLetteringRouter('      tables: ["public.outbox"]\n      message_prefix: outbox\n      aggregate_types: [order]');
  const payload = `"${"x".repeat(5 * 2 ** 20)}"`;
  const [fromRow] = await r.encode(change("c", row(payload)));
  assert.equal(fromRow?.topic, "dep.outbox.order");
  const message = Buffer.from(JSON.stringify({ id: "m1", aggregatetype: "order", aggregateid: "o-1", type: "t", payload: "x".repeat(5 * 2 ** 20) }));
  const [fromMessage] = await r.encode(logicalMessageEvent(logicalMessageTable("pg", "shop", "outbox"), message, origin, 16 * 2 ** 20));
  assert.equal(fromMessage?.topic, "dep.outbox.order");
  assert.deepEqual(counted, []);
  const lower = await deadLetteringRouter('      tables: ["public.outbox"]', 4096);
  const [big] = await lower.router.encode(change("c", row(`"${"x".repeat(5000)}"`)));
  assert.equal(big?.topic, "dep.dlq.pg");
  assert.match(text(big!.headers!["sluice.reason"])!, /the payload is 5002 bytes, over outbox.max_message_bytes \(4096: topics.max_record_bytes, as it is not set\)/);
});

test("on_invalid halt keeps halting; a schema file that cannot be read (OUTBOX_SCHEMA_UNREADABLE) or an aggregate type with no schema (OUTBOX_SCHEMA_MISSING) halts even under dead-letter", async () => {
  const halting = await deadLetteringRouter('      tables: ["public.outbox"]\n      on_invalid: halt');
  await assert.rejects(halting.router.encode(change("c", { ...row("{}"), aggregateid: null })), (e) => e instanceof SluiceError && e.code === "OUTBOX_EVENT_INVALID");
  assert.deepEqual(halting.counted, []);
  const missing = join(dir, "missing.avsc");
  const { router: r, counted } = await deadLetteringRouter(`      tables: ["public.outbox"]\n      payload:\n        format: avro\n        schemas:\n          order: ${schemaFile}\n          gone: ${missing}`);
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "gone" })), (e) => e instanceof SluiceError && e.code === "OUTBOX_SCHEMA_UNREADABLE" && /cannot read the Avro schema file .*missing\.avsc/.test(e.message));
  // An aggregate type with no schema is most often a type the application shipped before the config named it: it
  // halts (the events wait, parked) rather than going to the dead-letter topic, which no tool sends back.
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "invoice" })), (e) => e instanceof SluiceError && e.code === "OUTBOX_SCHEMA_MISSING");
  assert.deepEqual(counted, []);
});

test("an Avro logical message whose aggregate type has no schema is dead-lettered, not a halt: anyone connected may emit one", async () => {
  const { router: r, counted } = await deadLetteringRouter(`      message_prefix: outbox\n      aggregate_types: [order, invoice]\n      payload:\n        format: avro\n        schemas:\n          order: ${schemaFile}`);
  const table = logicalMessageTable("pg", "shop", "outbox");
  const [letter, ...rest] = await r.encode(logicalMessageEvent(table, Buffer.from('{"id":"m1","aggregatetype":"invoice","aggregateid":"i-1","type":"t","payload":{}}'), origin));
  assert.equal(rest.length, 0);
  assert.equal(letter?.topic, "dep.dlq.pg.messages");
  assert.match(text(letter!.headers!["sluice.reason"])!, /no schema for the logical message's aggregate type "invoice"/);
  assert.deepEqual(counted, ["pg_logical_message.outbox invalid"]);
});

test("outbox.max_topics counts the existing topics outbox.topic gives (for this source, any aggregate type) before a new one is made; existing ones are written past it", async () => {
  const created: string[] = [];
  const existing = ["dep.ev.pg.a", "dep.ev.pg.b.c", "dep.ev.other.d", "dep.ev.pg.x.y.z", "dep.ev.pg.a.other"];
  const log = { createTopic: async (spec: { name: string }) => void created.push(spec.name), topicNames: async () => existing } as unknown as TopicLog;
  // {aggregate_type} twice: only names where both places agree are its topics.
  const cfg = config('      tables: ["public.outbox"]\n      topic: "{deployment}.ev.{source}.{aggregate_type}.x.{aggregate_type}"\n      max_topics: 2');
  const r = new OutboxRouter(cfg, cfg.sources[0] as never, { encode: async () => [] }, log, new LocalRegistry(await openMemoryStore()));
  existing.push("dep.ev.pg.a.x.a", "dep.ev.pg.b.x.c", "dep.ev.pg.q.x.q");
  const refused = (error: unknown) => error instanceof SluiceError && error.code === "OUTBOX_TOPIC_REFUSED" && /aggregate type "n" would make a new topic dep\.ev\.pg\.n\.x\.n, and 2 topics match/.test(error.message);
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "n" })), refused);
  const [record] = await r.encode(change("c", { ...row("{}"), aggregatetype: "q" }));
  assert.equal(record?.topic, "dep.ev.pg.q.x.q", "an existing topic is written");
  assert.deepEqual(created, ["dep.ev.pg.q.x.q"]);
});

test("an event refused after its topic was admitted (a payload its Avro schema refuses) takes no place under outbox.max_topics", async () => {
  const created: string[] = [];
  const log = { createTopic: async (spec: { name: string }) => void created.push(spec.name), topicNames: async () => [...created] } as unknown as TopicLog;
  const cfg = config(`      tables: ["public.outbox"]\n      max_topics: 1\n      payload:\n        format: avro\n        schemas:\n          order: ${schemaFile}\n          customer: ${schemaFile}`);
  const r = new OutboxRouter(cfg, cfg.sources[0] as never, { encode: async () => [] }, log, new LocalRegistry(await openMemoryStore()));
  for (let i = 0; i < 3; i++) {
    await assert.rejects(r.encode(change("c", row('{"total": "not a long"}'))), (e) => e instanceof SluiceError && e.code === "OUTBOX_EVENT_INVALID" && /does not fit the Avro schema/.test(e.message));
  }
  assert.deepEqual(created, []);
  const [record] = await r.encode(change("c", row('{"total": 3}')));
  assert.equal(record?.topic, "dep.outbox.order");
  await assert.rejects(r.encode(change("c", { ...row('{"total": 1}'), aggregatetype: "customer" })), (e) => e instanceof SluiceError && /would make a new topic dep\.outbox\.customer, and 1 topic matches/.test(e.message));
});

test("without outbox.aggregate_types (refused in a config file with message_prefix; a config built in code) a logical message (anyone connected may emit one) makes no new topic, so it never uses up outbox.max_topics: the application's new types written as rows still get theirs", async () => {
  const { router: r, created, counted } = await deadLetteringRouter('      tables: ["public.outbox"]\n      message_prefix: outbox\n      aggregate_types: [order]\n      max_topics: 2', undefined, true);
  const message = (type: string) => logicalMessageEvent(logicalMessageTable("pg", "shop", "outbox"), Buffer.from(JSON.stringify({ id: "m", aggregatetype: type, aggregateid: "o-1", type: "t", payload: {} })), origin);
  for (const type of ["junk1", "junk2", "junk3"]) {
    const [letter] = await r.encode(message(type));
    assert.equal(letter?.topic, "dep.dlq.pg.messages");
    assert.match(text(letter!.headers!["sluice.reason"])!, new RegExp(`aggregate type "${type}" has no topic \\(dep\\.outbox\\.${type}\\), and a logical message makes a new topic only for a type outbox\\.aggregate_types lists`));
  }
  assert.deepEqual(counted, ["pg_logical_message.outbox topic-refused", "pg_logical_message.outbox topic-refused", "pg_logical_message.outbox topic-refused"]);
  // The application's rows of two new types: both published (with the messages' topics made, max_topics 2 was full and the first halted).
  assert.equal((await r.encode(change("c", row("{}"))))[0]?.topic, "dep.outbox.order");
  assert.equal((await r.encode(change("c", { ...row("{}"), aggregatetype: "invoice" })))[0]?.topic, "dep.outbox.invoice");
  // A message of a type whose topic exists is published.
  assert.equal((await r.encode(message("invoice")))[0]?.topic, "dep.outbox.invoice");
  assert.deepEqual(created, ["dep.dlq.pg.messages", "dep.outbox.order", "dep.outbox.invoice"]);
});

test("outbox.max_topics with topic \"{deployment}.{aggregate_type}\" does not count the data topics and Sluice's own, which the template matches too", async () => {
  const created: string[] = [];
  const existing = ["dep.pg.public.users", "dep.pg.public.items", "dep.sluice.checkpoints", "dep.sluice.halted.pg", "dep.dlq.pg", "dep.a"];
  const log = { createTopic: async (spec: { name: string }) => void created.push(spec.name), topicNames: async () => [...existing] } as unknown as TopicLog;
  const cfg = config('      tables: ["public.outbox"]\n      topic: "{deployment}.{aggregate_type}"\n      max_topics: 2');
  const r = new OutboxRouter(cfg, cfg.sources[0] as never, { encode: async () => [] }, log, new LocalRegistry(await openMemoryStore()));
  const [record] = await r.encode(change("c", row("{}")));
  assert.equal(record?.topic, "dep.order", "one topic (dep.a) is the outbox's: a second is made");
  await assert.rejects(r.encode(change("c", { ...row("{}"), aggregatetype: "b" })), (e) => e instanceof SluiceError && e.code === "OUTBOX_TOPIC_REFUSED" && /and 2 topics match/.test(e.message));
  assert.deepEqual(created, ["dep.order"]);
});
