import { noteSecretFiles } from "./secret-files.ts";
import { CONFIG_FILE_MAX_BYTES, readBoundedFile } from "./bounded-file.ts";
import type { z } from "zod";
import { checkScalars, describeFsError, interpolateEnv, offsetOf, parseConfigText, plainValue, readSecretFiles } from "./document.ts";
import type { ParsedConfigDocument } from "./document.ts";
import { resolveReadFiles } from "./file-paths.ts";
import type { ConfigIssue } from "./issues.ts";
import { ConfigValidationError, formatPath, nearest } from "./issues.ts";
import { MemoryBudgetError, planMemory } from "./memory.ts";
import { isSecretKey, rememberSecrets, secretValues } from "./redact.ts";
import { configSchema, crossCheck, SECRET_KEYS } from "./schema.ts";
import type { SluiceConfig } from "./schema.ts";
import { objectKeys, schemaAt, unionChoices } from "./schema-walk.ts";

export interface LoadOptions {
  env?: Readonly<Record<string, string | undefined>>;
  /**
   * Whether this process captures the named source (default: every source). The environment
   * variables and secret files of a source it does not capture may be missing (a sink-only
   * process needs no source credentials); those settings keep their text unresolved, unused.
   */
  captures?: (source: string) => boolean;
  /** Whether this process runs the named sink (default: every sink); the same for the secrets of sinks it does not run. */
  runsSink?: (sink: string) => boolean;
  /** Check that `memory` holds the sources and sinks this process runs (`sluice run`, `sluice validate`; config/memory.ts). */
  checkMemory?: boolean;
  /**
   * Further checks of a valid config (files it names that this process needs, `sluice validate`); each problem is
   * reported like the schema's, at its key. Run after relative file paths are resolved.
   */
  check?: (config: SluiceConfig) => readonly { readonly path: readonly PropertyKey[]; readonly message: string }[];
}

/** Reads, interpolates and validates a config file; throws ConfigValidationError with every problem found. */
export function loadConfigFile(file: string, options: LoadOptions = {}): SluiceConfig {
  let text: string;
  try {
    text = readBoundedFile(file, CONFIG_FILE_MAX_BYTES).toString("utf8");
  } catch (error) {
    throw new ConfigValidationError(file, [{ file, line: 0, column: 0, path: "", message: `cannot read config file: ${describeFsError(error)}` }]);
  }
  return loadConfigText(file, text, options);
}

export function loadConfigText(file: string, text: string, options: LoadOptions = {}): SluiceConfig {
  const parsed = parseConfigText(file, text);
  if (parsed.issues.length > 0) throw new ConfigValidationError(file, parsed.issues);
  interpolateEnv(parsed, options.env ?? process.env);
  const secretFiles = readSecretFiles(parsed, SECRET_KEYS);
  if (options.captures) forgiveUnusedParts(parsed, "sources", options.captures);
  if (options.runsSink) forgiveUnusedParts(parsed, "sinks", options.runsSink);
  checkScalars(parsed);
  const plain = plainValue(parsed);
  if (!plain.ok) throw new ConfigValidationError(file, sortIssues(parsed.issues));
  const raw = plain.value;
  // Remembered before validation: a config that fails it must not show its secrets either.
  rememberSecrets(secretValues(raw));
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    parsed.issues.push({ file, line: 1, column: 1, path: "", message: "expected a mapping of settings (name, sources, topics, sinks, ...) at the top level" });
    throw new ConfigValidationError(file, parsed.issues);
  }
  // Top-level keys starting with "x-" hold anchors for aliases (`x-defaults: &defaults {...}`); Sluice ignores them.
  for (const key of Object.keys(raw)) if (key.startsWith("x-")) delete (raw as Record<string, unknown>)[key];
  const result = configSchema.safeParse(raw);
  const crossIssues = crossCheck(raw as Record<string, unknown>);
  if (result.success && parsed.issues.length === 0 && crossIssues.length === 0) {
    const problem = options.checkMemory ? memoryProblem(result.data, options) : undefined;
    if (problem !== undefined) throw new ConfigValidationError(file, [{ file, ...parsed.locate(offsetOf(parsed.document, ["memory"])), path: "memory", message: problem }]);
    const config = resolveReadFiles(result.data, file);
    noteSecretFiles(config, secretFiles);
    const checkIssues = (options.check?.(config) ?? []).map((i) => ({ file, ...parsed.locate(offsetOf(parsed.document, i.path)), path: formatPath(i.path), message: i.message }));
    if (checkIssues.length === 0) return config;
    throw new ConfigValidationError(file, sortIssues(checkIssues));
  }
  // A value whose interpolation or secret file already failed is not reported again by the schema.
  const alreadyReported = new Set(parsed.issues.map((i) => i.path));
  const schemaIssues = (result.success ? [] : result.error.issues.flatMap((i) => describeIssue(parsed, raw, i))).filter(
    (i) => !alreadyReported.has(i.path),
  );
  const referenceIssues = crossIssues.map((i) => ({
    file,
    ...parsed.locate(offsetOf(parsed.document, i.path)),
    path: formatPath(i.path),
    message: `${i.message}${i.candidates ? suggestion(i.value, i.candidates) : ""}`,
  }));
  throw new ConfigValidationError(file, sortIssues(dedupe([...parsed.issues, ...schemaIssues, ...referenceIssues])));
}

