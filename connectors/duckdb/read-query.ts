/**
 * Read-only SQL against a DuckDB database (the sink's, or its file opened by `sluice query`):
 * the text must be one statement that DuckDB's own parser and binder call a SELECT, calling no
 * function that acts rather than reads (checkpoint(), query('<other SQL>')); it runs on a
 * connection of its own inside a READ ONLY transaction (always rolled back), on a database whose
 * external access (files, extensions) is off with its configuration locked; its answer is
 * streamed and cut at a row and a byte limit, and it is interrupted past a timeout.
 */
import { DuckDBDateValue, DuckDBTypeId, JsonDuckDBValueConverter, StatementType } from "@duckdb/node-api";
import type { DuckDBConnection, DuckDBInstance, DuckDBPreparedStatement, DuckDBValueConverter, Json } from "@duckdb/node-api";
import { formatDuration, formatSize } from "../../config/units.ts";
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";
import { errorMessage } from "../sinks/errors.ts";

export interface ReadQueryLimits {
  readonly maxRows: number;
  /** Bound on the rows' JSON text. */
  readonly maxBytes: number;
  readonly timeoutMs: number;
}

export interface ReadQueryResult {
  readonly columns: string[];
  readonly rows: Record<string, unknown>[];
  /** Why the answer stops short of the whole result, or null when it is whole. */
  readonly truncated: string | null;
}

/** Instance options that make a database opened for queries unable to touch anything but itself. */
export const LOCKED_DOWN_OPTIONS: Readonly<Record<string, string>> = { enable_external_access: "false", lock_configuration: "true" };

/**
 * Turns external access off for the whole database instance and locks its configuration, so no
 * statement (on any connection) can read or write files, load extensions or SET it back.
 * The sink's own writes need neither.
 */
export async function lockDown(connection: DuckDBConnection): Promise<void> {
  const settings = (await connection.runAndReadAll("SELECT current_setting('enable_external_access') AS external, current_setting('lock_configuration') AS locked")).getRowObjectsJS()[0]!;
  if (settings["locked"] === true) {
    if (settings["external"] === true) throw new Error("the database's configuration is locked with external access on");
    return;
  }
  await connection.run("SET enable_external_access = false");
  await connection.run("SET lock_configuration = true");
}

function statementTypeName(type: number): string {
  return Object.entries(StatementType).find(([, value]) => value === type)?.[0] ?? `type ${type}`;
}

function refused(message: string, context: ErrorContext): SluiceError {
  return new SluiceError(`${message}: only a single SELECT statement is allowed (SELECT, WITH ... SELECT, FROM, VALUES, SHOW, DESCRIBE, SUMMARIZE)`, {
    code: "QUERY_NOT_READ_ONLY",
    context,
  });
}

/** Parses the text with DuckDB's parser and prepares its one statement; anything but one SELECT is refused. */
async function prepareSelect(connection: DuckDBConnection, sql: string, context: ErrorContext): Promise<DuckDBPreparedStatement> {
  if (sql.trim() === "") throw refused("the query is empty", context);
  let extracted;
  try {
    extracted = await connection.extractStatements(sql);
  } catch (error) {
    // DuckDB reports text with no statement at all (only a comment) as a failed callback.
    const message = errorMessage(error);
    if (/native callback/.test(message)) throw refused("the query holds no statement", context);
    // IMPORT DATABASE reads its files while the text is parsed: external access off refuses it here.
    throw new SluiceError(`cannot parse the query${fileHint(message)}: ${message}`, { code: "QUERY_INVALID", cause: error, context });
  }
  if (extracted.count === 0) throw refused("the query holds no statement", context);
  const types: string[] = [];
  const prepared: DuckDBPreparedStatement[] = [];
  for (let index = 0; index < extracted.count; index++) {
    try {
      const statement = await extracted.prepare(index);
      prepared.push(statement);
      types.push(statementTypeName(statement.statementType));
    } catch (error) {
      if (extracted.count > 1) {
        types.push("(not preparable)");
        continue;
      }
      // Not bound (e.g. COPY to a file refused for lack of access): name a statement that is no SELECT as such.
      const tree = await selectTree(connection, sql);
      if (tree === null) throw refused("the query is not a SELECT statement", context);
      refuseActing(tree, context);
      throw failed(error, context);
    }
  }
  if (extracted.count > 1) throw refused(`the query holds ${extracted.count} statements (${types.join(", ")})`, context);
  if (prepared[0]!.statementType !== StatementType.SELECT) throw refused(`the query is a ${types[0]} statement`, context);
  // A PRAGMA or a PIVOT inside a query becomes a SELECT only once rewritten: its parts are not visible here.
  const tree = await selectTree(connection, sql);
  if (tree === null) throw refused("the query is a SELECT only as DuckDB rewrites it (PRAGMA, PIVOT in a subquery); write it as a plain SELECT (e.g. SHOW TABLES)", context);
  refuseActing(tree, context);
  return prepared[0]!;
}

