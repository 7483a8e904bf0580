/**
 * The initial snapshot under a concurrent workload: fold every event by key (as the sinks apply
 * them) and compare with SELECT * — nothing missing, nothing doubled. Several tables in parallel,
 * keyset chunks, a table without a primary key read by cursor, progress reporting.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import pg from "pg";
import { postgres } from "../../test/services/ports.ts";
import { comparePositions } from "../contracts.ts";
import type { ChangeEvent, Position } from "../contracts.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";
import type { TableSnapshotProgress } from "./snapshot-reader.ts";

const schema = randomName("snap");
const q = (table: string) => `"${schema}".${table}`;
const ROWS = 3000;
let admin: pg.Client;
const config = sourceConfig({
  tables: [`${schema}.*`],
  snapshot: { mode: "initial", parallelism: 2, chunk_rows: 400 },
});

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE ${q("accounts")} (id int PRIMARY KEY, balance int NOT NULL, note text)`);
  await admin.query(`CREATE TABLE ${q("pairs")} (k text, n int, v int, PRIMARY KEY (k, n))`);
  await admin.query(`CREATE TABLE ${q("loose")} (a int NOT NULL, b text)`);
  await admin.query(`ALTER TABLE ${q("loose")} REPLICA IDENTITY FULL`);
  await admin.query(`INSERT INTO ${q("accounts")} SELECT i, i * 10, 'n' || i FROM generate_series(1, ${ROWS}) i`);
  await admin.query(`INSERT INTO ${q("pairs")} SELECT 'k' || (i % 37), i, i FROM generate_series(1, ${ROWS}) i`);
  await admin.query(`INSERT INTO ${q("loose")} SELECT i, 'b' || i FROM generate_series(1, ${ROWS}) i`);
  await admin.query(`ANALYZE "${schema}".accounts`);
});

after(async () => {
  await cleanUp(admin, config, schema);
  await admin.end();
});

/** Small transactions of random changes, some of them sleeping mid-transaction so they span the slot's consistent point. */
async function writer(stop: { stopped: boolean }, seed: number): Promise<number> {
  const client = new pg.Client(postgres);
  await client.connect();
  let next = ROWS + 1 + seed * 1_000_000;
  let transactions = 0;
  const pick = () => 1 + Math.floor(Math.random() * ROWS);
  try {
    while (!stop.stopped) {
      await client.query("BEGIN");
      for (let i = 0; i < 4; i++) {
        const r = Math.random();
        if (r < 0.25) await client.query(`INSERT INTO ${q("accounts")} VALUES ($1, 0, 'new')`, [next++]);
        else if (r < 0.5) await client.query(`UPDATE ${q("accounts")} SET balance = balance + 1, note = note || '+' WHERE id = $1`, [pick()]);
        else if (r < 0.55) await client.query(`UPDATE ${q("accounts")} SET id = $1 WHERE id = $2`, [next++, pick()]);
        else if (r < 0.6) await client.query(`DELETE FROM ${q("accounts")} WHERE id = $1`, [pick()]);
        else if (r < 0.7) await client.query(`UPDATE ${q("pairs")} SET v = v + 1 WHERE k = $1 AND n = $2`, [`k${pick() % 37}`, pick()]);
        else if (r < 0.75) await client.query(`INSERT INTO ${q("pairs")} VALUES ('new', $1, 0)`, [next++]);
        else if (r < 0.8) await client.query(`DELETE FROM ${q("pairs")} WHERE n = $1`, [pick()]);
        else if (r < 0.87) await client.query(`UPDATE ${q("loose")} SET b = b || '+' WHERE a = $1`, [pick()]);
        else if (r < 0.93) await client.query(`INSERT INTO ${q("loose")} VALUES ($1, 'new')`, [next++]);
        else if (r < 0.96) await client.query(`DELETE FROM ${q("loose")} WHERE a = $1`, [pick()]);
        else await client.query("SELECT pg_sleep(0.02)");
      }
      await client.query("COMMIT");
      transactions++;
    }
  } finally {
    await client.end();
  }
  return transactions;
}

type Fold = Map<string, { position: Position; row: Record<string, unknown> | null }>;

function fold(events: readonly ChangeEvent[], newer: (a: Position, b: Position) => boolean): Map<string, Fold> {
  const tables = new Map<string, Fold>();
  for (const event of events) {
    const table = tables.get(event.source.table) ?? new Map();
    tables.set(event.source.table, table);
    const key = JSON.stringify(event.key);
    const known = table.get(key);
    if (known !== undefined && !newer(event.source.position, known.position)) continue;
    table.set(key, { position: event.source.position, row: event.op === "d" ? null : (event.after as Record<string, unknown>) });
  }
  return tables;
}

