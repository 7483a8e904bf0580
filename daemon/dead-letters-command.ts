/**
 * `sluice dead-letters`: reads a dead-letter topic and prints, per record, where it is, its table,
 * the row's key and why it was dead-lettered. Two kinds of topics:
 *   - a sink's (`dead_letter_topic`, default `<deployment>.dlq.<sink>`): the data topic's record as
 *     stored (Avro, Confluent wire format), decoded with the deployment's schema registry, with the
 *     headers `sluice.error`, `sluice.sink` and `sluice.origin` (topic:partition:offset);
 *   - a source's (`<deployment>.dlq.<source>`): a change that failed a data check, or an outbox row that is no event
 *     (daemon/outbox-router.ts, check "outbox"), as JSON, with the headers `sluice.reason`, `sluice.check`,
 *     `sluice.column` and `sluice.table`; with --messages its logical messages' (`<deployment>.dlq.<source>.messages`,
 *     bounded: anyone connected may emit one), in the same form. Messages dead-lettered before that topic existed
 *     stay in `<deployment>.dlq.<source>`.
 * The row's values are printed only when asked (--values): they may be personal, or the very data a
 * check guards. Personal values are printed as stored (sealed), never opened. Records are streamed a
 * chunk at a time on a read-only log, so it runs beside a running daemon and on a topic of any size.
 */
import type { SluiceConfig } from "../config/schema.ts";
import type { ChangeEvent, Row, StoredRecord, TopicLog } from "../connectors/contracts.ts";
import { tableName, UNCHANGED } from "../connectors/contracts.ts";
import { SluiceError } from "../connectors/errors.ts";
import { LOGICAL_MESSAGE_SCHEMA } from "../connectors/postgres/logical-messages.ts";
import { outboxMessageDeadLetterTopic } from "../connectors/topics/names.ts";
import { openTopicLogForCommand } from "../connectors/topics/open.ts";
import type { Logger } from "../runtime/logger.ts";
import { schemaIdOf } from "../schema-registry/wire-format.ts";
import { deadLetterTopic, openRegistry, parseDataTopic, recordDecoder, sinkTopics } from "./components.ts";
import { deserializeEventBytes } from "./event-json.ts";
import { dataCheckDeadLetterTopic } from "./governance/data-checks.ts";
import { NULLED_HEADER, PARKING_KEY_HEADER, SEALED_HEADER } from "./governance/parked-personal.ts";
import { oneLine } from "./terminal-text.ts";

export const DEFAULT_LIMIT = 50;

export const DEAD_LETTERS_USAGE = "sluice dead-letters -c FILE (--sink NAME | --source NAME [--messages]) [--table T] [--from OFFSET] [--limit N] [--values]";

export const DEAD_LETTERS_DETAILS = `  --sink NAME         read the sink's dead-letter topic (dead_letter_topic, default <deployment>.dlq.<sink>):
                      rows the sink could not apply (on_error: dead-letter, or "sluice halted skip")
  --source NAME       read the source's dead-letter topic (<deployment>.dlq.<source>): changes that
                      failed a data check with action dead-letter, and outbox rows that are no event
                      (check outbox; outbox.on_invalid dead-letter); kept unless dead_letter_retention
                      is set
  --messages          with --source: read <deployment>.dlq.<source>.messages instead, the logical
                      messages (outbox.message_prefix) that are no event; bounded by
                      outbox.message_dead_letter_retention (anyone connected may emit one). Those
                      dead-lettered by a Sluice before it had this topic are in <deployment>.dlq.<source>
  --table T           only this table's records (schema.table, as printed, or its topic); one the sink
                      reads no topic of (a source: captures) and no dead letter names is refused,
                      naming its tables
  --from OFFSET       start at this offset of the topic (default: its first record kept)
  --limit N           print at most N records (default ${DEFAULT_LIMIT}); then says how many more there are and
                      the --from that goes on
  --values            also print the row's values as JSON (a sink's: the decoded Avro row; a source's:
                      the change's after and before images). Without it no value is printed: they may
                      be personal data or the very data a check guards. Personal columns are printed
                      as stored, sealed ("sluice-enc:..."): this command never opens them

Prints, per record: its offset and time (the change's commit time at the source), the table, the
row's key and the reason (a source's: the check and column; a sink's: the error and the origin
topic:partition:offset). A sink's reason is the error its target gave, which may quote a value.
Reads the topic log read-only, a chunk of records at a time: it runs beside a
running daemon. See docs/operations.md, "SluiceDeadLetters" and "SluiceDataCheckFailures".`;

