/**
 * The one schema of a Sluice deployment file. Every key, its type, its default and its meaning
 * live here; `docs/config-reference.md` is generated from it (`npm run docs:config`) and a test
 * fails when that page is stale.
 *
 * Secrets: any key named in SECRET_KEYS may instead be given as `<key>_file: /path` (see document.ts);
 * their values are kept out of every log line, error and answer (see redact.ts).
 */
import { z } from "zod";
import { httpPathClashes, sharedResourceClashes } from "./clashes.ts";
import { nearest } from "./issues.ts";
import { governance, personalData } from "./governance.ts";
import { DURATION_PATTERN, formatDuration, formatSize, parseDuration, parseSize, SIZE_PATTERN } from "./units.ts";

export { SECRET_KEYS } from "./secret-keys.ts";

/** The longest wait a Node.js timer can take (2^31-1 ms, about 24.8 days; a longer one fires at once), rounded down to whole days. */
const MAX_TIMER_MS = 24 * 86_400_000;

interface Bounds {
  /** Smallest value other than 0. */
  readonly min: number;
  readonly max: number;
  /** Whether 0 is allowed (it then means something special, e.g. "disabled", said in the description). */
  readonly zero?: boolean;
}

function shown(value: unknown): string {
  return typeof value === "string" ? `"${value}"` : `${typeof value} ${String(value)}`;
}

function boundsProblem(value: number, bounds: Bounds, what: string, format: (n: number) => string): string | undefined {
  if ((value === 0 && bounds.zero) || (value >= bounds.min && value <= bounds.max)) return undefined;
  return `expected ${bounds.zero ? "0 or " : ""}${what} from ${format(bounds.min)} to ${format(bounds.max)}`;
}

/** Without bounds: 0 or up to the longest timer, unsaid in the description. */
const duration = (description: string, given?: Bounds) =>
  z
    .union([
      z.number().int().nonnegative(),
      z.string().regex(DURATION_PATTERN, {
        error: (issue) => (String(issue.input).trim().startsWith("-") ? "expected a duration of 0 or more (durations cannot be negative)" : 'expected a duration such as "500ms", "5s", "2m", "1h" or "7d"'),
      }),
    ])
    .transform((value, ctx) => {
      const ms = typeof value === "number" ? value : parseDuration(value)!;
      const problem = boundsProblem(ms, given ?? { min: 1, max: MAX_TIMER_MS, zero: true }, "a duration", formatDuration);
      if (problem === undefined) return ms;
      ctx.issues.push({ code: "custom", message: `${problem}, got ${shown(value)}`, input: value });
      return z.NEVER;
    })
    .describe(`${description} (duration: "500ms", "5s", "2m", "1h", "7d", or milliseconds${given ? `; ${given.zero ? "0 or " : ""}${formatDuration(given.min)} to ${formatDuration(given.max)}` : ""})`);

/** Without bounds: up to 1TiB, unsaid in the description. */
const size = (description: string, given?: Bounds) =>
  z
    .union([
      z.number().int().positive(),
      z.string().regex(SIZE_PATTERN, { error: 'expected a size such as "512KiB", "64MiB" or "1GB"' }),
    ])
    .transform((value, ctx) => {
      const bytes = typeof value === "number" ? value : parseSize(value)!;
      const problem = boundsProblem(bytes, given ?? { min: 1, max: 2 ** 40 }, "a size", formatSize);
      if (problem === undefined) return bytes;
      ctx.issues.push({ code: "custom", message: `${problem}, got ${shown(value)}`, input: value });
      return z.NEVER;
    })
    .describe(`${description} (size: "512KiB", "64MiB", "1GB", or bytes${given ? `; ${formatSize(given.min)} to ${formatSize(given.max)}` : ""})`);

const ES_TIME_VALUE_PATTERN = /^(?:-1|[1-9]\d*(?:ms|s|m|h|d))$/;
const ES_TIME_VALUE_ERROR = 'expected an Elasticsearch time value such as "200ms" or "1s" (a whole number above 0 with ms, s, m, h or d) or -1';

/** Kept as the text Elasticsearch reads, not converted to milliseconds like `duration`; a bare number would lack its unit. */
const esTimeValue = (description: string) =>
  z
    .union([
      z.string().regex(ES_TIME_VALUE_PATTERN, { error: ES_TIME_VALUE_ERROR }),
      z.number().refine((value) => value === -1, { error: (issue) => `${ES_TIME_VALUE_ERROR}, got number ${String(issue.input)}` }),
    ])
    .transform(String)
    .describe(description);

const identifier = (description: string) =>
  z
    .string()
    .regex(/^[A-Za-z_][A-Za-z0-9_]*$/, { error: "expected letters, digits and underscores, not starting with a digit" })
    .max(63)
    .describe(description);

const port = (fallback: number, description: string) =>
  z.number().int().min(1).max(65535).default(fallback).describe(description);

const hostPort = (description: string) =>
  z
    .string()
    .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, { error: 'expected "host:port"', abort: true })
    .refine((value) => {
      const p = Number(value.slice(value.lastIndexOf(":") + 1));
      return p >= 1 && p <= 65535;
    }, { error: (issue) => `port must be between 1 and 65535, got "${String(issue.input)}"` })
    .describe(description);

const httpUrl = (description: string) =>
  z
    .string()
    .regex(/^[^\s\u0000-\u001f\u007f]*$/, { error: "expected a URL without spaces or control characters (write a space in a path as %20)", abort: true })
    .refine((value) => {
      try {
        const url = new URL(value);
        return (url.protocol === "http:" || url.protocol === "https:") && url.hostname !== "";
      } catch {
        return false;
      }
    }, { error: 'expected an http:// or https:// URL, e.g. "http://127.0.0.1:9200"' })
    .describe(description);

const urlPath = (description: string) =>
  z
    .string()
    .regex(/^(\/[A-Za-z0-9_-]+)+$/, { error: 'expected a URL path such as "/registry": "/" and segments of letters, digits, _ and -, no trailing "/"' })
    .describe(description);

const TARGET_PLACEHOLDERS = ["source", "schema", "table"];

