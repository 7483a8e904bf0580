import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { ConfigValidationError } from "./issues.ts";
import { loadConfigText } from "./load.ts";
import { applyMemoryPlan, DEFAULT_MEMORY_BYTES, duckdbFloor, mainHeapFlags, MemoryBudgetError, planMemory } from "./memory.ts";
import type { MemoryPlan } from "./memory.ts";
import type { SluiceConfig } from "./schema.ts";

const MiB = 2 ** 20;
/** A sink thread's base old generation in config/memory.ts (its modules at rest and working set), MiB. */
const SINK_BASE = 32;

function config(extra: { top?: string; source?: string; sinks?: string; topics?: string } = {}): SluiceConfig {
  const text = [
    "name: shop",
    extra.top ?? "",
    "sources:",
    "  - {name: pg, kind: postgres, database: shop, user: sluice, tables: [public.*]" + (extra.source ?? "") + "}",
    extra.topics ?? "",
    "sinks:",
    extra.sinks ?? "  - {name: warehouse, kind: duckdb}",
  ].join("\n");
  return loadConfigText("c.yaml", text, { env: {} });
}

const everything = (c: SluiceConfig) => ({ sources: c.sources.map((s) => s.name), sinks: c.sinks.map((s) => s.name) });

/** What the plan puts in RSS at most: reserves plus every heap at its limit. */
function planned(plan: MemoryPlan): number {
  const heaps = [plan.main, ...Object.values(plan.sinks).map((s) => s.heap)].reduce((sum, h) => sum + (h.oldMb + h.youngMb) * MiB, 0);
  return plan.reservedBytes + heaps;
}

