/**
 * Where the files a config names are. Files Sluice only reads (certificates, keys, the master key,
 * Avro schemas) are found like the secrets' `<key>_file`: a relative path from the config file's
 * folder, wherever the daemon runs. Data paths (the embedded topic log's `topics.path`, a DuckDB
 * sink's `path`) are not moved: they always were relative to the working directory, and reading them
 * from elsewhere would open an empty log or warehouse; they are shown resolved instead
 * (`sluice validate`, the start log).
 */
import { dirname, isAbsolute, resolve } from "node:path";
import type { SluiceConfig } from "./schema.ts";

/** Rewrites every relative read-only file path of `config` (keys ending in _file or _files, outbox payload schemas) as absolute, from `configFile`'s folder. */
export function resolveReadFiles(config: SluiceConfig, configFile: string): SluiceConfig {
  const baseDir = dirname(resolve(configFile));
  const fromConfig = (path: string) => (isAbsolute(path) ? path : resolve(baseDir, path));
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      for (const item of value) visit(item);
      return;
    }
    if (value === null || typeof value !== "object" || Object.getPrototypeOf(value) !== Object.prototype) return;
    const record = value as Record<string, unknown>;
    for (const [key, item] of Object.entries(record)) {
      if (key.endsWith("_file") && typeof item === "string") record[key] = fromConfig(item);
      else if (key.endsWith("_files") && Array.isArray(item)) record[key] = item.map((path: unknown) => (typeof path === "string" ? fromConfig(path) : path));
      else visit(item);
    }
  };
  visit(config);
  for (const source of config.sources) {
    const schemas = source.outbox?.payload.schemas;
    if (schemas !== undefined) for (const [type, path] of Object.entries(schemas)) schemas[type] = fromConfig(path);
  }
  return config;
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