/** Why a sink's target template is unusable, or undefined. */
function targetProblem(template: string): string | undefined {
  const braces = template.replace(/\{[A-Za-z0-9_]*\}/g, "");
  if (/[{}]/.test(braces)) return `unbalanced "{" or "}" in "${template}"; placeholders are {source}, {schema}, {table}`;
  for (const [, name] of template.matchAll(/\{([A-Za-z0-9_]*)\}/g)) {
    if (!TARGET_PLACEHOLDERS.includes(name!)) {
      const close = nearest(name!, TARGET_PLACEHOLDERS);
      return `unknown placeholder "{${name}}" in "${template}"; placeholders are {source}, {schema}, {table}${close ? `; did you mean "{${close}}"?` : ""}`;
    }
  }
  return undefined;
}

const tableFilter = z
  .array(
    z
      .string()
      .regex(/^!?[A-Za-z0-9_*?$-]+\.[A-Za-z0-9_*?$-]+$/, { error: 'expected "schema.table" ("*" and "?" are wildcards; "!schema.table" excludes)' }),
  )
  .min(1)
  .refine((patterns) => patterns.length === 0 || patterns.some((pattern) => !pattern.startsWith("!")), { error: 'needs a pattern that includes tables, not only "!" exclusions' })
  .describe('Tables as "schema.table"; "*" and "?" are wildcards (e.g. "public.*"); a pattern starting with "!" excludes what it matches (e.g. ["shop.*", "!shop._*"])');

const tls = z
  .strictObject({
    mode: z
      .enum(["disable", "require", "verify-ca", "verify-full"])
      .default("disable")
      .describe("disable: plain TCP; require: TLS without certificate checks; verify-ca/verify-full: check the server certificate (and host name)"),
    ca_file: z.string().optional().describe("PEM file with the CA certificate(s) to trust (default: Node's bundled public CAs)"),
    cert_file: z.string().optional().describe("PEM file with a client certificate, for servers that ask for one (requires key_file)"),
    key_file: z.string().optional().describe("PEM file with the client certificate's private key (requires cert_file)"),
  })
  .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), { error: "cert_file and key_file go together: set both or neither" })
  .default({ mode: "disable" })
  .describe("TLS to the server");

const snapshot = z
  .strictObject({
    mode: z
      .enum(["initial", "never", "when-needed"])
      .default("initial")
      .describe("initial: snapshot the tables once before streaming; never: stream only; when-needed: snapshot when no usable checkpoint exists"),
    parallelism: z.number().int().min(1).max(64).default(2).describe("Tables read at the same time, each on a connection of its own (the initial snapshot, and online snapshots)"),
    chunk_rows: z.number().int().min(1).default(10_000).describe("Rows per primary-key chunk"),
    chunks_in_flight: z
      .number()
      .int()
      .min(1)
      .max(256)
      .optional()
      .describe(
        "Online snapshots (default parallelism + 2): the budget of chunks read and not yet handed on to the stream, across every table read at once (parallelism tables, each on a connection of its own); memory holds at most this many chunks of chunk_rows rows. docs/snapshots.md",
      ),
    method: z
      .enum(["exported", "online"])
      .optional()
      .describe(
        "PostgreSQL initial snapshot (default exported): exported: every table inside the slot's exported snapshot (consistent across tables; after a crash the finished tables are kept and the rest is read online on the same slot); online: stream at once and read each table with online snapshots (progress kept per chunk, a crash resumes; every table needs a primary key or replica identity index). docs/snapshots.md",
      ),
    signal_table: z
      .string()
      .regex(/^[A-Za-z0-9_$-]+\.[A-Za-z0-9_$-]+$/, { error: 'expected "schema.table"' })
      .optional()
      .describe(
        'A table Sluice polls for snapshot requests where `sluice snapshot` cannot reach the daemon (columns id text primary key, type text, data text; a row (\'id\', \'snapshot\', \'{"table": "schema.table", "where": null}\') queues an online snapshot; Sluice deletes the rows it took; MySQL: "database.table"). docs/snapshots.md',
      ),
    watermark_table: z
      .string()
      .regex(/^[A-Za-z0-9_$-]+\.[A-Za-z0-9_$-]+$/, { error: 'expected "database.table"' })
      .optional()
      .describe(
        "MySQL/MariaDB online snapshots: the table Sluice writes a chunk's low and high watermarks to (created where missing: source VARBINARY(255) PRIMARY KEY, mark VARBINARY(255); never captured); default sluice_watermarks in the database of the first `tables` pattern that names one database. docs/mysql.md",
      ),
  })
  .default({ mode: "initial", parallelism: 2, chunk_rows: 10_000 })
  .describe("Initial snapshot");

const decimalMode = z
  .enum(["precise", "double", "string"])
  .default("precise")
  .describe(
    "How numerics are encoded in Avro (Debezium's decimal.handling.mode): precise (Avro decimal; VariableScaleDecimal without a declared scale), double, or string; with envelope sluice only numerics without a declared scale follow it",
  );