/**
 * Functions a SELECT may call that act rather than read: checkpoints write the file; query() and
 * json_execute_serialized_sql run SQL text of their own, which would escape this check; the
 * others switch settings that lock_configuration does not guard: profiling (the connection then
 * prints every query's plan and text to the process's standard output, the daemon's JSON log
 * stream), logging (kept in memory outside memory_limit) and the parser, or write to the log.
 */
const REFUSED_FUNCTIONS = new Set([
  "checkpoint",
  "force_checkpoint",
  "query",
  "json_execute_serialized_sql",
  "enable_profiling",
  "disable_profiling",
  "enable_logging",
  "disable_logging",
  "truncate_duckdb_logs",
  "write_log",
  "enable_peg_parser",
  "disable_peg_parser",
]);

/**
 * The statement that serializes a query's parse tree, prepared once per connection: the query
 * endpoint keeps its connection, and each DuckDB call is a turn of the sink thread's event loop
 * (parsing and preparing it for every query took four more).
 */
const treeStatements = new WeakMap<DuckDBConnection, Promise<DuckDBPreparedStatement>>();

/** The statement as DuckDB's parser reads it (json_serialize_sql serializes SELECTs only), or null for anything else; nothing is bound. */
async function selectTree(connection: DuckDBConnection, sql: string): Promise<unknown> {
  let statement = treeStatements.get(connection);
  if (statement === undefined) {
    statement = connection.prepare("SELECT json_serialize_sql($1::VARCHAR) AS tree");
    treeStatements.set(connection, statement);
    statement.catch(() => treeStatements.delete(connection));
  }
  const prepared = await statement;
  prepared.bind([sql]);
  const result = await prepared.run();
  const text = result.chunkCount > 0 ? result.getChunk(0).getRowValues(0)[0] : null;
  if (typeof text !== "string") return null;
  const tree = JSON.parse(text) as { error?: boolean };
  return tree.error === true ? null : tree;
}

function refuseActing(tree: unknown, context: ErrorContext): void {
  const acting = [...calledFunctions(tree)].filter((name) => REFUSED_FUNCTIONS.has(name));
  if (acting.length === 0) return;
  const one = acting.length === 1;
  throw refused(`the query calls ${acting.map((name) => `${name}()`).join(", ")}, which ${one ? "acts" : "act"} rather than ${one ? "reads" : "read"}`, context);
}

/** Names of every function the parsed statement calls, scalar and table functions alike, lower-cased. */
function calledFunctions(tree: unknown, names = new Set<string>()): Set<string> {
  if (Array.isArray(tree)) for (const item of tree) calledFunctions(item, names);
  else if (typeof tree === "object" && tree !== null) {
    for (const [key, value] of Object.entries(tree)) {
      if (key === "function_name" && typeof value === "string") names.add(value.toLowerCase());
      else calledFunctions(value, names);
    }
  }
  return names;
}

function fileHint(message: string): string {
  return /Permission Error/.test(message) ? " (queries cannot read files, directories or extensions)" : "";
}

function failed(error: unknown, context: ErrorContext): SluiceError {
  const message = errorMessage(error);
  return new SluiceError(`query failed${fileHint(message)}: ${message}`, { code: "QUERY_FAILED", cause: error, context });
}

/** Runs one SELECT read-only on a connection of its own; see the module comment for the bounds. */
export async function runReadQuery(instance: DuckDBInstance, sql: string, limits: ReadQueryLimits, context: ErrorContext): Promise<ReadQueryResult> {
  const connection = await instance.connect();
  try {
    return await readOn(connection, sql, limits, context);
  } finally {
    await endRead(connection);
    connection.closeSync();
  }
}

/**
 * Runs one SELECT read-only on `connection`, a connection used for nothing else, and leaves its
 * READ ONLY transaction open: `endRead` ends it. The answer does not wait for that (a turn of the
 * thread's event loop fewer when the thread is busy); the next query on the connection must.
 */
export async function readOn(connection: DuckDBConnection, sql: string, limits: ReadQueryLimits, context: ErrorContext): Promise<ReadQueryResult> {
  const rows: Record<string, unknown>[] = [];
  const { columns, truncated } = await streamRows(connection, sql, limits, context, { columns: () => undefined, row: (row) => rows.push(row) });
  return { columns, rows, truncated };
}

/**
 * As readOn, the answer as the JSON text of a ReadQueryResult, in UTF-8, written row by row into
 * one buffer of its own (it can be transferred to another thread): no copy of the rows as objects
 * is kept, and no JSON text of the whole answer is made again from them.
 */
