import assert from "node:assert/strict";
import { createDecipheriv } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { ChangeEvent, PollOptions, TableSchema, TopicConsumer, TopicLog } from "../../connectors/contracts.ts";
import { UNCHANGED } from "../../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../../connectors/errors.ts";
import type { SluiceConfig } from "../../config/schema.ts";
import { createLogger } from "../../runtime/logger.ts";
import { KEY_CATCH_UP_MS, lazyKeyStore, PersonalDataDecryptor, PersonalDataEncryptor } from "./personal-data.ts";
import { SealWorkers } from "./seal-workers.ts";
import type { SealedPayloads } from "./seal-workers.ts";
import { encryptValue, isEncrypted, isSealed, MasterKey, referenceTo, SubjectKeyStore, subjectKeyTopic } from "./subject-keys.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-personal-data-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");
const masterFile = join(dir, "master.key");
writeFileSync(masterFile, "cd".repeat(32));

const schema: TableSchema = {
  source: "pg",
  database: "db",
  schema: "app",
  table: "customers",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "integer", nullable: false, primaryKeyIndex: 1 },
    { name: "customer_id", dbType: "bigint", nullable: true },
    { name: "email", dbType: "character varying(200)", nullable: false, default: "'x'::character varying" },
    { name: "phone", dbType: "bigint", nullable: true },
    { name: "city", dbType: "text", nullable: true },
  ],
};

const governance = { tables: { "app.customers": { checks: [], transforms: {}, personal: { subject: "customer_id", columns: ["email", "phone"] } } } };
const config = {
  name: "dep",
  personal_data: { master_key_file: masterFile, previous_master_key_files: [] },
  sources: [{ name: "pg", governance }],
} as unknown as SluiceConfig;

function event(after: Record<string, unknown> | null, before: Record<string, unknown> | null = null, table: TableSchema = schema): ChangeEvent {
  return {
    op: after === null ? "d" : before ? "u" : "c",
    key: { id: (after ?? before)!["id"] as number },
    before: before as ChangeEvent["before"],
    after: after as ChangeEvent["after"],
    schema: table,
    source: { connector: "postgres", name: "pg", db: "db", schema: "app", table: "customers", position: { commit: 1n, change: 1n }, txId: null, commitTimeMs: 0, snapshot: false },
  } as unknown as ChangeEvent;
}

async function setup(name: string) {
  const log = await EmbeddedTopicLog.open({ path: join(dir, name), logger, maintenanceIntervalMs: 0 });
  const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }));
  const sink = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
  return { log, capture, sink };
}

test("capture encrypts personal columns per subject (text, nullable in the schema); a sink decrypts them; other columns untouched", async () => {
  const { log, capture, sink } = await setup("roundtrip.db");
  try {
    const events = [event({ id: 1, customer_id: 42n, email: "ann@example.com", phone: 33612345678n, city: "Lyon" }), event({ id: 2, customer_id: 42n, email: "ann@work.example", phone: null, city: "Nice" }), event({ id: 3, customer_id: 7n, email: "bob@example.com", phone: 1n, city: null })];
    await capture.prepare(events);
    const ends = await log.endOffsets(subjectKeyTopic("dep"));
    assert.equal(ends[0]!.offset, 2n, "one key per subject, written before any value uses it");
    const published = await Promise.all(events.map((e) => capture.apply(e)));
    assert.equal(published[0]!.schema.columns.find((c) => c.name === "email")!.dbType, "text");
    assert.equal(published[0]!.schema.columns.find((c) => c.name === "phone")!.nullable, true);
    assert.equal(published[0]!.schema.columns.find((c) => c.name === "email")!.default, undefined);
    assert.deepEqual(published[0]!.schema.columns.find((c) => c.name === "city"), schema.columns[4]);
    const first = published[0]!.after!;
    assert.ok(isEncrypted(first["email"]) && isEncrypted(first["phone"]));
    assert.ok(isSealed(first["email"]), "the row's personal values are sealed together in its first personal column");
    assert.equal(first["phone"], referenceTo("email"), "the other personal columns refer to it");
    assert.ok(isSealed(published[1]!.after!["email"]), "a row whose other personal value is null seals the one present");
    assert.ok(!JSON.stringify(published.map((e) => e.after), (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v)).includes("ann@"), "no clear personal value is published");
    assert.equal(first["city"], "Lyon");
    assert.equal(first["customer_id"], 42n, "the subject column stays in clear");
    assert.equal(published[1]!.after!["phone"], null, "null stays null");
    assert.equal(await log.endOffsets(subjectKeyTopic("dep")).then((e) => e[0]!.offset), 2n, "no key written while encoding");

    const applied = await Promise.all(published.map((e) => sink.apply(e)));
    assert.deepEqual(applied[0]!.after, { id: 1, customer_id: 42n, email: "ann@example.com", phone: "33612345678", city: "Lyon" }, "values come back as their text");
    assert.equal(applied[2]!.after!["email"], "bob@example.com");
    assert.deepEqual(applied[1]!.after, { id: 2, customer_id: 42n, email: "ann@work.example", phone: null, city: "Nice" });

    // Values of the first format (one encryption per value) are still read.
    const key = (await (await sink.store()).keyIfKnown("pg", "42"))!;
    const v1 = { ...published[0]!, after: { ...first, email: encryptValue(Buffer.from("ann@v1.example"), key, "app.customers.email", "42"), phone: encryptValue(Buffer.from("1"), key, "app.customers.phone", "42") } };
    assert.deepEqual((await sink.apply(v1)).after, { id: 1, customer_id: 42n, email: "ann@v1.example", phone: "1", city: "Lyon" });
    // A reference whose sealed value is missing (altered record) reads as null, never as something else.
    const orphan = { ...published[0]!, after: { ...first, email: null } };
    assert.deepEqual((await sink.apply(orphan)).after, { id: 1, customer_id: 42n, email: null, phone: null, city: "Lyon" });
  } finally {
    await log.close();
  }
});

