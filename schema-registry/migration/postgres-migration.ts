/**
 * Reads a PostgreSQL migration with libpg-query (PostgreSQL's own grammar, as WebAssembly) and
 * turns each statement into migration steps, a "changes no captured schema", or a "not understood".
 * Types are written as format_type() spells them ("integer", "character varying(20)"), as the
 * source reports columns; serial types become their integer with a sequence default; a column
 * of an enum type created in the migration is "enum".
 */
import { hasSqlDetails, parse } from "libpg-query";
import type { ColumnSchema } from "../../connectors/contracts.ts";
import { lineAt, MigrationParseError, shortText } from "./steps.ts";
import type { MigrationStep, QualifiedTable, StatementEffect, StatementReport } from "./steps.ts";

type Json = Readonly<Record<string, unknown>>;

export interface PostgresMigrationOptions {
  /** Schema of unqualified table names (default "public"). */
  readonly defaultSchema?: string;
}

/** Types whose values never reach other tables' columns and need no schema work. */
const NO_SCHEMA_CHANGE: Readonly<Record<string, string>> = {
  IndexStmt: "creates an index",
  CommentStmt: "sets a comment",
  GrantStmt: "grants or revokes privileges",
  GrantRoleStmt: "grants or revokes roles",
  CreateSeqStmt: "creates a sequence",
  AlterSeqStmt: "alters a sequence",
  ViewStmt: "creates a view",
  CreateFunctionStmt: "creates a function",
  CreateTrigStmt: "creates a trigger",
  TransactionStmt: "controls the transaction",
  VariableSetStmt: "sets a session variable",
  InsertStmt: "changes rows",
  UpdateStmt: "changes rows",
  DeleteStmt: "changes rows",
  SelectStmt: "reads rows",
  TruncateStmt: "empties tables (their schemas stay)",
  CreateSchemaStmt: "creates a schema",
  CreateExtensionStmt: "creates an extension",
  AlterEnumStmt: "changes an enum type (enum columns are strings in Avro: any label change is compatible)",
  CreatePublicationStmt: "creates a publication",
  AlterPublicationStmt: "alters a publication",
  ClusterStmt: "reorders a table",
  VacuumStmt: "vacuums or analyzes",
  ReindexStmt: "rebuilds indexes",
  LockStmt: "locks tables",
  CreatePolicyStmt: "creates a row security policy",
  AlterOwnerStmt: "changes an owner",
  CreateStatsStmt: "creates statistics",
};

/** AlterTableCmd subtypes that leave the captured columns and key alone. */
const NO_COLUMN_CHANGE = new Set([
  "AT_AddIndex",
  "AT_SetStatistics",
  "AT_SetStorage",
  "AT_SetCompression",
  "AT_ClusterOn",
  "AT_DropCluster",
  "AT_SetRelOptions",
  "AT_ResetRelOptions",
  "AT_SetOptions",
  "AT_ResetOptions",
  "AT_ChangeOwner",
  "AT_EnableTrig",
  "AT_DisableTrig",
  "AT_EnableTrigAll",
  "AT_DisableTrigAll",
  "AT_EnableTrigUser",
  "AT_DisableTrigUser",
  "AT_EnableRowSecurity",
  "AT_DisableRowSecurity",
  "AT_ForceRowSecurity",
  "AT_NoForceRowSecurity",
  "AT_AttachPartition",
  "AT_DetachPartition",
  "AT_DetachPartitionFinalize",
  "AT_ValidateConstraint",
  "AT_SetLogged",
  "AT_SetUnLogged",
  "AT_SetTableSpace",
  "AT_AddIdentity",
  "AT_SetIdentity",
  "AT_DropIdentity",
  "AT_DropExpression",
  "AT_AlterConstraint",
]);

