import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { loadConfigFile } from "../config/load.ts";
import { applyMemoryPlan, DEFAULT_MEMORY_BYTES, mainHeapFlags, planMemory } from "../config/memory.ts";
import type { MemoryPlan } from "../config/memory.ts";
import { createLogger } from "../runtime/logger.ts";
import { heapFlagGiven, heapFlagsForRun, REEXEC_MARK, reexecEnvironment } from "./memory-exec.ts";
import { reportMemoryPlan } from "./memory-report.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-memory-exec-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, "sluice.yaml");
writeFileSync(
  file,
  [
    "name: shop",
    "memory: 512MiB",
    "sources:",
    "  - {name: pg, kind: postgres, database: shop, user: sluice, tables: [public.*]}",
    "sinks:",
    "  - {name: warehouse, kind: duckdb, path: ./w.duckdb}",
  ].join("\n"),
);

describe("the main thread's heap flags for sluice run", () => {
  test("they are the plan's share for the parts the process runs", () => {
    const config = loadConfigFile(file, { env: {} });
    const all = heapFlagsForRun(["-c", file], {}, []);
    assert.deepEqual(all, mainHeapFlags(planMemory(config, { sources: ["pg"], sinks: ["warehouse"] })));
    const captureOnly = heapFlagsForRun(["-c", file, "--role", "capture"], {}, []);
    assert.deepEqual(captureOnly, mainHeapFlags(planMemory(config, { sources: ["pg"], sinks: [] })));
    // Capture alone gets more of the budget than capture beside a sink thread.
    const old = (flags: string[] | null) => Number(/--max-old-space-size=(\d+)/.exec(flags?.[0] ?? "")?.[1]);
    assert.ok(old(captureOnly) > old(all));
    // The config may come from $SLUICE_CONFIG.
    assert.deepEqual(heapFlagsForRun([], { SLUICE_CONFIG: file }, []), all);
  });

  test("heap flags the user gave win, and a process started with the flags does not start again", () => {
    assert.equal(heapFlagsForRun(["-c", file], { NODE_OPTIONS: "--max-old-space-size=384" }, []), null);
    assert.equal(heapFlagsForRun(["-c", file], {}, ["--max_old_space_size=384"]), null);
    assert.equal(heapFlagsForRun(["-c", file], {}, ["--max-semi-space-size=16"]), null);
    assert.equal(heapFlagsForRun(["-c", file], { [REEXEC_MARK]: "--max-old-space-size=100" }, []), null);
    assert.equal(heapFlagGiven({ NODE_OPTIONS: "--enable-source-maps" }, ["--no-warnings"]), false);
  });

  test("a growing factor the user gave on node's command line wins: the re-executed process does not get another after it", () => {
    const flags = heapFlagsForRun(["-c", file], {}, ["--heap-growing-percent=50"]);
    assert.ok(flags !== null && flags.some((flag) => flag.startsWith("--max-old-space-size=")));
    assert.deepEqual(
      flags.filter((flag) => /heap[-_]growing/.test(flag)),
      [],
    );
    assert.ok(heapFlagsForRun(["-c", file], {}, ["--heap_growing_percent=50"])!.every((flag) => !/heap[-_]growing/.test(flag)));
  });

  test("a pretenuring flag the user gave on node's command line wins: the re-executed process does not get ours after it", () => {
    assert.ok(heapFlagsForRun(["-c", file], {}, [])!.includes("--no-allocation-site-pretenuring"));
    for (const given of ["--allocation-site-pretenuring", "--no-allocation_site_pretenuring"]) {
      const flags = heapFlagsForRun(["-c", file], {}, [given]);
      assert.ok(flags !== null && flags.some((flag) => flag.startsWith("--max-old-space-size=")), given);
      assert.deepEqual(
        flags.filter((flag) => /pretenuring/.test(flag)),
        [],
        given,
      );
    }
  });

  test("the re-executed process is marked, and gets two malloc arenas and fixed malloc thresholds unless the environment says otherwise", () => {
    assert.deepEqual(reexecEnvironment({ PATH: "/bin" }, ["--max-old-space-size=100"]), {
      MALLOC_ARENA_MAX: "2",
      MALLOC_MMAP_THRESHOLD_: "131072",
      MALLOC_TRIM_THRESHOLD_: "131072",
      PATH: "/bin",
      [REEXEC_MARK]: "--max-old-space-size=100",
    });
    assert.equal(reexecEnvironment({ MALLOC_ARENA_MAX: "8" }, [])["MALLOC_ARENA_MAX"], "8");
    assert.equal(reexecEnvironment({ MALLOC_MMAP_THRESHOLD_: "1048576" }, [])["MALLOC_MMAP_THRESHOLD_"], "1048576");
    assert.equal(reexecEnvironment({ MALLOC_MMAP_THRESHOLD_: "1048576" }, [])["MALLOC_TRIM_THRESHOLD_"], "131072");
  });

  test("without a memory setting the default budget applies: heap flags, and the config gets its shares", () => {
    const unset = join(dir, "unset.yaml");
    writeFileSync(unset, readFileSync(file, "utf8").replace("memory: 512MiB\n", ""));
    const config = loadConfigFile(unset, { env: {} });
    const plan = planMemory(config, { sources: ["pg"], sinks: ["warehouse"] });
    // Capture with a DuckDB sink needs more than the default: it is raised to the least the process needs.
    assert.equal(plan.budgetFrom, "raised");
    assert.ok(plan.budgetBytes > DEFAULT_MEMORY_BYTES);
    assert.deepEqual(heapFlagsForRun(["-c", unset], {}, []), mainHeapFlags(plan));
    const applied = applyMemoryPlan(config, plan);
    const warehouse = applied.sinks[0]!;
    assert.equal(warehouse.kind === "duckdb" ? warehouse.memory_limit : "not duckdb", plan.sinks["warehouse"]!.duckdb!.memoryLimitBytes);
    assert.equal(applied.sources[0]!.max_buffer_bytes, plan.sources["pg"]!.readAheadBytes);
    assert.equal(warehouse.batch.max_bytes, plan.sinks["warehouse"]!.batchBytes);
  });

  test("a config that does not load, or bad roles, start the command as it is (which then reports the problem)", () => {
    assert.equal(heapFlagsForRun(["-c", join(dir, "missing.yaml")], {}, []), null);
    assert.equal(heapFlagsForRun([], {}, []), null);
    assert.equal(heapFlagsForRun(["-c", file, "--role", "nonsense"], {}, []), null);
    assert.equal(heapFlagsForRun(["-c", file, "--sink", "nosuch"], {}, []), null);
  });
});

