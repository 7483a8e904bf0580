/**
 * The pre-flight check of a migration: parse it in the source's dialect, apply it to the tables'
 * latest registered schemas, map each changed table to the Avro schemas capture would register,
 * and check those against their subjects' histories at the subjects' compatibility levels, as the
 * registry will when the change reaches capture. Per table: compatible, incompatible (each
 * problem with its column, rule and a suggestion) or not checked (and why).
 */
import type { TableSchema } from "../../connectors/contracts.ts";
import { parseSchema, parseSchemaText } from "../avro-parse.ts";
import { checkAgainstHistory } from "../compatibility-levels.ts";
import type { CompatibilityLevel, VersionedSchema, VersionIncompatibility } from "../compatibility-levels.ts";
import type { NumericMode } from "../postgres-types.ts";
import { subjectForTopic } from "../registry.ts";
import type { SchemaRegistry } from "../registry.ts";
import { tableSchemaFromAvro } from "../table-from-avro.ts";
import { mapTable } from "../table-mapping.ts";
import { applyMigration } from "./apply-migration.ts";
import type { MigrationSource, TableOutcome } from "./apply-migration.ts";
import { parseMysqlMigration } from "./mysql-migration.ts";
import { parsePostgresMigration } from "./postgres-migration.ts";
import { MigrationParseError, qualifiedName } from "./steps.ts";
import type { MigrationStep, StatementReport } from "./steps.ts";

export interface MigrationFile {
  readonly name: string;
  readonly text: string;
}

export interface CheckMigrationOptions {
  readonly source: MigrationSource;
  /** `<deployment>.<source>`: topics are `<prefix>.<schema>.<table>`. */
  readonly topicPrefix: string;
  readonly numericMode: NumericMode;
  readonly registry: SchemaRegistry;
  /** MySQL: database of unqualified names. PostgreSQL: schema of unqualified names (default public). */
  readonly defaultNamespace?: string;
  readonly mariadb?: boolean;
}

export interface ColumnProblem {
  /** The column concerned, when the problem is about one. */
  readonly column: string | null;
  readonly subject: string;
  /** "BACKWARD: READER_FIELD_MISSING_DEFAULT_VALUE (new schema reading version 3)". */
  readonly rule: string;
  readonly message: string;
  readonly suggestion: string;
}

export type TableVerdict = "compatible" | "incompatible" | "not-checked";

export interface TableReport {
  readonly table: string;
  readonly verdict: TableVerdict;
  /** What the migration does to the table, in order. */
  readonly changes: readonly string[];
  readonly subjects: readonly { readonly subject: string; readonly level: CompatibilityLevel; readonly versions: number }[];
  readonly problems: readonly ColumnProblem[];
  /** Why it was not checked, or what to know about the verdict. */
  readonly notes: readonly string[];
}

export interface MigrationReport {
  readonly source: string;
  readonly dialect: "postgres" | "mysql";
  readonly statements: readonly StatementReport[];
  readonly tables: readonly TableReport[];
  /** Files that could not be parsed. */
  readonly errors: readonly string[];
  /** 0 every table compatible; 1 a table is incompatible; 2 something could not be checked. */
  readonly exitCode: 0 | 1 | 2;
}

