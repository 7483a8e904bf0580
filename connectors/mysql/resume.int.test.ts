/**
 * Resuming from a checkpoint after close, with writes continuing in between: nothing lost, nothing
 * doubled — from a checkpoint between transactions and from one inside a transaction, by GTID and
 * by binlog file and offset. A purged position is refused, not skipped.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import type { Checkpoint } from "../contracts.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";
import type { Collected } from "./int-test-support.ts";
import { decodeResumeToken, encodeResumeToken } from "./resume-token.ts";
import { MemorySchemaHistoryStore } from "./schema/schema-history.ts";

describe("MySQL source: resume", () => {
  const database = randomName("s_resume");
  let admin: Connection;
  let next = 1;

  const insertTransaction = async (rows: number) => {
    const values = Array.from({ length: rows }, () => `(${next++}, 'v')`).join(", ");
    await admin.query("START TRANSACTION");
    await admin.query(`INSERT INTO r VALUES ${values}`);
    await admin.query("COMMIT");
  };

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("CREATE TABLE r (id INT PRIMARY KEY, v VARCHAR(10))");
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  const ids = (c: Collected) => c.events.map((e) => Number(e.key["id"]));

  for (const [label, byGtid] of [["by GTID", true], ["by binlog file and offset", false]] as const) {
    it(`resumes ${label}, mid-transaction and between transactions, without loss or doubles`, async () => {
      await admin.query("DELETE FROM r");
      const history = new MemorySchemaHistoryStore();
      const config = sourceConfig({ tables: [`${database}.r`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } });
      const first = newSource(config, { maxBatchEvents: 4, schemaHistory: history });
      await first.connect(null, AbortSignal.timeout(30_000));
      const start = next;
      await readUntil(first, snapshotFinished);
      await insertTransaction(10);
      // Stop after one batch of 4: the checkpoint lies inside the 10-row transaction.
      const part = await readUntil(first, (c) => c.events.length >= 4);
      await first.close();
      let checkpoint: Checkpoint = part.batches.at(-1)!.checkpoint;
      assert.notEqual(checkpoint.position.commit, checkpoint.position.change, "a checkpoint inside a transaction");
      if (!byGtid) checkpoint = withoutGtid(checkpoint);

      await insertTransaction(3);
      const second = newSource(config, { maxBatchEvents: 100, schemaHistory: history });
      await second.connect(checkpoint, AbortSignal.timeout(30_000));
      const rest = await readUntil(second, (c) => c.events.length >= 9);
      await second.close();
      assert.deepEqual([...ids(part), ...ids(rest)], Array.from({ length: 13 }, (_, i) => start + i));

      // Between transactions now: the last checkpoint is a transaction's end.
      let between = rest.batches.at(-1)!.checkpoint;
      assert.equal(between.position.commit, between.position.change);
      if (!byGtid) between = withoutGtid(between);
      await insertTransaction(2);
      const third = newSource(config, { schemaHistory: history });
      await third.connect(between, AbortSignal.timeout(30_000));
      const tail = await readUntil(third, (c) => c.events.length >= 2);
      await third.close();
      assert.deepEqual(ids(tail), [start + 13, start + 14]);
      assert.equal(tail.events.length, 2);
    });
  }

  it("refuses a checkpoint whose binlog was purged, naming the position, and re-snapshots under when-needed", async () => {
    const config = sourceConfig({ tables: [`${database}.r`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 } });
    const source = newSource(config);
    await source.connect(null, AbortSignal.timeout(30_000));
    const snapshot = await readUntil(source, snapshotFinished);
    await source.close();
    const checkpoint = snapshot.batches.at(-1)!.checkpoint;
    const token = decodeResumeToken(checkpoint.position.resume, config.name);
    // Only removes binlog files before the current one, which no other test still reads.
    await admin.query("FLUSH BINARY LOGS");
    const [status] = (await admin.query("SHOW MASTER STATUS")) as unknown as [{ File: string }[]];
    // MariaDB keeps a file until its binlog checkpoint (InnoDB's commit of its transactions) is written.
    for (let attempt = 0; ; attempt++) {
      await admin.query(`PURGE BINARY LOGS TO '${status[0]!.File}'`);
      const [logs] = (await admin.query("SHOW BINARY LOGS")) as unknown as [{ Log_name: string }[]];
      if (!logs.some((log) => log.Log_name === token.file)) break;
      assert.ok(attempt < 100, `${token.file} is purged`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }

    const again = newSource(config);
    try {
      await assert.rejects(again.connect(checkpoint, AbortSignal.timeout(30_000)), (error: Error & { code?: string; retriable?: boolean }) => {
        assert.equal(error.code, "MYSQL_POSITION_PURGED");
        assert.equal(error.retriable, false);
        assert.match(error.message, new RegExp(`${token.file}:${token.offset}`));
        assert.match(error.message, /re-snapshot/);
        return true;
      });
    } finally {
      await again.close();
    }

    const rescue = newSource({ ...config, snapshot: { ...config.snapshot, mode: "when-needed" } });
    await rescue.connect(checkpoint, AbortSignal.timeout(30_000));
    const resnapshot = await readUntil(rescue, snapshotFinished);
    await rescue.close();
    const rows = resnapshot.events.slice(0, -1);
    const reset = resnapshot.events.at(-1);
    assert.equal(reset?.op, "t", "the new snapshot closes with the table's reset");
    assert.ok(rows.length > 0 && rows.every((e) => e.op === "r" && e.source.position.change > reset!.source.position.change));
  });
});

function withoutGtid(checkpoint: Checkpoint): Checkpoint {
  const token = decodeResumeToken(checkpoint.position.resume, checkpoint.source);
  return { ...checkpoint, position: { ...checkpoint.position, resume: encodeResumeToken({ ...token, gtid: null }) } };
}