const sourceCommon = {
  name: identifier("Logical source name: first part of its topic names (<name>.<schema>.<table>) and Avro record names"),
  host: z
    .string()
    .min(1)
    .regex(/^[^\s\u0000-\u001f\u007f]+$/, { error: "expected a host name or address without spaces or control characters" })
    .default("127.0.0.1")
    .describe("Server host"),
  user: z.string().min(1).describe("User name"),
  password: z.string().optional().describe("Password (or password_file)"),
  tls,
  tables: tableFilter,
  snapshot,
  decimal_mode: decimalMode,
  envelope: z
    .enum(["debezium", "sluice"])
    .default("debezium")
    .describe(
      "Topic values: debezium: exactly Debezium's change-event envelope (Sluice's bookkeeping in record headers, unchanged TOAST as Debezium's placeholder or copied from before); sluice: the layout of earlier Sluice versions (bookkeeping fields in the row records, truncates as op t records), docs/avro-types.md",
    ),
  time_precision_mode: z
    .enum(["adaptive", "connect", "avro"])
    .default("adaptive")
    .describe(
      "Dates, times and timestamps (Debezium's time.precision.mode): adaptive: Debezium's io.debezium.time types, ms or µs by the column's precision, timestamps with a zone as ISO-8601 text; connect: Kafka Connect's millisecond logical types; avro: the Avro specification's date, time-micros, timestamp-micros (earlier Sluice versions; always with envelope sluice). docs/avro-types.md",
    ),
  skipped_operations: z
    .array(z.enum(["c", "u", "d", "t"]))
    .default(["t"])
    .describe(
      "Operations Debezium consumers do not get (Debezium's skipped.operations). Truncates always go to the control topic <deployment>.sluice.control, which Sluice's sinks apply; a skipped truncate is not written into the data topic, [] writes it there too as an op t record; skipped c/u/d are not written at all. Ignored with envelope sluice (truncates in the data topic too)",
    ),
  max_buffer_bytes: size("Bound on changes read ahead of the topic log, counting about 256 bytes of bookkeeping per change; a slower topic log slows reading. Default: a share of `memory`, 2MiB to 64MiB (docs/operations.md#memory)", { min: 64 * 2 ** 10, max: 64 * 2 ** 30 }).optional(),
  transaction_metadata: z
    .boolean()
    .default(false)
    .describe(
      "Publish BEGIN/END events with event counts to <deployment>.<name>.transaction (Avro, Debezium's layout, registered subjects) and fill each event's transaction block {id, total_order, data_collection_order}; the id is PostgreSQL's xid, MySQL/MariaDB's GTID (without GTIDs file=<binlog file>,pos=<offset of BEGIN>)",
    ),
  heartbeat_interval: duration("Advance the acknowledged position this often when captured tables are quiet (PostgreSQL: a heartbeat message; MySQL/MariaDB: the server's binlog heartbeat); 0 turns heartbeat messages off, and PostgreSQL then still follows the server's keepalives every 10 s", { min: 100, max: 86_400_000, zero: true }).default(10_000),
  governance,
  dead_letter_retention: z
    .strictObject({
      max_age: duration("Drop dead letters older than this; 0: no age bound", { min: 60_000, max: 3650 * 86_400_000, zero: true }).default(0),
      max_bytes: size("Drop the oldest dead letters while the topic holds more than this (per partition; it has one); not set: no size bound", { min: 64 * 2 ** 20, max: 2 ** 40 }).optional(),
    })
    .optional()
    .describe(
      "Retention of the source's dead-letter topic <deployment>.dlq.<source> (changes a data check dead-letters, rows of outbox tables that are no event): not set, they are kept for ever, since a dead letter is the only copy of its change (nothing of it reaches the data topic). Setting it drops dead letters nobody may have read. Logical messages' dead letters have a bounded topic of their own (outbox.message_dead_letter_retention). Applied when Sluice creates the topic, and by the embedded log to an existing one at each start (logged); Kafka does not change an existing topic (docs/governance.md#dead-letters)",
    ),
};

const outboxColumns = z
  .strictObject({
    event_id: z.string().min(1).default("id").describe("The event's id: the record's `id` header"),
    aggregate_type: z.string().min(1).default("aggregatetype").describe("Chooses the topic ({aggregate_type} in `topic`)"),
    aggregate_id: z.string().min(1).default("aggregateid").describe("The record's key (as text): one aggregate's events stay in order on one partition"),
    event_type: z.string().min(1).default("type").describe("The record's `type` header"),
    payload: z.string().min(1).default("payload").describe("The record's value; a null payload is a tombstone"),
  })
  .default({ event_id: "id", aggregate_type: "aggregatetype", aggregate_id: "aggregateid", event_type: "type", payload: "payload" })
  .describe("Columns (for logical messages: JSON fields) holding the event's parts; the defaults are Debezium's outbox event router's");

const outboxFields = {
  tables: z
    .array(z.string().regex(/^[A-Za-z0-9_$-]+\.[A-Za-z0-9_$-]+$/, { error: 'expected "schema.table" (MySQL: "database.table")' }))
    .default([])
    .describe("Outbox tables, also matched by the source's `tables`: each inserted row becomes an event on the topic its aggregate type chooses, instead of a row change"),
  columns: outboxColumns,
  topic: z
    .string()
    .min(1)
    .default("{deployment}.outbox.{aggregate_type}")
    .describe("Topic of an event; {deployment}, {source} and {aggregate_type} are replaced (characters other than letters, digits, . _ - become _)"),
  table_mode: z
    .enum(["insert-only", "insert-then-delete"])
    .default("insert-only")
    .describe("insert-only: rows stay (deleting old ones is the user's job; any delete is ignored); insert-then-delete: each event row is deleted in its transaction (the delete is expected and ignored). Updates are never events; snapshot rows are not published"),
  payload: z
    .strictObject({
      format: z.enum(["json", "avro"]).default("json").describe("json: the payload is published as it is (its text); avro: the payload's JSON is encoded with the aggregate type's schema, registered under <topic>-value"),
      schemas: z.record(z.string(), z.string().min(1)).default({}).describe("avro: Avro schema file (.avsc) per aggregate type"),
    })
    .default({ format: "json", schemas: {} })
    .describe("How payloads become record values"),
  on_invalid: z
    .enum(["dead-letter", "halt"])
    .default("dead-letter")
    .describe(
      "An event that is no event (a part missing, content not JSON or refused unread, a payload its Avro schema refuses, over max_message_bytes): dead-letter sends it with the reason to <deployment>.dlq.<source> (a row) or <deployment>.dlq.<source>.messages (a logical message) and the stream flows on; halt stops the outbox table (parked, released with sluice halted retry|skip). An aggregate type with no schema in payload.schemas (avro), a schema file that cannot be read or the registry refusing a schema halts either way (docs/outbox.md)",
    ),
  aggregate_types: z
    .array(z.string().min(1))
    .min(1)
    .optional()
    .describe(
      "Only these aggregate types are events: another one is refused before its topic is made (a logical message is no event: dead-lettered, or halting with on_invalid halt; a row of an outbox table halts the table, OUTBOX_TOPIC_REFUSED, until the config lists it). Default: any type, within max_topics. Required with PostgreSQL's message_prefix when `topic` holds {aggregate_type}: anyone connected may emit a logical message, so the list names the types messages may make topics for",
    ),
  max_topics: z
    .number()
    .int()
    .min(1)
    .max(100_000)
    .default(100)
    .describe(
      "Most outbox topics (topics matching `topic`, existing ones included) the source makes: an aggregate type whose topic does not exist yet is refused past it, as an unlisted one (aggregate_types). Topics that exist are always written; with aggregate_types set, the list bounds the topics instead (docs/outbox.md#which-topics-the-outbox-makes)",
    ),
  max_message_bytes: size(
    "Largest event content (a logical message's content, an outbox row's payload); a larger one is dead-lettered (or halts, on_invalid) keeping its first 64KiB: a logical message over it is never made a string nor kept whole past decoding. Default: topics.max_record_bytes, so every payload that fits a record is published; set it lower to bound the memory a logical message takes. A record over topics.max_record_bytes (or a Kafka topic's max.message.bytes) is refused the same way (docs/outbox.md#size)",
    { min: 1024, max: 2 ** 30 },
  ).optional(),
};

