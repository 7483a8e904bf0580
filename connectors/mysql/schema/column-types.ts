/**
 * Declared column types in one normal form, whether they come from information_schema
 * (COLUMN_TYPE), from a parsed DDL statement or from TABLE_MAP metadata -- so a table read three
 * ways has one schema: lower case outside quotes, no integer display widths or ZEROFILL, FLOAT and
 * DOUBLE without (M,D), "unsigned" last.
 */
import { parseDbType } from "../../../schema-registry/db-type.ts";
import { ColumnType } from "../protocol/constants.ts";
import type { TableMapColumn } from "../protocol/table-map.ts";

const INTEGER_ALIASES: Readonly<Record<string, string>> = {
  tinyint: "tinyint",
  smallint: "smallint",
  mediumint: "mediumint",
  int: "int",
  integer: "int",
  bigint: "bigint",
  bool: "tinyint",
  boolean: "tinyint",
  int1: "tinyint",
  int2: "smallint",
  int3: "mediumint",
  int4: "int",
  int8: "bigint",
  middleint: "mediumint",
};

/** The DDL grammar's spellings of CHAR and VARCHAR (information_schema only ever shows char/varchar). */
const CHAR_NAMES = new Set(["character", "national char", "national character", "nchar"]);
const VARCHAR_NAMES = new Set(["character varying", "char varying", "national varchar", "national char varying", "national character varying", "nvarchar", "nchar varchar", "nchar varying"]);

/** Lower-cases a type outside its quoted parts (ENUM/SET members keep their case). */
function lowerOutsideQuotes(text: string): string {
  let out = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i]!;
    if (char === "'") {
      if (quoted && text[i + 1] === "'") {
        out += "''";
        i++;
        continue;
      }
      quoted = !quoted;
      out += char;
    } else out += quoted ? char : char.toLowerCase();
  }
  return out;
}

