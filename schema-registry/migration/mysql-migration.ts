/**
 * Reads a MySQL/MariaDB migration with the DDL parser the binlog reader uses
 * (connectors/mysql/schema/ddl-parser.ts), statement by statement, into migration steps. Columns
 * carry the literal defaults the MySQL source reports (integer columns; text columns on MariaDB),
 * so the schemas checked are those it registers.
 */
import type { ColumnSchema } from "../../connectors/contracts.ts";
import { parseDdl } from "../../connectors/mysql/schema/ddl-parser.ts";
import type { AlterAction, ColumnPlace, ParsedColumn, TableName } from "../../connectors/mysql/schema/ddl-parser.ts";
import { lineAt, MigrationParseError, shortText } from "./steps.ts";
import type { MigrationStep, QualifiedTable, StatementEffect, StatementReport } from "./steps.ts";

export interface MysqlMigrationOptions {
  /** Database of unqualified table names until a USE statement (null: such names are not understood). */
  readonly defaultDatabase: string | null;
  /** MariaDB stores JSON as LONGTEXT. */
  readonly mariadb?: boolean;
}

/** First words of statements that change no table's columns or key. */
const NO_SCHEMA_CHANGE: readonly (readonly string[])[] = [
  ["CREATE", "INDEX"], ["CREATE", "UNIQUE"], ["CREATE", "FULLTEXT"], ["CREATE", "SPATIAL"], ["CREATE", "VIEW"], ["CREATE", "OR"],
  ["CREATE", "DATABASE"], ["CREATE", "SCHEMA"], ["CREATE", "PROCEDURE"], ["CREATE", "FUNCTION"], ["CREATE", "TRIGGER"], ["CREATE", "EVENT"],
  ["CREATE", "USER"], ["CREATE", "ROLE"], ["CREATE", "SEQUENCE"], ["CREATE", "TEMPORARY"], ["CREATE", "DEFINER"], ["CREATE", "ALGORITHM"],
  ["DROP", "INDEX"], ["DROP", "VIEW"], ["DROP", "PROCEDURE"], ["DROP", "FUNCTION"], ["DROP", "TRIGGER"], ["DROP", "EVENT"], ["DROP", "USER"],
  ["DROP", "ROLE"], ["DROP", "SEQUENCE"], ["DROP", "TEMPORARY"],
  ["ALTER", "VIEW"], ["ALTER", "DATABASE"], ["ALTER", "SCHEMA"], ["ALTER", "USER"], ["ALTER", "EVENT"], ["ALTER", "PROCEDURE"], ["ALTER", "FUNCTION"], ["ALTER", "SEQUENCE"],
  ["INSERT"], ["UPDATE"], ["DELETE"], ["REPLACE"], ["SELECT"], ["SET"], ["GRANT"], ["REVOKE"], ["BEGIN"], ["START"], ["COMMIT"], ["ROLLBACK"],
  ["ANALYZE"], ["OPTIMIZE"], ["LOCK"], ["UNLOCK"], ["FLUSH"], ["TRUNCATE"], ["CALL"], ["DO"],
];

interface SplitStatement {
  readonly text: string;
  readonly offset: number;
}