export async function checkMigration(files: readonly MigrationFile[], options: CheckMigrationOptions): Promise<MigrationReport> {
  const { source } = options;
  const statements: StatementReport[] = [];
  const errors: string[] = [];
  for (const file of files) {
    try {
      statements.push(...(await parseFile(file, options)));
    } catch (error) {
      if (!(error instanceof MigrationParseError)) throw error;
      errors.push(error.message);
    }
  }
  const current = await registeredTables(options);
  const steps: MigrationStep[] = statements.flatMap((s) => (s.effect.kind === "steps" ? s.effect.steps : []));
  const outcomes = applyMigration(source, new Map([...current].map(([id, t]) => [id, t.table])), steps);
  const tables: TableReport[] = [];
  for (const outcome of outcomes.values()) {
    const registered = current.get(qualifiedName(outcome.table));
    tables.push(await checkTable(outcome, registered?.numericMode ?? options.numericMode, registered?.fieldNames, options));
  }
  for (const statement of statements) {
    if (statement.effect.kind !== "not-understood") continue;
    for (const table of statement.effect.tables) {
      const id = qualifiedName(table);
      if (!source.captures(table.schema, table.table) || tables.some((t) => t.table === id)) continue;
      tables.push({ table: id, verdict: "not-checked", changes: [], subjects: [], problems: [], notes: [`${statement.file}:${statement.line}: not understood: ${statement.effect.reason}`] });
    }
  }
  const notUnderstood = statements.some((s) => s.effect.kind === "not-understood");
  const exitCode = errors.length > 0 || notUnderstood || tables.some((t) => t.verdict === "not-checked") ? 2 : tables.some((t) => t.verdict === "incompatible") ? 1 : 0;
  return { source: source.name, dialect: source.kind, statements, tables, errors, exitCode };
}

async function parseFile(file: MigrationFile, options: CheckMigrationOptions): Promise<StatementReport[]> {
  if (options.source.kind === "postgres") return parsePostgresMigration(file.name, file.text, options.defaultNamespace === undefined ? {} : { defaultSchema: options.defaultNamespace });
  return parseMysqlMigration(file.name, file.text, { defaultDatabase: options.defaultNamespace ?? null, mariadb: options.mariadb ?? false });
}

interface RegisteredTable {
  readonly table: TableSchema;
  readonly numericMode: NumericMode;
  /** Column name -> field name in the registered schema (the columns keep them). */
  readonly fieldNames: ReadonlyMap<string, string> | undefined;
}

/** The latest registered schema of every table of the source, by "schema.table". */
async function registeredTables(options: CheckMigrationOptions): Promise<Map<string, RegisteredTable>> {
  const tables = new Map<string, RegisteredTable>();
  const prefix = `${options.topicPrefix}.`;
  for (const subject of await options.registry.listSubjects()) {
    if (!subject.startsWith(prefix) || !subject.endsWith("-value")) continue;
    const latest = await options.registry.getLatest(subject);
    if (latest === null) continue;
    let read: ReturnType<typeof tableSchemaFromAvro>;
    try {
      read = tableSchemaFromAvro(latest.schema);
    } catch {
      continue; // not a table's subject (transaction metadata, outbox events)
    }
    if (`${prefix}${read.table.schema}.${read.table.table}-value` !== subject) continue;
    tables.set(`${read.table.schema}.${read.table.table}`, { table: read.table, numericMode: read.options.numericMode ?? options.numericMode, fieldNames: read.options.fieldNames });
  }
  return tables;
}

async function checkTable(outcome: TableOutcome, numericMode: NumericMode, fieldNames: ReadonlyMap<string, string> | undefined, options: CheckMigrationOptions): Promise<TableReport> {
  const id = qualifiedName(outcome.table);
  const base = { table: id, changes: outcome.changes };
  if (outcome.failures.length > 0) return { ...base, verdict: "not-checked", subjects: [], problems: [], notes: outcome.failures.map((f) => `does not apply to the registered schema: ${f}`) };
  if (outcome.after === null) {
    const note = outcome.unknown && outcome.before === null ? "no registered schema (the table has had no captured changes yet): nothing to be incompatible with" : "no new schema is registered; its topic keeps its records";
    return { ...base, verdict: "compatible", subjects: [], problems: [], notes: [note] };
  }
  const mapping = mapTable(outcome.after, { name: options.topicPrefix, numericMode, ...(fieldNames === undefined ? {} : { fieldNames }) });
  const topic = `${options.topicPrefix}.${outcome.table.schema}.${outcome.table.table}`;
  const candidates: [string, unknown][] = [[subjectForTopic(topic, "value"), mapping.envelopeSchema]];
  if (mapping.keySchema !== null) candidates.unshift([subjectForTopic(topic, "key"), mapping.keySchema]);
  const subjects: TableReport["subjects"][number][] = [];
  const problems: ColumnProblem[] = [];
  for (const [subject, schema] of candidates) {
    const history: VersionedSchema[] = [];
    for (const version of await options.registry.listVersions(subject)) {
      const found = await options.registry.getVersion(subject, version);
      if (found !== null) history.push({ version, schema: parseSchemaText(found.schema) });
    }
    const level = await options.registry.getCompatibilityLevel(subject);
    subjects.push({ subject, level, versions: history.length });
    for (const problem of checkAgainstHistory(parseSchema(schema), history, level)) problems.push(describe(problem, subject, level, outcome, options.source.kind));
  }
  const notes: string[] = [];
  if (outcome.before === null && subjects.every((s) => s.versions === 0)) notes.push("new subjects: the first schema is accepted at any level");
  if (outcome.changes.some((c) => c.startsWith("renamed from"))) notes.push("a renamed table's records go to a new topic");
  return { ...base, verdict: problems.length === 0 ? "compatible" : "incompatible", subjects, problems: dedupe(problems), notes };
}

