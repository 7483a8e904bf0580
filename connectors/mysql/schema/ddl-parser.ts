/**
 * Parses the DDL statements of QUERY events far enough to keep table definitions current:
 * CREATE TABLE (columns, primary key, default charset; LIKE), ALTER TABLE (add, drop, modify,
 * change and rename columns, primary key, rename, default charset), DROP/RENAME/TRUNCATE TABLE and
 * DROP DATABASE, and MariaDB's sequences (CREATE/ALTER/DROP SEQUENCE, CREATE TABLE ... SEQUENCE=1), which are not
 * captured. What it does not understand it reports as such, naming the tables it touches when
 * it can, so the caller re-reads them from the server instead of guessing.
 */
import { normalizeColumnType } from "./column-types.ts";
import { canonicalDefault } from "./table-definition.ts";
import { tokenize, TokenCursor } from "./sql-tokens.ts";
import type { Token } from "./sql-tokens.ts";

export interface TableName {
  readonly database: string;
  readonly table: string;
}

export interface ParsedColumn {
  readonly name: string;
  readonly dbType: string;
  readonly nullable: boolean;
  /** Charset from the column's own CHARACTER SET / COLLATE, "binary" for binary strings, null when not given. */
  readonly charset: string | null;
  /** Whether the type holds text (takes the table's default charset when none is given). */
  readonly textual: boolean;
  readonly primaryKey: boolean;
  /** A literal DEFAULT in canonical form (table-definition.ts canonicalDefault); absent for none, NULL, an expression or other types. */
  readonly default?: string;
  /**
   * What gives rows already in a table the column's value when it is added, if neither NULL nor `default`:
   * "generated" (AS (expr)), or "default" for a default Sluice does not carry as a literal (an expression such
   * as CURRENT_TIMESTAMP, a literal of another type, NOT NULL's implicit 0 or '', AUTO_INCREMENT's numbers).
   */
  readonly filledBy?: "generated" | "default";
}

export type ColumnPlace = { readonly first: true } | { readonly after: string } | null;

export type AlterAction =
  | { readonly kind: "add-column"; readonly column: ParsedColumn; readonly place: ColumnPlace; readonly ifNotExists: boolean }
  | { readonly kind: "drop-column"; readonly name: string; readonly ifExists: boolean }
  | { readonly kind: "modify-column"; readonly column: ParsedColumn; readonly place: ColumnPlace }
  | { readonly kind: "change-column"; readonly from: string; readonly column: ParsedColumn; readonly place: ColumnPlace }
  | { readonly kind: "rename-column"; readonly from: string; readonly to: string }
  | { readonly kind: "add-primary-key"; readonly columns: readonly string[] }
  | { readonly kind: "drop-primary-key" }
  | { readonly kind: "rename-table"; readonly to: TableName }
  | { readonly kind: "default-charset"; readonly charset: string }
  | { readonly kind: "convert-charset"; readonly charset: string }
  /** ALTER [COLUMN] c SET DEFAULT literal (`value`, null for NULL or an expression) or DROP DEFAULT (`value` undefined). */
  | { readonly kind: "column-default"; readonly name: string; readonly value?: { readonly text: string; readonly quoted: boolean } | null }
  /**
   * Rows that enter or leave the table with no row event in the binlog: partitions truncated, dropped, exchanged
   * with a table (`other`) or converted to or from one, a tablespace imported. `what` names the operation;
   * `partitions`: the partitions a TRUNCATE or DROP PARTITION names, null for ALL and the other operations.
   */
  | { readonly kind: "rows-changed"; readonly what: string; readonly other: TableName | null; readonly partitions: readonly string[] | null };

