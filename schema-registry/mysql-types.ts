/** MySQL and MariaDB types to their Avro form. docs/avro-types.md lists every mapping and why. */
import {
  bitBooleanColumn,
  bitBytesColumn,
  bytesColumn,
  dateColumn,
  debeziumUuidColumn,
  decimalColumn,
  doubleColumn,
  floatColumn,
  intColumn,
  jsonColumn,
  longColumn,
  microDurationColumn,
  setColumn,
  stringColumn,
  timestampMicrosColumn,
  uuidColumn,
} from "./column-types.ts";
import type { ColumnAvroType } from "./column-types.ts";
import { parseDbType } from "./db-type.ts";
import { EARLIER_TYPE_MODES } from "./postgres-types.ts";
import type { NumericMode, TypeModes } from "./postgres-types.ts";
import { dateType, durationType, fractionDigits, timestampType } from "./temporal-modes.ts";
import { numericAsDoubleColumn, numericAsStringColumn } from "./column-types.ts";
import { geometryColumn } from "./geometry.ts";
import { mysqlBitsColumn } from "./bits.ts";

const SMALL_INTEGERS = new Set(["tinyint", "smallint", "mediumint", "bool", "boolean", "year"]);
const TEXTS = new Set([
  "char",
  "varchar",
  "tinytext",
  "text",
  "mediumtext",
  "longtext",
  "nchar",
  "nvarchar",
  "national char",
  "national varchar",
  "character",
  "character varying",
  "long",
  "long varchar",
  "inet4",
  "inet6",
]);
const BINARIES = new Set(["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob", "long varbinary", "vector"]);
const GEOMETRIES = new Set([
  "geometry",
  "point",
  "linestring",
  "polygon",
  "multipoint",
  "multilinestring",
  "multipolygon",
  "geometrycollection",
  "geomcollection",
]);
const DECIMALS = new Set(["decimal", "numeric", "dec", "fixed"]);

export function mysqlColumnType(dbType: string, numericMode: NumericMode = "precise", modes: TypeModes = EARLIER_TYPE_MODES): ColumnAvroType {
  const type = parseDbType(dbType, { postgresArrays: false });
  const name = type.name;
  if (SMALL_INTEGERS.has(name)) return intColumn;
  if (TEXTS.has(name)) return stringColumn("string");
  if (BINARIES.has(name)) return bytesColumn("bytes");
  if (GEOMETRIES.has(name)) return geometryColumn;
  if (DECIMALS.has(name)) {
    const precision = Number(type.args[0] ?? 10);
    const scale = Number(type.args[1] ?? 0);
    // Debezium's decimal.handling.mode: every DECIMAL follows the numeric mode.
    if (modes.decimals === "all" && numericMode === "string") return numericAsStringColumn;
    if (modes.decimals === "all" && numericMode === "double") return numericAsDoubleColumn;
    return decimalColumn(precision, scale);
  }
  switch (name) {
    case "int":
    case "integer":
      return type.unsigned ? longColumn({ narrow: true }) : intColumn;
    case "bigint":
      // BIGINT UNSIGNED reaches 2^64 - 1, beyond a long: an exact decimal(20,0), as Debezium's precise mode.
      return type.unsigned ? decimalColumn(20, 0, { integerResult: true }) : longColumn({ narrow: false });
    case "serial":
      return decimalColumn(20, 0, { integerResult: true });
    case "float":
      return type.args.length === 1 && Number(type.args[0]) > 24 ? doubleColumn : floatColumn;
    case "double":
    case "double precision":
    case "real":
      return doubleColumn;
    case "bit": {
      const bits = Number(type.args[0] ?? 1);
      if (bits === 1) return bitBooleanColumn;
      return modes.bits === true ? mysqlBitsColumn(bits) : bitBytesColumn(bits);
    }
    case "date":
      return modes.timePrecision === "avro" ? dateColumn : dateType(modes.timePrecision);
    case "time":
      return modes.timePrecision === "avro" ? microDurationColumn : durationType(modes.timePrecision);
    case "datetime":
    case "timestamp":
      return modes.timePrecision === "avro" ? timestampMicrosColumn : timestampType(modes.timePrecision, fractionDigits(type.args.length > 0 ? type.args : ["0"]), name === "timestamp");
    case "enum":
      // A string, not an Avro enum: adding a value to a MySQL ENUM must stay a compatible change.
      return stringColumn("string (enum)", { "connect.name": "io.debezium.data.Enum", "connect.parameters": { allowed: type.args.join(",") } });
    case "set":
      return setColumn(type.args);
    case "json":
      return jsonColumn;
    case "uuid":
      // MariaDB's UUID: Debezium's MariaDB connector marks it io.debezium.data.Uuid, as its PostgreSQL connector marks uuid.
      return modes.uuidMarker === true ? debeziumUuidColumn : uuidColumn;
    default:
      return stringColumn(`string (${name})`);
  }
}