/** pg_catalog type names as format_type() writes them. */
const FORMAT_NAMES: Readonly<Record<string, string>> = {
  int2: "smallint",
  int4: "integer",
  int8: "bigint",
  float4: "real",
  float8: "double precision",
  bool: "boolean",
  varchar: "character varying",
  bpchar: "character",
  timestamp: "timestamp without time zone",
  timestamptz: "timestamp with time zone",
  time: "time without time zone",
  timetz: "time with time zone",
  varbit: "bit varying",
};
const SERIALS: Readonly<Record<string, string>> = { smallserial: "smallint", serial2: "smallint", serial: "integer", serial4: "integer", bigserial: "bigint", serial8: "bigint" };
/** Built-in types that are not under pg_catalog in the parse tree: the name is format_type's. */
const PLAIN_BUILTINS = new Set([
  "text", "date", "uuid", "json", "jsonb", "bytea", "xml", "inet", "cidr", "macaddr", "macaddr8", "money", "interval", "numeric", "decimal",
  "tsvector", "tsquery", "point", "line", "lseg", "box", "path", "polygon", "circle", "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange",
  "oid", "name", "citext", "hstore", "char", "bit", "pg_lsn", "xid8",
]);

export async function parsePostgresMigration(file: string, sql: string, options: PostgresMigrationOptions = {}): Promise<StatementReport[]> {
  let tree: { stmts?: readonly Json[] };
  try {
    tree = (await parse(sql)) as { stmts?: readonly Json[] };
  } catch (error) {
    const position = hasSqlDetails(error) ? (error.sqlDetails?.cursorPosition ?? 0) : 0;
    throw new MigrationParseError(file, lineAt(sql, charOffset(sql, Math.max(0, position - 1))), `syntax error: ${(error as Error).message}`);
  }
  const reader = new StatementReader(options.defaultSchema ?? "public");
  const bytes = Buffer.from(sql, "utf8");
  return (tree.stmts ?? []).map((raw) => {
    const start = num(raw["stmt_location"]) ?? 0;
    const length = num(raw["stmt_len"]) ?? bytes.length - start;
    const text = bytes.subarray(start, start + length).toString("utf8");
    const leading = text.length - text.trimStart().length;
    const line = lineAt(sql, charOffset(sql, start) + leading);
    const notes: string[] = [];
    const effect = reader.read(obj(raw["stmt"]) ?? {}, notes);
    return { file, line, text: shortText(text), effect, notes };
  });
}

/** libpg-query reports byte offsets into the UTF-8 text. */
function charOffset(sql: string, byteOffset: number): number {
  return Buffer.from(sql, "utf8").subarray(0, byteOffset).toString("utf8").length;
}

class StatementReader {
  private readonly defaultSchema: string;
  private readonly enums = new Set<string>();
  private readonly domains = new Map<string, string>();

  constructor(defaultSchema: string) {
    this.defaultSchema = defaultSchema;
  }

  read(node: Json, notes: string[]): StatementEffect {
    const [type, body] = only(node);
    switch (type) {
      case "CreateStmt":
        return this.create(body, notes);
      case "AlterTableStmt":
        return this.alter(body, notes);
      case "RenameStmt":
        return this.rename(body);
      case "DropStmt":
        return this.drop(body);
      case "CreateEnumStmt":
        this.enums.add(typeKey(names(body["typeName"])));
        return { kind: "no-schema-change", what: "creates an enum type" };
      case "CreateDomainStmt": {
        const base = this.columnType(obj(body["typeName"]) ?? {}, notes);
        this.domains.set(typeKey(names(body["domainname"])), base.dbType);
        return { kind: "no-schema-change", what: "creates a domain" };
      }
      case "AlterObjectSchemaStmt":
        if (str(body["objectType"]) === "OBJECT_TABLE") {
          const table = this.tableOf(body["relation"]);
          return { kind: "steps", steps: [{ kind: "rename-table", table, to: { schema: str(body["newschema"]) ?? this.defaultSchema, table: table.table } }] };
        }
        return { kind: "no-schema-change", what: "moves an object that is not a table to another schema" };
      case "CreateTableAsStmt":
        return { kind: "not-understood", reason: "CREATE TABLE ... AS: the columns come from a query", tables: [this.tableOf(obj(body["into"])?.["rel"])] };
      default: {
        const what = type === undefined ? undefined : NO_SCHEMA_CHANGE[type];
        if (what !== undefined) return { kind: "no-schema-change", what };
        return { kind: "not-understood", reason: `${type ?? "an empty statement"} is not a statement this check follows`, tables: [] };
      }
    }
  }