export type DdlStatement =
  | { readonly kind: "create-table"; readonly table: TableName; readonly columns: readonly ParsedColumn[]; readonly primaryKey: readonly string[]; readonly defaultCharset: string | null; readonly ifNotExists: boolean; readonly orReplace?: true }
  | { readonly kind: "create-table-like"; readonly table: TableName; readonly like: TableName; readonly ifNotExists: boolean; readonly orReplace?: true }
  | { readonly kind: "alter-table"; readonly table: TableName; readonly actions: readonly AlterAction[] }
  | { readonly kind: "drop-tables"; readonly tables: readonly TableName[] }
  | { readonly kind: "rename-tables"; readonly renames: readonly { readonly from: TableName; readonly to: TableName }[] }
  | { readonly kind: "truncate"; readonly table: TableName }
  | { readonly kind: "drop-database"; readonly database: string }
  /** MariaDB: a sequence made (CREATE SEQUENCE, CREATE TABLE ... SEQUENCE=1) or altered; its row events are not changes of a table. */
  | { readonly kind: "create-sequence"; readonly sequence: TableName; readonly ifNotExists: boolean; readonly orReplace?: true }
  | { readonly kind: "alter-sequence"; readonly sequence: TableName }
  | { readonly kind: "drop-sequences"; readonly sequences: readonly TableName[] }
  /** A statement that changes these tables in a way the parser does not follow. */
  /** `rowsChanged`: the statement may also have moved rows with no row event (an ALTER IGNORE TABLE), named as in rows-changed. */
  | { readonly kind: "unparsed"; readonly tables: readonly TableName[]; readonly reason: string; readonly rowsChanged?: string }
  /** Not a statement that changes table definitions (DML, BEGIN, grants, views...). */
  | { readonly kind: "none" };

export interface ParseOptions {
  readonly defaultDatabase: string;
  /** MariaDB stores JSON as LONGTEXT. */
  readonly mariadb: boolean;
}

export function parseDdl(sql: string, options: ParseOptions): DdlStatement {
  let cursor: TokenCursor;
  try {
    cursor = new TokenCursor(tokenize(sql));
  } catch {
    return { kind: "none" };
  }
  const start = cursor.pos;
  try {
    return statement(cursor, options);
  } catch (error) {
    cursor.pos = start;
    // An ALTER IGNORE not understood may add a UNIQUE key or convert values: its table is read again, failing safe.
    const ignore = isAlterIgnoreTable(cursor);
    cursor.pos = start;
    const tables = touchedTables(cursor, options.defaultDatabase);
    if (tables.length === 0) return { kind: "none" };
    return { kind: "unparsed", tables, reason: (error as Error).message, ...(ignore ? { rowsChanged: "ALTER IGNORE TABLE" } : {}) };
  }
}

function isAlterIgnoreTable(c: TokenCursor): boolean {
  if (!c.accept("ALTER")) return false;
  c.accept("ONLINE");
  return c.accept("IGNORE", "TABLE");
}

function statement(c: TokenCursor, options: ParseOptions): DdlStatement {
  const db = options.defaultDatabase;
  if (c.accept("CREATE")) {
    const orReplace = c.accept("OR", "REPLACE");
    if (c.accept("TEMPORARY")) return { kind: "none" };
    if (c.accept("SEQUENCE")) {
      const ifNotExists = c.accept("IF", "NOT", "EXISTS");
      return { kind: "create-sequence", sequence: c.qualifiedName(db), ifNotExists, ...(orReplace ? { orReplace } : {}) };
    }
    if (c.accept("TABLE")) {
      const created = createTable(c, options);
      if (!orReplace) return created;
      if (created.kind === "create-table" || created.kind === "create-table-like" || created.kind === "create-sequence") return { ...created, orReplace };
      return created;
    }
    if (c.accept("DATABASE") || c.accept("SCHEMA")) return { kind: "none" };
    return { kind: "none" };
  }
  if (c.accept("ALTER")) {
    c.accept("ONLINE");
    const ignore = c.accept("IGNORE");
    if (c.accept("SEQUENCE")) {
      c.accept("IF", "EXISTS");
      return { kind: "alter-sequence", sequence: c.qualifiedName(db) };
    }
    if (!c.accept("TABLE")) return { kind: "none" };
    c.accept("IF", "EXISTS");
    const table = c.qualifiedName(db);
    const clauses: AlterClause[] = [];
    const actions = alterActions(c, table, options, clauses);
    // MariaDB's ALTER IGNORE drops the rows a new UNIQUE or PRIMARY key finds duplicated, and keeps values a
    // redefinition cuts or converts, with no row event: the table is read again unless every clause is known harmless.
    const readAgain = ignore && !clauses.every(keepsRowsUnderIgnore);
    return { kind: "alter-table", table, actions: readAgain ? [...actions, { kind: "rows-changed", what: "ALTER IGNORE TABLE", other: null, partitions: null }] : actions };
  }
  if (c.accept("DROP")) {
    if (c.accept("TEMPORARY")) return { kind: "none" };
    if (c.accept("SEQUENCE")) {
      c.accept("IF", "EXISTS");
      const sequences = [c.qualifiedName(db)];
      while (c.acceptPunct(",")) sequences.push(c.qualifiedName(db));
      return { kind: "drop-sequences", sequences };
    }
    if (c.accept("DATABASE") || c.accept("SCHEMA")) {
      c.accept("IF", "EXISTS");
      return { kind: "drop-database", database: c.identifier() };
    }
    if (!c.accept("TABLE") && !c.accept("TABLES")) return { kind: "none" };
    c.accept("IF", "EXISTS");
    const tables = [c.qualifiedName(db)];
    while (c.acceptPunct(",")) tables.push(c.qualifiedName(db));
    return { kind: "drop-tables", tables };
  }
  if (c.accept("RENAME")) {
    if (!c.accept("TABLE") && !c.accept("TABLES")) return { kind: "none" };
    const renames = [];
    do {
      const from = c.qualifiedName(db);
      if (!c.accept("TO")) throw new SyntaxError("RENAME TABLE without TO");
      renames.push({ from, to: c.qualifiedName(db) });
    } while (c.acceptPunct(","));
    return { kind: "rename-tables", renames };
  }
  if (c.accept("TRUNCATE")) {
    c.accept("TABLE");
    return { kind: "truncate", table: c.qualifiedName(db) };
  }
  return { kind: "none" };
}

