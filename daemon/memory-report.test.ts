import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigFile } from "../config/load.ts";
import { planMemory } from "../config/memory.ts";
import { createLogger } from "../runtime/logger.ts";
import { reportMemoryPlan } from "./memory-report.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-memory-report-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const file = join(dir, "sluice.yaml");
writeFileSync(file, ["name: shop", "sources:", "  - {name: pg, kind: postgres, database: shop, user: sluice, tables: [public.*]}", "sinks:", "  - {name: warehouse, kind: duckdb, path: ./w.duckdb}"].join("\n"));

// Found live: the image run with --memory 300m and this config (the default budget raised to 365MiB for DuckDB) said
// nothing about the container's limit; the kernel, not Sluice, decides what happens on the way to 365MiB.
test("a memory budget above the container's memory limit is a warning naming both and the file the limit came from", () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const plan = planMemory(loadConfigFile(file, { env: {} }), { sources: ["pg"], sinks: ["warehouse"] });
  const heap = plan.main.oldMb + plan.main.youngMb;
  const budget = plan.budgetBytes / 2 ** 20;
  reportMemoryPlan(plan, logger, heap, { bytes: 300 * 2 ** 20, file: "/sys/fs/cgroup/memory.max" });
  const warning = lines.find((l) => l["level"] === "warn" && String(l["msg"]).includes("above this container's memory limit"));
  assert.match(String(warning?.["msg"]), new RegExp(`^the memory budget \\(${budget}MiB, raised from the default .*\\) is above this container's memory limit \\(300MiB, /sys/fs/cgroup/memory.max\\): the kernel may kill it \\(OOMKilled\\)`), JSON.stringify(lines));
  assert.equal((lines.find((l) => l["msg"] === "memory budget")?.["memory"] as Record<string, unknown>)["containerLimitMiB"], 300);

  lines.length = 0;
  reportMemoryPlan(plan, logger, heap, { bytes: Math.ceil(budget * 1.25) * 2 ** 20, file: "/sys/fs/cgroup/memory.max" });
  assert.equal(lines.filter((l) => String(l["msg"]).includes("above this container's memory limit")).length, 0, "a limit above the budget: no warning");
  lines.length = 0;
  reportMemoryPlan(plan, logger, heap, null);
  assert.equal(lines.filter((l) => String(l["msg"]).includes("above this container's memory limit")).length, 0, "no limit: no warning");
});

test("a budget sized from the container's memory limit is said at start, with the limit and its file", () => {
  const lines: Record<string, unknown>[] = [];
  const logger = createLogger("info", { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const limit = { bytes: 256 * 2 ** 20, file: "/sys/fs/cgroup/memory.max" };
  const plan = planMemory(loadConfigFile(file, { env: {} }), { sources: ["pg"], sinks: [] }, 2, limit.bytes);
  reportMemoryPlan(plan, logger, plan.main.oldMb + plan.main.youngMb, limit);
  const summary = lines.find((l) => l["msg"] === "memory budget")?.["memory"] as Record<string, unknown>;
  assert.deepEqual([summary["budgetMiB"], summary["budgetFrom"], summary["containerLimitMiB"]], [204, "container", 256]);
  const said = lines.find((l) => String(l["msg"]).startsWith("memory budget 204MiB, sized from this container's memory limit (256MiB, /sys/fs/cgroup/memory.max)"));
  assert.equal(said?.["level"], "info", JSON.stringify(lines));
  assert.equal(lines.filter((l) => l["level"] === "warn").length, 0, "nothing to warn about");
});
