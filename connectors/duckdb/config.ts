/** The DuckDB sink's configuration: the `kind: duckdb` section of config/schema.ts, plus what the runtime hands in. */
import type { SinkConfig } from "../../config/schema.ts";
import type { Logger } from "../../runtime/logger.ts";
import type { DiskSpaceOf } from "./spill-room.ts";

export type DuckDbSinkConfig = Extract<SinkConfig, { kind: "duckdb" }>;

export interface DuckDbSinkOptions {
  readonly logger: Logger;
  /** The free room of a folder's disk (fs.statfs; a test gives its own). */
  readonly diskSpace?: DiskSpaceOf;
}

/** Schema holding the versioned tables and Sluice's bookkeeping; users query views in `main`. */
export const INTERNAL_SCHEMA = "_sluice";
export const VIEW_SCHEMA = "main";