test("after the subject's key is destroyed, its values decrypt to null (a replay too); other subjects and a new key for the subject are unaffected", async () => {
  const { log, capture, sink } = await setup("forget.db");
  try {
    const ann = await capture.apply(event({ id: 1, customer_id: 42n, email: "ann@example.com", phone: 1n, city: "Lyon" }));
    const bob = await capture.apply(event({ id: 2, customer_id: 7n, email: "bob@example.com", phone: 2n, city: "Nice" }));
    assert.equal((await sink.apply(ann)).after!["email"], "ann@example.com", "the sink knows the key before the erasure");

    const admin = await SubjectKeyStore.open(log, subjectKeyTopic("dep"), MasterKey.fromFile(masterFile));
    await admin.destroy("pg", "42");
    // A sink that read the key before catches up on the tombstone when told (sluice forget), or when it meets a value whose key it lacks.
    (await sink.store()).forgetLocally("pg", "42");
    assert.deepEqual((await sink.apply(ann)).after, { id: 1, customer_id: 42n, email: null, phone: null, city: "Lyon" });
    assert.equal((await sink.apply(bob)).after!["email"], "bob@example.com");
    // A fresh reader (a rebuild, a new sink) finds no key: null as well.
    const fresh = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    assert.equal((await fresh.apply(ann)).after!["email"], null);
    assert.equal((await fresh.apply(bob)).after!["email"], "bob@example.com");

    // The subject changes again at the source: capture (after its catch-up) creates a new key; the new value is readable, the old one stays erased.
    const capture2 = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }));
    const again = await capture2.apply(event({ id: 1, customer_id: 42n, email: "ann@new.example", phone: null, city: "Lyon" }));
    assert.equal((await sink.apply(again)).after!["email"], "ann@new.example", "the sink catches up on the new key");
    assert.equal((await sink.apply(ann)).after!["email"], null);
    assert.equal((await fresh.apply(again)).after!["email"], "ann@new.example");
    await admin.close();
  } finally {
    await log.close();
  }
});

test("a row without a subject publishes no personal value; unchanged TOAST stays unchanged; the before image of a delete is encrypted too", async () => {
  const { log, capture, sink } = await setup("edges.db");
  try {
    const orphan = await capture.apply(event({ id: 1, customer_id: null, email: "who@example.com", phone: 5n, city: "Lyon" }));
    assert.deepEqual(orphan.after, { id: 1, customer_id: null, email: null, phone: null, city: "Lyon" });
    const toast = await capture.apply(event({ id: 2, customer_id: 9n, email: UNCHANGED, phone: 5n, city: "x" }, { id: 2, customer_id: 9n, email: UNCHANGED, phone: 4n, city: "x" }));
    assert.equal(toast.after!["email"], UNCHANGED);
    assert.ok(isEncrypted(toast.before!["phone"]));
    const deleted = await capture.apply(event(null, { id: 3, customer_id: 9n, email: "gone@example.com", phone: null, city: null }));
    assert.ok(isEncrypted(deleted.before!["email"]));
    assert.equal((await sink.apply(deleted)).before!["email"], "gone@example.com");
  } finally {
    await log.close();
  }
});

