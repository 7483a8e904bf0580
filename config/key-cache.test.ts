import assert from "node:assert/strict";
import { test } from "node:test";
import { applyKeyCacheSize, KEY_CACHE_ENTRY_BYTES, plannedKeyCacheSize } from "./key-cache.ts";
import { loadConfigText } from "./load.ts";
import { planMemory } from "./memory.ts";
import type { SluiceConfig } from "./schema.ts";

const MiB = 2 ** 20;

function config(extra: { memory?: string; keyCacheSize?: number; personal?: boolean } = {}): SluiceConfig {
  const personal = extra.personal ?? true;
  return loadConfigText(
    "c.yaml",
    [
      "name: shop",
      extra.memory ? `memory: ${extra.memory}` : "",
      `personal_data: {master_key_file: /run/secrets/master${extra.keyCacheSize === undefined ? "" : `, key_cache_size: ${extra.keyCacheSize}`}}`,
      "sources:",
      `  - {name: pg, kind: postgres, database: shop, user: sluice, tables: [public.*]${personal ? ", governance: {tables: {public.customers: {personal: {subject: customer_id, columns: [email]}}}}" : ""}}`,
      "sinks:",
      "  - {name: warehouse, kind: duckdb}",
      "  - {name: search, kind: duckdb, path: search.duckdb}",
    ].join("\n"),
    { env: {} },
  );
}

const all = { sources: ["pg"], sinks: ["warehouse", "search"] };

test("with memory set, the key cache size is derived from the budget: the process's key stores share a 32nd of it", () => {
  const c = config({ memory: "1GiB" });
  const plan = planMemory(c, all, 2);
  // Capture's store on the main thread and one in each sink thread.
  assert.equal(plannedKeyCacheSize(c, plan, all), Math.floor(1024 * MiB / 32 / 3 / KEY_CACHE_ENTRY_BYTES));
  assert.equal(applyKeyCacheSize(c, plan, all).personal_data!.key_cache_size, 5_461);
  // A sink-only process: its two sink threads share it.
  const sinks = { sources: [], sinks: ["warehouse", "search"] };
  assert.equal(plannedKeyCacheSize(c, planMemory(c, sinks, 2), sinks), 8_192);
  // Within bounds (1,000 to 100,000 keys): a big budget gives the most.
  const small = config({ memory: "600MiB" });
  const smallParts = { sources: ["pg"], sinks: ["warehouse"] };
  assert.equal(plannedKeyCacheSize(small, planMemory(small, smallParts, 2), smallParts), 4_800);
  const big = config({ memory: "64GiB" });
  assert.equal(plannedKeyCacheSize(big, planMemory(big, all, 2), all), 100_000);
});

test("the user's key_cache_size wins; without memory the default budget's share applies; without personal columns or without personal_data the fixed default stays", () => {
  const explicit = config({ memory: "1GiB", keyCacheSize: 50 });
  assert.equal(plannedKeyCacheSize(explicit, planMemory(explicit, all, 2), all), null);
  assert.equal(applyKeyCacheSize(explicit, planMemory(explicit, all, 2), all).personal_data!.key_cache_size, 50);
  const unset = config();
  const plan = planMemory(unset, all, 2);
  assert.equal(plannedKeyCacheSize(unset, plan, all), Math.floor(plan.budgetBytes / 32 / 3 / KEY_CACHE_ENTRY_BYTES));
  const plain = config({ memory: "1GiB", personal: false });
  assert.equal(plannedKeyCacheSize(plain, planMemory(plain, all, 2), all), null);
});
