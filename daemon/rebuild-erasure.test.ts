/**
 * `sluice forget` while a sink is rebuilt (real DuckDB sink, embedded log, real subject keys):
 * the rebuild decrypts a subject's row with its key, the erasure drops the key and nulls the rows
 * in every generation, then the rebuild writes the row it decrypted into its new generation, and
 * the swap made it live (found by review). Through the daemon's sink thread (SinkErasures) and
 * with the rebuild in another process than the erasure (`sluice replay --rebuild` run as a command).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { SluiceConfig } from "../config/schema.ts";
import type { ChangeEvent, SinkChange, StoredRecord } from "../connectors/contracts.ts";
import { createDuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { eraseInSink, erasureRequests } from "./governance/erasure.ts";
import { lazyKeyStore, PersonalDataDecryptor, PersonalDataEncryptor } from "./governance/personal-data.ts";
import { watchRebuildErasures } from "./governance/rebuild-erasures.ts";
import { MasterKey, SubjectKeyStore, subjectKeyTopic } from "./governance/subject-keys.ts";
import { rebuildSink } from "./rebuild.ts";
import type { RebuildOptions } from "./rebuild.ts";
import { SinkErasures } from "./sink-erasures.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-erasure-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = testLogger();
const masterFile = join(dir, "master.key");
writeFileSync(masterFile, "ab".repeat(32));
const governance = { tables: { "public.people": { checks: [], transforms: {}, personal: { subject: "customer_id", columns: ["email"] } } } };
const SUBJECTS = 20;
/** The subject forgotten, in the second of the rebuild's batches of 5. */
const FORGOTTEN = 7;

async function setup(name: string) {
  const sinkConfig = testSinkConfig("duckdb", { name: "wh", path: join(dir, `${name}.duckdb`) });
  const config = {
    name: "dep",
    personal_data: { master_key_file: masterFile, previous_master_key_files: [] },
    sources: [{ name: "src", kind: "postgres", database: "db", governance }],
    sinks: [sinkConfig],
  } as unknown as SluiceConfig;
  const log = EmbeddedTopicLog.open({ path: join(dir, `${name}.db`), logger, maintenanceIntervalMs: 0 });
  const events = new Events(tableSchema("people", [["id", "integer"], ["customer_id", "integer"], ["email", "text"]]));
  await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  // Captured: the personal column encrypted with each subject's key.
  const capture = new PersonalDataEncryptor({ name: "src", governance } as never, lazyKeyStore(config, log, { create: true }));
  const history: SinkChange[] = [];
  for (let id = 1; id <= SUBJECTS; id++) history.push(events.insert(BigInt(id), { id, customer_id: id, email: `secret${id}` }));
  const encrypted = await Promise.all(history.map(({ event }) => capture.apply(event)));
  await log.produce(encrypted.map((event) => ({ topic: events.topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: 0 })));
  const sink = createDuckDbSink(sinkConfig, { logger });
  const signal = new AbortController().signal;
  await sink.open(signal);
  // What the runner applied long ago, decrypted.
  await sink.write(history, signal);
  // The rebuild's pass over the records (after the new generation exists), not its first reads for the tables and truncates.
  let prepared = false;
  const prepare = sink.prepareRebuild.bind(sink);
  sink.prepareRebuild = async (...args) => {
    await prepare(...args);
    prepared = true;
  };
  const admin = await SubjectKeyStore.open(log, subjectKeyTopic("dep"), MasterKey.fromFile(masterFile));
  const rebuildOptions = (personal: PersonalDataDecryptor, onDecoded: (event: ChangeEvent) => Promise<void>): RebuildOptions => ({
    sink,
    log,
    // recordDecoder's decryption, JSON in place of Avro.
    decoder: {
      decode: async (record: StoredRecord) => {
        if (!record.value) return null;
        const event = await personal.apply(deserializeEvent(Buffer.from(record.value).toString()));
        if (prepared) await onDecoded(event);
        return event;
      },
    },
    topics: [events.topic],
    group: "wh.rebuild",
    logger,
    signal,
    batchRecords: 5,
  });
  const emails = (where: string) => sink.query(`SELECT id, email FROM public_people WHERE ${where} ORDER BY id`);
  /** The subject's email in every generation of the table (the physical tables: the live one and the rebuild's). */
  const everyGeneration = async () => {
    const tables = (await sink.query(`SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = '_sluice' AND table_name LIKE 'public_people__v%' ORDER BY table_name`)) as { table_schema: string; table_name: string }[];
    const out: unknown[] = [];
    for (const t of tables) out.push(...(await sink.query(`SELECT email FROM "${t.table_schema}"."${t.table_name}" WHERE customer_id = ${FORGOTTEN}`)));
    return out;
  };
  const close = async () => {
    await admin.close();
    await sink.close();
    await log.close();
  };
  return { config, sinkConfig, log, sink, signal, admin, rebuildOptions, emails, everyGeneration, close };
}