/** outbox.max_message_bytes as it applies: when not set, the deployment's topics.max_record_bytes (a larger payload could not be published anyway). */
export function outboxMessageBytes(outbox: { readonly max_message_bytes?: number | undefined }, topics: { readonly max_record_bytes: number }): number {
  return outbox.max_message_bytes ?? topics.max_record_bytes;
}

const mysqlOutbox = z.strictObject(outboxFields).optional().describe("Outbox routing (docs/outbox.md): rows of outbox tables become events on topics chosen by a column");
const postgresOutbox = z
  .strictObject({
    ...outboxFields,
    message_prefix: z.string().min(1).optional().describe("Also turn logical decoding messages with this prefix (pg_logical_emit_message) into events; their content is a JSON object whose fields are named as `columns`. Needs aggregate_types when `topic` holds {aggregate_type}"),
    message_dead_letter_retention: z
      .strictObject({
        max_age: duration("Drop dead letters older than this; 0 keeps them until max_bytes", { min: 60_000, max: 3650 * 86_400_000, zero: true }).default(0),
        max_bytes: size("Drop the oldest dead letters while the topic holds more than this (per partition; it has one)", { min: 64 * 2 ** 20, max: 2 ** 40 }).default(2 ** 30),
      })
      .default({ max_age: 0, max_bytes: 2 ** 30 })
      .describe(
        "Retention of <deployment>.dlq.<source>.messages, where logical messages that are no event go: anyone connected to the database may emit them, so the topic is bounded (default 1GiB, max_age 0). Applied when Sluice creates the topic, and by the embedded log to an existing one at each start (logged); Kafka does not change an existing topic (docs/outbox.md#when-an-event-is-not-one)",
      ),
  })
  .superRefine((outbox, ctx) => {
    // A message of a type with no topic yet would be dead-lettered (bounded, evictable) or halt: its events lost without a word.
    if (outbox.message_prefix !== undefined && outbox.aggregate_types === undefined && outbox.topic.includes("{aggregate_type}")) {
      ctx.addIssue({
        code: "custom",
        path: ["aggregate_types"],
        message:
          "required with message_prefix (when topic holds {aggregate_type}): any database login may emit logical messages, so they may make only the topics of the aggregate types listed here; without the list a message of a type with no topic yet is dead-lettered or halts (docs/outbox.md#which-topics-the-outbox-makes)",
      });
    }
  })
  .optional()
  .describe("Outbox routing (docs/outbox.md): rows of outbox tables, and logical decoding messages with a prefix, become events on topics chosen by a column");

const postgresSource = z.strictObject({
  kind: z.literal("postgres"),
  ...sourceCommon,
  port: port(5432, "Server port"),
  database: z.string().min(1).describe("Database to capture"),
  slot: identifier("Logical replication slot (default: sluice_<name>)").optional(),
  publication: identifier("Publication (default: sluice_<name>)").optional(),
  create_slot: z.boolean().default(true).describe("Create the slot when it does not exist (never when a checkpoint exists: a missing slot with a checkpoint is refused)"),
  create_publication: z.boolean().default(true).describe("Create the publication when it does not exist"),
  key_columns: z
    .record(z.string(), z.array(z.string().min(1)).min(1))
    .default({})
    .describe('Key columns for tables without a primary key or replica identity index, e.g. {"public.events": ["id"]}'),
  interval_handling_mode: z
    .enum(["numeric", "string"])
    .default("numeric")
    .describe(
      "PostgreSQL interval columns (Debezium's interval.handling.mode): numeric: io.debezium.time.MicroDuration, microseconds with a month as 30.4375 days (Debezium's default; the exact value travels in the sluice.special header for Sluice's sinks); string: io.debezium.time.Interval, Debezium's ISO 8601 text with every part, e.g. P0Y0M-1DT0H0M-1S (with envelope sluice: PostgreSQL's own ISO 8601 text, as earlier Sluice versions). A subject registered with string keeps it when its compatibility level refuses the change. docs/avro-types.md",
    ),
  hstore_handling_mode: z
    .enum(["json", "map"])
    .default("json")
    .describe(
      "PostgreSQL hstore columns (Debezium's hstore.handling.mode): json: a JSON object as text, io.debezium.data.Json (Debezium's default); map: an Avro map of nullable strings (earlier Sluice versions; always with envelope sluice). A subject registered with map keeps it when its compatibility level refuses the change. docs/avro-types.md",
    ),
  wal_receiver_timeout: duration(
    "Drop and reopen the replication connection when nothing (no change, no keepalive) has arrived from the server for this long, as PostgreSQL's own wal_receiver_timeout: a paused server or a network that drops packets then shows as not ready (/readyz, sluice status) and capture reconnects with backoff. A reply is asked for at half of it; 0 never gives up",
    { min: 1_000, max: 86_400_000, zero: true },
  ).default(60_000),
  outbox: postgresOutbox,
});

const mysqlSource = z.strictObject({
  kind: z.literal("mysql"),
  ...sourceCommon,
  port: port(3306, "Server port"),
  server_id: z.number().int().min(1).max(4294967295).describe("Replica server id, unique among the server's replicas"),
  zero_dates: z
    .enum(["null", "error"])
    .default("null")
    .describe("What a zero date (0000-00-00, or a zero month or day) or a date no calendar has (2024-02-30, allowed by ALLOW_INVALID_DATES) becomes: null, or an error that halts the table. In a key column it always halts the table (a key cannot be null): docs/mysql.md#zero-dates-in-a-key-column"),
  partition_drops: z
    .enum(["mirror", "keep"])
    .default("mirror")
    .describe(
      "Rows that ALTER TABLE ... DROP, TRUNCATE or CONVERT PARTITION removes with no row event: mirror: the table is read again whole and the read's reset removes them from the sinks; keep: the sinks keep them, nothing is read (a warehouse kept as the archive of a table whose old partitions are dropped on a schedule). EXCHANGE PARTITION, CONVERT TABLE ... TO PARTITION, IMPORT TABLESPACE bring rows in: the table is read whole either way, under keep with no reset. History partitions of a MariaDB PARTITION BY SYSTEM_TIME table are never read for. PostgreSQL differs (it keeps a detached or dropped partition's rows, reads the root again after a partition's TRUNCATE, and has no setting): docs/mysql.md#schema-changes-and-the-schema-history",
    ),
  allow_public_key_retrieval: z
    .boolean()
    .default(false)
    .describe(
      "With tls.mode disable: let a MySQL 8 account on caching_sha2_password or sha256_password fetch the server's RSA public key over the plain connection to encrypt the password (anyone on the network can replace the key and read the password). Off: such a login is refused before the password is sent; use TLS or server_public_key_file instead. docs/security.md#mysql-8-password-logins-without-tls",
    ),
  server_public_key_file: z
    .string()
    .optional()
    .describe("With tls.mode disable: PEM file with the MySQL server's RSA public key (its public_key.pem), used to encrypt the password of a caching_sha2_password or sha256_password login instead of asking the server for its key. docs/security.md#mysql-8-password-logins-without-tls"),
  outbox: mysqlOutbox,
});

