/**
 * The default size of the subject key cache (`personal_data.key_cache_size`, docs/governance.md)
 * under the memory budget (`memory`, default 256MiB, config/memory.ts): a share of the budget
 * instead of a fixed 10,000 keys (about 20 MiB in every thread that holds a key store). A size the
 * user wrote wins.
 *
 * A cached key holds about 2 KiB, mostly outside the V8 heap (its prepared cipher key; measured in
 * docs/benchmarks.md). The threads of a process that hold a key store, the main thread when it
 * captures a source with personal columns and each sink thread when any source has some, share a
 * 32nd of the budget between them.
 */
import type { MemoryPlan, ProcessParts } from "./memory.ts";
import type { SluiceConfig } from "./schema.ts";

/** Bytes one cached subject key takes, with its prepared cipher key and its cache entry. */
export const KEY_CACHE_ENTRY_BYTES = 2 * 1024;
/** The key caches of a process together get this fraction of the budget. */
const BUDGET_SHARE = 1 / 32;
const MIN_KEYS = 1_000;
const MAX_KEYS = 100_000;

const hasPersonal = (source: SluiceConfig["sources"][number]) => Object.values(source.governance?.tables ?? {}).some((t) => t.personal !== undefined);

/** How many threads of the process hold a subject key store (capture's main thread, each sink thread). */
export function keyStoreHolders(config: SluiceConfig, parts: ProcessParts): number {
  if (!config.sources.some(hasPersonal)) return 0;
  const capture = config.sources.some((s) => parts.sources.includes(s.name) && hasPersonal(s)) ? 1 : 0;
  return capture + config.sinks.filter((s) => parts.sinks.includes(s.name)).length;
}

/** The key cache size the plan gives each key store, or null when the plan does not set it (no key store, or the user's own setting). */
export function plannedKeyCacheSize(config: SluiceConfig, plan: MemoryPlan, parts: ProcessParts): number | null {
  const holders = keyStoreHolders(config, parts);
  if (holders === 0 || config.personal_data === undefined || config.personal_data.key_cache_size !== undefined) return null;
  const keys = Math.floor((plan.budgetBytes * BUDGET_SHARE) / holders / KEY_CACHE_ENTRY_BYTES);
  return Math.min(MAX_KEYS, Math.max(MIN_KEYS, keys));
}

/** The config with the planned key cache size written in (unchanged where the plan sets none). */
export function applyKeyCacheSize(config: SluiceConfig, plan: MemoryPlan, parts: ProcessParts): SluiceConfig {
  const size = plannedKeyCacheSize(config, plan, parts);
  if (size === null || config.personal_data === undefined) return config;
  return { ...config, personal_data: { ...config.personal_data, key_cache_size: size } };
}