test("a personal key column or a missing subject column halts the table (SCHEMA_UNSUPPORTED) with the reason", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "refused.db"), logger, maintenanceIntervalMs: 0 });
  try {
    const keyed = new PersonalDataEncryptor({ name: "pg", governance: { tables: { "app.customers": { checks: [], transforms: {}, personal: { subject: "customer_id", columns: ["id"] } } } } } as never, lazyKeyStore(config, log, { create: true }));
    await assert.rejects(keyed.apply(event({ id: 1, customer_id: 1n, email: "a", phone: null, city: null })), (e: unknown) => e instanceof SluiceError && e.code === "SCHEMA_UNSUPPORTED" && /column id of the key cannot be personal/.test(e.message));
    const missing = new PersonalDataEncryptor({ name: "pg", governance: { tables: { "app.customers": { checks: [], transforms: {}, personal: { subject: "user_id", columns: ["email"] } } } } } as never, lazyKeyStore(config, log, { create: true }));
    await assert.rejects(missing.apply(event({ id: 1, customer_id: 1n, email: "a", phone: null, city: null })), /subject column user_id is not a column of the table/);
  } finally {
    await log.close();
  }
});

test("a subject column of a type no sink can match exactly (float, date, timestamp) halts the table; integer, decimal, text and uuid are taken", async () => {
  // A float subject 5 is keyed "5" here and reads "5.0" in DuckDB: forget --subject 5 destroyed the key and DuckDB kept the
  // values; a date is keyed by its day count (19000), which DuckDB and ClickHouse read as 2022-01-08 and Elasticsearch as a date.
  const log = await EmbeddedTopicLog.open({ path: join(dir, "subject-types.db"), logger, maintenanceIntervalMs: 0 });
  try {
    const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }));
    const typed = (dbType: string): TableSchema => ({ ...schema, columns: schema.columns.map((c) => (c.name === "customer_id" ? { ...c, dbType } : c)) });
    for (const [dbType, value] of [["double precision", 5], ["real", 5], ["date", 19_000], ["timestamp with time zone", 1_700_000_000_000_000n], ["boolean", true]] as const) {
      await assert.rejects(
        capture.apply(event({ id: 1, customer_id: value, email: "a@x.io", phone: null, city: null }, null, typed(dbType))),
        (e: unknown) => e instanceof SluiceError && e.code === "SCHEMA_UNSUPPORTED" && e.context["column"] === "customer_id" && new RegExp(`subject column customer_id \\(${dbType}\\) cannot name a data subject`).test(e.message),
        dbType,
      );
    }
    for (const [dbType, value] of [["numeric(10,2)", "5.00"], ["text", "ann"], ["uuid", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"], ["integer", 5]] as const) {
      const published = await capture.apply(event({ id: 1, customer_id: value, email: "a@x.io", phone: null, city: null }, null, typed(dbType)));
      assert.ok(isSealed(published.after!["email"]) || isEncrypted(published.after!["email"]), dbType);
    }
  } finally {
    await log.close();
  }
});

test("a personal column the table does not have (renamed at the source, misspelt) halts the table instead of publishing the column under its new name in clear", async () => {
  // Found on a live deployment: ALTER TABLE customers RENAME COLUMN email TO mail put every later mail in clear in the topics and all three sinks.
  const log = await EmbeddedTopicLog.open({ path: join(dir, "renamed.db"), logger, maintenanceIntervalMs: 0 });
  try {
    const renamed: TableSchema = { ...schema, columns: schema.columns.map((c) => (c.name === "email" ? { ...c, name: "mail" } : c)) };
    const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }));
    await assert.rejects(
      capture.apply(event({ id: 1, customer_id: 1n, mail: "someone@example.com", phone: 5n, city: null }, null, renamed)),
      (e: unknown) =>
        e instanceof SluiceError && e.code === "SCHEMA_UNSUPPORTED" && e.context["column"] === "email" && /personal column email is not a column of the table/.test(e.message) && /halted retry --source pg --table app\.customers/.test(e.message),
    );
    // The table as configured is captured as before.
    const published = await capture.apply(event({ id: 1, customer_id: 1n, email: "someone@example.com", phone: 5n, city: null }));
    assert.ok(isSealed(published.after!["email"]) || isEncrypted(published.after!["email"]));
  } finally {
    await log.close();
  }
});