/** Why `memory` cannot hold the sources and sinks this process runs, or undefined (config/memory.ts). */
function memoryProblem(config: SluiceConfig, options: LoadOptions): string | undefined {
  const parts = {
    sources: config.sources.map((s) => s.name).filter((name) => options.captures?.(name) ?? true),
    sinks: config.sinks.map((s) => s.name).filter((name) => options.runsSink?.(name) ?? true),
  };
  try {
    planMemory(config, parts);
    return undefined;
  } catch (error) {
    if (error instanceof MemoryBudgetError) return error.message.replace(/^memory /, "");
    throw error;
  }
}

/** Drops the unresolved-variable and secret-file problems of the sources (sinks) this process does not run. */
function forgiveUnusedParts(parsed: ParsedConfigDocument, section: "sources" | "sinks", used: (name: string) => boolean): void {
  const list = parsed.document.get(section);
  const count = Array.isArray((list as { items?: unknown[] } | undefined)?.items) ? (list as { items: unknown[] }).items.length : 0;
  const skipped: string[] = [];
  for (let index = 0; index < count; index++) {
    const name = parsed.document.getIn([section, index, "name"]);
    if (typeof name === "string" && !used(name)) skipped.push(`${section}[${index}]`);
  }
  if (skipped.length === 0) return;
  const kept = parsed.issues.filter((issue) => !skipped.some((prefix) => issue.path.startsWith(`${prefix}.`)));
  parsed.issues.splice(0, parsed.issues.length, ...kept);
}

