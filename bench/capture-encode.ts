/**
 * The CPU of capture's own code per change, without servers: pgoutput messages of the capture-drain
 * table (bench/capture-drain.ts: 8 columns, two thirds inserts, one third updates, transactions of
 * 1,000 rows, each transaction with its own now()) decoded into ChangeEvents (StreamDecoder) and
 * encoded into framed Avro records with the Debezium envelope (AvroChangeEncoder), on one thread.
 * What it leaves out: reading the replication connection, the capture loop, the topic log.
 *
 *   node bench/capture-encode.ts [--changes 200000] [--rounds 3] [--baseline DIR] [--table items|texts]
 *
 * --table texts: instead of the capture-drain table, a bigint key and seven text columns (short and
 * 200-byte ASCII, non-ASCII, 4-byte characters, empty strings; bench/items-workload.ts textRow).
 *
 * --baseline DIR: the same with the modules of another checkout (`git archive <commit> | tar -x -C
 * DIR`, plus a node_modules link), alternating with this one in each round: the before/after
 * ratio of a change. CPU-seconds are the process's (process.cpuUsage) over the loop.
 */
import { resolve } from "node:path";
import { loadavg } from "node:os";
import { parseArgs } from "node:util";
import type { ChangeEvent } from "../connectors/contracts.ts";
import type { CapturedTable } from "../connectors/postgres/captured-tables.ts";
import type { DecodedOutput } from "../connectors/postgres/stream-decoder.ts";
import type { WalMessage } from "../connectors/postgres/replication-stream.ts";
import type * as StreamDecoderModule from "../connectors/postgres/stream-decoder.ts";
import type * as ScalarsModule from "../connectors/postgres/values/scalars.ts";
import type * as ChangeEncoderModule from "../schema-registry/change-encoder.ts";
import type * as LocalRegistryModule from "../schema-registry/local-registry.ts";
import type * as LogStoreModule from "../schema-registry/log-store.ts";
import { COLUMNS as ITEM_COLUMNS, ITEMS_SCHEMA, itemText, TEXT_COLUMNS, TEXTS_SCHEMA, textRow } from "./items-workload.ts";

const { values: args } = parseArgs({ options: { changes: { type: "string", default: "200000" }, rounds: { type: "string", default: "3" }, baseline: { type: "string" }, table: { type: "string", default: "items" } } });
if (args.table !== "items" && args.table !== "texts") throw new Error(`--table: items or texts, not ${args.table}`);
const TEXTS = args.table === "texts";
const COLUMNS = TEXTS ? TEXT_COLUMNS : ITEM_COLUMNS;
const CHANGES = Number(args.changes);
const TX = 1000;
const HERE = resolve(import.meta.dirname, "..");

const text = (value: string): Buffer => {
  const bytes = Buffer.from(value);
  const header = Buffer.alloc(5);
  header[0] = 0x74; // 't'
  header.writeUInt32BE(bytes.length, 1);
  return Buffer.concat([header, bytes]);
};

/** An Insert ('I') or Update without old tuple ('U') of row g, as pgoutput sends it. */
function change(kind: "I" | "U", g: number, createdAt: string): Buffer {
  const head = Buffer.alloc(8);
  head[0] = kind.charCodeAt(0);
  head.writeUInt32BE(1, 1);
  head[5] = 0x4e; // 'N'
  head.writeInt16BE(COLUMNS.length, 6);
  return Buffer.concat([head, ...(TEXTS ? textRow(g, kind === "U") : itemText(g, kind === "U", createdAt)).map(text)]);
}

/** The backlog's messages: BEGIN, the transaction's changes, COMMIT, with increasing LSNs. */
function backlog(): WalMessage[] {
  const messages: WalMessage[] = [];
  let lsn = 0x1_0000_0000n;
  const inserts = Math.round((CHANGES * 2) / 3);
  for (let from = 1, tx = 0; from <= CHANGES; from += TX, tx++) {
    const commitMicros = 849_000_000_000_000n + BigInt(tx) * 1_000_000n; // since 2000-01-01, one transaction a second
    const createdAt = new Date(Number(commitMicros / 1000n) + 946_684_800_000).toISOString().replace("T", " ").replace("Z", "123+00");
    const commitLsn = lsn + BigInt(TX) * 200n;
    const begin = Buffer.alloc(21);
    begin[0] = 0x42;
    begin.writeBigUInt64BE(commitLsn, 1);
    begin.writeBigInt64BE(commitMicros, 9);
    begin.writeUInt32BE(1000 + tx, 17);
    messages.push({ walStart: lsn, payload: begin });
    for (let g = from; g < Math.min(from + TX, CHANGES + 1); g++) {
      lsn += 200n;
      messages.push({ walStart: lsn, payload: g <= inserts ? change("I", g, createdAt) : change("U", g - inserts, createdAt) });
    }
    const commit = Buffer.alloc(26);
    commit[0] = 0x43;
    commit.writeBigUInt64BE(commitLsn, 2);
    commit.writeBigUInt64BE(commitLsn + 1n, 10);
    commit.writeBigInt64BE(commitMicros, 18);
    messages.push({ walStart: commitLsn, payload: commit });
    lsn = commitLsn + 2n;
  }
  return messages;
}