test("a sink that was not told (another process ran the erasure) stops decrypting the subject once it reads the key topic again", async () => {
  const { log, capture, sink } = await setup("follow.db");
  try {
    const ann = await capture.apply(event({ id: 1, customer_id: 42n, email: "ann@example.com", phone: 1n, city: "Lyon" }));
    assert.equal((await sink.apply(ann)).after!["email"], "ann@example.com");
    const admin = await SubjectKeyStore.open(log, subjectKeyTopic("dep"), MasterKey.fromFile(masterFile));
    await admin.destroy("pg", "42");
    await admin.close();
    await new Promise((resolve) => setTimeout(resolve, KEY_CATCH_UP_MS + 100));
    assert.equal((await sink.apply(ann)).after!["email"], null);
  } finally {
    await log.close();
  }
});

test("memory of the key store is bounded by personal_data.key_cache_size: capture and a sink hold at most that many keys for many more subjects, and every value still decrypts", async () => {
  const cacheSize = 16;
  const subjects = 400;
  const small = { ...config, personal_data: { ...config.personal_data!, key_cache_size: cacheSize } } as SluiceConfig;
  const log = await EmbeddedTopicLog.open({ path: join(dir, "bounded.db"), logger, maintenanceIntervalMs: 0 });
  // Counts the records the key stores read from the log, to show a miss reads its key, not the topic.
  let recordsRead = 0;
  const counting = Object.create(log) as TopicLog;
  counting.consumer = async (group, topics) => {
    const consumer = await log.consumer(group, topics);
    return Object.assign(Object.create(consumer) as TopicConsumer, {
      poll: async (options: PollOptions) => {
        const records = await consumer.poll(options);
        recordsRead += records.length;
        return records;
      },
    });
  };
  try {
    const captureKeys = lazyKeyStore(small, counting, { create: true });
    const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, captureKeys);
    const published: ChangeEvent[] = [];
    // Batches as capture makes them: each subject twice, 50 rows a batch, the second round after the first evicted every key.
    for (let round = 0; round < 2; round++) {
      for (let from = 0; from < subjects; from += 50) {
        const batch = Array.from({ length: 50 }, (_, i) => event({ id: round * subjects + from + i, customer_id: BigInt(from + i), email: `s${from + i}.r${round}@example.com`, phone: BigInt(round), city: "Lyon" }));
        await capture.prepare(batch);
        for (const e of batch) published.push(await capture.apply(e));
        assert.ok((await captureKeys()).cachedKeys <= cacheSize, `capture holds ${(await captureKeys()).cachedKeys} keys`);
      }
    }
    assert.equal((await captureKeys()).size, subjects);
    assert.equal(await log.endOffsets(subjectKeyTopic("dep")).then((e) => e[0]!.offset), BigInt(subjects), "one key per subject: the second round found the first round's keys");

    // A sink with the same bound: every value decrypts, in order and in another order.
    const sinkKeys = lazyKeyStore(small, counting, { create: true });
    const sink = new PersonalDataDecryptor(small, sinkKeys);
    const shuffled = published.map((e, i) => published[(i * 7919) % published.length]!);
    for (const e of [...published, ...shuffled]) {
      const id = Number(e.after!["id"]);
      const subject = id % subjects;
      const applied = await sink.apply(e);
      assert.equal(applied.after!["email"], `s${subject}.r${id >= subjects ? 1 : 0}@example.com`);
      assert.ok((await sinkKeys()).cachedKeys <= cacheSize);
    }
    // A miss reads the subject's record and a few after it (read-ahead: a quarter of the cache), not the key topic.
    const store = await sinkKeys();
    const before = recordsRead;
    assert.notEqual(await store.keyIfKnown("pg", "3"), null);
    assert.notEqual(await store.keyIfKnown("pg", "197"), null);
    assert.ok(recordsRead - before <= 2 * (1 + cacheSize / 4), `two misses read ${recordsRead - before} records of ${subjects}`);
    // A subject forgotten elsewhere is null for the sink, cached or not.
    const admin = await SubjectKeyStore.open(log, subjectKeyTopic("dep"), MasterKey.fromFile(masterFile), { cacheSize: 1 });
    await admin.destroy("pg", "5");
    await admin.close();
    await store.catchUp();
    assert.equal((await sink.apply(published[5]!)).after!["email"], null);
    assert.equal((await sink.apply(published[6]!)).after!["email"], "s6.r0@example.com");
  } finally {
    await log.close();
  }
});