export function parseMysqlMigration(file: string, sql: string, options: MysqlMigrationOptions): StatementReport[] {
  let database = options.defaultDatabase;
  return splitStatements(file, sql).map(({ text, offset }) => {
    const line = lineAt(sql, offset);
    const words = text.trim().split(/[\s(;`]+/, 3).map((w) => w.toUpperCase());
    if (words[0] === "USE") {
      database = text.trim().slice(3).trim().replace(/^`|`$/g, "");
      return { file, line, text: shortText(text), effect: { kind: "no-schema-change", what: `makes ${database} the default database` }, notes: [] };
    }
    if (words[0] === "DELIMITER") return { file, line, text: shortText(text), effect: { kind: "not-understood", reason: "DELIMITER is a client command: split such files by hand", tables: [] }, notes: [] };
    return { file, line, text: shortText(text), effect: statementEffect(text, words, database, options.mariadb ?? false), notes: [] };
  });
}

function statementEffect(text: string, words: readonly string[], database: string | null, mariadb: boolean): StatementEffect {
  const statement = parseDdl(text, { defaultDatabase: database ?? "", mariadb });
  const table = (name: TableName): QualifiedTable => ({ schema: name.database, table: name.table });
  const unqualified = (names: readonly TableName[]) => database === null && names.some((name) => name.database === "");
  const noDatabase: StatementEffect = { kind: "not-understood", reason: "a table without a database name, and no default database (give --database or a USE statement)", tables: [] };
  switch (statement.kind) {
    case "none": {
      const known = NO_SCHEMA_CHANGE.some((prefix) => prefix.every((word, i) => words[i] === word));
      return known ? { kind: "no-schema-change", what: `${words.slice(0, 2).join(" ").toLowerCase()}: no table columns change` } : { kind: "not-understood", reason: `${words[0] ?? "an empty statement"} is not a statement this check follows`, tables: [] };
    }
    case "unparsed":
      return { kind: "not-understood", reason: statement.reason, tables: statement.tables.map(table) };
    case "truncate":
      return { kind: "no-schema-change", what: "empties a table (its schema stays)" };
    case "create-sequence":
    case "alter-sequence":
    case "drop-sequences":
      return { kind: "no-schema-change", what: "a sequence (sequences are not captured)" };
    case "drop-database":
      return { kind: "not-understood", reason: `DROP DATABASE ${statement.database} drops every table in it`, tables: [] };
    case "create-table": {
      if (unqualified([statement.table])) return noDatabase;
      const key = statement.primaryKey;
      const columns = statement.columns.map((c) => columnOf(c, key));
      return { kind: "steps", steps: [{ kind: "create-table", table: table(statement.table), columns, key, ifNotExists: statement.ifNotExists }] };
    }
    case "create-table-like":
      if (unqualified([statement.table, statement.like])) return noDatabase;
      return { kind: "steps", steps: [{ kind: "create-table-like", table: table(statement.table), like: table(statement.like), ifNotExists: statement.ifNotExists }] };
    case "drop-tables":
      if (unqualified(statement.tables)) return noDatabase;
      return { kind: "steps", steps: statement.tables.map((t) => ({ kind: "drop-table", table: table(t), ifExists: /\bIF\s+EXISTS\b/i.test(text) })) };
    case "rename-tables":
      if (unqualified(statement.renames.flatMap((r) => [r.from, r.to]))) return noDatabase;
      return { kind: "steps", steps: statement.renames.map((r) => ({ kind: "rename-table", table: table(r.from), to: table(r.to) })) };
    case "alter-table": {
      if (unqualified([statement.table])) return noDatabase;
      const target = table(statement.table);
      const steps = statement.actions.flatMap((action) => alterSteps(target, action));
      return steps.length === 0 ? { kind: "no-schema-change", what: "alters a table without changing its columns or key" } : { kind: "steps", steps };
    }
  }
}

function alterSteps(table: QualifiedTable, action: AlterAction): MigrationStep[] {
  switch (action.kind) {
    case "add-column": {
      const add: MigrationStep = { kind: "add-column", table, column: columnOf(action.column, []), ifNotExists: action.ifNotExists, ...placeOf(action.place) };
      return action.column.primaryKey ? [add, { kind: "set-key", table, key: [action.column.name] }] : [add];
    }
    case "drop-column":
      return [{ kind: "drop-column", table, column: action.name, ifExists: action.ifExists }];
    case "modify-column":
    case "change-column": {
      const replace: MigrationStep = { kind: "replace-column", table, from: action.kind === "change-column" ? action.from : action.column.name, column: columnOf(action.column, []), ...placeOf(action.place) };
      return action.column.primaryKey ? [replace, { kind: "set-key", table, key: [action.column.name] }] : [replace];
    }
    case "rename-column":
      return [{ kind: "rename-column", table, from: action.from, to: action.to }];
    case "add-primary-key":
      return [{ kind: "set-key", table, key: action.columns }];
    case "drop-primary-key":
      return [{ kind: "set-key", table, key: [] }];
    case "rename-table":
      return [{ kind: "rename-table", table, to: { schema: action.to.database, table: action.to.table } }];
    case "default-charset":
    case "convert-charset":
    case "column-default":
    case "rows-changed":
      return [];
  }
}

function placeOf(place: ColumnPlace): { position?: { first: true } | { after: string } } {
  return place === null ? {} : { position: place };
}

function columnOf(column: ParsedColumn, key: readonly string[]): ColumnSchema {
  const keyIndex = key.indexOf(column.name);
  // The literal defaults the source reports (integer and text columns; table-definition.ts canonicalDefault).
  const base = { name: column.name, dbType: column.dbType, ...(column.default === undefined ? {} : { default: column.default }) };
  return keyIndex < 0 ? { ...base, nullable: column.nullable } : { ...base, nullable: false, primaryKeyIndex: keyIndex + 1 };
}

/** Splits on semicolons outside strings, quoted names and comments. */
export function splitStatements(file: string, sql: string): SplitStatement[] {
  const statements: SplitStatement[] = [];
  let start = 0;
  let i = 0;
  const push = (end: number) => {
    const text = sql.slice(start, end);
    if (stripComments(text).trim() !== "") {
      const lead = leadingNoise(text);
      statements.push({ text: text.slice(lead), offset: start + lead });
    }
  };
  while (i < sql.length) {
    const char = sql[i]!;
    if (char === "'" || char === '"' || char === "`") {
      const close = closingQuote(sql, i);
      if (close < 0) throw new MigrationParseError(file, lineAt(sql, i), `unterminated ${char === "`" ? "quoted name" : "string"}`);
      i = close + 1;
    } else if (char === "/" && sql[i + 1] === "*" && sql[i + 2] !== "!") {
      const end = sql.indexOf("*/", i + 2);
      if (end < 0) throw new MigrationParseError(file, lineAt(sql, i), "unterminated comment");
      i = end + 2;
    } else if ((char === "-" && sql[i + 1] === "-" && /\s/.test(sql[i + 2] ?? " ")) || char === "#") {
      const end = sql.indexOf("\n", i);
      i = end < 0 ? sql.length : end + 1;
    } else if (char === ";") {
      push(i);
      start = i + 1;
      i++;
    } else i++;
  }
  push(sql.length);
  return statements;
}

function closingQuote(sql: string, open: number): number {
  const quote = sql[open]!;
  for (let j = open + 1; j < sql.length; j++) {
    if (sql[j] === "\\" && quote !== "`") j++;
    else if (sql[j] === quote) {
      if (sql[j + 1] === quote) j++;
      else return j;
    }
  }
  return -1;
}

/** Whitespace and comments before a statement. */
function leadingNoise(text: string): number {
  let i = 0;
  for (;;) {
    while (i < text.length && /\s/.test(text[i]!)) i++;
    if (text.startsWith("--", i) || text.startsWith("#", i)) {
      const end = text.indexOf("\n", i);
      i = end < 0 ? text.length : end + 1;
    } else if (text.startsWith("/*", i) && text[i + 2] !== "!") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 2;
    } else return i;
  }
}

function stripComments(text: string): string {
  return text.slice(leadingNoise(text));
}