/** Decodes and encodes the backlog with the modules of `root`; CPU-seconds per 100k changes. */
async function run(root: string, messages: readonly WalMessage[]): Promise<number> {
  const { StreamDecoder } = (await import(`${root}/connectors/postgres/stream-decoder.ts`)) as typeof StreamDecoderModule;
  const { BUILTIN_SCALAR_DECODERS, asText } = (await import(`${root}/connectors/postgres/values/scalars.ts`)) as typeof ScalarsModule;
  const { AvroChangeEncoder } = (await import(`${root}/schema-registry/change-encoder.ts`)) as typeof ChangeEncoderModule;
  const { LocalRegistry } = (await import(`${root}/schema-registry/local-registry.ts`)) as typeof LocalRegistryModule;
  const { openMemoryStore } = (await import(`${root}/schema-registry/log-store.ts`)) as typeof LogStoreModule;
  const schema = TEXTS ? TEXTS_SCHEMA : ITEMS_SCHEMA;
  const table = {
    relid: 1,
    kind: "r",
    schema,
    columns: COLUMNS.map(([name, oid, sqlType]) => ({ name, typeOid: oid, typeModifier: -1, sqlType, decode: BUILTIN_SCALAR_DECODERS.get(oid) ?? asText })),
    keyIndexes: [0],
    keySource: "primary key",
    uniqueKey: true,
    signature: "",
    rowFilter: null,
  } as CapturedTable;
  const decoder = new StreamDecoder({ sourceName: "bench", tables: { get: () => table }, resolveRelation: async () => null, transactionMetadata: false, skipThrough: null });
  const encoder = new AvroChangeEncoder({ registry: new LocalRegistry(await openMemoryStore()), topicPrefix: (source) => `bench.${source}` });
  await encoder.encode({ op: "c", key: { id: 0n }, before: null, after: { id: 0n }, source: { connector: "postgres", name: "bench", db: "app", schema: "bench", table: "items", position: { commit: 1n, change: 1n }, txId: "1", commitTimeMs: 0, snapshot: false }, schema } as ChangeEvent);
  const started = process.cpuUsage();
  let out: DecodedOutput = { events: [], transactions: [] };
  let records = 0;
  for (const message of messages) {
    const pending = decoder.apply(message, out);
    if (pending) await pending;
    if (out.events.length >= 4096 || message === messages[messages.length - 1]) {
      for (const event of out.events) records += (await encoder.encode(event)).length;
      out = { events: [], transactions: [] };
    }
  }
  const used = process.cpuUsage(started);
  if (records !== CHANGES) throw new Error(`${records} records for ${CHANGES} changes`);
  return (((used.user + used.system) / 1e6) * 100_000) / CHANGES;
}

const messages = backlog();
const checkouts: [string, string][] = [["this checkout", HERE], ...(args.baseline === undefined ? [] : [["baseline", resolve(args.baseline)] as [string, string]])];
const results = new Map<string, number[]>(checkouts.map(([label]) => [label, []]));
for (let round = 1; round <= Number(args.rounds); round++) {
  const order = round % 2 === 1 ? checkouts : [...checkouts].reverse();
  for (const [label, root] of order) {
    // Each in its own process would load the modules afresh; one process keeps the JIT of both warm alike.
    const cpu = await run(root, messages);
    results.get(label)!.push(cpu);
    process.stdout.write(`round ${round} ${label}: ${cpu.toFixed(3)} CPU-s per 100k changes (load ${loadavg()[0]!.toFixed(1)})\n`);
  }
}
if (args.baseline !== undefined) {
  const ratios = results.get("this checkout")!.map((cpu, i) => (cpu / results.get("baseline")![i]!).toFixed(2));
  process.stdout.write(`ratio to the baseline per round: ${ratios.join(", ")}\n`);
}