/** Records read per request: a dead letter may be as large as 4 × topics.max_record_bytes. */
const CHUNK_RECORDS = 64;
/** Past the limit, records counted (not printed) before saying "at least". */
const COUNT_AT_MOST = 100_000;

export interface DeadLettersIo {
  stdout(text: string): void;
  stderr(text: string): void;
}

export interface DeadLettersArgs {
  readonly sink?: string | undefined;
  readonly source?: string | undefined;
  readonly table?: string | undefined;
  readonly from?: string | undefined;
  readonly limit?: string | undefined;
  readonly values: boolean;
  /** With source: its logical messages' dead-letter topic. */
  readonly messages?: boolean | undefined;
}

/** One dead letter as printed. */
export interface DeadLetter {
  readonly partition: number;
  readonly offset: bigint;
  readonly timestamp: number;
  readonly table: string;
  /** The key columns as JSON, or why they could not be read. */
  readonly key: string;
  readonly op: string | null;
  readonly reason: string;
  /** A source's: the check and column. */
  readonly check?: string;
  readonly column?: string;
  /** A sink's: where the record came from, topic:partition:offset. */
  readonly origin?: string;
  /** The row images, when the event could be read. */
  readonly images?: { readonly before: Row | null; readonly after: Row | null };
  /** What the record's headers say of its personal columns (a source's: sealed, nulled, under a parking key). */
  readonly personal?: readonly string[];
}

type Kind = { readonly kind: "sink" | "source"; readonly name: string; readonly topic: string };

export async function runDeadLettersCommand(config: SluiceConfig, args: DeadLettersArgs, io: DeadLettersIo, logger: Logger): Promise<number> {
  const usage = (message: string): number => {
    io.stderr(`sluice dead-letters: ${message}\nUsage: ${DEAD_LETTERS_USAGE}\n`);
    return 2;
  };
  if ((args.sink === undefined) === (args.source === undefined)) return usage("give --sink NAME or --source NAME (one of them)");
  if (args.messages === true && args.source === undefined) return usage("--messages goes with --source: a source's logical messages that are no event");
  const limit = args.limit === undefined ? DEFAULT_LIMIT : /^\d{1,9}$/.test(args.limit) && Number(args.limit) > 0 ? Number(args.limit) : null;
  if (limit === null) return usage(`--limit takes a whole number of records from 1 to 999999999, not "${args.limit}"`);
  const from = args.from === undefined ? null : /^\d{1,20}$/.test(args.from) ? BigInt(args.from) : null;
  if (args.from !== undefined && from === null) return usage(`--from takes a record offset (a whole number of at most 20 digits), not "${args.from}"`);
  let target: Kind & { readonly tables: (topics: readonly string[]) => string[] };
  if (args.sink !== undefined) {
    const sink = config.sinks.find((s) => s.name === args.sink);
    if (!sink) {
      io.stderr(`sluice dead-letters: no sink "${args.sink}" in the config; sinks: ${config.sinks.map((s) => s.name).join(", ") || "(none)"}\n`);
      return 2;
    }
    const sources = sink.sources ?? config.sources.map((s) => s.name);
    target = { kind: "sink", name: sink.name, topic: deadLetterTopic(config, sink), tables: (topics) => tablesOf(config.name, sources, sinkTopics(config, sink, topics)) };
  } else {
    const source = config.sources.find((s) => s.name === args.source);
    if (!source) {
      io.stderr(`sluice dead-letters: no source "${args.source}" in the config; sources: ${config.sources.map((s) => s.name).join(", ") || "(none)"}\n`);
      return 2;
    }
    // Outbox tables and the logical messages' pseudo-table have no data topic of their own (their rows become events).
    const messages = source.kind === "postgres" && source.outbox?.message_prefix !== undefined ? [`${LOGICAL_MESSAGE_SCHEMA}.${source.outbox.message_prefix}`] : [];
    const outbox = [...(source.outbox?.tables ?? []), ...messages];
    target =
      args.messages === true
        ? { kind: "source", name: source.name, topic: outboxMessageDeadLetterTopic(config.name, source.name), tables: () => messages }
        : { kind: "source", name: source.name, topic: dataCheckDeadLetterTopic(config.name, source.name), tables: (topics) => [...new Set([...tablesOf(config.name, [source.name], topics), ...outbox])].sort() };
  }
  const log = await openTopicLogForCommand(config.topics, config.name, logger, "read-only");
  try {
    let table = args.table ?? null;
    if (table !== null) {
      // A typo showed "no dead letters of that table", as for a table that has none.
      const topics = await log.topicNames();
      const known = target.tables(topics);
      // Given as its topic: that topic's schema.table, when the sink reads it (the source writes it).
      let named = known.includes(table) ? table : topics.includes(table) ? target.tables([table])[0] : undefined;
      // A table with no data topic may still have dead letters: one whose every change a data check dead-lettered
      // (its topic is created at its first change written), or one whose topic was deleted. Refused only if none names it.
      if (named === undefined && (await hasDeadLetterOf(config, log, target, table))) named = table;
      if (named === undefined) {
        io.stderr(`sluice dead-letters: ${target.kind} "${target.name}" has no table "${oneLine(table)}" (give schema.table or its topic; its tables: ${known.length > 0 ? known.map(oneLine).join(", ") : "none yet"})\n`);
        return 2;
      }
      table = named;
    }
    return await printDeadLetters(config, log, target, { table, from, limit, values: args.values }, io);
  } finally {
    await log.close();
  }
}

