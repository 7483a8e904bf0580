/**
 * The short chaos run (issue 12), in CI: 4 SIGKILLs of the daemon per configuration (one during
 * the initial snapshot, then one while the sinks apply, one right after a big transaction and one at
 * a random moment, so every kind of kill is met; SLUICE_CHAOS_KILLS=<n> and SLUICE_CHAOS_SNAPSHOT_KILLS=<n>
 * for more, the later ones of a kind drawn at random) under a random workload with transactions of up to 20,000 rows and rollbacks
 * (Kafka topics with 3 partitions, the default);
 * afterwards every sink equals PostgreSQL row by row, value by value (0 lost, extra, stale or
 * wrong), no sample taken during the run saw a row go backwards, and the daemon never exited by
 * itself. The long version is `node test/chaos/chaos.ts --kills 200` (docs/benchmarks.md).
 *
 * SLUICE_CHAOS_SEED=<n> replays a run's workload and kill plan (the seed is in the output).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";
import { failures, summary } from "./chaos.ts";
import type { Configuration } from "./run.ts";
import { runKills } from "./run.ts";

const kills = Number(process.env["SLUICE_CHAOS_KILLS"] ?? 4);
const snapshotKills = Number(process.env["SLUICE_CHAOS_SNAPSHOT_KILLS"] ?? 1);
const seed = process.env["SLUICE_CHAOS_SEED"] ? Number(process.env["SLUICE_CHAOS_SEED"]) : randomBytes(4).readUInt32LE(0);

for (const configuration of ["embedded-duckdb", "kafka-clickhouse-es"] as const satisfies readonly Configuration[]) {
  test(`chaos, ${configuration}: ${kills} kill -9 under a random workload; nothing lost, extra, stale or wrong, nothing goes backwards`, { timeout: 600_000 }, async (t) => {
    t.diagnostic(`seed ${seed} (SLUICE_CHAOS_SEED=${seed} replays it)`);
    const figures = await runKills({
      configuration,
      kills,
      seed,
      preloadItems: 40_000,
      maxBigRows: 20_000,
      snapshotKills,
      log: (line) => t.diagnostic(line),
    });
    for (const line of summary(figures).split("\n")) t.diagnostic(line);
    // The workload's bulk deletes can leave fewer rows than were preloaded: what matters is that every sink was compared on many rows.
    for (const sink of figures.sinks) assert.ok(sink.compared >= 10_000, `rows compared in ${sink.sink}: ${sink.compared}`);
    assert.equal(figures.kills, kills);
    assert.deepEqual(failures(figures), [], `chaos run (seed ${seed}) found differences:\n${summary(figures)}`);
  });
}