function rowsOf(folded: Fold | undefined): string[] {
  return [...(folded?.values() ?? [])].filter((v) => v.row !== null).map((v) => JSON.stringify(v.row)).sort();
}

async function tableRows(table: string, keyOrder: string): Promise<string[]> {
  const result = await admin.query<Record<string, string | null>>(`SELECT * FROM ${q(table)} ORDER BY ${keyOrder}`);
  return result.rows
    .map((row) => JSON.stringify(Object.fromEntries(Object.entries(row).map(([k, v]) => [k, v !== null && /^-?\d+$/.test(v) && k !== "b" && k !== "note" && k !== "k" ? Number(v) : v]))))
    .sort();
}

test("snapshot plus stream under concurrent writes equals the tables: nothing missing, nothing doubled", async () => {
  const progressSeen: (readonly TableSnapshotProgress[])[] = [];
  const stop = { stopped: false };
  const writers = [writer(stop, 1), writer(stop, 2), writer(stop, 3)];
  await new Promise((resolve) => setTimeout(resolve, 300));

  const source = newSource(config, { onSnapshotProgress: (p) => progressSeen.push(p), maxBatchEvents: 500 });
  let transactions: number[];
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const collected = await readUntil(source, (c) => snapshotFinished(c), { timeoutMs: 60_000 });
    await new Promise((resolve) => setTimeout(resolve, 1500));
    stop.stopped = true;
    transactions = await Promise.all(writers);
    await admin.query(`INSERT INTO ${q("accounts")} VALUES (-1, 0, 'sentinel')`);
    await readUntil(source, (c) => c.events.some((e) => e.key["id"] === -1), { into: collected, timeoutMs: 60_000 });
    const events = collected.events.filter((e) => e.key["id"] !== -1);

    const snapshotEvents = events.filter((e) => e.op === "r");
    const streamed = events.filter((e) => !e.source.snapshot);
    const resets = events.filter((e) => e.op === "t" && e.source.snapshot);
    assert.deepEqual(resets.map((e) => e.source.table).sort(), ["accounts", "loose", "pairs"], "each table's snapshot closes with its reset");
    assert.ok(transactions.reduce((a, b) => a + b) > 50, `the workload ran (${transactions.join("+")} transactions)`);
    assert.ok(streamed.length > 100, `changes were streamed (${streamed.length})`);
    assert.ok(snapshotEvents.every((e) => e.source.snapshot && e.source.position === snapshotEvents[0]!.source.position));
    const snapshotPosition = snapshotEvents[0]!.source.position;
    assert.ok(streamed.every((e) => comparePositions(e.source.position, snapshotPosition) > 0 && e.source.position.change > snapshotPosition.change), "every streamed change sorts after the snapshot, by position and by change alone");

    const firstIndex = new Map<string, number>();
    streamed.forEach((e, i) => {
      const id = `${e.source.table} ${JSON.stringify(e.key)} ${e.op} ${e.source.position.commit} ${e.source.position.change}`;
      assert.equal(firstIndex.get(id), undefined, `doubled: ${id}`);
      firstIndex.set(id, i);
    });
    const snapshotKeys = new Set(snapshotEvents.map((e) => `${e.source.table} ${JSON.stringify(e.key)}`));
    assert.equal(snapshotKeys.size, snapshotEvents.length, "no row read twice by the snapshot");

    await admin.query(`DELETE FROM ${q("accounts")} WHERE id = -1`);
    const expected = {
      accounts: await tableRows("accounts", "id"),
      pairs: await tableRows("pairs", "k, n"),
      loose: await tableRows("loose", "a"),
    };
    const folds = {
      "arrival order": fold(events, () => true),
      "position (commit, change)": fold(events, (a, b) => comparePositions(a, b) > 0),
      "change alone": fold(events, (a, b) => a.change > b.change || (a.change === b.change && a.commit === b.commit)),
    };
    for (const [how, folded] of Object.entries(folds)) {
      for (const table of ["accounts", "pairs", "loose"] as const) {
        assert.deepEqual(rowsOf(folded.get(table)), expected[table], `${table} folded by ${how}`);
      }
    }

    const final = source.snapshotProgress();
    assert.equal(final.length, 3);
    for (const p of final) {
      assert.equal(p.state, "done");
      assert.ok(p.rowsDone >= ROWS * 0.8, `${p.table}: ${p.rowsDone} rows`);
      assert.ok(p.rowsPerSecond > 0);
    }
    assert.equal(final.find((p) => p.table.endsWith(".accounts"))!.rowsEstimated, ROWS);
    assert.ok(progressSeen.length >= 3 * Math.floor(ROWS / 400));
  } finally {
    stop.stopped = true;
    await Promise.allSettled(writers);
    await source.close();
  }
});
