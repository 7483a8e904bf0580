/** The ClickHouse sink's configuration: the `kind: clickhouse` section of config/schema.ts, plus what the runtime hands in. */
import type { SinkConfig } from "../../config/schema.ts";
import type { Logger } from "../../runtime/logger.ts";

export type ClickHouseSinkConfig = Extract<SinkConfig, { kind: "clickhouse" }>;

export interface ClickHouseSinkOptions {
  readonly logger: Logger;
  /** How often a write looks for views dropped by hand while the sink runs (default 10 s; 0: every write). */
  readonly viewCheckMs?: number;
}