const source = z.discriminatedUnion("kind", [postgresSource, mysqlSource]);

const RETENTION_DEFAULT = {
  cleanup_policy: "compact" as const,
  max_age: 7 * 86_400_000,
  tombstones: 7 * 86_400_000,
  min_compaction_lag: 3_600_000,
};
const retention = z
  .strictObject({
    cleanup_policy: z
      .enum(["compact", "compact,delete", "delete"])
      .default(RETENTION_DEFAULT.cleanup_policy)
      .describe(
        "Data topics Sluice creates: compact keeps the latest record of every row forever (replay from the beginning yields the current state); compact,delete also drops records past max_age/max_bytes, and delete keeps changes by age and size only: with either, rebuilds and new sinks need a re-snapshot once records expired (docs/topics.md)",
      ),
    max_age: duration("Drop records older than this; 0 keeps forever. Data topics: only with cleanup_policy delete or compact,delete, and for tables without a key (their topics cannot be compacted)", { min: 1_000, max: 3650 * 86_400_000, zero: true }).default(RETENTION_DEFAULT.max_age),
    max_bytes: size("Drop the oldest records of a partition beyond this size (as max_age)").optional(),
    tombstones: duration("Compacted topics: how long a deleted row's tombstone is kept (Kafka delete.retention.ms); a sink that lags more than this may miss deletes", { min: 1_000, max: 3650 * 86_400_000 }).default(RETENTION_DEFAULT.tombstones),
    min_compaction_lag: duration("Compacted topics: records younger than this are never compacted (Kafka min.compaction.lag.ms), so recent history stays whole", { min: 1_000, max: 3650 * 86_400_000, zero: true }).default(RETENTION_DEFAULT.min_compaction_lag),
  })
  .default(RETENTION_DEFAULT)
  .describe("Retention and compaction of topic records");

const MAX_RECORD_BYTES_DEFAULT = 16 * 2 ** 20;
const maxRecordBytes = size(
  "Largest topic record (a row change's Avro key and value with framing). Topics Sluice creates get it as max.message.bytes (its parking and dead-letter topics four times it), so a batch of batch_bytes fits too; consumers fetch records of that size; a larger record halts its table at capture (parked, nothing lost). Kafka: a topic that exists with a smaller max.message.bytes is reported at start with the command that raises it, batches to it stay within it, and a row over it halts its table (docs/topics.md#record-size)",
  { min: 2 ** 10, max: 256 * 2 ** 20 },
).default(MAX_RECORD_BYTES_DEFAULT);

const embeddedTopics = z.strictObject({
  kind: z.literal("embedded"),
  path: z.string().min(1).default("./data/sluice.db").describe("The one file holding records, offsets, checkpoints and the schema registry; a relative path is from the process's working directory, not the config file's folder (`sluice validate` and the start log show it absolute)"),
  partitions: z.number().int().min(1).max(1024).default(1).describe("Partitions per topic"),
  retention,
  max_record_bytes: maxRecordBytes,
  cache_size: size("SQLite page cache of each connection to the file (the main thread and each sink thread hold one). Default: memory / 128, 1 MiB to 64 MiB (docs/operations.md#memory)", { min: 2 ** 20, max: 2 ** 30 }).optional(),
});

const kafkaTopics = z.strictObject({
  kind: z.literal("kafka"),
  brokers: z.array(hostPort("Bootstrap broker")).min(1).describe('Bootstrap brokers, "host:port"'),
  client_id: z.string().min(1).default("sluice").describe("Kafka client id"),
  partitions: z.number().int().min(1).max(10_000).default(3).describe("Partitions for topics Sluice creates"),
  replication_factor: z.number().int().min(1).max(10).default(1).describe("Replication factor for topics Sluice creates"),
  compression: z.enum(["none", "gzip", "lz4", "zstd"]).default("none").describe("Record batch compression"),
  linger: duration("Wait this long to fill a batch", { min: 1, max: 60_000, zero: true }).default(5),
  batch_bytes: size("Largest record batch of one partition in a produce request (a request holds up to four, at most 64MiB beyond one); a topic whose max.message.bytes is smaller gets batches within it, so batch_bytes above max_record_bytes or a topic's limit is never refused (docs/topics.md#record-size)", { min: 2 ** 10, max: 2 ** 30 }).default(2 ** 20),
  max_in_flight: z.number().int().min(1).max(5).default(5).describe("Produce requests in flight per broker"),
  transactions: z.boolean().default(true).describe("Commit records and the source checkpoint in one Kafka transaction"),
  retention,
  max_record_bytes: maxRecordBytes,
  sasl: z
    .strictObject({
      mechanism: z.enum(["plain", "scram-sha-256", "scram-sha-512"]).describe("SASL mechanism"),
      username: z.string().min(1).describe("SASL user"),
      password: z.string().optional().describe("SASL password (or password_file)"),
    })
    .optional()
    .describe("SASL authentication"),
  tls: z
    .strictObject({
      enabled: z.boolean().default(true).describe("Use TLS (the brokers' certificate and host name are always checked)"),
      ca_file: z.string().optional().describe("PEM file with the CA certificate(s) to trust (default: Node's bundled public CAs)"),
      cert_file: z.string().optional().describe("PEM file with a client certificate, for brokers with ssl.client.auth=required (requires key_file)"),
      key_file: z.string().optional().describe("PEM file with the client certificate's private key (requires cert_file)"),
    })
    .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), { error: "cert_file and key_file go together: set both or neither" })
    .optional()
    .describe("TLS to the brokers (SASL_SSL with sasl, SSL without)"),
});

const topics = z
  .discriminatedUnion("kind", [embeddedTopics, kafkaTopics])
  .default({ kind: "embedded", path: "./data/sluice.db", partitions: 1, retention: RETENTION_DEFAULT, max_record_bytes: MAX_RECORD_BYTES_DEFAULT })
  .describe("The durable topic log between sources and sinks");