  private create(body: Json, notes: string[]): StatementEffect {
    const table = this.tableOf(body["relation"]);
    const relation = obj(body["relation"]) ?? {};
    if (str(relation["relpersistence"]) === "t") return { kind: "no-schema-change", what: "creates a temporary table" };
    const ifNotExists = body["if_not_exists"] === true;
    if (body["partbound"] !== undefined) {
      const parent = this.tableOf(obj(arr(body["inhRelations"])[0])?.["RangeVar"]);
      return { kind: "no-schema-change", what: `creates a partition of ${parent.schema}.${parent.table} (partitions publish as their root table)` };
    }
    if (arr(body["inhRelations"]).length > 0) return { kind: "not-understood", reason: "CREATE TABLE ... INHERITS: the columns come from the parent", tables: [table] };
    if (body["ofTypename"] !== undefined) return { kind: "not-understood", reason: "CREATE TABLE ... OF type: the columns come from the type", tables: [table] };
    const columns: ColumnSchema[] = [];
    let key: string[] = [];
    for (const element of arr(body["tableElts"])) {
      const [kind, item] = only(obj(element) ?? {});
      if (kind === "ColumnDef") {
        const column = this.columnDef(item, notes);
        if (column === null) continue;
        columns.push(column.column);
        if (column.primaryKey) key = [column.column.name];
      } else if (kind === "Constraint" && str(item["contype"]) === "CONSTR_PRIMARY") {
        key = arr(item["keys"]).map((k) => str(obj(k)?.["String"] && obj(obj(k)?.["String"])?.["sval"]) ?? "");
      } else if (kind === "TableLikeClause") {
        if (columns.length > 0 || arr(body["tableElts"]).length > 1) return { kind: "not-understood", reason: "CREATE TABLE with LIKE beside other columns", tables: [table] };
        return { kind: "steps", steps: [{ kind: "create-table-like", table, like: this.tableOf(item["relation"]), ifNotExists }] };
      }
    }
    const keyed = columns.map((c) => (key.includes(c.name) ? { ...c, nullable: false, primaryKeyIndex: key.indexOf(c.name) + 1 } : c));
    if (body["partspec"] !== undefined) notes.push(`${table.schema}.${table.table} is partitioned: captured as one table when the publication has publish_via_partition_root`);
    return { kind: "steps", steps: [{ kind: "create-table", table, columns: keyed, key, ifNotExists }] };
  }

  private alter(body: Json, notes: string[]): StatementEffect {
    const objtype = str(body["objtype"]);
    if (objtype !== "OBJECT_TABLE") return { kind: "no-schema-change", what: `alters ${(objtype ?? "an object").replace("OBJECT_", "a ").toLowerCase().replace("_", " ")}` };
    const table = this.tableOf(body["relation"]);
    const steps: MigrationStep[] = [];
    for (const entry of arr(body["cmds"])) {
      const cmd = obj(obj(entry)?.["AlterTableCmd"]) ?? {};
      const subtype = str(cmd["subtype"]) ?? "";
      const name = str(cmd["name"]) ?? "";
      const missingOk = cmd["missing_ok"] === true;
      switch (subtype) {
        case "AT_AddColumn": {
          const column = this.columnDef(obj(obj(cmd["def"])?.["ColumnDef"]) ?? {}, notes);
          if (column === null) break;
          steps.push({ kind: "add-column", table, column: column.column, ifNotExists: missingOk });
          if (column.primaryKey) steps.push({ kind: "set-key", table, key: [column.column.name] });
          break;
        }
        case "AT_DropColumn":
          steps.push({ kind: "drop-column", table, column: name, ifExists: missingOk });
          break;
        case "AT_AlterColumnType": {
          const def = obj(obj(cmd["def"])?.["ColumnDef"]) ?? {};
          const type = this.columnType(obj(def["typeName"]) ?? {}, notes);
          steps.push({ kind: "alter-column", table, column: name, dbType: type.dbType });
          break;
        }
        case "AT_SetNotNull":
          steps.push({ kind: "alter-column", table, column: name, nullable: false });
          break;
        case "AT_DropNotNull":
          steps.push({ kind: "alter-column", table, column: name, nullable: true });
          break;
        case "AT_ColumnDefault":
          steps.push({ kind: "alter-column", table, column: name, default: cmd["def"] === undefined ? null : defaultText(obj(cmd["def"]) ?? {}) });
          break;
        case "AT_AddConstraint": {
          const constraint = obj(obj(cmd["def"])?.["Constraint"]) ?? {};
          if (str(constraint["contype"]) === "CONSTR_PRIMARY") {
            const key = arr(constraint["keys"]).map((k) => str(obj(obj(k)?.["String"])?.["sval"]) ?? "");
            if (key.length === 0) return { kind: "not-understood", reason: "ADD PRIMARY KEY USING INDEX: the key columns are those of an index", tables: [table] };
            steps.push({ kind: "set-key", table, key });
          }
          break;
        }
        case "AT_DropConstraint":
          if (name === `${table.table}_pkey`) steps.push({ kind: "set-key", table, key: [] });
          else notes.push(`DROP CONSTRAINT ${name}: taken to be no primary key (a primary key named ${table.table}_pkey would drop the key)`);
          break;
        case "AT_ReplicaIdentity":
          return { kind: "not-understood", reason: "REPLICA IDENTITY changes which columns key the table's records", tables: [table] };
        default:
          if (NO_COLUMN_CHANGE.has(subtype)) break;
          return { kind: "not-understood", reason: `ALTER TABLE action ${subtype.replace(/^AT_/, "")} is not one this check follows`, tables: [table] };
      }
    }
    return steps.length === 0 ? { kind: "no-schema-change", what: "alters a table without changing its columns or key" } : { kind: "steps", steps };
  }