const id = (event: ChangeEvent) => Number(event.key["id"]);

test("sluice forget through the daemon while its sink thread rebuilds the sink: the subject's row decrypted before the key was dropped is not swapped back in", async () => {
  const { config, sinkConfig, log, sink, signal, admin, rebuildOptions, emails, everyGeneration, close } = await setup("daemon");
  try {
    const personal = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    // The sink thread's: no runner here, so nothing to wait for between its batches.
    const erasures = new SinkErasures({ config, sinkConfig, sink, personal, betweenBatches: (operation) => operation(), signal });
    let started = (_: { erasing: Promise<number | null> }) => {};
    const erasureStarted = new Promise<{ erasing: Promise<number | null> }>((resolve) => (started = resolve));
    let checked = () => {};
    const looked = new Promise<void>((resolve) => (checked = resolve));
    const guard = await erasures.rebuildGuard(logger);
    let forgotten = false;
    const options = rebuildOptions(personal, async (event) => {
      if (id(event) === FORGOTTEN && !forgotten) {
        forgotten = true;
        assert.equal(event.after!["email"], `secret${FORGOTTEN}`, "decrypted with the subject's key");
        // sluice forget: the tombstone, then the daemon's erasure in the sink thread.
        const erasing = admin.destroy("src", String(FORGOTTEN)).then(() => erasures.erase("src", String(FORGOTTEN)));
        started({ erasing });
        // The next record's key or schema fetch: I/O an erasure ran in, before the fix. Now it waits for this batch.
        await Promise.race([erasing, new Promise((resolve) => setTimeout(resolve, 200))]);
      }
      // The third batch waits while the test looks at every generation once the erasure answered.
      if (id(event) === 11) await looked;
    });
    const rebuilding = rebuildSink({ ...options, exclusive: guard.exclusive, ...(guard.erasures ? { erasures: guard.erasures } : {}) }).finally(() => guard.close());
    try {
      const { erasing } = await Promise.race([erasureStarted, rebuilding.then(() => Promise.reject(new Error("the rebuild ended before the erasure started")))]);
      assert.equal(await erasing, 1, "the erasure nulled the live row");
      // Once the erasure answers, no generation holds the subject's value, not even until the swap.
      assert.deepEqual(await everyGeneration(), [{ email: null }, { email: null }], "the live table and the rebuild's, both nulled");
    } finally {
      checked();
    }
    const report = await rebuilding;
    assert.equal(report.records, SUBJECTS);
    assert.deepEqual(await emails(`id = ${FORGOTTEN}`), [{ id: FORGOTTEN, email: null }], "swapped in without the forgotten subject's value");
    assert.deepEqual(await emails(`id IN (6, 8, 20)`), [{ id: 6, email: "secret6" }, { id: 8, email: "secret8" }, { id: 20, email: "secret20" }], "every other subject as before");
    assert.deepEqual(await everyGeneration(), [{ email: null }]);
  } finally {
    await close();
  }
});

test("sluice forget erasing from its own process while a rebuild runs in another (sluice replay --rebuild): the rebuild erases the subject again before it swaps", async () => {
  const { config, sinkConfig, log, sink, signal, admin, rebuildOptions, emails, close } = await setup("command");
  try {
    // The rebuild's process: its own key store, which learns of the tombstone only when it reads the key topic again.
    const personal = new PersonalDataDecryptor(config, lazyKeyStore(config, log, { create: true }));
    const erasures = await watchRebuildErasures(config, sinkConfig, personal, (requests) => eraseInSink(sink, requests, signal), logger);
    assert.ok(erasures !== null, "the sink holds personal columns");
    let forgotten = false;
    const options = rebuildOptions(personal, async (event) => {
      if (id(event) === FORGOTTEN && !forgotten) {
        forgotten = true;
        assert.equal(event.after!["email"], `secret${FORGOTTEN}`, "decrypted with the subject's key");
        // sluice forget, whole, in its process: the tombstone, then the erasure in the sink's target (every generation).
        await admin.destroy("src", String(FORGOTTEN));
        assert.equal(await eraseInSink(sink, erasureRequests(config, sinkConfig, "src", String(FORGOTTEN)), signal), 1);
      }
    });
    try {
      await rebuildSink({ ...options, erasures });
    } finally {
      erasures.close();
    }
    assert.ok(forgotten);
    assert.deepEqual(await emails(`id = ${FORGOTTEN}`), [{ id: FORGOTTEN, email: null }], "swapped in without the forgotten subject's value");
    assert.deepEqual(await emails(`id IN (6, 8, 20)`), [{ id: 6, email: "secret6" }, { id: 8, email: "secret8" }, { id: 20, email: "secret20" }], "every other subject as before");
  } finally {
    await close();
  }
});