describe("memory budget", () => {
  test("capture of personal columns reserves its seal worker (a thread and a 30 MiB heap)", () => {
    const personal = config({
      top: "personal_data: {master_key_file: /run/secrets/master}",
      source: ", governance: {tables: {public.customers: {personal: {subject: customer_id, columns: [email]}}}}",
    });
    const plain = planMemory(config(), { sources: ["pg"], sinks: [] }, 2);
    assert.equal(planMemory(personal, { sources: ["pg"], sinks: [] }, 2).reservedBytes - plain.reservedBytes, 42 * MiB);
    assert.equal(planMemory(personal, { sources: ["pg"], sinks: [] }, 8).reservedBytes - planMemory(config(), { sources: ["pg"], sinks: [] }, 8).reservedBytes, 42 * MiB, "one worker on 8 cores too");
    assert.equal(planMemory(personal, { sources: [], sinks: ["warehouse"] }, 2).reservedBytes, planMemory(config(), { sources: [], sinks: ["warehouse"] }, 2).reservedBytes, "sinks decrypt on their own threads");
  });

  test("capture of personal columns gets the same plan on 4 or 8 cores as on 2: the default budget, its heap and read-ahead not cut to their floors by seal workers", () => {
    for (const topics of ["", "topics: {kind: kafka, brokers: [localhost:9092]}"]) {
      const personal = config({
        top: "personal_data: {master_key_file: /run/secrets/master}",
        source: ", governance: {tables: {public.customers: {personal: {subject: customer_id, columns: [email]}}}}",
        topics,
      });
      const two = planMemory(personal, { sources: ["pg"], sinks: [] }, 2);
      assert.equal(two.budgetFrom, "default");
      assert.ok(two.main.youngMb >= 12 && two.sources["pg"]!.readAheadBytes >= 8 * MiB, JSON.stringify(two.main));
      for (const cores of [4, 8]) assert.deepEqual(planMemory(personal, { sources: ["pg"], sinks: [] }, cores), two, `${cores} cores ${topics}`);
    }
  });

  test("the default 256MiB holds capture alone, and adds up to no more than the budget", () => {
    const c = config();
    const plan = planMemory(c, { sources: ["pg"], sinks: [] }, 2);
    assert.equal(plan.budgetBytes, DEFAULT_MEMORY_BYTES);
    assert.equal(plan.budgetFrom, "default");
    assert.ok(planned(plan) <= plan.budgetBytes, `planned ${planned(plan) / MiB} MiB of ${plan.budgetBytes / MiB}`);
    assert.ok(planned(plan) > plan.budgetBytes - 3 * MiB, "the whole budget is used (rounding to MiB aside)");
    assert.deepEqual(plan.sinks, {});
    assert.ok(plan.sources["pg"]!.readAheadBytes >= 8 * MiB);
    assert.equal(plan.sqliteCacheBytes, 2 * MiB);
    assert.deepEqual(mainHeapFlags(plan), [`--max-old-space-size=${plan.main.oldMb}`, `--max-semi-space-size=${plan.main.youngMb / 3}`, "--heap-growing-percent=100", "--no-allocation-site-pretenuring"]);
  });

  test("512MiB is split between the main thread, the sink thread, DuckDB and SQLite, and adds up to no more than the budget", () => {
    const c = config({ top: "memory: 512MiB" });
    const plan = planMemory(c, everything(c), 2);
    assert.equal(plan.budgetBytes, 512 * MiB);
    assert.equal(plan.budgetFrom, "config");
    assert.ok(planned(plan) <= plan.budgetBytes, `planned ${planned(plan) / MiB} MiB of ${plan.budgetBytes / MiB}`);
    assert.ok(planned(plan) > plan.budgetBytes - 3 * MiB, "the whole budget is used (rounding to MiB aside)");
    // Capture weighs more than one sink.
    assert.ok(plan.main.oldMb > plan.sinks["warehouse"]!.heap.oldMb);
    const warehouse = plan.sinks["warehouse"]!;
    // A fifth of the budget, above DuckDB's floor for 16 MiB records (96 MiB); one thread below 128 MiB.
    assert.deepEqual(warehouse.duckdb, { memoryLimitBytes: 102 * MiB, threads: 1 });
    assert.equal(plan.sqliteCacheBytes, 4 * MiB);
    const readAhead = plan.sources["pg"]!.readAheadBytes;
    assert.ok(readAhead >= 2 * MiB && readAhead < plan.main.oldMb * MiB / 2, `read-ahead ${readAhead / MiB} MiB of a ${plan.main.oldMb} MiB old space`);
    assert.ok(warehouse.batchBytes >= MiB && warehouse.batchBytes * 3 < warehouse.heap.oldMb * MiB);
    assert.deepEqual(mainHeapFlags(plan), [`--max-old-space-size=${plan.main.oldMb}`, `--max-semi-space-size=${plan.main.youngMb / 3}`, "--heap-growing-percent=100", "--no-allocation-site-pretenuring"]);
  });

  test("a larger budget grows every share; DuckDB gets more threads, up to the cores", () => {
    const small = config({ top: "memory: 512MiB" });
    const big = config({ top: "memory: 1GiB" });
    const a = planMemory(small, everything(small), 4);
    const b = planMemory(big, everything(big), 4);
    assert.equal(b.budgetBytes, 2 ** 30);
    assert.ok(planned(b) <= 2 ** 30);
    assert.ok(b.main.oldMb > a.main.oldMb && b.sinks["warehouse"]!.heap.oldMb > a.sinks["warehouse"]!.heap.oldMb);
    assert.ok(b.sources["pg"]!.readAheadBytes > a.sources["pg"]!.readAheadBytes);
    assert.equal(b.sinks["warehouse"]!.duckdb!.memoryLimitBytes, 204 * MiB);
    assert.equal(b.sinks["warehouse"]!.duckdb!.threads, 4);
    assert.equal(a.sinks["warehouse"]!.duckdb!.threads, 1);
    assert.equal(b.sqliteCacheBytes, 8 * MiB);
  });

  test("settings the user wrote win over their share and are taken out of the budget", () => {
    const c = config({
      top: "memory: 512MiB",
      source: ", max_buffer_bytes: 32MiB",
      topics: "topics: {kind: embedded, cache_size: 4MiB}",
      sinks: "  - {name: warehouse, kind: duckdb, memory_limit: 100MiB, threads: 3, batch: {max_bytes: 2MiB}}",
    });
    const plan = planMemory(c, everything(c), 2);
    assert.equal(plan.sources["pg"]!.readAheadBytes, 32 * MiB);
    assert.deepEqual(plan.sinks["warehouse"]!.duckdb, { memoryLimitBytes: 100 * MiB, threads: 3 });
    assert.equal(plan.sinks["warehouse"]!.batchBytes, 2 * MiB);
    assert.equal(plan.sqliteCacheBytes, 4 * MiB);
    assert.ok(planned(plan) <= 512 * MiB);
    // The main thread's old space holds the 32 MiB read-ahead on top of its base.
    assert.ok(plan.main.oldMb >= 32 + 32);
    const applied = applyMemoryPlan(c, plan);
    assert.equal(applied.sources[0]!.max_buffer_bytes, 32 * MiB);
    assert.equal(applied.sinks[0]!.batch.max_bytes, 2 * MiB);
  });

  test("applyMemoryPlan writes the derived values into the parts the process runs, and leaves the others alone", () => {
    const c = config({ sinks: "  - {name: warehouse, kind: duckdb}\n  - {name: search, kind: elasticsearch, nodes: [\"http://127.0.0.1:9200\"]}", top: "memory: 512MiB" });
    const plan = planMemory(c, { sources: ["pg"], sinks: ["warehouse"] }, 2);
    assert.deepEqual(Object.keys(plan.sinks), ["warehouse"]);
    const applied = applyMemoryPlan(c, plan);
    const warehouse = applied.sinks[0]!;
    assert.equal(warehouse.kind, "duckdb");
    assert.equal(warehouse.batch.max_bytes, plan.sinks["warehouse"]!.batchBytes);
    if (warehouse.kind === "duckdb") assert.equal(warehouse.memory_limit, plan.sinks["warehouse"]!.duckdb!.memoryLimitBytes);
    assert.equal(applied.sinks[1]!.batch.max_bytes, undefined, "a sink this process does not run keeps its settings");
    assert.equal(applied.sources[0]!.max_buffer_bytes, plan.sources["pg"]!.readAheadBytes);
    assert.equal(applied.topics.kind === "embedded" ? applied.topics.cache_size : null, plan.sqliteCacheBytes);
    assert.equal(applied.memory, 512 * MiB);
  });

  test("a process that runs only sinks gives the main thread a small share; one that only captures gives it almost all", () => {
    const c = config({ top: "memory: 512MiB" });
    const sinksOnly = planMemory(c, { sources: [], sinks: ["warehouse"] }, 2);
    const captureOnly = planMemory(c, { sources: ["pg"], sinks: [] }, 2);
    assert.ok(sinksOnly.sinks["warehouse"]!.heap.oldMb > sinksOnly.main.oldMb);
    assert.deepEqual(sinksOnly.sources, {});
    assert.deepEqual(captureOnly.sinks, {});
    assert.ok(captureOnly.main.oldMb + captureOnly.main.youngMb > 300, `main heap ${captureOnly.main.oldMb} + ${captureOnly.main.youngMb} MiB`);
    assert.ok(planned(captureOnly) <= 512 * MiB && planned(sinksOnly) <= 512 * MiB);
  });

  test("DuckDB's floor follows the widest record the topics accept, and a tight limit runs one thread", () => {
    assert.equal(duckdbFloor(16 * MiB), 96 * MiB);
    assert.equal(duckdbFloor(2 * MiB), 26 * MiB);
    assert.equal(duckdbFloor(64 * 1024), 24 * MiB);
    const least = (c: SluiceConfig) => {
      try {
        planMemory(c, everything(c), 2);
      } catch (error) {
        return (error as MemoryBudgetError).neededBytes;
      }
      return 0;
    };
    const wide = config({ top: "memory: 64MiB" });
    const narrow = config({ top: "memory: 64MiB", topics: "topics: {kind: embedded, max_record_bytes: 1MiB}" });
    assert.equal(least(wide) - least(narrow), 96 * MiB - 24 * MiB);
    const plan = planMemory({ ...narrow, memory: least(narrow) }, everything(narrow), 2);
    assert.deepEqual(plan.sinks["warehouse"]!.duckdb, { memoryLimitBytes: 24 * MiB, threads: 1 });
    assert.ok(planned(plan) <= least(narrow));
  });

  test("a budget set too small for the process is an error naming the numbers", () => {
    const c = config({ top: "memory: 128MiB" });
    assert.throws(() => planMemory(c, everything(c), 2), (error: unknown) => {
      assert.ok(error instanceof MemoryBudgetError);
      assert.match(error.message, /^memory 128MiB is too small for this process \(1 source captured, 1 sink\): it needs at least (\d+)MiB: \d+MiB outside the heaps .* heaps of the main thread \(capture\) \d+MiB, sink warehouse \d+MiB\. Raise memory to \1MiB/);
      assert.ok(error.neededBytes > 128 * MiB && error.neededBytes <= 400 * MiB);
      return true;
    });
    // What it asks for is enough.
    const needed = (() => {
      try {
        planMemory(c, everything(c), 2);
      } catch (error) {
        return (error as MemoryBudgetError).neededBytes;
      }
      return 0;
    })();
    const enough = { ...c, memory: needed };
    const plan = planMemory(enough, everything(enough), 2);
    assert.ok(planned(plan) <= needed);
  });

  test("an explicit setting too large for the budget makes it too small", () => {
    const c = config({ top: "memory: 256MiB", sinks: "  - {name: warehouse, kind: duckdb, memory_limit: 200MiB}" });
    assert.throws(() => planMemory(c, everything(c), 2), /memory 256MiB is too small .* needs at least \d+MiB/);
    const buffer = config({ top: "memory: 256MiB", source: ", max_buffer_bytes: 1GiB" });
    assert.throws(() => planMemory(buffer, everything(buffer), 2), /memory 256MiB is too small/);
  });

  test("without a memory setting, a process the default cannot hold gets the least it needs", () => {
    const sinks = ["warehouse", "a", "b", "c"].map((name, i) => (i === 0 ? `  - {name: ${name}, kind: duckdb}` : `  - {name: ${name}, kind: elasticsearch, nodes: ["http://127.0.0.1:9200"]}`)).join("\n");
    const c = config({ sinks });
    const plan = planMemory(c, everything(c), 2);
    assert.equal(plan.budgetFrom, "raised");
    assert.ok(plan.budgetBytes > DEFAULT_MEMORY_BYTES);
    assert.ok(planned(plan) <= plan.budgetBytes);
    // Set to that same value, it is accepted.
    const set = { ...c, memory: plan.budgetBytes };
    assert.equal(planMemory(set, everything(set), 2).budgetFrom, "config");
  });

  // Found live: under --memory 256m the default budget (256MiB) left nothing for what the kernel counts besides the RSS.
  test("without a memory setting, a container limit the default does not leave a fifth of sizes the budget: four fifths of it, never below the least", () => {
    const c = config();
    const capture = { sources: ["pg"], sinks: [] };
    const sized = planMemory(c, capture, 2, 256 * MiB);
    assert.equal(sized.budgetFrom, "container");
    assert.equal(sized.budgetBytes, 204 * MiB, "4/5 of 256MiB, whole MiB");
    assert.equal(sized.containerLimitBytes, 256 * MiB);
    assert.ok(planned(sized) <= sized.budgetBytes, "the heaps and reserves fit the sized budget");
    assert.ok(sized.main.oldMb < planMemory(c, capture, 2).main.oldMb, "the heaps are sized from it");
    assert.equal(planMemory(c, capture, 2, 300 * MiB).budgetBytes, 240 * MiB);

    // A limit that leaves the default its fifth, or none: the default, as before.
    for (const limit of [320 * MiB, 4096 * MiB, null]) {
      const plan = planMemory(c, capture, 2, limit);
      assert.equal(plan.budgetFrom, "default", `limit ${limit}`);
      assert.equal(plan.budgetBytes, DEFAULT_MEMORY_BYTES);
    }
    // Four fifths below what the process needs: the least it needs, as without a limit (the report warns when above the limit).
    const least = planMemory(c, everything(c), 2);
    assert.equal(least.budgetFrom, "raised", "a DuckDB sink needs more than the default");
    const tight = planMemory(c, everything(c), 2, least.budgetBytes);
    assert.equal(tight.budgetFrom, "raised");
    assert.equal(tight.budgetBytes, least.budgetBytes);
    assert.equal(planMemory(c, everything(c), 2, 2 * least.budgetBytes).budgetBytes, least.budgetBytes, "never sized above what the default takes");
    // A memory setting stays as set, whatever the limit.
    const set = config({ top: "memory: 256MiB" });
    const kept = planMemory(set, capture, 2, 200 * MiB);
    assert.equal(kept.budgetFrom, "config");
    assert.equal(kept.budgetBytes, 256 * MiB);
  });

  test("with Kafka topics each sink's consumer is sized from its heap, counted in it, and the least budget names it", () => {
    const kafka = "topics: {kind: kafka, brokers: [\"127.0.0.1:9092\"]}";
    const sinks = "  - {name: warehouse, kind: clickhouse, url: \"http://127.0.0.1:8123\", database: d}\n  - {name: search, kind: elasticsearch, nodes: [\"http://127.0.0.1:9200\"]}";
    const embedded = config({ top: "memory: 512MiB", sinks });
    assert.equal(planMemory(embedded, everything(embedded), 2).sinks["warehouse"]!.reader, undefined, "the embedded log has no consumer read-ahead");
    for (const budget of [320, 512, 2048]) {
      const c = config({ top: `memory: ${budget}MiB`, topics: kafka, sinks });
      const plan = planMemory(c, everything(c), 2);
      assert.ok(planned(plan) <= plan.budgetBytes, `${budget}MiB: planned ${planned(plan) / MiB} MiB`);
      for (const [name, sink] of Object.entries(plan.sinks)) {
        const reader = sink.reader!;
        // Read-ahead (and as much again left to the collector: a record counts 96 bytes besides its key and value, not 384),
        // a fetch response decoded (~4 times its bytes) and the batches fit the heap beyond its base.
        assert.ok(reader.readAheadBytes >= 1 * MiB && reader.readAheadBytes <= 8 * MiB, `${budget}MiB ${name}: read-ahead ${reader.readAheadBytes / MiB} MiB`);
        assert.ok(reader.fetchBytes >= MiB && reader.fetchBytes <= 8 * MiB && reader.partitionFetchBytes >= MiB && reader.partitionFetchBytes <= reader.fetchBytes);
        const used = SINK_BASE * MiB + 2 * reader.readAheadBytes + 4 * reader.fetchBytes + 3 * sink.batchBytes + (name === "search" ? 2 * 5 * MiB : 0);
        assert.ok(used <= sink.heap.oldMb * MiB, `${budget}MiB ${name}: ${used / MiB} MiB in a ${sink.heap.oldMb} MiB old space`);
      }
    }
    const small = planMemory(config({ top: "memory: 300MiB", topics: kafka, sinks }), { sources: [], sinks: ["warehouse"] }, 2).sinks["warehouse"]!;
    const big = planMemory(config({ top: "memory: 2GiB", topics: kafka, sinks }), { sources: [], sinks: ["warehouse"] }, 2).sinks["warehouse"]!;
    assert.ok(big.reader!.readAheadBytes > small.reader!.readAheadBytes && big.reader!.fetchBytes > small.reader!.fetchBytes, "a larger share reads further ahead");
    // The consumer's least (1 MiB read-ahead and its room, a 1 MiB fetch decoded) is in the least budget, and the error says so.
    const tight = config({ top: "memory: 128MiB", topics: kafka, sinks: "  - {name: warehouse, kind: clickhouse, url: \"http://127.0.0.1:8123\", database: d}" });
    const neededWith = (c: SluiceConfig) => {
      try {
        planMemory(c, everything(c), 2);
      } catch (error) {
        return error as MemoryBudgetError;
      }
      throw new Error("expected a MemoryBudgetError");
    };
    const withReader = Number(/sink warehouse \(with its Kafka reader's 6MiB\) (\d+)MiB/.exec(neededWith(tight).message)?.[1]);
    const tightEmbedded = config({ top: "memory: 128MiB", sinks: "  - {name: warehouse, kind: clickhouse, url: \"http://127.0.0.1:8123\", database: d}" });
    const without = Number(/sink warehouse (\d+)MiB/.exec(neededWith(tightEmbedded).message)?.[1]);
    assert.equal(withReader - without, 6);
    // An explicit batch size leaves the rest of the room to the reader.
    const explicit = config({ top: "memory: 512MiB", topics: kafka, sinks: "  - {name: warehouse, kind: clickhouse, url: \"http://127.0.0.1:8123\", database: d, batch: {max_bytes: 2MiB}}" });
    const sink = planMemory(explicit, { sources: [], sinks: ["warehouse"] }, 2).sinks["warehouse"]!;
    assert.equal(sink.batchBytes, 2 * MiB);
    assert.ok(2 * sink.reader!.readAheadBytes + 4 * sink.reader!.fetchBytes + 3 * 2 * MiB <= (sink.heap.oldMb - SINK_BASE) * MiB);
  });

  test("a sink with a staged write holds one batch's records more (the next batch is staged while one is written); DuckDB does not", () => {
    const neededWith = (c: SluiceConfig) => {
      try {
        planMemory(c, everything(c), 2);
      } catch (error) {
        return error as MemoryBudgetError;
      }
      throw new Error("expected a MemoryBudgetError");
    };
    const least = (kind: string, batch: string) => {
      const target = kind === "clickhouse" ? "url: \"http://127.0.0.1:8123\", database: d" : kind === "elasticsearch" ? "nodes: [\"http://127.0.0.1:9200\"]" : "path: /tmp/w.duckdb";
      const c = config({ top: "memory: 64MiB", sinks: `  - {name: warehouse, kind: ${kind}, ${target}, batch: {max_bytes: ${batch}}}` });
      return Number(/sink warehouse (\d+)MiB/.exec(neededWith(c).message)?.[1]);
    };
    for (const kind of ["clickhouse", "elasticsearch"]) assert.equal(least(kind, "8MiB") - least(kind, "4MiB"), 4 * 4, `${kind}: 4 × the batch`);
    assert.equal(least("duckdb", "8MiB") - least("duckdb", "4MiB"), 3 * 4, "duckdb: 3 × the batch");
  });

  test("an Elasticsearch sink's bulk bodies (2 × bulk_bytes) are room in its old generation, not outside the heaps", () => {
    // The bodies are Buffers outside the heap, but counted there the same budget left the thread
    // 10 MiB less old generation and it spent ~1.2x the CPU per change collecting (measured 2026-12-06).
    const kafka = "topics: {kind: kafka, brokers: [\"127.0.0.1:9092\"]}";
    const clickhouse = "  - {name: warehouse, kind: clickhouse, url: \"http://127.0.0.1:8123\", database: d}";
    const search = (bulk: string) => `${clickhouse}\n  - {name: search, kind: elasticsearch, nodes: ["http://127.0.0.1:9200"], bulk_bytes: ${bulk}}`;
    for (const [bulk, mb] of [["5MiB", 5], ["20MiB", 20]] as const) {
      const c = config({ topics: kafka, sinks: search(bulk) });
      const plan = planMemory(c, everything(c), 2);
      const { warehouse, search: es } = plan.sinks;
      assert.equal(es!.heap.oldMb - warehouse!.heap.oldMb, 2 * mb, `bulk_bytes ${bulk}: old generations ${es!.heap.oldMb} / ${warehouse!.heap.oldMb} MiB`);
      assert.equal(es!.batchBytes, warehouse!.batchBytes, "the bodies' room is not given to the batches");
      const without = config({ topics: kafka, sinks: clickhouse });
      assert.equal(plan.reservedBytes - planMemory(without, everything(without), 2).reservedBytes, 12 * MiB, "outside the heaps only the thread's reserve");
    }
  });

  test("a budget a little above the least goes to the old generations and the sinks' batches, not to young generations", () => {
    const kafka = "topics: {kind: kafka, brokers: [\"127.0.0.1:9092\"]}";
    const sinks = "  - {name: warehouse, kind: clickhouse, url: \"http://127.0.0.1:8123\", database: d}\n  - {name: search, kind: elasticsearch, nodes: [\"http://127.0.0.1:9200\"]}";
    const least = planMemory(config({ topics: kafka, sinks }), { sources: ["pg"], sinks: ["warehouse", "search"] }, 2);
    assert.equal(least.budgetFrom, "raised");
    const c = config({ top: `memory: ${least.budgetBytes / MiB + 29}MiB`, topics: kafka, sinks });
    const plan = planMemory(c, everything(c), 2);
    assert.ok(planned(plan) <= plan.budgetBytes);
    // Measured (docs/benchmarks.md, memory budget): with the 29 MiB going to young generations
    // (12 MiB each instead of 6), the sinks kept 1 MiB batches and spent more CPU per change.
    for (const heap of [plan.main, ...Object.values(plan.sinks).map((s) => s.heap)]) assert.equal(heap.youngMb, 6);
    for (const [name, sink] of Object.entries(plan.sinks)) {
      assert.ok(sink.heap.oldMb > least.sinks[name]!.heap.oldMb + 4, `${name}: old generation ${sink.heap.oldMb} MiB against ${least.sinks[name]!.heap.oldMb} at the least`);
      assert.ok(sink.batchBytes >= 2 * MiB, `${name}: batches of ${sink.batchBytes / MiB} MiB`);
    }
    // Far above the least the young generations still grow.
    const big = config({ top: "memory: 2GiB", topics: kafka, sinks });
    assert.equal(planMemory(big, everything(big), 2).sinks["warehouse"]!.heap.youngMb, 48);
  });

  test("with Kafka topics the main thread's readers (instances, governance's topics) get the least reader's limits, counted in its least heap", () => {
    const kafka = "topics: {kind: kafka, brokers: [\"127.0.0.1:9092\"]}";
    const sinks = "  - {name: warehouse, kind: clickhouse, url: \"http://127.0.0.1:8123\", database: d}";
    const embedded = config({ top: "memory: 512MiB", sinks });
    assert.equal(planMemory(embedded, everything(embedded), 2).mainReader, null);
    const c = config({ top: "memory: 512MiB", topics: kafka, sinks });
    assert.deepEqual(planMemory(c, everything(c), 2).mainReader, { readAheadBytes: MiB, fetchBytes: MiB, partitionFetchBytes: MiB });
    const least = (text: string) => {
      try {
        planMemory(config({ top: "memory: 64MiB", topics: text, sinks }), { sources: ["pg"], sinks: [] }, 2);
      } catch (error) {
        return error as MemoryBudgetError;
      }
      throw new Error("expected a MemoryBudgetError");
    };
    const withReaders = Number(/heaps of the main thread \(capture, with its Kafka readers' 5MiB\) (\d+)MiB/.exec(least(kafka).message)?.[1]);
    const without = Number(/heaps of the main thread \(capture\) (\d+)MiB/.exec(least("").message)?.[1]);
    assert.equal(withReaders - without, 5, "the readers' least is in the main heap's least");
  });

  test("sizes are read like every other size; below 64MiB is refused by the schema", () => {
    assert.equal(config({ top: "memory: 300MB" }).memory, 300_000_000);
    assert.equal(config({ top: `memory: ${400 * MiB}` }).memory, 400 * MiB);
    assert.equal(config().memory, undefined);
    assert.throws(() => config({ top: "memory: 32MiB" }), (error: unknown) => error instanceof ConfigValidationError && /memory: expected a size from 64MiB to 1TiB, got "32MiB"/.test(error.message));
  });
});

describe("memory budget in config files", () => {
  test("a memory setting too small for the process is reported at its line, naming the numbers", () => {
    const text = "name: shop\nmemory: 240MiB\nsources:\n  - {name: pg, kind: postgres, database: shop, user: sluice, tables: [public.*]}\nsinks:\n  - {name: warehouse, kind: duckdb}\n";
    assert.throws(() => loadConfigText("c.yaml", text, { env: {}, checkMemory: true }), (error: unknown) => {
      assert.ok(error instanceof ConfigValidationError);
      assert.equal(error.issues.length, 1);
      assert.equal(error.issues[0]!.line, 2);
      assert.equal(error.issues[0]!.path, "memory");
      assert.match(error.issues[0]!.message, /^240MiB is too small for this process \(1 source captured, 1 sink\): it needs at least \d+MiB/);
      return true;
    });
    // A process that only captures needs less: the same file is valid for it.
    assert.equal(loadConfigText("c.yaml", text, { env: {}, checkMemory: true, runsSink: () => false }).memory, 240 * MiB);
    // Commands that run no part of the pipeline (status, query, schema) do not check it.
    assert.equal(loadConfigText("c.yaml", text, { env: {} }).memory, 240 * MiB);
  });
});