  private rename(body: Json): StatementEffect {
    const renameType = str(body["renameType"]);
    if (renameType === "OBJECT_COLUMN" && str(body["relationType"]) === "OBJECT_TABLE") {
      return { kind: "steps", steps: [{ kind: "rename-column", table: this.tableOf(body["relation"]), from: str(body["subname"]) ?? "", to: str(body["newname"]) ?? "" }] };
    }
    if (renameType === "OBJECT_TABLE") {
      const table = this.tableOf(body["relation"]);
      return { kind: "steps", steps: [{ kind: "rename-table", table, to: { schema: table.schema, table: str(body["newname"]) ?? "" } }] };
    }
    return { kind: "no-schema-change", what: `renames ${(renameType ?? "an object").replace("OBJECT_", "a ").toLowerCase()}` };
  }

  private drop(body: Json): StatementEffect {
    if (str(body["removeType"]) !== "OBJECT_TABLE") return { kind: "no-schema-change", what: `drops ${(str(body["removeType"]) ?? "an object").replace("OBJECT_", "a ").toLowerCase()}` };
    const steps: MigrationStep[] = arr(body["objects"]).map((item) => {
      const parts = arr(obj(obj(item)?.["List"])?.["items"]).map((p) => str(obj(obj(p)?.["String"])?.["sval"]) ?? "");
      const table = parts.length >= 2 ? { schema: parts[parts.length - 2]!, table: parts[parts.length - 1]! } : { schema: this.defaultSchema, table: parts[0] ?? "" };
      return { kind: "drop-table", table, ifExists: body["missing_ok"] === true };
    });
    return { kind: "steps", steps };
  }

  private columnDef(def: Json, notes: string[]): { column: ColumnSchema; primaryKey: boolean } | null {
    const name = str(def["colname"]) ?? "";
    const type = this.columnType(obj(def["typeName"]) ?? {}, notes);
    let nullable = !type.serial;
    let primaryKey = false;
    let defaultExpression: string | null = type.serial ? `nextval('${name}_seq'::regclass)` : null;
    for (const entry of arr(def["constraints"])) {
      const constraint = obj(obj(entry)?.["Constraint"]) ?? {};
      switch (str(constraint["contype"])) {
        case "CONSTR_NOTNULL":
          nullable = false;
          break;
        case "CONSTR_NULL":
          nullable = true;
          break;
        case "CONSTR_PRIMARY":
          primaryKey = true;
          nullable = false;
          break;
        case "CONSTR_IDENTITY":
          nullable = false;
          defaultExpression = "(identity)";
          break;
        case "CONSTR_DEFAULT":
          defaultExpression = defaultText(obj(constraint["raw_expr"]) ?? {});
          break;
        case "CONSTR_GENERATED":
          notes.push(`column ${name} is generated: generated columns are not captured`);
          return null;
      }
    }
    return { column: { name, dbType: type.dbType, nullable, default: defaultExpression }, primaryKey };
  }