const compatibility = z
  .enum(["BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE", "NONE"])
  .default("BACKWARD")
  .describe("Default compatibility level for subjects");

/** A bearer token of the daemon's HTTP API: long enough not to be guessed over the network, sent as one header word. */
const apiToken = (description: string) =>
  z
    .string()
    .min(16, { error: "expected a token of at least 16 characters (e.g. the output of `openssl rand -hex 32`)" })
    .regex(/^[\x21-\x7e]+$/, { error: "expected a token of printable ASCII characters without spaces" })
    .optional()
    .describe(description);

const builtinRegistry = z.strictObject({
  kind: z.literal("builtin"),
  compatibility,
  path: urlPath("URL path under the HTTP server where the Confluent-compatible API is served; not one of the daemon's own paths (/healthz, /readyz, /status, /sinks, /sources, the metrics path)").default("/registry"),
  token: apiToken("Bearer token that grants the registry's endpoints (reads and writes) and nothing else (or token_file); at least 16 printable characters, not http.read_token; http.admin_token and http.read_token are accepted too (see docs/security.md)"),
});

const remoteRegistry = z.strictObject({
  kind: z.literal("remote"),
  url: httpUrl("Base URL of a Confluent-compatible schema registry"),
  username: z.string().optional().describe("Basic-auth user"),
  password: z.string().optional().describe("Basic-auth password (or password_file)"),
  token: z.string().optional().describe("Bearer token (or token_file)"),
  timeout: duration("Request timeout", { min: 100, max: 600_000 }).default(10_000),
  cache_size: z.number().int().min(1).default(1000).describe("Schemas kept in the client's cache"),
});

const schemaRegistry = z
  .discriminatedUnion("kind", [builtinRegistry, remoteRegistry])
  .default({ kind: "builtin", compatibility: "BACKWARD", path: "/registry" })
  .describe("Where Avro schemas are registered and compatibility-checked");

const batch = z
  .strictObject({
    max_rows: z.number().int().min(1).default(5_000).describe("Changes per batch"),
    max_bytes: size("Bytes (as stored in the topic log) per batch. Default: a share of `memory`, 1MiB to 64MiB (docs/operations.md#memory)", { min: 2 ** 10, max: 2 ** 30 }).optional(),
    max_wait: duration("Longest wait to fill a batch", { min: 1, max: 60_000, zero: true }).default(200),
  })
  .default({ max_rows: 5_000, max_wait: 200 })
  .describe("How a sink batches changes");

const sinkCommon = {
  name: identifier("Sink name; also its consumer group"),
  sources: z.array(z.string().min(1)).optional().describe("Sources whose topics this sink reads (default: all)"),
  tables: tableFilter.default(["*.*"]),
  target: z
    .string()
    .regex(/^[A-Za-z0-9_{}]+$/, { error: "expected letters, digits, _ and the placeholders {source}, {schema}, {table}", abort: true })
    .refine((value) => targetProblem(value) === undefined, { error: (issue) => targetProblem(String(issue.input)) })
    .default("{schema}_{table}")
    .describe("Target table/index name template: {source}, {schema}, {table}"),
  on_error: z
    .enum(["halt", "dead-letter"])
    .default("halt")
    .describe("A row the sink cannot apply halts its table (halt) or goes to the dead-letter topic with the reason (dead-letter)"),
  dead_letter_topic: z.string().min(1).optional().describe("Dead-letter topic (default: <deployment>.dlq.<sink>)"),
  batch,
  retry: z
    .strictObject({
      initial: duration("First retry delay", { min: 10, max: 3_600_000 }).default(200),
      max: duration("Longest retry delay", { min: 10, max: 86_400_000 }).default(30_000),
      item_attempts: z
        .number()
        .int()
        .min(1)
        .max(1000)
        .default(10)
        .describe(
          "Writes of a row the target refuses as temporary (e.g. Elasticsearch 429 for one document) before it goes to on_error with that reason; a target that cannot be reached at all is waited for without limit",
        ),
      blocked_interval: duration(
        "A table halted because its target refuses writes with a block the target lifts by itself (SINK_TARGET_BLOCKED: an Elasticsearch index block, e.g. the flood-stage read_only_allow_delete, lifted once disk frees) is read again from the change that halted it after about this long, then at doubling intervals up to ten times it, until the write goes through; it shows as halted until then. 0: only sluice halted retry reads it again",
        { min: 100, max: 86_400_000, zero: true },
      ).default(30_000),
    })
    .refine((retry) => retry.max >= retry.initial, {
      error: (issue) => {
        const retry = issue.input as { initial: number; max: number };
        return `expected a longest delay of at least retry.initial (${formatDuration(retry.initial)}), got ${formatDuration(retry.max)}`;
      },
      path: ["max"],
    })
    .default({ initial: 200, max: 30_000, item_attempts: 10, blocked_interval: 30_000 })
    .describe("Backoff for transient errors (exponential, with jitter)"),
};

/** A URL httpUrl accepted is https:// (any case). */
const isHttps = (url: string): boolean => URL.canParse(url) && new URL(url).protocol === "https:";

const sinkTls = z
  .strictObject({
    ca_file: z.string().optional().describe("PEM file with the CA certificate(s) to trust (default: Node's bundled public CAs)"),
    cert_file: z.string().optional().describe("PEM file with a client certificate, for servers that ask for one (requires key_file)"),
    key_file: z.string().optional().describe("PEM file with the client certificate's private key (requires cert_file)"),
  })
  .refine((t) => (t.cert_file === undefined) === (t.key_file === undefined), { error: "cert_file and key_file go together: set both or neither" })
  .optional()
  .describe("Certificates for https:// URLs (the server's certificate and host name are always checked)");

const duckdbQuery = z
  .strictObject({
    max_rows: z.number().int().min(1).max(10_000_000).default(10_000).describe("Most rows one query answers; the rest is cut off and the answer says so"),
    max_bytes: size("Most bytes of rows (as JSON) one query answers; the rest is cut off and the answer says so", { min: 2 ** 10, max: 2 ** 30 }).default(16 * 2 ** 20),
    timeout: duration("A query still running after this long is interrupted", { min: 100, max: 3_600_000 }).default(30_000),
  })
  .default({ max_rows: 10_000, max_bytes: 16 * 2 ** 20, timeout: 30_000 })
  .describe("Limits of read-only SQL against the sink (sluice query, POST /sinks/NAME/query): one SELECT, no file access");

