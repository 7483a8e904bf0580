/**
 * Changes a session logged with binlog_row_image=MINIMAL or NOBLOB (the server's own setting is
 * FULL, checked at start, but every session may change its own): an update's left-out columns are
 * unchanged ones (absent from the change, which sinks keep), a create — an insert, or the new key of
 * a key-changing update — is completed by reading the row, and a warning names the table. A change
 * logged as a statement (binlog_format=STATEMENT in a session) cannot be captured: an error says so.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import { pino } from "pino";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import type { Collected } from "./int-test-support.ts";

const micros = (iso: string, extra = 0) => BigInt(Date.parse(`${iso}Z`)) * 1000n + BigInt(extra);

describe("MySQL source: row images other than FULL", () => {
  const database = randomName("s_image");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query(
      "CREATE TABLE p (id INT, at DATETIME(6), name VARCHAR(10) CHARACTER SET latin1, a INT DEFAULT 7, b TEXT, c VARCHAR(10), d DATE DEFAULT '2021-03-04', PRIMARY KEY (id, at, name))",
    );
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("delivers an update's left-out columns as unchanged, completes creates from the table, and warns", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const source = newSource(sourceConfig({ tables: [`${database}.p`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { logger });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      // Each change is read before the next: a create is completed from the row as it is when read.
      const collected: Collected = { events: [], batches: [] };
      const step = async (statement: string, changes: number) => {
        await admin.query(statement);
        const before = collected.events.length;
        await readUntil(source, (c) => c.events.length >= before + changes, { into: collected });
      };
      await admin.query("SET SESSION binlog_row_image = 'MINIMAL'");
      await step("INSERT INTO p (id, at, name, c) VALUES (1, '2020-01-01 00:00:00.5', 'ñ', 'x')", 1);
      await step("UPDATE p SET a = 8 WHERE id = 1", 1);
      await step("UPDATE p SET id = 2 WHERE id = 1", 2);
      await admin.query("SET SESSION binlog_row_image = 'NOBLOB'");
      await step("UPDATE p SET b = 'text', c = 'y' WHERE id = 2", 1);
      await step("UPDATE p SET c = 'z' WHERE id = 2", 1);
      await admin.query("SET SESSION binlog_row_image = 'MINIMAL'");
      await step("DELETE FROM p WHERE id = 2", 1);
      await admin.query("SET SESSION binlog_row_image = 'FULL'");
      const { events } = collected;
      const key = { at: micros("2020-01-01T00:00:00", 500_000), name: "ñ" };
      const whole = { ...key, a: 7, b: null, c: "x", d: 18690 };
      assert.deepEqual(
        events.map((e) => [e.op, e.before, e.after]),
        [
          ["c", null, { id: 1, ...whole }],
          ["u", { id: 1, ...key }, { id: 1, ...key, a: 8 }],
          ["d", { id: 1, ...key }, null],
          ["c", null, { id: 2, ...whole, a: 8 }],
          // NOBLOB: every column but the unchanged TEXT.
          ["u", { id: 2, ...key, a: 8, c: "x", d: 18690 }, { id: 2, ...key, a: 8, b: "text", c: "y", d: 18690 }],
          ["u", { id: 2, ...key, a: 8, c: "y", d: 18690 }, { id: 2, ...key, a: 8, c: "z", d: 18690 }],
          ["d", { id: 2, ...key }, null],
        ],
      );
      const warnings = lines.filter((l) => /binlog_row_image/.test(String(l["msg"])));
      assert.deepEqual(warnings.map((l) => l["table"]), [`${database}.p`], JSON.stringify(lines));
    } finally {
      await source.close();
    }
  });

  it("says so when a captured table's change is logged as a statement (binlog_format=STATEMENT in a session), which it cannot capture", async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
    const source = newSource(sourceConfig({ tables: [`${database}.p`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 } }), { logger });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await admin.query("SET SESSION binlog_format = 'STATEMENT'");
      await admin.query("INSERT INTO p (id, at, name) VALUES (7, '2020-01-01', 'stmt')");
      await admin.query("SET SESSION binlog_format = 'ROW'");
      await admin.query("INSERT INTO p (id, at, name) VALUES (8, '2020-01-01', 'rows')");
      const { events } = await readUntil(source, (c) => c.events.length >= 1);
      assert.deepEqual(events.map((e) => e.after!["id"]), [8]);
      const said = lines.filter((l) => /logged as a statement/.test(String(l["msg"])));
      assert.deepEqual(said.map((l) => [l["table"], l["level"]]), [[`${database}.p`, 50]], JSON.stringify(lines));
      // Never a row's values in the logs (they may be personal data): the statement's kind, not its text.
      assert.doesNotMatch(JSON.stringify(said), /stmt|2020-01-01/, "the statement's values stay out of the log");
      assert.equal(said[0]!["statement"], "INSERT");
    } finally {
      await admin.query("SET SESSION binlog_format = 'ROW'");
      await source.close();
    }
  });
});
