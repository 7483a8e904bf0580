/** The MySQL/MariaDB source, as the daemon creates it. */
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { MysqlSource } from "./source.ts";
import type { MysqlSourceOptions } from "./source.ts";

export { MysqlSource } from "./source.ts";
export type { MysqlSourceOptions, MysqlSourceStats, TableSnapshotProgress } from "./source.ts";
export { FileSchemaHistoryStore, MemorySchemaHistoryStore } from "./schema/schema-history.ts";
export type { SchemaHistoryEntry, SchemaHistoryStore } from "./schema/schema-history.ts";

export function createMysqlSource(config: MysqlSourceConfig, options: MysqlSourceOptions): MysqlSource {
  return new MysqlSource(config, options);
}