const duckdbSink = z.strictObject({
  kind: z.literal("duckdb"),
  ...sinkCommon,
  path: z.string().min(1).default("./data/warehouse.duckdb").describe("DuckDB database file; a relative path is from the process's working directory, not the config file's folder (`sluice validate` and the start log show it absolute)"),
  query: duckdbQuery,
  memory_limit: size("DuckDB's memory_limit (its buffer manager: caches, hash tables, sorts; it spills to disk beyond). Default: a fifth of `memory` shared by the DuckDB sinks, at least 16MiB plus five times topics.max_record_bytes (96MiB for 16MiB records), so the widest record commits (docs/operations.md#memory). DuckDB's checkpoint_threshold follows it: memory_limit / 8, at least 1MiB and at most 16MiB (DuckDB's default), since index changes stay in memory until a checkpoint; so do allocator_flush_threshold and allocator_bulk_deallocation_flush_threshold: memory_limit / 8, 4MiB to 128MiB", { min: 8 * 2 ** 20, max: 2 ** 40 }).optional(),
  threads: z.number().int().min(1).max(256).optional().describe("DuckDB's worker threads. Default: one below 128MiB of memory_limit, above that one per 16 MiB, at most the machine's cores"),
});

const clickhouseSink = z.strictObject({
  kind: z.literal("clickhouse"),
  ...sinkCommon,
  url: httpUrl("ClickHouse HTTP endpoint (https:// for its https_port)"),
  database: z.string().min(1).default("default").describe("Database for the tables"),
  user: z.string().min(1).default("default").describe("User name"),
  password: z.string().optional().describe("Password (or password_file)"),
  tls: sinkTls,
  native_deletes: z.boolean().default(false).describe("Use ReplacingMergeTree(_version, is_deleted) (ClickHouse 23.2+) instead of the _deleted flag"),
}).refine((sink) => sink.tls === undefined || isHttps(sink.url), { error: "tls applies to an https:// url; this url is http://", path: ["tls"] });

const elasticsearchSink = z.strictObject({
  kind: z.literal("elasticsearch"),
  ...sinkCommon,
  nodes: z.array(httpUrl("Elasticsearch node URL")).min(1).describe("Elasticsearch node URLs (https:// when its HTTP TLS is on)"),
  username: z.string().optional().describe("Basic-auth user"),
  password: z.string().optional().describe("Basic-auth password (or password_file)"),
  api_key: z.string().optional().describe("API key, as Elasticsearch's create-API-key answer gives it in `encoded` (base64 of id:key) (or api_key_file); used instead of username/password"),
  tls: sinkTls,
  bulk_bytes: size("Largest bulk request body", { min: 2 ** 10, max: 2 ** 30 }).default(5 * 2 ** 20),
  refresh_interval: esTimeValue(
    'Elasticsearch `index.refresh_interval` of the indexes Sluice manages ("200ms", "1s", or -1: no scheduled refresh), passed as written: set when Sluice creates an index (rebuild generations too) and on an existing one when the sink first touches its table after starting; absent leaves the setting alone (Elasticsearch default 1s). Shorter is fresher and costs Elasticsearch more refresh and merge work',
  ).optional(),
}).refine((sink) => sink.tls === undefined || sink.nodes.every(isHttps), { error: "tls applies to https:// nodes; every node must be https:// when it is set", path: ["tls"] });

const sink = z.discriminatedUnion("kind", [duckdbSink, clickhouseSink, elasticsearchSink]);

const httpTls = z
  .strictObject({
    cert_file: z.string().min(1).describe("PEM file with the server certificate (and its chain); re-read at SIGHUP"),
    key_file: z.string().min(1).describe("PEM file with the certificate's private key; re-read at SIGHUP"),
    ca_file: z.string().min(1).optional().describe("PEM file with the CA the command line (sluice status, query, halted, replay --rebuild) trusts when it calls the daemon (default: the system's CAs)"),
  })
  .optional()
  .describe("HTTPS on http.listen (the admin API); without it plain HTTP");

const http = z
  .strictObject({
    listen: hostPort("Address of the HTTP server: the admin API (status, query, rebuild, halted tables, schema registry) and the public health and metrics endpoints").default("127.0.0.1:8080"),
    public_listen: hostPort("A second address serving only /healthz, /readyz and the metrics path, over plain HTTP (e.g. for probes and Prometheus on another network than the admin API)").optional(),
    max_body_bytes: size("Largest request body any endpoint takes; a larger one is answered 413 without being read", { min: 64 * 2 ** 10, max: 2 ** 30 }).default(4 * 2 ** 20),
    max_connections: z
      .number()
      .int()
      .min(1)
      .max(4096)
      .default(512)
      .describe("Open connections each listener holds, before any credential is checked; more are closed as they arrive (each costs the main thread's heap about 2.5 KiB; 1 to 4096)"),
    headers_timeout: duration("Time a client has to send a request's head (and a TLS handshake) before the connection is cut with 408", { min: 1_000, max: 300_000 }).default(10_000),
    request_timeout: duration("Time a client has to send a request's body, from when its turn comes on its connection, before the connection is cut with 408 (the endpoint's own work is not limited); at least headers_timeout", { min: 1_000, max: 3_600_000 }).default(60_000),
    admin_token: apiToken(
      "Bearer token for every admin endpoint (or admin_token_file); re-read at SIGHUP. Without it the admin endpoints answer only clients on the loopback interface",
    ),
    read_token: apiToken("Bearer token for the read-only endpoints only: GET /status, schema registry GETs, SQL queries (or read_token_file); re-read at SIGHUP"),
    tls: httpTls,
  })
  .refine((http) => http.request_timeout >= http.headers_timeout, {
    error: (issue) => {
      const http = issue.input as { headers_timeout: number; request_timeout: number };
      return `expected a request timeout of at least http.headers_timeout (${formatDuration(http.headers_timeout)}), got ${formatDuration(http.request_timeout)}`;
    },
    path: ["request_timeout"],
  })
  // One token for both scopes would hand every read-token holder the admin endpoints (rebuild, forget, halted skip).
  .refine((http) => http.read_token === undefined || http.read_token !== http.admin_token, {
    error: "expected a read token other than http.admin_token: the same token grants every endpoint, so read-only clients would hold the admin scope",
    path: ["read_token"],
  })
  .default({ listen: "127.0.0.1:8080", max_body_bytes: 4 * 2 ** 20, max_connections: 512, headers_timeout: 10_000, request_timeout: 60_000 })
  .describe("HTTP server");