async function printDeadLetters(
  config: SluiceConfig,
  log: TopicLog,
  target: Kind,
  options: { table: string | null; from: bigint | null; limit: number; values: boolean },
  io: DeadLettersIo,
): Promise<number> {
  const what = `${target.kind} "${target.name}"`;
  if ((await log.listTopics([target.topic])).length === 0) {
    io.stdout(`${what}: no dead letters (its dead-letter topic ${target.topic} does not exist yet: nothing was ever dead-lettered)\n`);
    return 0;
  }
  const ranges = (await log.partitionOffsets(target.topic)).sort((a, b) => a.partition - b.partition);
  const several = ranges.length > 1;
  const kept = ranges.map((r) => `${several ? `partition ${r.partition}: ` : ""}${r.end > r.start ? `offsets ${r.start} to ${r.end - 1n}` : "empty"}`).join(", ");
  if (ranges.every((r) => r.end <= r.start)) {
    io.stdout(`${what}: no dead letters (${target.topic} holds no record${ranges.some((r) => r.end > 0n) ? ": retention removed those it had" : ""})\n`);
    return 0;
  }
  io.stdout(`${what}: dead-letter topic ${target.topic} (${kept})${options.table === null ? "" : `, table ${options.table} only`}${options.values ? "" : "; values not shown (--values shows them)"}\n`);
  const read = target.kind === "sink" ? await sinkReader(config, log) : sourceDeadLetter;
  let shown = 0;
  let more = 0;
  let next: { partition: number; offset: bigint } | null = null;
  let lastSeen: { partition: number; offset: bigint } | null = null;
  outer: for (const range of ranges) {
    const start = options.from !== null && options.from > range.start ? options.from : range.start;
    for await (const record of readPartition(log, target.topic, range.partition, start, range.end)) {
      lastSeen = { partition: record.partition, offset: record.offset };
      if (shown < options.limit) {
        const letter = await read(record);
        if (options.table !== null && letter.table !== options.table) continue;
        io.stdout(formatDeadLetter(letter, { values: options.values, partition: several }));
        shown++;
        continue;
      }
      if (options.table !== null && (await tableOf(read, record)) !== options.table) continue;
      next ??= { partition: record.partition, offset: record.offset };
      if (++more >= COUNT_AT_MOST) break outer;
    }
  }
  io.stdout(summary(shown, more, next, several, lastSeen));
  return 0;
}

/** Whether any record of the dead-letter topic is of `table` (read to the end, or to the first). */
async function hasDeadLetterOf(config: SluiceConfig, log: TopicLog, target: Kind, table: string): Promise<boolean> {
  if ((await log.listTopics([target.topic])).length === 0) return false;
  const read = target.kind === "sink" ? await sinkReader(config, log) : sourceDeadLetter;
  for (const range of await log.partitionOffsets(target.topic)) {
    for await (const record of readPartition(log, target.topic, range.partition, range.start, range.end)) {
      if ((await tableOf(read, record)) === table) return true;
    }
  }
  return false;
}

