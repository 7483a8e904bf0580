/**
 * StreamDecoder and StreamBatcher from pgoutput byte fixtures: positions, key changes, skipping
 * after a resume, transaction markers, heartbeats, keepalives, and batch boundaries.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import type { Op, Position } from "../contracts.ts";
import { ByteBoundedBuffer } from "../common/byte-bounded-buffer.ts";
import type { CapturedTable } from "./captured-tables.ts";
import { flushLsnFor, throughPosition } from "./positions.ts";
import { cstr, hex, utf8 } from "./protocol/hex-fixture.ts";
import type { WalMessage } from "./replication-stream.ts";
import { StreamBatcher } from "./stream-batcher.ts";
import { backfillStatement, emptyTargetsStatement, StreamDecoder } from "./stream-decoder.ts";
import type { DecodedOutput } from "./stream-decoder.ts";
import { BUILTIN_SCALAR_DECODERS } from "./values/scalars.ts";

const RELID = 0x4000;
const table: CapturedTable = {
  relid: RELID,
  kind: "r",
  schema: {
    source: "shop",
    database: "db",
    schema: "public",
    table: "items",
    sourceKind: "postgres",
    columns: [
      { name: "id", dbType: "integer", nullable: false, default: null, primaryKeyIndex: 1 },
      { name: "name", dbType: "text", nullable: true, default: null },
    ],
    key: ["id"],
  },
  columns: [
    { name: "id", typeOid: 23, typeModifier: -1, sqlType: "integer", decode: BUILTIN_SCALAR_DECODERS.get(23)! },
    { name: "name", typeOid: 25, typeModifier: -1, sqlType: "text", decode: (t) => t },
  ],
  keyIndexes: [0],
  keySource: "primary key",
  uniqueKey: true,
  signature: "",
  rowFilter: null,
};

const lsnHex = (lsn: bigint) => lsn.toString(16).padStart(16, "0");
const text = (value: string) => `74 ${value.length.toString(16).padStart(8, "0")} ${utf8(value)}`;
const msg = (walStart: bigint, payload: string): WalMessage => ({ walStart, payload: hex(payload) });

const COMMIT_TIME = "0002b7c1d2e3f405";
const begin = (commit: bigint, xid = 7) => msg(commit - 0x100n, `42 ${lsnHex(commit)} ${COMMIT_TIME} ${xid.toString(16).padStart(8, "0")}`);
const commit = (commit: bigint) => msg(commit + 0x30n, `43 00 ${lsnHex(commit)} ${lsnHex(commit + 0x30n)} ${COMMIT_TIME}`);
const relation = (at: bigint) => msg(at, `52 00004000 ${cstr("public")} ${cstr("items")} 64 0002 01 ${cstr("id")} 00000017 ffffffff 00 ${cstr("name")} 00000019 ffffffff`);
const insert = (at: bigint, id: number, name: string) => msg(at, `49 00004000 4e 0002 ${text(String(id))} ${text(name)}`);
const updateKey = (at: bigint, oldId: number, id: number, name: string) => msg(at, `55 00004000 4b 0002 ${text(String(oldId))} 6e 4e 0002 ${text(String(id))} ${text(name)}`);
const del = (at: bigint, id: number) => msg(at, `44 00004000 4b 0002 ${text(String(id))} 6e`);
const truncate = (at: bigint) => msg(at, `54 00000001 00 00004000`);
const heartbeat = (at: bigint) => msg(at, `4d 00 ${lsnHex(at)} ${cstr("sluice.heartbeat")} 00000000`);

function decoder(options: { skipThrough?: Position | null; transactionMetadata?: boolean; skippedOperations?: ReadonlySet<Op> } = {}) {
  const tables = new Map<number, CapturedTable | null>();
  return new StreamDecoder({
    sourceName: "shop",
    tables,
    resolveRelation: async (message) => {
      tables.set(message.relationId, table);
      return table;
    },
    transactionMetadata: options.transactionMetadata ?? false,
    skipThrough: options.skipThrough ?? null,
    ...(options.skippedOperations === undefined ? {} : { skippedOperations: options.skippedOperations }),
  });
}

async function decodeAll(d: StreamDecoder, messages: readonly WalMessage[]): Promise<DecodedOutput> {
  const out: DecodedOutput = { events: [], transactions: [] };
  for (const m of messages) await d.apply(m, out);
  return out;
}

test("changes carry commit LSN, own LSN, xid and commit time; a key change splits; truncate; through positions", async () => {
  const d = decoder({ transactionMetadata: true });
  const C = 0x5000n;
  const out = await decodeAll(d, [
    begin(C, 42),
    relation(0x4100n),
    insert(0x4100n, 1, "a"),
    updateKey(0x4200n, 1, 2, "b"),
    del(0x4300n, 2),
    truncate(0x4400n),
  ]);
  assert.equal(d.inTransaction, true);
  assert.equal(d.throughPosition, null);
  assert.deepEqual(
    out.events.map((e) => [e.op, e.key, e.before, e.after, e.source.position.change]),
    [
      ["c", { id: 1 }, null, { id: 1, name: "a" }, 0x4100n],
      ["d", { id: 1 }, { id: 1 }, null, 0x4200n],
      ["c", { id: 2 }, null, { id: 2, name: "b" }, 0x4200n],
      ["d", { id: 2 }, { id: 2 }, null, 0x4300n],
      ["t", {}, null, null, 0x4400n],
    ],
  );
  for (const e of out.events) {
    assert.equal(e.source.position.commit, C);
    assert.equal(e.source.txId, "42");
    assert.equal(e.source.commitTimeMs, Number((0x0002b7c1d2e3f405n + 946_684_800_000_000n) / 1000n));
  }
  await decodeAll(d, [commit(C)]).then((end) => {
    assert.deepEqual(end.transactions.map((t) => [t.status, t.eventCount, t.tableEventCounts]), [["END", 5, { "public.items": 5 }]]);
  });
  assert.deepEqual(out.transactions.map((t) => [t.status, t.position]), [["BEGIN", { commit: C, change: 0x4100n }]]);
  assert.deepEqual(d.throughPosition, throughPosition(C));
  await decodeAll(d, [heartbeat(0x6000n)]);
  assert.deepEqual(d.throughPosition, throughPosition(0x5fffn), "a heartbeat ending at 0x6000 is decoded through the LSN below");
});

test("transaction metadata counts only what the data topics get: a skipped truncate is no event of its transaction", async () => {
  const C = 0x5000n;
  const messages = [begin(C, 42), relation(0x4100n), truncate(0x4100n), insert(0x4200n, 1, "a"), commit(C), begin(0x7000n, 43), truncate(0x6100n), commit(0x7000n)];
  const out = await decodeAll(decoder({ transactionMetadata: true, skippedOperations: new Set<Op>(["t"]) }), messages);
  assert.deepEqual(out.events.map((e) => e.op), ["t", "c", "t"], "truncates still reach capture (the control topic)");
  assert.deepEqual(
    out.transactions.map((t) => [t.status, t.txId, t.position.change, t.eventCount ?? null, t.tableEventCounts ?? null]),
    [
      ["BEGIN", "42", 0x4200n, null, null],
      ["END", "42", C, 1, { "public.items": 1 }],
    ],
    "BEGIN at the first counted change; a transaction of skipped truncates only has no markers",
  );
  assert.deepEqual(out.events.map((e) => e.source.transactionOrder ?? null), [null, { total: 1, inTable: 1 }, null], "a skipped truncate has no place in its transaction");
  const all = await decodeAll(decoder({ transactionMetadata: true, skippedOperations: new Set<Op>() }), messages);
  assert.deepEqual(all.transactions.map((t) => [t.status, t.txId, t.eventCount ?? null]), [["BEGIN", "42", null], ["END", "42", 2], ["BEGIN", "43", null], ["END", "43", 1]]);
});

test("after a resume, events at or before the checkpoint are skipped, BEGIN is not repeated", async () => {
  const C = 0x5000n;
  const messages = [begin(C), relation(0x4100n), insert(0x4100n, 1, "a"), insert(0x4200n, 2, "b"), insert(0x4300n, 3, "c"), commit(C)];
  const out = await decodeAll(decoder({ skipThrough: { commit: C, change: 0x4200n }, transactionMetadata: true }), messages);
  assert.deepEqual(out.events.map((e) => e.key["id"]), [3]);
  assert.deepEqual(out.events[0]!.source.transactionOrder, { total: 3, inTable: 3 }, "a resumed transaction numbers on");
  assert.deepEqual(out.transactions.map((t) => [t.status, t.eventCount]), [["END", 3]]);
  const complete = await decodeAll(decoder({ skipThrough: throughPosition(C) }), [...messages, begin(0x7000n), insert(0x6100n, 4, "d"), commit(0x7000n)]);
  assert.deepEqual(complete.events.map((e) => e.key["id"]), [4]);
});

async function batches(messages: readonly WalMessage[], maxBatchEvents: number, progressIntervalMs = 0) {
  const buffer = new ByteBoundedBuffer<WalMessage>(1 << 20);
  for (const m of messages) buffer.push(m, m.payload.length);
  const batcher = new StreamBatcher({ buffer, decoder: decoder(), maxBatchEvents, progressIntervalMs, lastCheckpoint: null });
  const result = [];
  const signal = AbortSignal.timeout(2000);
  while (buffer.length > 0) result.push(await batcher.next(signal));
  return result.map((b) => ({ ids: b.events.map((e) => e.key["id"]), checkpoint: b.checkpoint }));
}

test("batches never split one LSN's events; checkpoints end transactions or sit before an LSN group", async () => {
  const C = 0x9000n;
  const multiInsert = [insert(0x8100n, 1, "a"), insert(0x8100n, 2, "b"), insert(0x8100n, 3, "c")];
  const result = await batches([begin(C), relation(0x8100n), ...multiInsert, insert(0x8200n, 4, "d"), insert(0x8300n, 5, "e"), commit(C)], 2);
  assert.deepEqual(result, [
    { ids: [1, 2, 3], checkpoint: { commit: C, change: 0x8100n } },
    { ids: [4, 5], checkpoint: throughPosition(C) },
  ]);
});

test("several transactions share a batch whose checkpoint ends the last one", async () => {
  const result = await batches([begin(0x9000n), relation(0x8100n), insert(0x8100n, 1, "a"), commit(0x9000n), begin(0xa000n), insert(0x9100n, 2, "b"), commit(0xa000n)], 10);
  assert.deepEqual(result, [{ ids: [1, 2], checkpoint: throughPosition(0xa000n) }]);
});

test("heartbeats alone yield an empty batch whose checkpoint advances", async () => {
  const result = await batches([heartbeat(0x6000n), heartbeat(0x6100n)], 10, 1);
  assert.deepEqual(result.at(-1), { ids: [], checkpoint: throughPosition(0x60ffn) });
});

test("a heartbeat whose record ends where a transaction's commit record begins is below that transaction: no checkpoint claims it before its last change", async () => {
  // pg_logical_emit_message(false, ...) carries the LSN where its record ends; the next record, here
  // the commit of a transaction whose changes come after the heartbeat in the stream, starts there.
  const C = 0x9000n;
  const result = await batches([heartbeat(C), begin(C), relation(0x8100n), insert(0x8100n, 1, "a"), insert(0x8200n, 2, "b"), insert(0x8300n, 3, "c"), commit(C)], 2);
  assert.deepEqual(result, [
    { ids: [1, 2], checkpoint: { commit: C, change: 0x8200n } },
    { ids: [3], checkpoint: throughPosition(C) },
  ]);
  const alone = await batches([heartbeat(C)], 10, 1);
  assert.deepEqual(alone, [{ ids: [], checkpoint: throughPosition(C - 1n) }]);
  assert.equal(flushLsnFor(alone[0]!.checkpoint), C, "confirming it does not confirm a commit record that starts at its end");
});

const keepalive = (walEnd: bigint, replyRequested: boolean): WalMessage => ({ walStart: walEnd, payload: Buffer.alloc(0), keepalive: { replyRequested } });

test("a keepalive asking for a reply hands on the server's WAL end at once: confirming it reaches that LSN exactly", async () => {
  const E = 0xa000n;
  const alone = await batches([keepalive(E, true)], 10);
  assert.deepEqual(alone, [{ ids: [], checkpoint: throughPosition(E - 1n) }]);
  assert.equal(flushLsnFor(alone[0]!.checkpoint), E);
  const afterChanges = await batches([begin(0x9000n), relation(0x8100n), insert(0x8100n, 1, "a"), commit(0x9000n), keepalive(E, true)], 10);
  assert.deepEqual(afterChanges, [{ ids: [1], checkpoint: throughPosition(E - 1n) }]);
});

test("keepalives without a reply request move the position at the progress interval; inside a transaction they are ignored", async () => {
  assert.deepEqual(await batches([keepalive(0x6000n, false), keepalive(0x7000n, false)], 10, 1), [{ ids: [], checkpoint: throughPosition(0x6fffn) }]);
  const C = 0x9000n;
  const inside = await batches([begin(C), relation(0x8100n), insert(0x8100n, 1, "a"), keepalive(C + 0x1000n, true), commit(C)], 10);
  assert.deepEqual(inside, [{ ids: [1], checkpoint: throughPosition(C) }], "the keepalive inside the transaction does not carry the checkpoint past its commit");
  const d = decoder();
  await decodeAll(d, [heartbeat(0x6000n), keepalive(0x5000n, false)]);
  assert.deepEqual(d.throughPosition, throughPosition(0x5fffn), "an older WAL end never moves the position back");
});

test("outbox: transactional logical messages with the prefix become events of pg_logical_message.<prefix> in their transaction; others are not", async () => {
  const tables = new Map<number, CapturedTable | null>();
  const d = new StreamDecoder({
    sourceName: "shop",
    tables,
    resolveRelation: async (message) => (tables.set(message.relationId, table), table),
    transactionMetadata: false,
    skipThrough: null,
    outboxMessages: { prefix: "outbox", database: "db" },
  });
  const message = (at: bigint, transactional: boolean, prefix: string, content: string) =>
    msg(at, `4d ${transactional ? "01" : "00"} ${lsnHex(at)} ${cstr(prefix)} ${content.length.toString(16).padStart(8, "0")} ${utf8(content)}`);
  const C = 0x5000n;
  const out = await decodeAll(d, [
    begin(C),
    relation(0x4100n),
    insert(0x4100n, 1, "a"),
    message(0x4200n, true, "outbox", '{"id":"e1"}'),
    message(0x4300n, true, "other", "x"),
    commit(C),
    message(0x6000n, false, "outbox", '{"id":"e2"}'),
  ]);
  assert.deepEqual(
    out.events.map((e) => [e.op, `${e.schema.schema}.${e.schema.table}`, e.after, e.source.position]),
    [
      ["c", "public.items", { id: 1, name: "a" }, { commit: C, change: 0x4100n }],
      ["c", "pg_logical_message.outbox", { prefix: "outbox", content: '{"id":"e1"}' }, { commit: C, change: 0x4200n }],
    ],
  );
  assert.equal(out.events[1]?.source.txId, "7");
});

test("outbox: a message over outbox.max_message_bytes is cut at decoding: its first bytes and its size, not a string of it whole", async () => {
  const d = new StreamDecoder({ sourceName: "shop", tables: new Map(), resolveRelation: async () => table, transactionMetadata: false, skipThrough: null, outboxMessages: { prefix: "outbox", database: "db", maxBytes: 1024 } });
  const message = (at: bigint, content: string) => msg(at, `4d 01 ${lsnHex(at)} ${cstr("outbox")} ${Buffer.byteLength(content).toString(16).padStart(8, "0")} ${utf8(content)}`);
  const C = 0x5000n;
  const out = await decodeAll(d, [begin(C), message(0x4200n, "x".repeat(1024)), message(0x4300n, "y".repeat(100_000)), commit(C)]);
  assert.deepEqual(out.events.map((e) => e.after), [
    { prefix: "outbox", content: "x".repeat(1024) },
    { prefix: "outbox", content: "y".repeat(1024), content_bytes: 100_000 },
  ]);
});

test("backfill requests: a sluice.backfill message of this slot asks for the table's backfill before decoding goes on, with a floor when the transaction emptied the table; one a checkpoint covers or of another slot does not", async () => {
  const asked: [string, number | null, string, bigint | undefined][] = [];
  const d = (skipThrough: Position | null) =>
    new StreamDecoder({
      sourceName: "shop",
      tables: new Map(),
      resolveRelation: async () => table,
      transactionMetadata: false,
      skipThrough,
      backfill: {
        slot: "s1",
        request: async ({ table: name, relid, id, above }) => {
          await new Promise((resolve) => setTimeout(resolve, 5));
          asked.push([name, relid, id, above]);
        },
      },
    });
  const message = (at: bigint, content: string) => msg(at, `4d 01 ${lsnHex(at)} ${cstr("sluice.backfill")} ${content.length.toString(16).padStart(8, "0")} ${utf8(content)}`);
  const C = 0x5000n;
  const messages = [begin(C), message(0x4100n, "s1\npublic.a\n\n16400"), message(0x4200n, "s1\npublic.b\nemptied\n16401"), message(0x4300n, "s2\npublic.c\n\n16402"), commit(C)];
  const decoding = d(null);
  const out: DecodedOutput = { events: [], transactions: [] };
  for (const m of messages) {
    await decoding.apply(m, out);
    if (m === messages[1]) assert.equal(asked.length, 1, "asked for before the next message is decoded");
  }
  assert.deepEqual(asked, [
    ["public.a", 16400, "added-4100", undefined],
    ["public.b", 16401, "added-4200", C],
  ]);
  asked.length = 0;
  await decodeAll(d({ commit: C, change: 0x4100n }), messages);
  assert.deepEqual(asked, [["public.b", 16401, "added-4200", C]], "the message a resumed checkpoint covers is not asked for again");
  // Over OWN_MESSAGE_MAX_BYTES (anyone may write the prefix, up to 1 GB): none of ours, not made a string, even when it reads as a request.
  asked.length = 0;
  const padded = JSON.stringify({ slot: "s1", table: `public.${"p".repeat(70_000)}`, emptied: false, relid: 16403 });
  await decodeAll(d(null), [begin(C), message(0x4100n, padded), commit(C)]);
  assert.deepEqual(asked, []);
});

test("a table named with a newline: its backfill request and the truncate of its name created again are decoded whole", async () => {
  // The messages were lines (slot, table, emptied, relid): public."nl<newline>line" was asked for as public.nl, its rows never read.
  const name = "public.nl\nline";
  const contentOf = (statement: string) => {
    // An escape string (E'...') when the content holds a backslash (quoteLiteral): its backslashes are doubled.
    const [, escaped, quoted] = /(E?)'((?:[^']|'')*)'\)$/.exec(statement)!;
    const content = quoted!.replaceAll("''", "'");
    return escaped === "E" ? content.replaceAll("\\\\", "\\") : content;
  };
  const asked: [string, number | null, bigint | undefined][] = [];
  const truncated: [string, string][] = [];
  const d = new StreamDecoder({
    sourceName: "shop",
    tables: new Map(),
    resolveRelation: async () => table,
    transactionMetadata: false,
    skipThrough: null,
    recreated: {
      slot: "s1",
      table: async (schema, tableName) => {
        truncated.push([schema, tableName]);
        return schema === "public" && tableName === "nl\nline" ? { ...table, schema: { ...table.schema, table: tableName } } : null;
      },
    },
    backfill: { slot: "s1", request: async ({ table: asking, relid, above }) => void asked.push([asking, relid, above]) },
  });
  const message = (at: bigint, prefix: string, content: string) => {
    const bytes = Buffer.from(content, "utf8");
    return msg(at, `4d 01 ${lsnHex(at)} ${cstr(prefix)} ${bytes.length.toString(16).padStart(8, "0")} ${bytes.toString("hex")}`);
  };
  const C = 0x5000n;
  const out = await decodeAll(d, [
    begin(C),
    message(0x4100n, "sluice.recreated", contentOf(emptyTargetsStatement("s1", name))),
    message(0x4200n, "sluice.backfill", contentOf(backfillStatement("s1", name, 16400, true))),
    message(0x4300n, "sluice.backfill", contentOf(backfillStatement("s2", "public.other", 16401, false))),
    commit(C),
  ]);
  assert.deepEqual(asked, [[name, 16400, C]]);
  assert.ok(truncated.some(([schema, tableName]) => schema === "public" && tableName === "nl\nline"), JSON.stringify(truncated));
  assert.deepEqual(
    out.events.map((e) => [e.op, e.source.table, e.source.position]),
    [["t", "nl\nline", { commit: C, change: 0x4100n }]],
  );
});