describe("the memory plan at start", () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const config = loadConfigFile(file, { env: {} });
  const plan: MemoryPlan = planMemory(config, { sources: ["pg"], sinks: ["warehouse"] });

  test("is logged; a main heap of the planned size gives no warning, another one does", () => {
    lines.length = 0;
    reportMemoryPlan(plan, logger, plan.main.oldMb + plan.main.youngMb);
    assert.equal(lines.filter((l) => l["level"] === "warn").length, 0, JSON.stringify(lines));
    const summary = lines.find((l) => l["msg"] === "memory budget")?.["memory"] as Record<string, unknown>;
    assert.equal(summary["budgetMiB"], 512);
    lines.length = 0;
    reportMemoryPlan(plan, logger, 4144);
    const warning = lines.find((l) => l["level"] === "warn");
    assert.match(String(warning?.["msg"]), /the main thread's heap limit is 4144MiB, not the \d+MiB the memory budget gives it/);
  });

  test("a default raised for what the process runs is a warning naming what needs what and how to set memory", () => {
    const unset = loadConfigFile(file, { env: {} });
    const raised = planMemory({ ...unset, memory: undefined }, { sources: ["pg"], sinks: ["warehouse"] });
    assert.equal(raised.budgetFrom, "raised");
    lines.length = 0;
    reportMemoryPlan(raised, logger, raised.main.oldMb + raised.main.youngMb);
    const warning = lines.find((l) => l["level"] === "warn");
    const mib = raised.budgetBytes / 2 ** 20;
    assert.match(
      String(warning?.["msg"]),
      new RegExp(`^the default memory budget \\(256MiB\\) cannot hold this process \\(1 source captured, 1 sink\\): it needs at least ${mib}MiB: .*heaps of the main thread \\(capture\\) \\d+MiB, sink warehouse \\d+MiB; using ${mib}MiB\\. Set memory in the config to ${mib}MiB or more`),
    );
    lines.length = 0;
    reportMemoryPlan(plan, logger, plan.main.oldMb + plan.main.youngMb);
    assert.equal(lines.filter((l) => l["level"] === "warn").length, 0, "a budget set in the config that holds the process: no warning");
  });
});
