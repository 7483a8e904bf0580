/**
 * MariaDB (sql_mode '' allows zero dates): a zero date in a PRIMARY KEY column, from the snapshot and from the binlog,
 * under both zero_dates settings. A key cannot be NULL, so the value is refused at encoding (the table halts at
 * capture) with a message that names the table, the column and the zero date and says what to do; before, under
 * zero_dates: null the key was NULL and the message only said "value is null but the column is NOT NULL". A zero date
 * outside the key stays as zero_dates says: NULL, or refused naming zero_dates.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import type { ChangeEvent } from "../contracts.ts";
import { mapTable } from "../../schema-registry/table-mapping.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const database = randomName("zero_key");
let admin: Connection;

before(async () => {
  admin = await adminConnection();
  await admin.query("SET SESSION sql_mode = ''");
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`USE \`${database}\``);
  await admin.query("CREATE TABLE k (id INT, d DATE NOT NULL, n DATE NOT NULL, PRIMARY KEY (id, d))");
});

after(async () => {
  await dropDatabase(admin, database);
  await admin.end();
});

type Refusal = Error & { code?: string; context?: Record<string, unknown> };

function refusal(encode: () => unknown): Refusal {
  try {
    encode();
  } catch (error) {
    return error as Refusal;
  }
  assert.fail("the row was encoded");
}

function assertKeyZeroDate(event: ChangeEvent): void {
  const mapping = mapTable(event.schema);
  for (const error of [refusal(() => mapping.keyCodec!.toAvro(event.key)), refusal(() => mapping.valueCodec.toAvro(event.after!))]) {
    assert.equal(error.code, "AVRO_VALUE_INVALID");
    assert.equal(error.context?.["column"], "d");
    assert.equal(error.context?.["value"], 'string "0000-00-00"');
    assert.match(error.message, new RegExp(`table ${database}\\.k column \`d\`: a key column holds a zero date`));
    assert.match(error.message, /a key cannot be NULL whatever zero_dates says/);
    assert.match(error.message, new RegExp(`sluice halted skip --source src --table ${database}\\.k`));
    assert.match(error.message, /docs\/mysql\.md#zero-dates-in-a-key-column/);
  }
}

describe("a zero date in a primary key column", () => {
  for (const zeroDates of ["null", "error"] as const) {
    it(`zero_dates: ${zeroDates}: refused naming table, column and the zero date, from the snapshot and the binlog; outside the key as zero_dates says`, async () => {
      await admin.query("DELETE FROM k");
      await admin.query("INSERT INTO k VALUES (1, '0000-00-00', '2024-01-01'), (2, '2024-01-01', '0000-00-00')");
      const source = newSource(sourceConfig({ name: "src", tables: [`${database}.k`], zero_dates: zeroDates, snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } }));
      await source.connect(null, AbortSignal.timeout(30_000));
      try {
        const snapshot = (await readUntil(source, snapshotFinished)).events.filter((e) => e.op === "r");
        await admin.query("INSERT INTO k VALUES (3, '0000-00-00', '2024-01-01'), (4, '2024-01-01', '0000-00-00')");
        const stream = (await readUntil(source, (c) => c.events.length >= 2)).events;
        for (const events of [snapshot, stream]) {
          const [keyed, other] = [events.find((e) => Number(e.after!["id"]) % 2 === 1)!, events.find((e) => Number(e.after!["id"]) % 2 === 0)!];
          assert.equal(keyed.after!["d"], "0000-00-00");
          assertKeyZeroDate(keyed);
          const mapping = mapTable(other.schema);
          if (zeroDates === "null") {
            assert.equal(other.after!["n"], null);
            mapping.valueCodec.toAvro(other.after!);
          } else {
            const error = refusal(() => mapping.valueCodec.toAvro(other.after!));
            assert.equal(error.context?.["column"], "n");
            assert.match(error.message, /column `n`: cannot be encoded as .*a zero date.*zero_dates: null carries it as NULL/);
          }
        }
      } finally {
        await source.close();
      }
    });
  }
});