function createTable(c: TokenCursor, options: ParseOptions): DdlStatement {
  const ifNotExists = c.accept("IF", "NOT", "EXISTS");
  const table = c.qualifiedName(options.defaultDatabase);
  if (c.accept("LIKE")) return { kind: "create-table-like", table, like: c.qualifiedName(options.defaultDatabase), ifNotExists };
  if (c.isPunct("(") && isLikeInParentheses(c)) {
    c.expectPunct("(");
    c.accept("LIKE");
    const like = c.qualifiedName(options.defaultDatabase);
    c.expectPunct(")");
    return { kind: "create-table-like", table, like, ifNotExists };
  }
  if (!c.isPunct("(")) throw new SyntaxError("CREATE TABLE without a column list (\u2026 SELECT)");
  const inner = new TokenCursor(c.parenthesised());
  const columns: ParsedColumn[] = [];
  const primaryKey: string[] = [];
  while (!inner.done) {
    if (inner.accept("PRIMARY", "KEY") || (inner.accept("CONSTRAINT") && skipConstraintName(inner) && inner.accept("PRIMARY", "KEY"))) {
      primaryKey.push(...keyColumns(inner));
      inner.skipToListEnd();
    } else if (isTableConstraint(inner)) {
      inner.skipToListEnd();
    } else {
      const column = columnDefinition(inner, options);
      columns.push(column);
      if (column.primaryKey) primaryKey.push(column.name);
    }
    if (!inner.acceptPunct(",")) break;
  }
  if (!inner.done) throw new SyntaxError(`unexpected ${inner.describe()} in the column list`);
  if (!c.done && selectFollows(c)) throw new SyntaxError("CREATE TABLE \u2026 SELECT");
  if (isSequenceTable(c)) return { kind: "create-sequence", sequence: table, ifNotExists };
  const defaultCharset = tableCharset(c);
  return { kind: "create-table", table, columns, primaryKey, defaultCharset, ifNotExists };
}

/** The table option SEQUENCE=1 (MariaDB): the table made is a sequence. */
function isSequenceTable(c: TokenCursor): boolean {
  for (let i = 0; c.peek(i) !== undefined; i++) {
    if (!c.isKeyword("SEQUENCE", i)) continue;
    const value = c.isPunct("=", i + 1) ? c.peek(i + 2) : c.peek(i + 1);
    if (value !== undefined && value.text !== "0" && value.text.toUpperCase() !== "NO") return true;
  }
  return false;
}

function isLikeInParentheses(c: TokenCursor): boolean {
  return c.isKeyword("LIKE", 1);
}

function selectFollows(c: TokenCursor): boolean {
  const start = c.pos;
  let found = false;
  while (!c.done) {
    if (c.isKeyword("SELECT") || c.isKeyword("AS") && c.isKeyword("SELECT", 1)) {
      found = true;
      break;
    }
    c.pos++;
  }
  c.pos = start;
  return found;
}

function skipConstraintName(c: TokenCursor): boolean {
  if (!c.isKeyword("PRIMARY") && !c.isKeyword("UNIQUE") && !c.isKeyword("FOREIGN") && !c.isKeyword("CHECK")) c.next();
  return true;
}

const CONSTRAINT_WORDS = ["KEY", "INDEX", "UNIQUE", "FULLTEXT", "SPATIAL", "FOREIGN", "CONSTRAINT", "CHECK", "PERIOD", "SYSTEM"];

