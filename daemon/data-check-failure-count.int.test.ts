/**
 * sluice_data_check_failures_total counts a change's failures once, when its records are durable. It was counted when
 * the change was checked, and a batch is checked again when its encoding is thrown away: a write to the topic log that
 * fails ends capture's pump, capture connects again from its checkpoint and the source sends the same changes again, so
 * one failing change was counted twice. Capture with the real PostgreSQL source, the embedded log, and one write that
 * fails; a warn check (the change published) and a dead-letter check (the change dead-lettered).
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { loadConfigText } from "../config/load.ts";
import type { PostgresSourceConfig } from "../config/schema.ts";
import type { ChangeEvent, ProducedRecord, TopicLog } from "../connectors/contracts.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { SluiceError } from "../connectors/errors.ts";
import { adminClient, cleanUp, newSource, randomName, testLogger } from "../connectors/postgres/int-test-support.ts";
import { postgres } from "../test/services/ports.ts";
import { CapturePipeline } from "./capture.ts";
import { DataChecks, withDataChecks } from "./governance/data-checks.ts";

const schema = randomName("dccount");
const dir = mkdtempSync(join(tmpdir(), "sluice-check-count-"));
let admin: pg.Client;
let sourceConfig: PostgresSourceConfig | undefined;

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, email text, code text)`);
});

after(async () => {
  if (sourceConfig !== undefined) await cleanUp(admin, sourceConfig, schema);
  await admin.end();
  rmSync(dir, { recursive: true, force: true });
});

test("a failing change checked again after a failed write and the source sending it again is counted once", { timeout: 60_000 }, async () => {
  const config = loadConfigText(
    "test.yaml",
    `name: dep
sources:
  - kind: postgres
    name: ${randomName("src")}
    host: ${postgres.host}
    port: ${postgres.port}
    user: ${postgres.user}
    password: ${postgres.password}
    database: ${postgres.database}
    slot: ${randomName("slot")}
    publication: ${randomName("pub")}
    tables: ["${schema}.*"]
    snapshot: { mode: never }
    governance:
      tables:
        ${schema}.items:
          checks:
            - { check: not_null, column: email, action: warn }
            - { check: regex, column: code, pattern: "^[A-Z]+$", action: dead-letter }
topics:
  kind: embedded
  path: ${join(dir, "log.db")}
`,
  );
  const source = config.sources[0] as PostgresSourceConfig;
  sourceConfig = source;
  const dataTopic = "dep.items";
  const deadLetterTopic = `dep.dlq.${source.name}`;
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger: testLogger() });
  for (const name of ["dep.sluice.halted", dataTopic]) await log.createTopic({ name, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  // The first write holding the failing changes fails, as a full disk or a lost broker fails it: retriable.
  let failed = 0;
  const flaky = new Proxy(log, {
    get(target, property) {
      if (property === "produce") {
        return (records: ProducedRecord[], ...rest: unknown[]) => {
          if (failed === 0 && records.some((r) => r.topic === deadLetterTopic)) {
            failed++;
            return Promise.reject(new SluiceError("the write failed (test)", { code: "TEST_WRITE_FAILED", retriable: true }));
          }
          return (target.produce as (...args: unknown[]) => Promise<void>)(records, ...rest);
        };
      }
      const value = Reflect.get(target, property) as unknown;
      return typeof value === "function" ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  }) as TopicLog;
  const counted: string[] = [];
  const checks = new DataChecks(source.name, source.governance!, testLogger(), { onFailure: (table, check) => void counted.push(`${table} ${check}`) });
  // One record per change, as the table encoder gives.
  const inner = { encode: async (event: ChangeEvent): Promise<ProducedRecord[]> => [{ topic: dataTopic, key: Buffer.from(String(event.key["id"])), value: Buffer.from("row"), headers: {}, timestamp: 0 }] };
  const encoder = withDataChecks(checks, inner, deadLetterTopic, () => log.createTopic({ name: deadLetterTopic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false }));
  const pipeline = new CapturePipeline({ source: newSource(source), log: flaky, encoder, logger: testLogger(), parkingTopic: "dep.sluice.halted", reconnect: { initialMs: 10, maxMs: 10 } });
  const stop = new AbortController();
  const running = pipeline.run(stop.signal);
  const stored = async (topic: string) => (await log.endOffsets(topic)).reduce((sum, end) => sum + end.offset, 0n);
  try {
    for (let i = 0; ; i++) {
      const { rows } = await admin.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND active", [source.slot]);
      if (rows.length > 0) break;
      assert.ok(i < 300, "the source never streamed");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await admin.query("BEGIN");
    await admin.query(`INSERT INTO "${schema}".items VALUES (1, NULL, 'ABC')`);
    await admin.query(`INSERT INTO "${schema}".items VALUES (2, 'a@b.c', 'lower')`);
    await admin.query(`INSERT INTO "${schema}".items VALUES (3, 'a@b.c', 'OK')`);
    await admin.query("COMMIT");
    for (let i = 0; (await stored(dataTopic)) < 2n; i++) {
      assert.ok(i < 600, "the changes were never published");
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    stop.abort();
    await running.catch(() => undefined);
  }
  assert.equal(failed, 1, "one write failed, and capture wrote the changes again");
  assert.equal(await stored(dataTopic), 2n, "rows 1 and 3 published once");
  assert.equal(await stored(deadLetterTopic), 1n, "row 2 dead-lettered once");
  assert.deepEqual(counted.sort(), [`${schema}.items not_null`, `${schema}.items regex`], "each failure counted once");
  await log.close();
});