export function normalizeColumnType(columnType: string): string {
  // MariaDB's COLUMN_TYPE keeps COMPRESSED in a versioned comment ("varchar(50) /*M!100301 COMPRESSED*/"), and marks its
  // 5.3 format of DATETIME/TIMESTAMP/TIME ("datetime(3) /* mariadb-5.3 */"): Sluice delivers both as the plain type.
  const text = lowerOutsideQuotes(columnType.replace(/\/\*(?:M!\d+ [^']*?| mariadb-5\.3 )\*\//gi, " ").trim()).replace(/\s+/g, " ").trim();
  const match = /^([a-z0-9_ ]+?)\s*(\(.*\))?\s*((?:unsigned|signed|zerofill|\s)*)$/.exec(text);
  if (match === null) return text;
  const name = match[1]!.trim();
  const args = match[2] ?? "";
  const unsigned = /\bunsigned\b/.test(match[3] ?? "") || (/\bzerofill\b/.test(match[3] ?? "") && name !== "decimal");
  const suffix = unsigned ? " unsigned" : "";
  const integer = INTEGER_ALIASES[name];
  if (integer !== undefined) return `${integer}${suffix}`;
  if (name === "float" || name === "double" || name === "real" || name === "double precision") {
    const precision = /^\((\d+)\)$/.exec(args);
    const double = name !== "float" || (precision !== null && Number(precision[1]) > 24);
    return `${double ? "double" : "float"}${suffix}`;
  }
  if (name === "dec" || name === "numeric" || name === "fixed" || name === "decimal") {
    const parts = args === "" ? [] : args.slice(1, -1).split(",").map((p) => p.trim());
    return `decimal(${parts[0] ?? "10"},${parts[1] ?? "0"})${suffix}`;
  }
  if (name === "serial") return "bigint unsigned";
  if ((name === "char" || name === "binary" || name === "bit") && args === "") return `${name}(1)`;
  if ((name === "datetime" || name === "timestamp" || name === "time") && (args === "(0)" || args === "")) return name;
  if (name === "year") return "year";
  if (CHAR_NAMES.has(name)) return `char${args || "(1)"}`;
  if (VARCHAR_NAMES.has(name)) return `varchar${args}`;
  if (name === "long varchar" || name === "long char varying" || name === "long") return "mediumtext";
  if (name === "long varbinary") return "mediumblob";
  if (name === "geomcollection") return "geometrycollection";
  return `${name}${args}${suffix}`;
}

/** An ENUM or SET type from its members. */
export function membersType(kind: "enum" | "set", members: readonly string[]): string {
  return `${kind}(${members.map((m) => `'${m.replaceAll("'", "''")}'`).join(",")})`;
}

/** ENUM/SET members of a normalized type, or null for other types. */
export function membersOf(dbType: string): string[] | null {
  if (!/^(enum|set)\(/.test(dbType)) return null;
  return [...parseDbType(dbType, { postgresArrays: false }).args];
}

export function isUnsigned(dbType: string): boolean {
  return /\bunsigned$/.test(dbType);
}

const GEOMETRY_NAMES = ["geometry", "point", "linestring", "polygon", "multipoint", "multilinestring", "multipolygon", "geometrycollection"] as const;
const BLOB_SIZES = ["tiny", "", "medium", "long"] as const;

/**
 * The declared type a TABLE_MAP column implies, when the binlog carries enough metadata
 * (binlog_row_metadata=FULL): used when the schema history does not know the table.
 * `charsetMaxBytes`: bytes per character of the column's charset (1 for binary).
 */
export function typeFromTableMap(column: TableMapColumn, charsetMaxBytes: number, binary: boolean, mariadb: boolean): string {
  const unsigned = column.unsigned === true ? " unsigned" : "";
  switch (column.realType) {
    case ColumnType.TINY:
      return `tinyint${unsigned}`;
    case ColumnType.SHORT:
      return `smallint${unsigned}`;
    case ColumnType.INT24:
      return `mediumint${unsigned}`;
    case ColumnType.LONG:
      return `int${unsigned}`;
    case ColumnType.LONGLONG:
      return `bigint${unsigned}`;
    case ColumnType.FLOAT:
      return `float${unsigned}`;
    case ColumnType.DOUBLE:
      return `double${unsigned}`;
    case ColumnType.NEWDECIMAL:
      return `decimal(${column.precision},${column.scale})${unsigned}`;
    case ColumnType.YEAR:
      return "year";
    case ColumnType.DATE:
    case ColumnType.NEWDATE:
      return "date";
    case ColumnType.TIME:
    case ColumnType.TIME2:
      return column.fsp > 0 ? `time(${column.fsp})` : "time";
    case ColumnType.DATETIME:
    case ColumnType.DATETIME2:
      return column.fsp > 0 ? `datetime(${column.fsp})` : "datetime";
    case ColumnType.TIMESTAMP:
    case ColumnType.TIMESTAMP2:
      return column.fsp > 0 ? `timestamp(${column.fsp})` : "timestamp";
    case ColumnType.BIT:
      return `bit(${column.bits})`;
    case ColumnType.VARCHAR:
    case ColumnType.VAR_STRING: {
      // A COMPRESSED VARCHAR's length counts its header byte too.
      const length = column.compressed === true ? column.length - 1 : column.length;
      return binary ? `varbinary(${length})` : `varchar(${Math.floor(length / charsetMaxBytes)})`;
    }
    case ColumnType.STRING:
      return binary ? `binary(${column.length})` : `char(${Math.floor(column.length / charsetMaxBytes)})`;
    case ColumnType.ENUM:
      return membersType("enum", column.members ?? []);
    case ColumnType.SET:
      return membersType("set", column.members ?? []);
    case ColumnType.BLOB:
    case ColumnType.TINY_BLOB:
    case ColumnType.MEDIUM_BLOB:
    case ColumnType.LONG_BLOB:
      return `${BLOB_SIZES[column.length - 1] ?? ""}${binary ? "blob" : "text"}`;
    case ColumnType.JSON:
      return mariadb ? "longtext" : "json";
    case ColumnType.GEOMETRY:
      return GEOMETRY_NAMES[column.geometryType ?? 0] ?? "geometry";
    case ColumnType.VECTOR:
      return `vector(${column.dimensions ?? Math.floor(column.length / 4)})`;
    default:
      return `unknown(${column.realType})`;
  }
}

/** Whether a declared type can be logged with the TABLE_MAP column's type: a table map that does not fit means the schema is stale. */
export function typeFitsTableMap(dbType: string, column: TableMapColumn): boolean {
  const name = parseDbType(dbType, { postgresArrays: false }).name;
  switch (column.realType) {
    case ColumnType.TINY:
      return name === "tinyint";
    case ColumnType.SHORT:
      return name === "smallint";
    case ColumnType.INT24:
      return name === "mediumint";
    case ColumnType.LONG:
      return name === "int";
    case ColumnType.LONGLONG:
      return name === "bigint";
    case ColumnType.FLOAT:
      return name === "float";
    case ColumnType.DOUBLE:
      return name === "double";
    case ColumnType.NEWDECIMAL:
      return dbType.startsWith(`decimal(${column.precision},${column.scale})`);
    case ColumnType.YEAR:
      return name === "year";
    case ColumnType.DATE:
    case ColumnType.NEWDATE:
      return name === "date";
    case ColumnType.TIME:
    case ColumnType.TIME2:
      return name === "time";
    case ColumnType.DATETIME:
    case ColumnType.DATETIME2:
      return name === "datetime";
    case ColumnType.TIMESTAMP:
    case ColumnType.TIMESTAMP2:
      return name === "timestamp";
    case ColumnType.BIT:
      return dbType === `bit(${column.bits})`;
    case ColumnType.VARCHAR:
    case ColumnType.VAR_STRING:
      return name === "varchar" || name === "varbinary" || name === "inet6";
    case ColumnType.STRING:
      return name === "char" || name === "binary" || name === "uuid" || name === "inet4" || name === "inet6";
    case ColumnType.ENUM:
      return name === "enum";
    case ColumnType.SET:
      return name === "set";
    case ColumnType.BLOB:
    case ColumnType.TINY_BLOB:
    case ColumnType.MEDIUM_BLOB:
    case ColumnType.LONG_BLOB:
      return /^(tiny|medium|long)?(text|blob)$/.test(name) || name === "json";
    case ColumnType.JSON:
      return name === "json";
    case ColumnType.GEOMETRY:
      return (GEOMETRY_NAMES as readonly string[]).includes(name);
    case ColumnType.VECTOR:
      return name === "vector";
    default:
      return false;
  }
}