function isTableConstraint(c: TokenCursor): boolean {
  const token = c.peek();
  if (token?.kind !== "word" || token.quoted) return false;
  const word = token.text.toUpperCase();
  if (!CONSTRAINT_WORDS.includes(word)) return false;
  // A column may be called `key`... only unquoted keywords followed by what a constraint takes count.
  return word !== "KEY" && word !== "INDEX" ? true : !c.isPunct(")", 1) && !c.isPunct(",", 1);
}

function keyColumns(c: TokenCursor): string[] {
  while (!c.isPunct("(") && !c.done) c.next(); // index name, USING BTREE
  const inner = new TokenCursor(c.parenthesised());
  const names: string[] = [];
  while (!inner.done) {
    names.push(inner.identifier());
    inner.skipToListEnd();
    inner.acceptPunct(",");
  }
  return names;
}

/** Multi-word type names, longest first. */
const TYPE_PHRASES = [
  ["DOUBLE", "PRECISION"],
  ["NATIONAL", "CHARACTER", "VARYING"],
  ["NATIONAL", "CHAR", "VARYING"],
  ["NATIONAL", "VARCHAR"],
  ["NATIONAL", "CHARACTER"],
  ["NATIONAL", "CHAR"],
  ["CHARACTER", "VARYING"],
  ["CHAR", "VARYING"],
  ["NCHAR", "VARCHAR"],
  ["NCHAR", "VARYING"],
  ["LONG", "VARBINARY"],
  ["LONG", "VARCHAR"],
  ["LONG", "CHAR", "VARYING"],
];

const TEXT_TYPES = new Set(["char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"]);
const BINARY_TYPES = new Set(["binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"]);
const TO_BINARY: Readonly<Record<string, string>> = { char: "binary", varchar: "varbinary", tinytext: "tinyblob", text: "blob", mediumtext: "mediumblob", longtext: "longblob" };