const metrics = z
  .strictObject({
    enabled: z.boolean().default(true).describe("Serve Prometheus metrics"),
    path: urlPath("Metrics URL path; not one of the daemon's other paths").default("/metrics"),
  })
  .default({ enabled: true, path: "/metrics" })
  .describe("Prometheus metrics");

const logging = z
  .strictObject({
    level: z.enum(["trace", "debug", "info", "warn", "error", "fatal"]).default("info").describe("Lowest level logged"),
  })
  .default({ level: "info" })
  .describe("JSON logs on standard output");

const shutdown = z
  .strictObject({
    timeout: duration("Longest graceful drain on SIGTERM before exiting", { min: 1_000, max: 86_400_000 }).default(30_000),
  })
  .default({ timeout: 30_000 })
  .describe("Graceful shutdown");

export const configSchema = z
  .strictObject({
    name: identifier(
      "Deployment name: prefix of Sluice's topics (data topics, checkpoints, dead letters) and of consumer groups. Renaming a deployment makes a new one: with Kafka it finds no checkpoint and snapshots afresh (on the sources' same slots unless they set their own); with the embedded log a start under a new name is refused for each source whose checkpoint the old name wrote (DEPLOYMENT_RENAMED): checkpoints there are kept by source, so capture would resume into the new name's empty topics without the history (docs/topics.md#renaming-a-deployment)",
    ),
    memory: size(
      "The memory one `sluice run` process keeps its RSS under: split between the V8 heaps of its threads (main: capture, HTTP, registry; one per sink), the sources' read-ahead, the sinks' batches, DuckDB and SQLite; settings written for those win over their share. Default 256MiB, raised (with a warning naming what needs what) to the least a process's sources and sinks need when that is more. A set value too small for them is an error naming the numbers (docs/operations.md#memory)",
      { min: 64 * 2 ** 20, max: 2 ** 40 },
    ).optional(),
    sources: z.array(source).min(1).describe("Databases to capture"),
    topics,
    schema_registry: schemaRegistry,
    sinks: z.array(sink).default([]).describe("Where topics are applied"),
    personal_data: personalData,
    http,
    metrics,
    logging,
    shutdown,
  });

export type SluiceConfig = z.output<typeof configSchema>;
export type SourceConfig = SluiceConfig["sources"][number];
export type PostgresSourceConfig = Extract<SourceConfig, { kind: "postgres" }>;
export type MysqlSourceConfig = Extract<SourceConfig, { kind: "mysql" }>;
export type TopicsConfig = SluiceConfig["topics"];
export type SchemaRegistryConfig = SluiceConfig["schema_registry"];
export type SinkConfig = SluiceConfig["sinks"][number];

export interface CrossCheckIssue {
  readonly path: PropertyKey[];
  readonly message: string;
  readonly candidates?: readonly string[];
  readonly value?: string;
}

function namesOf(list: unknown): string[] {
  return Array.isArray(list) ? list.map((item) => (item as { name?: unknown } | null)?.name).map((n) => (typeof n === "string" ? n : "")) : [];
}

/**
 * Checks that span keys (unique names, references between sections). They run on the raw
 * document so they are reported together with every other problem, not only once the rest is valid.
 */
export function crossCheck(raw: Record<string, unknown>): CrossCheckIssue[] {
  const issues: CrossCheckIssue[] = [];
  for (const [section, what] of [["sources", "source"], ["sinks", "sink"]] as const) {
    const seen = new Map<string, number>();
    namesOf(raw[section]).forEach((name, index) => {
      if (name === "") return;
      const first = seen.get(name);
      if (first === undefined) seen.set(name, index);
      else issues.push({ path: [section, index, "name"], message: `duplicate ${what} name "${name}" (also ${section}[${first}])` });
    });
  }
  const sourceNames = [...new Set(namesOf(raw["sources"]).filter((n) => n !== ""))];
  const sinks = Array.isArray(raw["sinks"]) ? (raw["sinks"] as unknown[]) : [];
  sinks.forEach((sink, sinkIndex) => {
    const referenced = (sink as { sources?: unknown } | null)?.sources;
    if (!Array.isArray(referenced)) return;
    referenced.forEach((name, i) => {
      if (typeof name === "string" && !sourceNames.includes(name)) {
        issues.push({
          path: ["sinks", sinkIndex, "sources", i],
          message: `unknown source "${name}"; sources are ${sourceNames.map((n) => `"${n}"`).join(", ")}`,
          candidates: sourceNames,
          value: name,
        });
      }
    });
  });
  issues.push(...sharedResourceClashes(raw), ...httpPathClashes(raw), ...personalDataWithoutKey(raw), ...registryTokenIsReadToken(raw));
  return issues;
}

/** The builtin registry's token grants registry writes: the read token's copy would hand them to every read-only client. */
function registryTokenIsReadToken(raw: Record<string, unknown>): CrossCheckIssue[] {
  const registry = raw["schema_registry"] as { kind?: unknown; token?: unknown } | null | undefined;
  const read = (raw["http"] as { read_token?: unknown } | null | undefined)?.read_token;
  if (registry?.kind !== "builtin" || typeof registry.token !== "string" || registry.token !== read) return [];
  return [{ path: ["schema_registry", "token"], message: "expected a registry token other than http.read_token: the registry token grants registry writes (registering and deleting schemas), so read-only clients would hold them" }];
}

/** Personal columns need the master key that wraps their subjects' keys. */
function personalDataWithoutKey(raw: Record<string, unknown>): CrossCheckIssue[] {
  if ((raw["personal_data"] as { master_key_file?: unknown } | undefined)?.master_key_file !== undefined) return [];
  const sources = Array.isArray(raw["sources"]) ? (raw["sources"] as unknown[]) : [];
  return sources.flatMap((source, index) => {
    const tables = (source as { governance?: { tables?: Record<string, { personal?: unknown }> } } | null)?.governance?.tables ?? {};
    const personal = Object.entries(tables).filter(([, t]) => t?.personal !== undefined);
    return personal.length === 0
      ? []
      : [{ path: ["sources", index, "governance", "tables", personal[0]![0], "personal"], message: `personal columns (${personal.map(([t]) => t).join(", ")}) need personal_data.master_key_file, the master key that wraps each subject's key` }];
  });
}
