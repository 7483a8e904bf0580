/**
 * `sluice schema check-migration -c FILE [--source NAME] [--database NAME] [--mariadb] [--json] MIGRATION.sql...`:
 * the pre-flight check of schema-registry/migration/check-migration.ts, printed for people or as
 * JSON. Exit 0 every table compatible, 1 a table incompatible, 2 something could not be checked.
 */
import { readFile } from "node:fs/promises";
import type { SluiceConfig } from "../config/schema.ts";
import { includingPatterns, tableMatcher } from "../connectors/common/table-patterns.ts";
import type { MigrationFile, MigrationReport } from "../schema-registry/migration/check-migration.ts";
import type { SchemaRegistry } from "../schema-registry/registry.ts";
import { dataTopicPrefix } from "./components.ts";

export interface CheckMigrationArgs {
  readonly files: readonly string[];
  readonly source?: string;
  /** MySQL: database of unqualified names; PostgreSQL: schema of unqualified names. */
  readonly database?: string;
  readonly json: boolean;
  /** MySQL sources: the server is MariaDB (JSON is LONGTEXT; quoted text defaults are carried). */
  readonly mariadb?: boolean;
}

interface Out {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const CHECK_MIGRATION_USAGE = `  sluice schema check-migration [--source NAME] [--database NAME] [--mariadb] [--json] MIGRATION.sql...
                                          would capture accept these migrations' schema changes? Parses
                                          each file in the source's dialect, applies it to the tables'
                                          registered schemas and checks the Avro schemas capture would
                                          register at each subject's compatibility level
                                          --source NAME    the source the tables belong to (default: the only one)
                                          --mariadb        MySQL sources: the server is MariaDB (its text defaults count)
                                          --database NAME  MySQL: database of unqualified table names (default: the
                                                           one database the source's tables name); PostgreSQL:
                                                           schema of unqualified names (default public)
                                          exit 0 compatible, 1 incompatible, 2 could not check`;

export async function runCheckMigration(config: SluiceConfig, registry: SchemaRegistry, args: CheckMigrationArgs, out: Out): Promise<number> {
  if (args.files.length === 0) {
    out.stderr("error: schema check-migration needs at least one MIGRATION.sql file\n");
    return 2;
  }
  const source = args.source === undefined ? (config.sources.length === 1 ? config.sources[0] : undefined) : config.sources.find((s) => s.name === args.source);
  if (source === undefined) {
    out.stderr(args.source === undefined ? `error: the config has ${config.sources.length} sources (${config.sources.map((s) => s.name).join(", ")}): name one with --source\n` : `error: no source "${args.source}" in the config (sources: ${config.sources.map((s) => s.name).join(", ")})\n`);
    return 2;
  }
  const files: MigrationFile[] = [];
  for (const name of args.files) {
    try {
      files.push({ name, text: await readFile(name, "utf8") });
    } catch (error) {
      out.stderr(`error: cannot read ${name}: ${(error as Error).message}\n`);
      return 2;
    }
  }
  // Loaded here, not with the command line: the SQL parsers (libpg-query's WebAssembly) cost every other command ~0.1 CPU-second.
  const { checkMigration } = await import("../schema-registry/migration/check-migration.ts");
  let report: MigrationReport;
  try {
    report = await checkMigration(files, {
      source: { name: source.name, kind: source.kind, database: source.kind === "postgres" ? source.database : "", captures: tableMatcher(source.tables) },
      topicPrefix: dataTopicPrefix(config.name, source.name),
      numericMode: source.decimal_mode,
      registry,
      mariadb: args.mariadb === true,
      ...(args.database === undefined ? defaultNamespace(source) : { defaultNamespace: args.database }),
    });
  } catch (error) {
    out.stderr(`error: the schema registry could not answer, nothing was checked: ${(error as Error).message}\n`);
    return 2;
  }
  out.stdout(args.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return report.exitCode;
}

/** MySQL without --database: the one database the source's table patterns name, if they name exactly one (no wildcard). */
function defaultNamespace(source: SluiceConfig["sources"][number]): { defaultNamespace?: string } {
  if (source.kind !== "mysql") return {};
  const databases = new Set(includingPatterns(source.tables).map((pattern) => pattern.slice(0, pattern.indexOf("."))));
  const [only] = databases;
  return databases.size === 1 && only !== undefined && !/[*?]/.test(only) ? { defaultNamespace: only } : {};
}

export function formatReport(report: MigrationReport): string {
  const lines: string[] = [`source ${report.source} (${report.dialect}): ${report.statements.length} statement(s)`];
  for (const error of report.errors) lines.push(`  ERROR ${error}`);
  for (const statement of report.statements) {
    const { effect } = statement;
    const what = effect.kind === "steps" ? "changes schemas" : effect.kind === "no-schema-change" ? `no schema change: ${effect.what}` : `NOT UNDERSTOOD: ${effect.reason}`;
    lines.push(`  ${statement.file}:${statement.line}  ${statement.text}`, `      ${what}`);
    for (const note of statement.notes) lines.push(`      note: ${note}`);
  }
  if (report.tables.length === 0) lines.push("", "no captured table is changed");
  for (const table of report.tables) {
    const subjects = table.subjects.map((s) => `${s.subject} ${s.level}, ${s.versions} version(s)`).join("; ");
    lines.push("", `${table.table}: ${table.verdict === "compatible" ? "compatible" : table.verdict === "incompatible" ? "INCOMPATIBLE" : "NOT CHECKED"}${subjects === "" ? "" : ` (${subjects})`}`);
    if (table.changes.length > 0) lines.push(`  changes: ${table.changes.join("; ")}`);
    for (const problem of table.problems) {
      lines.push(`  - ${problem.column === null ? "" : `column ${problem.column}: `}${problem.rule}`, `      ${problem.message}`, `      suggestion: ${problem.suggestion}`);
    }
    for (const note of table.notes) lines.push(`  note: ${note}`);
  }
  const result = report.exitCode === 0 ? "compatible" : report.exitCode === 1 ? "incompatible" : "could not check everything";
  lines.push("", `result: ${result} (exit ${report.exitCode})`);
  return `${lines.join("\n")}\n`;
}