  private columnType(typeName: Json, notes: string[]): { dbType: string; serial: boolean } {
    const parts = names(typeName["names"]);
    const last = (parts[parts.length - 1] ?? "").toLowerCase();
    const builtin = parts.length === 2 && parts[0] === "pg_catalog";
    const mods = arr(typeName["typmods"]).map(modText);
    const array = arr(typeName["arrayBounds"]).length > 0 ? "[]" : "";
    if (!builtin && SERIALS[last] !== undefined) return { dbType: `${SERIALS[last]}${array}`, serial: array === "" };
    let base: string;
    if (builtin || PLAIN_BUILTINS.has(last)) base = formatType(FORMAT_NAMES[last] ?? last, mods);
    else if (this.enums.has(typeKey(parts))) base = "enum";
    else if (this.domains.has(typeKey(parts))) base = this.domains.get(typeKey(parts))!;
    else {
      notes.push(`type ${parts.join(".")} is not built in nor created in this migration: taken as an enum or other type carried as text`);
      base = parts.join(".");
    }
    return { dbType: `${base}${array}`, serial: false };
  }

  private tableOf(relation: unknown): QualifiedTable {
    const rel = obj(relation) ?? {};
    return { schema: str(rel["schemaname"]) ?? this.defaultSchema, table: str(rel["relname"]) ?? "" };
  }
}

function formatType(name: string, mods: readonly string[]): string {
  if (mods.length === 0) return name;
  if (name === "numeric" && mods.length === 1) return `numeric(${mods[0]},0)`;
  const args = `(${mods.join(",")})`;
  const zone = / with(out)? time zone$/.exec(name);
  return zone ? `${name.slice(0, zone.index)}${args}${zone[0]}` : `${name}${args}`;
}

function modText(node: unknown): string {
  const constant = obj(obj(node)?.["A_Const"]);
  if (constant === undefined) return "?";
  if (constant["ival"] !== undefined) return String(num(obj(constant["ival"])?.["ival"]) ?? 0);
  return str(obj(constant["sval"])?.["sval"]) ?? "?";
}

/** A default as pg_get_expr would show it when it is a literal; other expressions as a marker that is no literal. */
function defaultText(node: Json): string | null {
  const [type, body] = only(node);
  if (type === "A_Const") {
    if (body["isnull"] === true) return null;
    if (body["ival"] !== undefined) return String(num(obj(body["ival"])?.["ival"]) ?? 0);
    if (body["fval"] !== undefined) return str(obj(body["fval"])?.["fval"]) ?? "0";
    if (body["boolval"] !== undefined) return obj(body["boolval"])?.["boolval"] === true ? "true" : "false";
    if (body["sval"] !== undefined) return `'${(str(obj(body["sval"])?.["sval"]) ?? "").replaceAll("'", "''")}'`;
  }
  if (type === "TypeCast") return defaultText(obj(body["arg"]) ?? {});
  if (type === "A_Expr" && names(body["name"]).join() === "-" && body["lexpr"] === undefined) {
    const inner = defaultText(obj(body["rexpr"]) ?? {});
    return inner !== null && /^[\d.]/.test(inner) ? `-${inner}` : "(expression)";
  }
  return `(${type ?? "expression"})`;
}

function names(list: unknown): string[] {
  return arr(list).map((item) => str(obj(obj(item)?.["String"])?.["sval"]) ?? "");
}

function typeKey(parts: readonly string[]): string {
  return (parts[parts.length - 1] ?? "").toLowerCase();
}

function only(node: Json): [string | undefined, Json] {
  const key = Object.keys(node)[0];
  return [key, key === undefined ? {} : (obj(node[key]) ?? {})];
}

function obj(value: unknown): Json | undefined {
  return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Json) : undefined;
}

function arr(value: unknown): readonly unknown[] {
  return Array.isArray(value) ? value : [];
}

function str(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function num(value: unknown): number | undefined {
  return typeof value === "number" ? value : undefined;
}