test("a batch's row images sealed on the seal workers are the same format: one sealed value per row image with its own IV, decrypted by a sink", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "workers.db"), logger, maintenanceIntervalMs: 0 });
  try {
    const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }), new SealWorkers(2));
    const sink = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    const batch = Array.from({ length: 200 }, (_, i) => event({ id: i, customer_id: BigInt(i % 7), email: `u${i}@example.com`, phone: i % 3 === 0 ? null : BigInt(i), city: "Lyon" }));
    batch.push(event({ id: 500, customer_id: null, email: "nobody@example.com", phone: 1n, city: null }));
    await capture.prepare(batch);
    const published = await Promise.all(batch.map((e) => capture.apply(e)));
    const sealed = published.slice(0, 200).map((e) => e.after!["email"]);
    assert.ok(sealed.every(isSealed));
    assert.equal(new Set(sealed.map((text) => String(text).split(".")[1]!.slice(0, 32))).size, 200, "each row image has its own IV (and key id)");
    assert.deepEqual(published[200]!.after, { id: 500, customer_id: null, email: null, phone: null, city: null }, "no subject: no personal value");
    for (const [i, e] of published.slice(0, 200).entries()) {
      assert.deepEqual((await sink.apply(e)).after, { id: i, customer_id: BigInt(i % 7), email: `u${i}@example.com`, phone: i % 3 === 0 ? null : String(i), city: "Lyon" });
    }
  } finally {
    await log.close();
  }
});

test("the sealed plaintext is exactly JSON.stringify of the row image's values by column, on the main thread and on the seal workers (quotes, non-ASCII, a column named like an array index)", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "plaintext.db"), logger, maintenanceIntervalMs: 0 });
  const indexed: TableSchema = { ...schema, table: "odd", columns: [...schema.columns, { name: "7", dbType: "text", nullable: true }] };
  const oddGovernance = { tables: { ...governance.tables, "app.odd": { checks: [], transforms: {}, personal: { subject: "customer_id", columns: ["email", "7"] } } } };
  try {
    const keys = lazyKeyStore(config, log, { create: true });
    const onMain = new PersonalDataEncryptor({ name: "pg", governance: oddGovernance } as never, keys);
    const onWorkers = new PersonalDataEncryptor({ name: "pg", governance: oddGovernance } as never, keys, new SealWorkers(1));
    // More row images than the main thread seals first (128): on the workers, most of them are sealed there.
    const rows = Array.from({ length: 300 }, (_, i) => ({ id: i, customer_id: 42n, email: `"é${i}"\\\n😀@example.com`, phone: i % 2 === 0 ? null : BigInt(i), city: "Lyon" }));
    const events = [...rows.map((row) => event(row)), event({ ...rows[1]!, 7: "seven" }, null, indexed)];
    const open = (text: unknown, table: string) => {
      const key = (keys as () => Promise<SubjectKeyStore>)().then((store) => store.keyIfKnown("pg", "42"));
      return key.then((dataKey) => {
        const payload = Buffer.from(String(text).split(".")[1]!, "base64");
        const decipher = createDecipheriv("aes-256-gcm", dataKey!, payload.subarray(4, 16));
        decipher.setAAD(Buffer.from(`${table}\u000042`));
        decipher.setAuthTag(payload.subarray(16, 32));
        return Buffer.concat([decipher.update(payload.subarray(32)), decipher.final()]).toString("utf8");
      });
    };
    for (const capture of [onMain, onWorkers]) {
      await capture.prepare(events);
      const published = await Promise.all(events.map((e) => capture.apply(e)));
      for (const [i, row] of rows.entries()) {
        const values = row.phone === null ? { email: row.email } : { email: row.email, phone: String(row.phone) };
        assert.equal(await open(published[i]!.after!["email"], "app.customers"), JSON.stringify(values));
      }
      assert.equal(await open(published[300]!.after!["email"], "app.odd"), JSON.stringify({ email: rows[1]!.email, 7: "seven" }), "an array-index name first, as JSON.stringify writes it");
    }
  } finally {
    await log.close();
  }
});