function describe(problem: VersionIncompatibility, subject: string, level: CompatibilityLevel, outcome: TableOutcome, dialect: "postgres" | "mysql"): ColumnProblem {
  const column = /column `([^`]+)`/.exec(problem.message)?.[1] ?? null;
  const reading = problem.direction === "backward" ? `the new schema reading version ${problem.version}` : `version ${problem.version} reading the new schema`;
  return {
    column,
    subject,
    rule: `${level}: ${problem.kind} (${reading})`,
    message: problem.message,
    suggestion: suggestion(problem, column === null ? undefined : outcome.touched.get(column), dialect),
  };
}

function suggestion(problem: VersionIncompatibility, step: MigrationStep["kind"] | undefined, dialect: "postgres" | "mysql"): string {
  const backward = problem.direction === "backward";
  switch (problem.kind) {
    case "READER_FIELD_MISSING_DEFAULT_VALUE":
      if (backward) {
        if (step === "rename-column") return "rename in steps: add the new column as nullable, copy the data, drop the old column in a later release";
        return dialect === "mysql"
          ? "add the column as nullable, or NOT NULL with an integer DEFAULT (the MySQL source carries literal defaults of integer columns, and of text columns on MariaDB, not others), and make it NOT NULL in a later release if the level allows"
          : "add a DEFAULT with a literal value (e.g. DEFAULT 0), or add the column as nullable first";
      }
      if (step === "rename-column") return "consumers on the old schema need the old column: keep it beside the new one until they upgrade";
      return "consumers on the old schema need this column: make it nullable first (a release later drop it), or keep it";
    case "TYPE_MISMATCH":
    case "MISSING_UNION_BRANCH":
      // The value one side cannot read is a null (a column made NOT NULL, or made nullable), or of another type.
      if (/\bwriter(?:'s| type) null\b/.test(problem.message)) {
        return backward
          ? "rows already written have nulls in this column: keep it nullable (a NOT NULL column cannot read them)"
          : "consumers on the old schema expect no nulls: keep the column NOT NULL, or use level BACKWARD";
      }
      return backward
        ? "the new type cannot hold the values already written: keep the wider type, or add a new column of the new type and move readers to it"
        : "consumers on the old schema cannot read the new type: add a new column of the new type instead of changing this one, or use level BACKWARD";
    case "MISSING_ENUM_SYMBOLS":
      return "keep every existing enum value; add new values only";
    case "NAME_MISMATCH":
    case "FIXED_SIZE_MISMATCH":
      return "the record changed shape in a way no reader resolves: create a new table (a new topic) instead";
  }
}

function dedupe(problems: readonly ColumnProblem[]): ColumnProblem[] {
  const seen = new Set<string>();
  return problems.filter((p) => {
    const key = `${p.subject}|${p.rule}|${p.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