export async function readJsonOn(connection: DuckDBConnection, sql: string, limits: ReadQueryLimits, context: ErrorContext): Promise<Uint8Array> {
  const text = new GrowingBytes();
  let first = true;
  const { truncated } = await streamRows(connection, sql, limits, context, {
    columns: (columns) => text.append(`{"columns":${JSON.stringify(columns)},"rows":[`),
    row: (_row, json) => {
      text.append(first ? json : `,${json}`);
      first = false;
    },
  });
  text.append(`],"truncated":${JSON.stringify(truncated)}}`);
  return text.bytes();
}

/** UTF-8 text appended into one ArrayBuffer of its own, doubling as it grows. */
class GrowingBytes {
  #buffer = Buffer.allocUnsafeSlow(64 * 2 ** 10);
  #length = 0;

  append(text: string): void {
    const needed = this.#length + Buffer.byteLength(text);
    if (needed > this.#buffer.length) {
      const grown = Buffer.allocUnsafeSlow(Math.max(needed, 2 * this.#buffer.length));
      this.#buffer.copy(grown, 0, 0, this.#length);
      // Its memory given back now (a buffer of its own), not at a collection: V8 counts it, but lets tens of MiB wait.
      this.#buffer.buffer.transfer(0);
      this.#buffer = grown;
    }
    this.#length += this.#buffer.write(text, this.#length);
  }

  /** The text in an ArrayBuffer of exactly its size (the one grown may be up to twice that, and is what a transfer hands on); this object is done with. */
  bytes(): Uint8Array {
    return new Uint8Array(this.#buffer.buffer.transfer(this.#length));
  }
}

/** What the row loop hands on: the columns once known (before any row), then each row as a value and as its JSON text. */
interface RowTaker {
  columns(columns: readonly string[]): void;
  row(row: Record<string, unknown>, json: string): void;
}

/**
 * The node API's JSON values, but DATE infinity and -infinity as those words (as it writes a TIMESTAMP's):
 * it wrote them as DuckDB's last and first days, so PostgreSQL's date 'infinity' showed as 5881580-07-11.
 * Passed down to the items of lists, structs and maps.
 */
const answerValue: DuckDBValueConverter<Json> = (value, type, converter) => {
  if (type.typeId === DuckDBTypeId.DATE && value instanceof DuckDBDateValue) {
    if (value.days === DuckDBDateValue.PosInf.days) return "infinity";
    if (value.days === DuckDBDateValue.NegInf.days) return "-infinity";
  }
  return JsonDuckDBValueConverter(value, type, converter);
};

/** The row loop of readOn and readJsonOn, cut at the limits. */
async function streamRows(connection: DuckDBConnection, sql: string, limits: ReadQueryLimits, context: ErrorContext, take: RowTaker): Promise<{ columns: string[]; truncated: string | null }> {
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    connection.interrupt();
  }, limits.timeoutMs);
  try {
    await connection.run("BEGIN TRANSACTION READ ONLY");
    const statement = await prepareSelect(connection, sql, context);
    const result = await statement.stream();
    const columns = result.deduplicatedColumnNames();
    take.columns(columns);
    const end = (truncated: string | null) => ({ columns, truncated });
    let rows = 0;
    let bytes = 2;
    for (;;) {
      const chunk = await result.fetchChunk();
      if (!chunk || chunk.rowCount === 0) return end(null);
      try {
        for (let at = 0; at < chunk.rowCount; at++) {
          if (rows >= limits.maxRows) {
            return end(`the answer is cut at ${limits.maxRows} rows (the sink's query.max_rows); add a LIMIT or narrow the query`);
          }
          const values = chunk.convertRowValues(at, answerValue);
          const row = Object.fromEntries(columns.map((name, index) => [name, values[index] ?? null]));
          const json = JSON.stringify(row);
          bytes += Buffer.byteLength(json) + 1;
          if (bytes > limits.maxBytes) {
            return end(`the answer is cut after ${rows} rows: the next row would pass ${formatSize(limits.maxBytes)} of JSON (the sink's query.max_bytes); select fewer columns or rows`);
          }
          take.row(row, json);
          rows++;
        }
      } finally {
        // A chunk's values (up to 2,048 rows of them: 200 MB for 200 values of 1 MB) are DuckDB's
        // memory, which V8 does not see: freed now, not when a collection happens to finalize the chunk.
        chunk.reset();
      }
    }
  } catch (error) {
    if (timedOut) {
      throw new SluiceError(`the query ran past ${formatDuration(limits.timeoutMs)} (the sink's query.timeout) and was interrupted`, { code: "QUERY_TIMEOUT", cause: error, context });
    }
    if (error instanceof SluiceError) throw error;
    throw failed(error, context);
  } finally {
    clearTimeout(timer);
  }
}

/** Ends the READ ONLY transaction `readOn` began (if it began one); false when the connection no longer answers. */
export async function endRead(connection: DuckDBConnection): Promise<boolean> {
  try {
    await connection.run("ROLLBACK");
    return true;
  } catch (error) {
    // No transaction open (BEGIN itself failed) is fine; anything else means the connection is not usable.
    return /no transaction is active/i.test(errorMessage(error));
  }
}