/** The schema.table of each data topic of `sources` among `topics`, once each, sorted. */
function tablesOf(deployment: string, sources: readonly string[], topics: readonly string[]): string[] {
  const tables = topics.flatMap((topic) => {
    const parsed = parseDataTopic(deployment, sources, topic);
    return parsed === null ? [] : [`${parsed.schema}.${parsed.table}`];
  });
  return [...new Set(tables)].sort();
}

/** The table of a record, reading only what says it. */
async function tableOf(read: (record: StoredRecord) => DeadLetter | Promise<DeadLetter>, record: StoredRecord): Promise<string> {
  const table = header(record, "sluice.table");
  return table ?? (await read(record)).table;
}

export function summary(shown: number, more: number, next: { partition: number; offset: bigint } | null, several: boolean, lastSeen: { partition: number; offset: bigint } | null): string {
  if (shown === 0 && more === 0) return lastSeen === null ? "no dead letters from there\n" : "no dead letters of that table\n";
  if (next === null) return `${shown} dead letter${shown === 1 ? "" : "s"}, to the end of the topic\n`;
  const count = more >= COUNT_AT_MOST ? `at least ${more}` : String(more);
  const where = several ? `partition ${next.partition} offset ${next.offset}` : `offset ${next.offset}`;
  return `${shown} dead letter${shown === 1 ? "" : "s"} shown; ${count} more from ${where} (run again with --from ${next.offset}${several ? " (each partition from there)" : ""}, or a larger --limit)\n`;
}

/** A record as printed: its place, time, table, key, reason; with `values`, its row images. */
export function formatDeadLetter(letter: DeadLetter, options: { values: boolean; partition?: boolean }): string {
  const place = options.partition ? `partition ${letter.partition} offset ${letter.offset}` : `offset ${letter.offset}`;
  const lines = [`${place}  ${new Date(letter.timestamp).toISOString()}  ${oneLine(letter.table)}${letter.op === null ? "" : `  op ${letter.op}`}  key ${oneLine(letter.key)}`];
  if (letter.check !== undefined) lines.push(`  check ${oneLine(letter.check)}${letter.column ? `, column ${oneLine(letter.column)}` : ""}`);
  lines.push(`  reason: ${oneLine(letter.reason)}`);
  if (letter.origin !== undefined) lines.push(`  from ${oneLine(letter.origin)}`);
  if (options.values) {
    if (letter.images === undefined) lines.push("  values: (the record could not be read: see the key)");
    else {
      if (letter.images.after !== null) lines.push(`  after: ${oneLine(rowJson(letter.images.after))}`);
      if (letter.images.before !== null) lines.push(`  before: ${oneLine(rowJson(letter.images.before))}`);
      if (letter.images.after === null && letter.images.before === null) lines.push("  values: (none: the change carries no row image)");
    }
    for (const note of letter.personal ?? []) lines.push(`  personal: ${oneLine(note)}`);
  }
  return `${lines.join("\n")}\n`;
}

/** A row as JSON: integers beyond a double as their digits, bytes as hex (\x...), an unchanged TOAST value as "(unchanged)". */
export function rowJson(row: Row): string {
  return (
    JSON.stringify(row, (_key, value: unknown) => {
      if (typeof value === "bigint") return value.toString();
      if (value instanceof Uint8Array) return `\\x${Buffer.from(value).toString("hex")}`;
      if (value === UNCHANGED) return "(unchanged)";
      return value;
    }) ?? "{}"
  );
}

function header(record: StoredRecord, name: string): string | undefined {
  const value = record.headers?.[name];
  return value === undefined ? undefined : Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("utf8");
}

/** A source's data-check dead letter: the change as JSON (event-json.ts), the check in its headers. */
export function sourceDeadLetter(record: StoredRecord): DeadLetter {
  const base = { partition: record.partition, offset: record.offset, timestamp: record.timestamp, reason: header(record, "sluice.reason") ?? "(no sluice.reason header)", check: header(record, "sluice.check") ?? "?", column: header(record, "sluice.column") ?? "" };
  const personal = personalNotes(record);
  let event: ChangeEvent;
  try {
    if (record.value === null) throw new Error("the record has no value");
    event = deserializeEventBytes(record.value);
  } catch (error) {
    return { ...base, table: header(record, "sluice.table") ?? "?", key: `(not readable: ${(error as Error).message})`, op: null, personal };
  }
  return { ...base, table: header(record, "sluice.table") ?? tableName(event.schema), key: rowJson(event.key), op: event.op, images: { before: event.before, after: event.after }, personal };
}

