/**
 * Sink configs for tests and benchmarks, with every key config/schema.ts would default filled in,
 * and a logger that stays quiet unless SLUICE_TEST_LOG is set.
 */
import type { SinkConfig } from "../../config/schema.ts";
import { createLogger } from "../../runtime/logger.ts";
import type { Logger } from "../../runtime/logger.ts";

export function testLogger(): Logger {
  return createLogger(process.env["SLUICE_TEST_LOG"] ?? "silent");
}

const COMMON = {
  tables: ["*.*"],
  target: "{schema}_{table}",
  on_error: "halt" as "halt" | "dead-letter",
  batch: { max_rows: 5_000, max_bytes: 8 * 2 ** 20, max_wait: 200 } as SinkConfig["batch"],
  retry: { initial: 50, max: 1_000 },
};

type Kind = SinkConfig["kind"];
type DuckDbQuery = Extract<SinkConfig, { kind: "duckdb" }>["query"];

const DUCKDB_QUERY: DuckDbQuery = { max_rows: 10_000, max_bytes: 16 * 2 ** 20, timeout: 30_000 };

export function testSinkConfig<K extends Kind>(
  kind: K,
  fields: Omit<Extract<SinkConfig, { kind: K }>, "kind" | "query" | keyof typeof COMMON> & Partial<typeof COMMON> & { query?: DuckDbQuery },
): Extract<SinkConfig, { kind: K }> {
  return { ...COMMON, ...(kind === "duckdb" ? { query: DUCKDB_QUERY } : {}), ...fields, kind } as unknown as Extract<SinkConfig, { kind: K }>;
}