function dedupe(issues: ConfigIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  return issues.filter((i) => {
    const key = `${i.line}:${i.column}:${i.path}:${i.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

function sortIssues(issues: ConfigIssue[]): ConfigIssue[] {
  return issues.sort((a, b) => a.line - b.line || a.column - b.column);
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let value = root;
  for (const part of path) value = (value as Record<PropertyKey, unknown> | undefined)?.[part as string];
  return value;
}

function showValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object") return "a mapping";
  if (typeof value === "string") return `"${value}"`;
  return `${typeof value} ${String(value)}`;
}

function quoteAll(values: readonly unknown[]): string {
  return values.map((v) => `"${String(v)}"`).join(", ");
}

function suggestion(word: unknown, candidates: readonly string[]): string {
  if (typeof word !== "string") return "";
  const match = nearest(word, candidates);
  return match ? `; did you mean "${match}"?` : "";
}

function describeIssue(parsed: ParsedConfigDocument, raw: unknown, issue: z.core.$ZodIssue): ConfigIssue[] {
  const path = issue.path as PropertyKey[];
  const at = (p: readonly PropertyKey[], keyNamed?: string) => ({
    file: parsed.file,
    ...parsed.locate(offsetOf(parsed.document, p, keyNamed)),
  });
  const value = valueAt(raw, path);
  // A secret's value is never shown, even when it is of the wrong type.
  const show = isSecretKey(path[path.length - 1]) ? (v: unknown) => (v === undefined ? "nothing" : "a value that is not shown (a secret)") : showValue;

  switch (issue.code) {
    case "unrecognized_keys": {
      const schema = schemaAt(configSchema, path, raw);
      const known = schema ? (objectKeys(schema) ?? []) : [];
      const candidates = [...known, ...known.filter((k) => (SECRET_KEYS as readonly string[]).includes(k)).map((k) => `${k}_file`)];
      return issue.keys.map((key) => ({
        ...at(path, key),
        path: formatPath([...path, key]),
        message: `unknown key "${key}"${suggestion(key, candidates)}`,
      }));
    }
    case "invalid_union": {
      if (issue.discriminator !== undefined) {
        const parentPath = path[path.length - 1] === issue.discriminator ? path.slice(0, -1) : path;
        const given = valueAt(raw, [...parentPath, issue.discriminator]);
        const choices = (issue as { options?: unknown[] }).options?.map(String) ?? unionChoices(schemaAt(configSchema, parentPath, raw)!)?.values ?? [];
        if (valueAt(raw, parentPath) === null || typeof valueAt(raw, parentPath) !== "object") {
          return [{ ...at(parentPath), path: formatPath(parentPath), message: `expected a mapping with "${issue.discriminator}: ${choices.join(" | ")}", got ${show(valueAt(raw, parentPath))}` }];
        }
        const message =
          given === undefined
            ? `missing required key "${issue.discriminator}" (one of ${quoteAll(choices)})`
            : `expected one of ${quoteAll(choices)}, got ${show(given)}${suggestion(given, choices)}`;
        const keyPath = [...parentPath, issue.discriminator];
        return [{ ...at(given === undefined ? parentPath : keyPath), path: formatPath(keyPath), message }];
      }
      // Plain unions (durations, sizes): report the branch that matches the value's type.
      const branch = issue.errors.find((errors) => errors.every((e) => e.code !== "invalid_type"));
      const first = branch?.[0];
      if (first) return describeIssue(parsed, raw, { ...first, path: [...path, ...first.path] } as z.core.$ZodIssue);
      const expected = issue.errors.flatMap((errors) => errors.map((e) => (e.code === "invalid_type" ? e.expected : ""))).filter(Boolean);
      return [{ ...at(path), path: formatPath(path), message: `expected ${[...new Set(expected)].join(" or ")}, got ${show(value)}` }];
    }
    case "invalid_type":
      if (value === undefined) {
        const parent = path.slice(0, -1);
        return [{ ...at(parent), path: formatPath(path), message: `missing required key "${String(path[path.length - 1])}" (${article(issue.expected)})` }];
      }
      return [{ ...at(path), path: formatPath(path), message: `expected ${article(issue.expected)}, got ${show(value)}` }];
    case "invalid_value": {
      const choices = issue.values.map(String);
      return [{ ...at(path), path: formatPath(path), message: `expected one of ${quoteAll(choices)}, got ${show(value)}${suggestion(value, choices)}` }];
    }
    case "too_small":
      if (issue.origin === "array") {
        return [{ ...at(path), path: formatPath(path), message: `expected at least ${String(issue.minimum)} item${issue.minimum === 1 ? "" : "s"}, got ${Array.isArray(value) ? value.length : show(value)}` }];
      }
      if (issue.origin === "string") {
        return [{ ...at(path), path: formatPath(path), message: issue.minimum === 1 ? "expected a non-empty string" : `expected at least ${String(issue.minimum)} characters` }];
      }
      return [{ ...at(path), path: formatPath(path), message: `expected a number ${issue.inclusive ? "\u2265" : ">"} ${String(issue.minimum)}, got ${show(value)}` }];
    case "too_big":
      if (issue.origin === "string") return [{ ...at(path), path: formatPath(path), message: `expected at most ${String(issue.maximum)} characters` }];
      return [{ ...at(path), path: formatPath(path), message: `expected a number ${issue.inclusive ? "\u2264" : "<"} ${String(issue.maximum)}, got ${show(value)}` }];
    case "custom":
      return [{ ...at(path), path: formatPath(path), message: issue.message }];
    default:
      return [{ ...at(path), path: formatPath(path), message: `${issue.message}, got ${show(value)}` }];
  }
}

function article(expected: string): string {
  if (expected === "object") return "a mapping";
  if (expected === "array") return "a list";
  return /^[aeiou]/.test(expected) ? `an ${expected}` : `a ${expected}`;
}