test("applyNow: after prepare every event is published without a promise (sealed on the workers or on this thread), a key not in memory leaves it to apply; a sink decrypts both", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "apply-now.db"), logger, maintenanceIntervalMs: 0 });
  try {
    const sink = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    for (const [round, workers] of [new SealWorkers(1), null].entries()) {
      const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }), workers);
      const batch = Array.from({ length: 100 }, (_, i) => event({ id: i, customer_id: BigInt(i % 5), email: `n${i}@example.com`, phone: BigInt(i), city: "Lyon" }));
      await capture.prepare(batch);
      const now = batch.map((e) => capture.applyNow(e));
      assert.ok(now.every((e) => e !== undefined && isSealed(e.after!["email"])), "every row image ready");
      for (const [i, e] of now.entries()) assert.deepEqual((await sink.apply(e!)).after, { id: i, customer_id: BigInt(i % 5), email: `n${i}@example.com`, phone: String(i), city: "Lyon" });
      // A subject prepare did not see (one per round: a store caches the newest keys of the topic when it opens): its key is not in memory.
      const subject = BigInt(900 + round);
      const unseen = event({ id: 900, customer_id: subject, email: "late@example.com", phone: null, city: null });
      assert.equal(capture.applyNow(unseen), undefined);
      assert.deepEqual((await sink.apply(await capture.apply(unseen))).after, { id: 900, customer_id: subject, email: "late@example.com", phone: null, city: null });
    }
  } finally {
    await log.close();
  }
});

test("prepare does not wait for the seal workers: the main thread seals a batch's first row images, apply waits for those on their way, a failed request's rows are sealed on the main thread", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "pipelined.db"), logger, maintenanceIntervalMs: 0 });
  const real = new SealWorkers(1);
  // Workers that answer when told to (a real worker's seal, or a failure).
  type Held = { keys: Buffer[]; jsons: string[]; heads: Parameters<SealWorkers["sealPayloads"]>[2]; resolve: (sealed: SealedPayloads) => void; reject: (error: Error) => void };
  const held: Held[] = [];
  const workers = {
    sealPayloads: (keys: Buffer[], jsons: string[], heads: Held["heads"]) => new Promise<SealedPayloads>((resolve, reject) => held.push({ keys, jsons, heads, resolve, reject })),
  } as unknown as SealWorkers;
  try {
    const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, lazyKeyStore(config, log, { create: true }), workers);
    const sink = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    const batch = Array.from({ length: 1200 }, (_, i) => event({ id: i, customer_id: BigInt(i % 9), email: `p${i}@example.com`, phone: BigInt(i), city: "Lyon" }));
    const prepared = await Promise.race([capture.prepare(batch).then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 5_000))]);
    assert.equal(prepared, true, "prepare returned while the workers had not replied");
    assert.deepEqual(
      held.map((request) => request.jsons.length),
      [512, 512, 48],
      "all but the first 128 row images sent, in requests of 512",
    );
    const first = batch.slice(0, 128).map((e) => capture.applyNow(e));
    assert.ok(first.every((e) => e !== undefined && isSealed(e.after!["email"])), "the first 128 sealed on this thread");
    assert.equal(capture.applyNow(batch[128]!), undefined, "a row image on the workers is left to apply");
    const waiting = capture.apply(batch[128]!);
    const answered = await Promise.race([waiting.then(() => true), new Promise<false>((resolve) => setTimeout(() => resolve(false), 100))]);
    assert.equal(answered, false, "apply waits for the workers' reply");
    const answer = async (request: Held) => request.resolve(await real.sealPayloads(request.keys, request.jsons, request.heads));
    await answer(held[0]!);
    held[1]!.reject(new Error("seal worker exited (code 1)"));
    await answer(held[2]!);
    const published = [...first, await waiting, ...(await Promise.all(batch.slice(129).map((e) => capture.apply(e))))];
    assert.ok(published.every((e) => isSealed(e!.after!["email"])));
    assert.equal(new Set(published.map((e) => String(e!.after!["email"]).split(".")[1]!.slice(0, 32))).size, 1200, "each row image has its own IV");
    assert.ok(
      batch.slice(1152).every((e) => capture.applyNow(e) !== undefined),
      "the last request's rows are ready without a promise once back",
    );
    for (const [i, e] of published.entries()) assert.deepEqual((await sink.apply(e!)).after, { id: i, customer_id: BigInt(i % 9), email: `p${i}@example.com`, phone: String(i), city: "Lyon" });
  } finally {
    await log.close();
  }
});