function columnDefinition(c: TokenCursor, options: ParseOptions): ParsedColumn {
  const name = c.identifier();
  let words: string[] | undefined;
  for (const phrase of TYPE_PHRASES) {
    if (phrase.every((word, i) => c.isKeyword(word, i))) {
      words = phrase;
      c.pos += phrase.length;
      break;
    }
  }
  if (words === undefined) {
    const token = c.next();
    if (token?.kind !== "word") throw new SyntaxError(`column ${name} has no type`);
    words = [token.text];
  }
  let typeText = words.join(" ").toLowerCase();
  if (c.isPunct("(")) typeText += `(${renderArgs(c.parenthesised())})`;
  while (c.isKeyword("UNSIGNED") || c.isKeyword("SIGNED") || c.isKeyword("ZEROFILL")) typeText += ` ${c.next()!.text.toLowerCase()}`;
  let nullable = true;
  let charset: string | null = null;
  let primaryKey = false;
  let defaultValue: { text: string; quoted: boolean } | null = null;
  let defaultClause: "none" | "null" | "value" = "none";
  let generated = false;
  while (!c.done && !c.isPunct(",") && !c.isPunct(")") && !c.isKeyword("FIRST") && !c.isKeyword("AFTER")) {
    if (c.accept("NOT", "NULL")) nullable = false;
    else if (c.accept("NULL")) nullable = true;
    else if (c.accept("CHARACTER", "SET") || c.accept("CHARSET")) {
      c.acceptPunct("=");
      charset = charsetName(c.identifier());
    } else if (c.accept("COLLATE")) {
      c.acceptPunct("=");
      charset ??= charsetOfCollation(c.identifier());
    } else if (c.accept("UNIQUE")) {
      // UNIQUE [KEY]: a unique key, not the primary key (KEY alone is PRIMARY KEY).
      c.accept("KEY");
    } else if (c.accept("PRIMARY", "KEY") || (c.isKeyword("KEY") && !primaryKey && c.accept("KEY"))) {
      primaryKey = true;
      nullable = false;
    } else if (c.accept("BINARY")) {
      // VARCHAR(n) BINARY: a _bin collation, still text.
    } else if (c.accept("DEFAULT")) {
      defaultClause = c.accept("NULL") ? "null" : "value";
      if (defaultClause === "value") defaultValue = literalDefault(c, options.mariadb);
    } else if (c.accept("COMMENT") || c.accept("ON", "UPDATE") || c.accept("COLUMN_FORMAT") || c.accept("STORAGE") || c.accept("SRID")) {
      skipExpression(c);
    } else if (c.accept("GENERATED", "ALWAYS") || c.isKeyword("AS")) {
      generated = true;
      c.accept("AS");
      if (c.isPunct("(")) c.parenthesised();
    } else if (c.accept("CHECK") || c.accept("REFERENCES")) {
      skipExpression(c);
    } else c.next(); // AUTO_INCREMENT, VISIBLE, INVISIBLE, VIRTUAL, STORED, PERSISTENT, COMPRESSED, MATCH...
  }
  let dbType = normalizeColumnType(typeText);
  let base = dbType.replace(/[( ].*$/, "");
  if (typeText.startsWith("serial")) nullable = false;
  if (base === "json" && options.mariadb) {
    dbType = "longtext";
    base = "longtext";
    charset ??= "utf8mb4";
  }
  if (charset === "binary" && TO_BINARY[base] !== undefined) {
    dbType = dbType.replace(base, TO_BINARY[base]!);
    base = TO_BINARY[base]!;
  }
  if (["NATIONAL", "NCHAR", "NVARCHAR"].includes(words[0]!.toUpperCase())) charset ??= "utf8mb3";
  const textual = TEXT_TYPES.has(base);
  if (BINARY_TYPES.has(base)) charset = "binary";
  const literal = canonicalDefault(dbType, defaultValue);
  const filledBy = generated ? "generated" : literal === undefined && (defaultClause === "value" || (defaultClause === "none" && !nullable)) ? "default" : undefined;
  return {
    name,
    dbType,
    nullable,
    charset: textual || charset === "binary" ? charset : null,
    textual,
    primaryKey,
    ...(literal === undefined ? {} : { default: literal }),
    ...(filledBy === undefined ? {} : { filledBy }),
  };
}

/** A column's DEFAULT when it is a literal (a number or a string; MariaDB reports strings quoted, MySQL not), else null. */
function literalDefault(c: TokenCursor, mariadb: boolean): { text: string; quoted: boolean } | null {
  const negative = c.isPunct("-") && c.peek(1)?.kind === "number";
  if (negative) c.acceptPunct("-");
  const token = c.peek();
  if (token?.kind === "number" || token?.kind === "string") {
    c.next();
    return { text: `${negative ? "-" : ""}${token.text}`, quoted: mariadb };
  }
  skipExpression(c);
  return null;
}

function renderArgs(tokens: Token[]): string {
  return tokens
    .map((t) => (t.kind === "string" ? `'${t.text.replaceAll("'", "''")}'` : t.text))
    .join("");
}

/** Skips one expression: a token, a parenthesised group, or a function call. */
function skipExpression(c: TokenCursor): void {
  if (c.isPunct("(")) {
    c.parenthesised();
    return;
  }
  if (c.acceptPunct("-") || c.acceptPunct("+")) {
    skipExpression(c);
    return;
  }
  const token = c.next();
  if (token?.kind === "word" && c.isPunct("(")) c.parenthesised();
  // REFERENCES t (cols) ON DELETE ... is skipped word by word by the caller's loop.
}

function charsetName(name: string): string {
  const lower = name.toLowerCase();
  return lower === "utf8" ? "utf8mb3" : lower;
}

function charsetOfCollation(collation: string): string {
  const lower = collation.toLowerCase();
  if (lower === "binary") return "binary";
  return charsetName(lower.slice(0, lower.indexOf("_") < 0 ? lower.length : lower.indexOf("_")));
}

/** DEFAULT CHARSET / CHARACTER SET / COLLATE among table options. */
function tableCharset(c: TokenCursor): string | null {
  let charset: string | null = null;
  while (!c.done) {
    if (c.accept("DEFAULT")) continue;
    if (c.accept("CHARACTER", "SET") || c.accept("CHARSET")) {
      c.acceptPunct("=");
      charset = charsetName(c.identifier());
    } else if (c.accept("COLLATE")) {
      c.acceptPunct("=");
      charset ??= charsetOfCollation(c.identifier());
    } else c.next();
  }
  return charset;
}

function columnPlace(c: TokenCursor): ColumnPlace {
  if (c.accept("FIRST")) return { first: true };
  if (c.accept("AFTER")) return { after: c.identifier() };
  return null;
}

const PARTITION_MAINTENANCE = new Set(["ANALYZE", "OPTIMIZE", "REBUILD", "REPAIR", "CHECK", "COALESCE", "REORGANIZE"]);

const IGNORED_ALTER_WORDS = new Set([
  "ENGINE",
  "AUTO_INCREMENT",
  "COMMENT",
  "ROW_FORMAT",
  "ALGORITHM",
  "LOCK",
  "FORCE",
  "KEY_BLOCK_SIZE",
  "STATS_PERSISTENT",
  "STATS_AUTO_RECALC",
  "STATS_SAMPLE_PAGES",
  "PACK_KEYS",
  "CHECKSUM",
  "DELAY_KEY_WRITE",
  "MAX_ROWS",
  "MIN_ROWS",
  "AVG_ROW_LENGTH",
  "ENCRYPTION",
  "ENCRYPTED",
  "ENCRYPTION_KEY_ID",
  "PAGE_COMPRESSED",
  "PAGE_COMPRESSION_LEVEL",
  "TRANSACTIONAL",
  "INSERT_METHOD",
  "UNION",
  "TABLESPACE",
  "COMPRESSION",
  "ENABLE",
  "DISABLE",
  "DISCARD",
  "IMPORT",
  "ORDER",
  "WAIT",
  "NOWAIT",
  "VALIDATION",
  "WITH",
  "WITHOUT",
  "SECONDARY_ENGINE",
  "SECONDARY_LOAD",
  "SECONDARY_UNLOAD",
  "ANALYZE",
  "OPTIMIZE",
  "REBUILD",
  "REPAIR",
  "CHECK",
  "COALESCE",
  "REORGANIZE",
  "EXCHANGE",
  "TRUNCATE",
  "REMOVE",
  "UPGRADE",
  "PARTITION",
  "PARTITIONS",
  "SUBPARTITION",
]);

/** One clause of an ALTER TABLE: its unquoted words (upper case) and the actions parsed from it (none for those passed over). */
interface AlterClause {
  readonly words: readonly string[];
  readonly actions: readonly AlterAction[];
}

function alterActions(c: TokenCursor, table: TableName, options: ParseOptions, clauses?: AlterClause[]): AlterAction[] {
  const actions: AlterAction[] = [];
  while (!c.done) {
    const start = c.pos;
    const action = alterAction(c, table, options);
    const parsed = action === null ? [] : Array.isArray(action) ? action : [action];
    actions.push(...parsed);
    clauses?.push({ words: unquotedWords(c, start), actions: parsed });
    if (!c.done && !c.acceptPunct(",")) throw new SyntaxError(`unexpected ${c.describe()} in ALTER TABLE`);
  }
  return actions;
}

function unquotedWords(c: TokenCursor, start: number): string[] {
  const words: string[] = [];
  for (let offset = start - c.pos; offset < 0; offset++) {
    const token = c.peek(offset);
    if (token?.kind === "word" && !token.quoted) words.push(token.text.toUpperCase());
  }
  return words;
}

/** Words that, in an added column's definition, make a key or a constraint the rows already there must pass. */
const CONSTRAINING_WORDS = new Set(["UNIQUE", "PRIMARY", "KEY", "CHECK", "REFERENCES", "CONSTRAINT"]);

/** Action kinds that neither add a key nor change any value the rows hold. */
const HARMLESS_ACTIONS = new Set<AlterAction["kind"]>(["add-column", "column-default", "rename-column", "rename-table", "default-charset", "drop-primary-key"]);

/**
 * Whether an ALTER IGNORE clause is known to keep every row and value: an added column with no key or constraint, a
 * plain index added or a key dropped, a default, a name or the algorithm. Anything else (a UNIQUE or PRIMARY key, a
 * MODIFY, CHANGE or CONVERT, a DROP COLUMN that may shrink a unique key, what is not known) may drop or convert rows.
 */
function keepsRowsUnderIgnore(clause: AlterClause): boolean {
  const [first, second] = clause.words;
  if (clause.actions.length > 0) {
    return clause.actions.every((action) => HARMLESS_ACTIONS.has(action.kind)) && (first !== "ADD" || !clause.words.slice(1).some((word) => CONSTRAINING_WORDS.has(word)));
  }
  if (first === "ADD") return ["INDEX", "KEY", "FULLTEXT", "SPATIAL"].includes(second ?? "");
  if (first === "DROP") return ["INDEX", "KEY", "FOREIGN", "CHECK", "CONSTRAINT"].includes(second ?? "");
  if (first === "RENAME" || (first === "ALTER" && second === "INDEX")) return true;
  return first === "ALGORITHM" || first === "LOCK" || first === "COMMENT";
}

function alterAction(c: TokenCursor, table: TableName, options: ParseOptions): AlterAction | AlterAction[] | null {
  if (c.accept("ADD")) {
    if (c.accept("PRIMARY", "KEY") || (c.isKeyword("CONSTRAINT") && c.accept("CONSTRAINT") && skipConstraintName(c) && c.accept("PRIMARY", "KEY"))) {
      const columns = keyColumns(c);
      c.skipToListEnd();
      return { kind: "add-primary-key", columns };
    }
    if (isTableConstraint(c) || c.isKeyword("PARTITION")) {
      c.skipToListEnd();
      return null;
    }
    c.accept("COLUMN");
    const ifNotExists = c.accept("IF", "NOT", "EXISTS");
    if (c.isPunct("(")) {
      const inner = new TokenCursor(c.parenthesised());
      const columns: AlterAction[] = [];
      while (!inner.done) {
        if (isTableConstraint(inner) || inner.isKeyword("PRIMARY")) {
          if (inner.accept("PRIMARY", "KEY")) columns.push({ kind: "add-primary-key", columns: keyColumns(inner) });
          inner.skipToListEnd();
        } else columns.push({ kind: "add-column", column: columnDefinition(inner, options), place: null, ifNotExists });
        if (!inner.acceptPunct(",")) break;
      }
      return columns;
    }
    const column = columnDefinition(c, options);
    return { kind: "add-column", column, place: columnPlace(c), ifNotExists };
  }
  if (c.accept("DROP")) {
    if (c.accept("PRIMARY", "KEY")) return { kind: "drop-primary-key" };
    if (c.accept("PARTITION")) return partitionRows(c, "DROP PARTITION", null, partitionList(c));
    if (c.accept("INDEX") || c.accept("KEY") || c.accept("FOREIGN", "KEY") || c.accept("CONSTRAINT") || c.accept("CHECK") || c.accept("SYSTEM", "VERSIONING") || c.accept("PERIOD")) {
      c.skipToListEnd();
      return null;
    }
    c.accept("COLUMN");
    const ifExists = c.accept("IF", "EXISTS");
    const name = c.identifier();
    c.accept("RESTRICT");
    c.accept("CASCADE");
    return { kind: "drop-column", name, ifExists };
  }
  if (c.accept("MODIFY")) {
    c.accept("COLUMN");
    c.accept("IF", "EXISTS");
    const column = columnDefinition(c, options);
    return { kind: "modify-column", column, place: columnPlace(c) };
  }
  if (c.accept("CHANGE")) {
    c.accept("COLUMN");
    c.accept("IF", "EXISTS");
    const from = c.identifier();
    const column = columnDefinition(c, options);
    return { kind: "change-column", from, column, place: columnPlace(c) };
  }
  if (c.accept("RENAME")) {
    if (c.accept("COLUMN")) {
      c.accept("IF", "EXISTS");
      const from = c.identifier();
      if (!c.accept("TO")) throw new SyntaxError("RENAME COLUMN without TO");
      return { kind: "rename-column", from, to: c.identifier() };
    }
    if (c.accept("INDEX") || c.accept("KEY")) {
      c.skipToListEnd();
      return null;
    }
    if (!c.accept("TO")) c.accept("AS");
    return { kind: "rename-table", to: c.qualifiedName(table.database) };
  }
  if (c.accept("ALTER")) {
    const column = c.accept("COLUMN");
    const token = c.peek();
    // Without COLUMN, a bare INDEX/CHECK/CONSTRAINT starts another action; a quoted `index` is a column's name.
    if ((column || (token?.kind === "word" && (token.quoted || !["INDEX", "CHECK", "CONSTRAINT"].includes(token.text.toUpperCase())))) && (c.isKeyword("SET", 1) || c.isKeyword("DROP", 1))) {
      c.accept("IF", "EXISTS");
      const name = c.identifier();
      if (c.accept("DROP", "DEFAULT")) return { kind: "column-default", name };
      if (!c.accept("SET", "DEFAULT")) {
        c.skipToListEnd();
        return null;
      }
      const value = c.accept("NULL") ? null : literalDefault(c, options.mariadb);
      c.skipToListEnd();
      return { kind: "column-default", name, value };
    }
    c.accept("INDEX");
    c.accept("CHECK");
    c.accept("CONSTRAINT");
    c.skipToListEnd();
    return null;
  }
  if (c.accept("TRUNCATE", "PARTITION")) return partitionRows(c, "TRUNCATE PARTITION", null, partitionList(c));
  if (c.accept("EXCHANGE", "PARTITION")) {
    c.identifier();
    if (!c.accept("WITH", "TABLE")) throw new SyntaxError("EXCHANGE PARTITION without WITH TABLE");
    return partitionRows(c, "EXCHANGE PARTITION", c.qualifiedName(table.database));
  }
  if (c.accept("CONVERT", "PARTITION")) {
    c.identifier();
    if (!c.accept("TO", "TABLE")) throw new SyntaxError("CONVERT PARTITION without TO TABLE");
    return partitionRows(c, "CONVERT PARTITION", c.qualifiedName(table.database));
  }
  if (c.accept("CONVERT", "TABLE")) return partitionRows(c, "CONVERT TABLE ... TO PARTITION", null);
  if (c.isKeyword("IMPORT")) return partitionRows(c, "IMPORT TABLESPACE", null);
  if (c.accept("CONVERT", "TO")) {
    if (!c.accept("CHARACTER", "SET") && !c.accept("CHARSET")) throw new SyntaxError(`unexpected ${c.describe()} after CONVERT TO`);
    c.acceptPunct("=");
    if (c.isKeyword("DEFAULT")) throw new SyntaxError("CONVERT TO CHARACTER SET DEFAULT takes the database's charset");
    const charset = charsetName(c.identifier());
    // The server makes CHAR/VARCHAR/TEXT columns BINARY/VARBINARY/BLOB types then, not character columns in charset binary.
    if (charset === "binary") throw new SyntaxError("CONVERT TO CHARACTER SET binary changes the character columns' types");
    if (c.accept("COLLATE")) {
      c.acceptPunct("=");
      c.identifier();
    }
    return { kind: "convert-charset", charset };
  }
  if (c.isKeyword("DEFAULT") || c.isKeyword("CHARACTER") || c.isKeyword("CHARSET") || c.isKeyword("COLLATE")) {
    c.accept("DEFAULT");
    let charset: string;
    if (c.accept("CHARACTER", "SET") || c.accept("CHARSET")) {
      c.acceptPunct("=");
      charset = charsetName(c.identifier());
      if (c.accept("COLLATE")) {
        c.acceptPunct("=");
        c.identifier();
      }
    } else if (c.accept("COLLATE")) {
      c.acceptPunct("=");
      charset = charsetOfCollation(c.identifier());
    } else throw new SyntaxError(`unexpected ${c.describe()} after DEFAULT`);
    return { kind: "default-charset", charset };
  }
  const token = c.peek();
  // Partition maintenance keeps the rows; its partition list is separated by commas too, so it takes the rest.
  if (token?.kind === "word" && !token.quoted && PARTITION_MAINTENANCE.has(token.text.toUpperCase()) && c.isKeyword("PARTITION", 1)) {
    while (!c.done) c.next();
    return null;
  }
  if (token?.kind === "word" && !token.quoted && IGNORED_ALTER_WORDS.has(token.text.toUpperCase())) {
    c.skipToListEnd();
    return null;
  }
  throw new SyntaxError(`ALTER TABLE action ${c.describe()} is not understood`);
}

/**
 * A partition operation that moves rows with no row event. It is the statement's last clause, and its partition list
 * is separated by commas like the statement's actions: the rest of the statement is taken with it.
 */
function partitionRows(c: TokenCursor, what: string, other: TableName | null, partitions: readonly string[] | null = null): AlterAction {
  while (!c.done) c.next();
  return { kind: "rows-changed", what, other, partitions };
}

/** `[IF EXISTS] p0, p1` (null for ALL), the names as the statement spells them. */
function partitionList(c: TokenCursor): string[] | null {
  c.accept("IF", "EXISTS");
  if (c.accept("ALL")) return null;
  const names = [c.identifier()];
  while (c.acceptPunct(",")) names.push(c.identifier());
  return names;
}

/** The tables a statement that could not be parsed names after TABLE / ON / TO. */
function touchedTables(c: TokenCursor, defaultDatabase: string): TableName[] {
  const first = c.peek();
  if (first?.kind !== "word" || !["CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE"].includes(first.text.toUpperCase())) return [];
  const tables: TableName[] = [];
  while (!c.done) {
    if (c.accept("TABLE") || c.accept("TO") || (tables.length > 0 && c.acceptPunct(","))) {
      c.accept("IF", "NOT", "EXISTS");
      c.accept("IF", "EXISTS");
      try {
        tables.push(c.qualifiedName(defaultDatabase));
      } catch {
        break;
      }
      if (first.text.toUpperCase() === "ALTER" || first.text.toUpperCase() === "CREATE") break;
    } else c.next();
  }
  return tables;
}
