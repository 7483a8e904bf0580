/**
 * Streaming against the real MariaDB: inserts, updates, deletes, multi-row statements,
 * transactions, key changes and truncation arrive in order, with distinct increasing positions.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import type { Connection } from "mysql2/promise";
import { waitFor } from "../common/online-snapshot-test-support.ts";
import { comparePositions } from "../contracts.ts";
import { adminConnection, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

describe("MySQL source: streaming", () => {
  const database = randomName("s_stream");
  let admin: Connection;

  before(async () => {
    admin = await adminConnection(database);
    await admin.query("CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40), qty INT NOT NULL DEFAULT 0)");
    await admin.query("INSERT INTO items VALUES (1, 'one', 1), (2, 'two', 2)");
    await admin.query("CREATE TABLE other (id INT PRIMARY KEY, payload LONGTEXT)");
  });

  after(async () => {
    await dropDatabase(admin, database);
    await admin.end();
  });

  it("takes a snapshot, then streams every change in order with its own position", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.items`] }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      assert.deepEqual(
        snapshot.events.map((e) => [e.op, e.after]),
        [
          ["r", { id: 1, name: "one", qty: 1 }],
          ["r", { id: 2, name: "two", qty: 2 }],
          ["t", null],
        ],
        "the table's rows, then its reset",
      );
      await admin.query("INSERT INTO items VALUES (3, 'three', 3), (4, 'four', 4), (5, 'five', 5)");
      await admin.query("START TRANSACTION");
      await admin.query("UPDATE items SET qty = qty + 10 WHERE id IN (1, 2)");
      await admin.query("DELETE FROM items WHERE id = 3");
      await admin.query("COMMIT");
      await admin.query("UPDATE items SET id = 40 WHERE id = 4");
      await admin.query("TRUNCATE TABLE items");
      const stream = await readUntil(source, (c) => c.events.some((e) => e.op === "t"));
      assert.deepEqual(
        stream.events.map((e) => [e.op, e.key]),
        [
          ["c", { id: 3 }],
          ["c", { id: 4 }],
          ["c", { id: 5 }],
          ["u", { id: 1 }],
          ["u", { id: 2 }],
          ["d", { id: 3 }],
          ["d", { id: 4 }],
          ["c", { id: 40 }],
          ["t", {}],
        ],
      );
      const update = stream.events[3]!;
      assert.deepEqual([update.before, update.after], [{ id: 1, name: "one", qty: 1 }, { id: 1, name: "one", qty: 11 }]);
      assert.equal(stream.events[3]!.source.txId, stream.events[5]!.source.txId, "one transaction, one GTID");
      assert.equal(stream.events[3]!.source.position.commit, stream.events[5]!.source.position.commit, "one transaction, one commit position");
      assert.match(stream.events[0]!.source.txId ?? "", /^\d+-\d+-\d+$/);
      const positions = [snapshot.events.at(-1)!, ...stream.events].map((e) => e.source.position);
      for (let i = 1; i < positions.length; i++) assert.equal(comparePositions(positions[i - 1]!, positions[i]!), -1, `position ${i} increases`);
      const changes = new Set(stream.events.map((e) => e.source.position.change));
      assert.equal(changes.size, stream.events.length, "every change has its own version");
    } finally {
      await source.close();
    }
  });

  it("moves the checkpoint forward while captured tables are quiet", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.items`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 200 }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const first = await readUntil(source, (c) => c.batches.length >= 1);
      await admin.query("INSERT INTO other VALUES (1, 'not captured')");
      const later = await readUntil(source, (c) => c.batches.some((b) => comparePositions(b.checkpoint.position, first.batches[0]!.checkpoint.position) > 0), { timeoutMs: 10_000 });
      assert.equal(later.events.length, 0, "no events of tables not captured");
      const checkpoint = later.batches.at(-1)!.checkpoint.position;
      assert.equal(checkpoint.commit, checkpoint.change, "a checkpoint between transactions");
    } finally {
      await source.close();
    }
  });

  it("keeps saying it is caught up while the server is idle, every heartbeat_interval", async () => {
    const heartbeatMs = 300;
    const source = newSource(sourceConfig({ tables: [`${database}.items`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: heartbeatMs }));
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await readUntil(source, (c) => c.batches.length >= 1);
      const idleFrom = Date.now();
      // Other tests write other databases of the shared server meanwhile: a batch may move the position on
      // without a later time (their commit times are whole seconds, and the server sends a heartbeat only
      // once it has been idle for heartbeat_interval). So the test waits for batches that bring a later
      // time, however many others come between.
      const laterTimes = (batches: readonly { throughTimeMs?: number }[]) => {
        let count = 0;
        let latest = idleFrom - 1;
        for (const { throughTimeMs } of batches) {
          if (throughTimeMs !== undefined && throughTimeMs > latest) count++;
          latest = Math.max(latest, throughTimeMs ?? latest);
        }
        return count;
      };
      const idle = await readUntil(source, (c) => laterTimes(c.batches) >= 10, { timeoutMs: 60_000 });
      let previous = idle.batches[0]!;
      for (const batch of idle.batches) {
        assert.equal(batch.events.length, 0, "nothing written to the captured table: no events");
        assert.ok(batch.throughTimeMs !== undefined, "each says through which time the stream is complete");
        if (batch === previous) continue;
        const moved = comparePositions(batch.checkpoint.position, previous.checkpoint.position);
        assert.ok(moved >= 0, "the position never goes back");
        assert.ok(batch.throughTimeMs >= previous.throughTimeMs!, "the time never goes back");
        if (moved === 0) assert.ok(batch.throughTimeMs > previous.throughTimeMs!, "a batch that does not move the position brings a later time");
        previous = batch;
      }
      assert.ok(idle.batches.at(-1)!.throughTimeMs! >= idleFrom, "complete through a time after it went idle");
    } finally {
      await source.close();
    }
  });

  it("bounds what it reads ahead: a slow reader pauses the binlog connection", async () => {
    const source = newSource(sourceConfig({ tables: [`${database}.other`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 }, max_buffer_bytes: 256 * 1024 }), { maxBatchEvents: 10 });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      await readUntil(source, (c) => c.batches.length >= 1);
      const big = "x".repeat(64 * 1024);
      for (let i = 0; i < 60; i++) await admin.query("INSERT INTO other VALUES (?, ?)", [1000 + i, big]);
      await waitFor("reading to pause while nothing is read", () => source.stats().pauses >= 1, 30_000);
      const stats = source.stats();
      assert.ok(stats.bufferPeakBytes <= 256 * 1024 + 80 * 1024, `buffer stayed near its bound (peak ${stats.bufferPeakBytes})`);
      const { events } = await readUntil(source, (c) => c.events.length >= 60, { timeoutMs: 20_000 });
      assert.deepEqual(events.map((e) => e.key["id"]), Array.from({ length: 60 }, (_, i) => 1000 + i));
    } finally {
      await source.close();
    }
  });

  it("snapshots (in one streamed scan) and streams a table without a primary key, with an empty key", async () => {
    await admin.query("CREATE TABLE keyless (a INT, b VARCHAR(10))");
    await admin.query("INSERT INTO keyless SELECT seq, CONCAT('b', seq) FROM seq_1_to_2500");
    const source = newSource(sourceConfig({ tables: [`${database}.keyless`], max_buffer_bytes: 64 * 1024 }), { maxBatchEvents: 300 });
    await source.connect(null, AbortSignal.timeout(30_000));
    try {
      const snapshot = await readUntil(source, snapshotFinished);
      const rows = snapshot.events.filter((e) => e.op === "r");
      assert.equal(rows.length, 2500);
      assert.deepEqual(new Set(rows.map((e) => e.after!["a"])).size, 2500);
      assert.deepEqual(rows[0]!.key, {});
      assert.deepEqual(rows[0]!.schema.key, []);
      await admin.query("UPDATE keyless SET b = 'x' WHERE a = 7");
      const { events } = await readUntil(source, (c) => c.events.length >= 1);
      assert.deepEqual([events[0]!.op, events[0]!.key, events[0]!.after], ["u", {}, { a: 7, b: "x" }]);
    } finally {
      await source.close();
    }
  });
});
