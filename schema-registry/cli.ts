/**
 * `sluice schema ...`: list subjects, show a version, check a schema file against a subject.
 * Exit codes: 0 success (compatible), 1 incompatible or not found, 2 usage error (bad arguments,
 * unreadable file, invalid schema), 3 the registry could not answer.
 */
import { readFile } from "node:fs/promises";
import { RegistryError } from "./registry-errors.ts";
import type { SchemaRegistry } from "./registry.ts";

export interface CommandOutput {
  stdout(text: string): void;
  stderr(text: string): void;
}

export const SCHEMA_USAGE = `usage:
  sluice schema list                      subjects with at least one live version
  sluice schema show SUBJECT [VERSION]    a version (default: latest) with its id and schema
  sluice schema check SUBJECT FILE        is the Avro schema in FILE compatible with SUBJECT's history?
                                          exit 0 compatible, 1 incompatible, 2 usage error, 3 registry error`;

/** Runs a `schema` subcommand; `args` may start with "schema" or directly with the subcommand. */
export async function runSchemaCommand(args: readonly string[], registry: SchemaRegistry, out: CommandOutput): Promise<number> {
  const [command, ...rest] = args[0] === "schema" ? args.slice(1) : args;
  try {
    switch (command) {
      case "list":
        if (rest.length !== 0) return usage(out, "schema list takes no arguments");
        for (const subject of await registry.listSubjects()) out.stdout(`${subject}\n`);
        return 0;
      case "show":
        if (rest.length < 1 || rest.length > 2) return usage(out, "schema show needs SUBJECT and an optional VERSION");
        return await show(registry, rest[0] as string, rest[1], out);
      case "check":
        if (rest.length !== 2) return usage(out, "schema check needs SUBJECT and FILE");
        return await check(registry, rest[0] as string, rest[1] as string, out);
      case undefined:
        // A usage error: its usage goes to stderr, as every other one's (a script reading stdout got the usage as if output).
        return usage(out, "give a schema command: list, show, check or check-migration");
      case "help":
      case "--help":
        out.stdout(`${SCHEMA_USAGE}\n`);
        return 0;
      default:
        return usage(out, `unknown schema command "${command}"`);
    }
  } catch (error) {
    if (error instanceof RegistryError && (error.kind === "INVALID_SCHEMA" || error.kind === "INVALID_SUBJECT")) {
      out.stderr(`error: ${error.message}\n`);
      return 2;
    }
    out.stderr(`error: ${(error as Error).message}\n`);
    return 3;
  }
}

/** The largest version id (Confluent's API: 2^31-1). */
const MAX_VERSION = 2 ** 31 - 1;

async function show(registry: SchemaRegistry, subject: string, versionArg: string | undefined, out: CommandOutput): Promise<number> {
  const latest = versionArg === undefined || versionArg === "latest";
  // Digits only, as the registry's API takes them (1 to 2^31-1): Number() took "1e3", "0x10" and rounded 20 digits.
  const version = latest ? undefined : /^[1-9][0-9]{0,9}$/.test(versionArg) ? Number(versionArg) : NaN;
  if (version !== undefined && !(version >= 1 && version <= MAX_VERSION)) return usage(out, `VERSION must be a whole number from 1 to ${MAX_VERSION} or "latest", not "${versionArg}"`);
  const found = version === undefined ? await registry.getLatest(subject) : await registry.getVersion(subject, version);
  if (!found) {
    out.stderr(version === undefined ? `subject "${subject}" not found\n` : `subject "${subject}" has no version ${version}\n`);
    return 1;
  }
  const level = await registry.getCompatibilityLevel(subject);
  out.stdout(`subject: ${found.subject}\nversion: ${found.version}\nid: ${found.id}\ncompatibility: ${level}\n`);
  out.stdout(`${JSON.stringify(JSON.parse(found.schema), null, 2)}\n`);
  return 0;
}

async function check(registry: SchemaRegistry, subject: string, file: string, out: CommandOutput): Promise<number> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    out.stderr(`error: cannot read ${file}: ${(error as Error).message}\n`);
    return 2;
  }
  const report = await registry.checkCompatibility(subject, text);
  const level = await registry.getCompatibilityLevel(subject);
  if (report.compatible) {
    out.stdout(`compatible: ${file} can be registered under ${subject} (compatibility ${level})\n`);
    return 0;
  }
  out.stdout(`incompatible: ${file} cannot be registered under ${subject} (compatibility ${level}):\n`);
  for (const message of report.messages) out.stdout(`  - ${message}\n`);
  return 1;
}

function usage(out: CommandOutput, problem: string): number {
  out.stderr(`error: ${problem}\n${SCHEMA_USAGE}\n`);
  return 2;
}
