import assert from "node:assert/strict";
import { test } from "node:test";
import type pg from "pg";
import { PARTITION_PROBE_CHUNK, attachedLeaves, partitionProbes } from "./catalog.ts";

/** A catalog connection that knows `partitions` relids (all readable), of which `holding` hold a row; records each statement. */
function fakeCatalog(partitions: readonly number[], holding: ReadonlySet<number>) {
  const statements: string[] = [];
  const db = {
    query: (async (text: string) => {
      statements.push(text);
      if (text.includes("FROM pg_class")) {
        return { rows: partitions.map((relid) => ({ relid: String(relid), schema: "app", name: `p_${relid}`, readable: "true" })) };
      }
      const named = [...text.matchAll(/SELECT (\d+)::int8 AS relid/g)].map((m) => Number(m[1]));
      return { rows: named.filter((relid) => holding.has(relid)).map((relid) => ({ relid: String(relid) })) };
    }) as unknown as pg.Client["query"],
  };
  return { db, statements };
}

const partitionsIn = (statement: string): number => statement.split(" UNION ALL ").length;

test("thousands of attached partitions are probed a chunk per statement, not in one statement that holds a lock on each", async () => {
  const relids = Array.from({ length: 7_000 }, (_, i) => 100_000 + i);
  const holding = new Set([relids[0]!, relids[3_456]!, relids[6_999]!]);
  const { db, statements } = fakeCatalog(relids, holding);
  const { held, unreadable } = await attachedLeaves(db, relids);
  assert.deepEqual(held.map((leaf) => leaf.relid), [...holding]);
  assert.deepEqual(unreadable, []);
  const probes = statements.slice(1);
  assert.equal(statements.filter((s) => s.includes("FROM pg_class")).length, 1, "one catalog query for them all");
  assert.equal(probes.length, Math.ceil(7_000 / PARTITION_PROBE_CHUNK));
  assert.ok(probes.every((probe) => partitionsIn(probe) <= PARTITION_PROBE_CHUNK), `a probe named ${Math.max(...probes.map(partitionsIn))} partitions`);
  assert.equal(probes.map(partitionsIn).reduce((a, b) => a + b, 0), 7_000, "every partition probed once");
});

test("partitionProbes: chunks of the size given, the last one shorter, none for no partitions", () => {
  const leaves = Array.from({ length: 7 }, (_, i) => ({ relid: i + 1, name: `"app"."p${i + 1}"` }));
  const probes = partitionProbes(leaves, 3);
  assert.deepEqual(probes.map(partitionsIn), [3, 3, 1]);
  assert.equal(probes[2], `SELECT 7::int8 AS relid WHERE EXISTS (SELECT 1 FROM ONLY "app"."p7")`);
  assert.deepEqual(partitionProbes([], 3), []);
  assert.throws(() => partitionProbes(leaves, 0), RangeError);
});