function personalNotes(record: StoredRecord): string[] {
  const notes: string[] = [];
  const sealed = header(record, SEALED_HEADER);
  const parking = header(record, PARKING_KEY_HEADER);
  // Under a parking key the header says whose (a subject's, or its table's: no data subject's): the first note does not.
  if (sealed !== undefined) notes.push(`sealed with ${parking === undefined ? "the subject's key" : "a key"}, shown as stored: ${sealed}`);
  if (parking !== undefined) notes.push(`sealed with a parking key: ${parking}`);
  const nulled = header(record, NULLED_HEADER);
  if (nulled !== undefined) notes.push(`not written (null): ${nulled}`);
  return notes;
}

/**
 * A sink's dead letters: the data topic's record, decoded as the sink decodes it (personal columns
 * left sealed). A record whose schema the registry cannot give is listed with the reason instead of
 * its key; a schema id that failed once is not asked again (a remote registry down costs one timeout).
 */
async function sinkReader(config: SluiceConfig, log: TopicLog): Promise<(record: StoredRecord) => Promise<DeadLetter>> {
  let decoder: ReturnType<typeof recordDecoder> | null = null;
  let registryFailure: string | null = null;
  try {
    decoder = recordDecoder((await openRegistry(config, log)).registry);
  } catch (error) {
    registryFailure = `the schema registry could not be opened: ${(error as Error).message}`;
  }
  const failedIds = new Map<number, string>();
  const sources = config.sources.map((s) => s.name);
  return async (record) => {
    const origin = header(record, "sluice.origin");
    const originTopic = origin?.replace(/:\d+:\d+$/, "");
    const parsed = originTopic === undefined ? null : parseDataTopic(config.name, sources, originTopic);
    const base = {
      partition: record.partition,
      offset: record.offset,
      timestamp: record.timestamp,
      reason: header(record, "sluice.error") ?? "(no sluice.error header)",
      ...(origin === undefined ? {} : { origin }),
    };
    const guessed = parsed ? `${parsed.schema}.${parsed.table}` : (originTopic ?? "?");
    let schemaId: number | null = null;
    try {
      if (record.value !== null) schemaId = schemaIdOf(record.value);
    } catch {
      schemaId = null;
    }
    const known = registryFailure ?? (schemaId === null ? undefined : failedIds.get(schemaId));
    if (known !== undefined || decoder === null) return { ...base, table: guessed, key: `(not decoded: ${known ?? "no decoder"})`, op: null };
    try {
      const event = await decoder.decode(record);
      if (event === null) return { ...base, table: guessed, key: "(a tombstone: no row)", op: null };
      return { ...base, table: tableName(event.schema), key: rowJson(event.key), op: event.op, images: { before: event.before, after: event.after } };
    } catch (error) {
      const message = error instanceof SluiceError || error instanceof Error ? error.message : String(error);
      if (schemaId !== null) failedIds.set(schemaId, message);
      return { ...base, table: guessed, key: `(not decoded: ${message})`, op: null };
    }
  };
}

/**
 * The records of one partition from `start` to `end` (exclusive), a chunk at a time: by offset
 * where the log reads ranges (Kafka: no consumer group), else with a consumer that commits nothing.
 */
async function* readPartition(log: TopicLog, topic: string, partition: number, start: bigint, end: bigint): AsyncGenerator<StoredRecord> {
  if (start >= end) return;
  if (log.readRange) {
    for (let from = start; from < end; ) {
      const to = from + BigInt(CHUNK_RECORDS) < end ? from + BigInt(CHUNK_RECORDS) : end;
      const records = await log.readRange(topic, partition, from, to);
      for (const record of records) yield record;
      from = to;
    }
    return;
  }
  const consumer = await log.consumer(`sluice-dead-letters.${process.pid}.${Date.now()}`, [topic]);
  try {
    for (const range of await log.partitionOffsets(topic)) {
      await consumer.seek(topic, range.partition, range.partition === partition ? { kind: "offset", offset: start } : { kind: "latest" });
    }
    while ((consumer.position(topic, partition) ?? start) < end) {
      const records = await consumer.poll({ maxRecords: CHUNK_RECORDS, maxBytes: 16 << 20, maxWaitMs: 200 });
      if (records.length === 0) break;
      for (const record of records) if (record.partition === partition && record.offset < end) yield record;
    }
  } finally {
    await consumer.close();
  }
}