test("a batch's row images are found whatever order its events are published in (in order, backwards, shuffled, each asked twice)", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "any-order.db"), logger, maintenanceIntervalMs: 0 });
  try {
    const keys = lazyKeyStore(config, log, { create: true });
    const sink = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    const batch = Array.from({ length: 700 }, (_, i) => {
      const row = { id: i, customer_id: BigInt(i % 13), email: `o${i}@example.com`, phone: BigInt(i), city: "Lyon" };
      if (i % 4 === 0) return event({ ...row, customer_id: null });
      if (i % 4 === 1) return event(row, { ...row, email: `was${i}@example.com` });
      return event(row);
    });
    const expected = (i: number) => ({ id: i, customer_id: i % 4 === 0 ? null : BigInt(i % 13), email: i % 4 === 0 ? null : `o${i}@example.com`, phone: i % 4 === 0 ? null : String(i), city: "Lyon" });
    const shuffled = batch.map((_, i) => i).sort((a, b) => ((a * 7919) % 701) - ((b * 7919) % 701));
    for (const order of [batch.map((_, i) => i), batch.map((_, i) => batch.length - 1 - i), shuffled]) {
      const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, keys, new SealWorkers(1));
      await capture.prepare(batch);
      const published: ChangeEvent[] = [];
      for (const i of order) {
        // Asked twice, as capture does: without a promise when ready, else apply (which looks the rows up again).
        capture.applyNow(batch[i]!);
        published[i] = capture.applyNow(batch[i]!) ?? (await capture.apply(batch[i]!));
      }
      for (const [i, e] of published.entries()) {
        const opened = await sink.apply(e);
        assert.deepEqual(opened.after, expected(i), `event ${i}`);
        if (i % 4 === 1) assert.equal(opened.before!["email"], `was${i}@example.com`);
      }
      assert.equal(new Set(published.filter((_, i) => i % 4 !== 0).map((e) => String(e.after!["email"]).split(".")[1]!.slice(0, 32))).size, 525, "each row image sealed once, with its own IV");
    }
  } finally {
    await log.close();
  }
});

test("row images sealed on the workers publish what the main thread publishes: no subject, no personal value, before and after images, unchanged TOAST", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "workers-same.db"), logger, maintenanceIntervalMs: 0 });
  try {
    const keys = lazyKeyStore(config, log, { create: true });
    const sink = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    const batch = Array.from({ length: 600 }, (_, i) => {
      const row = { id: i, customer_id: BigInt(i % 11), email: `m${i}@example.com`, phone: BigInt(i), city: "Lyon" };
      if (i % 5 === 0) return event({ ...row, customer_id: null });
      if (i % 5 === 1) return event(row, { ...row, email: `old${i}@example.com` });
      if (i % 5 === 2) return event({ ...row, email: null, phone: null });
      if (i % 5 === 3) return event({ ...row, phone: UNCHANGED });
      return event(null, row);
    });
    const published: ChangeEvent[][] = [];
    for (const workers of [null, new SealWorkers(1)]) {
      const capture = new PersonalDataEncryptor({ name: "pg", governance } as never, keys, workers);
      await capture.prepare(batch);
      published.push(await Promise.all(batch.map((e) => capture.apply(e))));
    }
    const [onMain, onWorkers] = published as [ChangeEvent[], ChangeEvent[]];
    // The same but for each seal's IV: the other columns, nulls and references as they are, the sealed values once opened.
    const shown = async (e: ChangeEvent) => {
      const opened = await sink.apply(e);
      const mark = (row: Record<string, unknown> | null, clear: Record<string, unknown> | null) => (row === null ? null : { ...row, email: isSealed(row["email"]) ? `sealed:${String(clear!["email"])}` : row["email"], phone: row["phone"] === UNCHANGED ? "unchanged" : row["phone"] });
      return { before: mark(e.before, opened.before), after: mark(e.after, opened.after) };
    };
    for (let i = 0; i < batch.length; i++) assert.deepEqual(await shown(onWorkers[i]!), await shown(onMain[i]!), `event ${i}`);
    assert.ok(onWorkers.slice(500).some((e) => isSealed(e.before?.["email"]) && isSealed(e.after?.["email"])), "updates with both images sealed on the workers");
  } finally {
    await log.close();
  }
});
