/**
 * The watermark table of MySQL/MariaDB online snapshots. The binlog has no logical messages, so the
 * low and high watermarks that frame a chunk (incremental-snapshot.ts) are writes to a small table
 * Sluice owns in the source database: one row per source, (source, mark), updated with
 * "<run>:<chunk>:low|high" before and after each chunk's SELECT. Each write is its own autocommit
 * transaction, so the binlog shows it in commit order among the captured changes.
 *
 * The table is config snapshot.watermark_table, by default `sluice_watermarks` in the database of
 * the first `tables` pattern that names one database. It is never captured itself, and Sluice
 * creates it on the first online snapshot where it is missing.
 */
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { includingPatterns } from "../common/table-patterns.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import type { Row } from "../contracts.ts";
import type { Sql } from "./catalog.ts";
import { quoteIdentifier } from "./connection-settings.ts";
import type { RowColumn } from "./protocol/rows-event.ts";
import type { TableMap } from "./protocol/table-map.ts";
import type { TableName } from "./schema/ddl-parser.ts";
import { bindTableMap } from "./schema/table-binding.ts";
import type { BindingContext } from "./schema/table-binding.ts";
import type { TableDefinition } from "./schema/table-definition.ts";

export const DEFAULT_WATERMARK_TABLE = "sluice_watermarks";

/** The watermark table of a source, or null when the config names none and no pattern names one database. */
export function watermarkTableOf(config: Pick<MysqlSourceConfig, "tables" | "snapshot">): TableName | null {
  const configured = config.snapshot.watermark_table;
  if (configured !== undefined) {
    const dot = configured.indexOf(".");
    return { database: configured.slice(0, dot), table: configured.slice(dot + 1) };
  }
  for (const pattern of includingPatterns(config.tables)) {
    const database = pattern.slice(0, pattern.indexOf("."));
    if (!/[*?]/.test(database)) return { database, table: DEFAULT_WATERMARK_TABLE };
  }
  return null;
}

export function createWatermarkTableSql(table: TableName): string {
  return `CREATE TABLE IF NOT EXISTS ${qualified(table)} (source VARBINARY(255) NOT NULL PRIMARY KEY, mark VARBINARY(255) NOT NULL) ENGINE=InnoDB`;
}

function qualified(table: TableName): string {
  return `${quoteIdentifier(table.database)}.${quoteIdentifier(table.table)}`;
}

function definition(table: TableName): TableDefinition {
  return {
    database: table.database,
    table: table.table,
    columns: [
      { name: "source", dbType: "varbinary(255)", nullable: false, charset: "binary" },
      { name: "mark", dbType: "varbinary(255)", nullable: false, charset: "binary" },
    ],
    key: ["source"],
    defaultCharset: null,
  };
}

export class WatermarkTable {
  readonly name: TableName;
  private readonly sourceName: string;
  private readonly context: ErrorContext;

  constructor(name: TableName, sourceName: string, context: ErrorContext) {
    this.name = name;
    this.sourceName = sourceName;
    this.context = context;
  }

  is(database: string, table: string): boolean {
    return database === this.name.database && table === this.name.table;
  }

  get text(): string {
    return `${this.name.database}.${this.name.table}`;
  }

  /** Creates the table where it is missing and proves a watermark can be written; a refusal says what to run. */
  async ensure(sql: Sql): Promise<void> {
    try {
      await sql.rows(createWatermarkTableSql(this.name));
      await this.write(sql, "probe");
    } catch (error) {
      const detail = (error as Error).message;
      throw new SluiceError(
        `cannot write the online snapshot watermarks to ${this.text} (${detail}): create it with ${createWatermarkTableSql(this.name)} ` +
          `and GRANT SELECT, INSERT, UPDATE ON ${qualified(this.name)} to Sluice's user, or name another table in snapshot.watermark_table (docs/mysql.md)`,
        { code: "SNAPSHOT_WATERMARK_TABLE", cause: error, context: { ...this.context, table: this.text } },
      );
    }
  }

  /** One watermark: its own autocommit transaction in the binlog. */
  async write(sql: Sql, mark: string): Promise<void> {
    await sql.rows(`INSERT INTO ${qualified(this.name)} (source, mark) VALUES (?, ?) ON DUPLICATE KEY UPDATE mark = ?`, [this.sourceName, mark, mark]);
  }

  /** How to read this table's rows events; null (with the reason) when the table map is not the table Sluice creates. */
  columns(map: TableMap, context: BindingContext): { columns: readonly RowColumn[] } | { misfit: string } {
    const bound = bindTableMap(map, definition(this.name), context);
    if (!bound.ok) return { misfit: bound.reason };
    if (bound.binding.definition.columns[1]?.name !== "mark") return { misfit: "it has no mark column second" };
    return { columns: bound.binding.columns };
  }
}

/** The mark of a watermark row image, or null for another source's row (or a row without one). */
export function markOf(row: Row, sourceName: string): string | null {
  const text = (value: unknown) => (value instanceof Uint8Array ? Buffer.from(value).toString("utf8") : typeof value === "string" ? value : null);
  if (text(row["source"]) !== sourceName) return null;
  return text(row["mark"]);
}
