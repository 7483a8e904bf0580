/**
 * Where the files a config names are. Files Sluice only reads (certificates, keys, the master key,
 * Avro schemas) are found like the secrets' `<key>_file`: a relative path from the config file's
 * folder, wherever the daemon runs. Data paths (the embedded topic log's `topics.path`, a DuckDB
 * sink's `path`) are not moved: they always were relative to the working directory, and reading them
 * from elsewhere would open an empty log or warehouse; they are shown resolved instead
 * (`sluice validate`, the start log).
 */
import { accessSync, constants, statSync } from "node:fs";
import { dirname, isAbsolute, resolve } from "node:path";
import { describeFsError } from "./document.ts";
import type { SluiceConfig } from "./schema.ts";

/** A file the config names for Sluice to read, at its key path (e.g. ["sources", 0, "tls", "ca_file"]). */
export interface ReadFile {
  readonly path: readonly (string | number)[];
  readonly file: string;
}

/**
 * Maps whose keys the user names (tables, columns, aggregate types), not Sluice: a table `public.user_files`
 * in key_columns is not a list of files. Outbox payload schemas are files, found below by their path.
 */
const USER_KEYED = new Set(["key_columns", "tables", "transforms", "schemas"]);

/** Calls `each` for every read-only file path of `config` (keys ending in _file or _files, outbox payload schemas) and puts its answer in the path's place. */
function mapReadFiles(config: SluiceConfig, each: (file: ReadFile) => string): void {
  const visit = (value: unknown, at: readonly (string | number)[]): void => {
    if (Array.isArray(value)) {
      value.forEach((item, index) => visit(item, [...at, index]));
      return;
    }
    if (value === null || typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) return;
    const record = value as Record<string, unknown>;
    for (const [key, item] of Object.entries(record)) {
      if (USER_KEYED.has(key)) continue;
      if (key.endsWith("_file") && typeof item === "string") record[key] = each({ path: [...at, key], file: item });
      else if (key.endsWith("_files") && Array.isArray(item)) record[key] = item.map((file: unknown, index) => (typeof file === "string" ? each({ path: [...at, key, index], file }) : file));
      else visit(item, [...at, key]);
    }
  };
  visit(config, []);
  config.sources.forEach((source, index) => {
    const schemas = source.outbox?.payload.schemas;
    if (schemas !== undefined) for (const [type, file] of Object.entries(schemas)) schemas[type] = each({ path: ["sources", index, "outbox", "payload", "schemas", type], file });
  });
}

/** Rewrites every relative read-only file path of `config` as absolute, from `configFile`'s folder. */
export function resolveReadFiles(config: SluiceConfig, configFile: string): SluiceConfig {
  const baseDir = dirname(resolve(configFile));
  mapReadFiles(config, ({ file }) => (isAbsolute(file) ? file : resolve(baseDir, file)));
  return config;
}

/** The read-only files `config` names, as they stand (absolute once loaded). */
export function readFiles(config: SluiceConfig): ReadFile[] {
  const files: ReadFile[] = [];
  mapReadFiles(config, (file) => {
    files.push(file);
    return file.file;
  });
  return files;
}

/** Which parts of the config this process runs (config/load.ts LoadOptions); the files of the others may be absent. */
export interface PartsRun {
  readonly captures?: ((source: string) => boolean) | undefined;
  readonly runsSink?: ((sink: string) => boolean) | undefined;
}

/**
 * The files Sluice reads that it cannot (missing, unreadable, a directory), each at its key with its absolute path
 * (`sluice validate`; the daemon would fail on them at start). personal_data's key files are left to their own check,
 * which reads their content too (daemon/governance/master-key-check.ts); those of parts this process does not run are not looked at.
 */
export function unreadableFiles(config: SluiceConfig, parts: PartsRun = {}): { path: readonly (string | number)[]; message: string }[] {
  const runs = (path: readonly (string | number)[]) => {
    const index = path[1];
    if (typeof index !== "number") return true;
    if (path[0] === "sources") return parts.captures?.(config.sources[index]!.name) ?? true;
    if (path[0] === "sinks") return parts.runsSink?.(config.sinks[index]!.name) ?? true;
    return true;
  };
  const problems: { path: readonly (string | number)[]; message: string }[] = [];
  for (const { path, file } of readFiles(config)) {
    if (path[0] === "personal_data" || !runs(path)) continue;
    try {
      accessSync(file, constants.R_OK);
      if (statSync(file).isDirectory()) problems.push({ path, message: `${file} is a directory, not a file` });
    } catch (error) {
      problems.push({ path, message: `cannot read ${file}: ${describeFsError(error)}` });
    }
  }
  return problems;
}

export interface DataPath {
  /** The key, as validate errors name it: "topics.path", "sinks[1].path". */
  readonly key: string;
  /** The sink's name, for a sink's path. */
  readonly sink?: string;
  readonly written: string;
  /** Absolute, from the working directory: where the process opens it. */
  readonly resolved: string;
}

/** The data files the config names (embedded topic log, DuckDB sinks), resolved from the working directory as they are opened. */
export function dataPaths(config: SluiceConfig, cwd: string = process.cwd()): DataPath[] {
  const paths: DataPath[] = [];
  if (config.topics.kind === "embedded") paths.push({ key: "topics.path", written: config.topics.path, resolved: resolve(cwd, config.topics.path) });
  config.sinks.forEach((sink, index) => {
    if (sink.kind === "duckdb" && sink.path !== ":memory:") paths.push({ key: `sinks[${index}].path`, sink: sink.name, written: sink.path, resolved: resolve(cwd, sink.path) });
  });
  return paths;
}
