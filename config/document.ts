/**
 * The YAML document of a config file with its source positions, and the two rewrites done on it
 * before validation: `${VAR}` / `${VAR:-default}` interpolation and `<secret>_file` reading.
 * Rewriting the parsed nodes (not the text) keeps every line and column exact.
 */
import { dirname, resolve } from "node:path";
import { isAlias, isMap, isPair, isScalar, LineCounter, parseDocument, Scalar, visit } from "yaml";
import type { Document, Node, Pair } from "yaml";
import { FileRefused, readSecretFile } from "./bounded-file.ts";
import type { ConfigIssue } from "./issues.ts";
import { formatPath } from "./issues.ts";

export interface ParsedConfigDocument {
  readonly file: string;
  readonly document: Document.Parsed;
  readonly issues: ConfigIssue[];
  /** 1-based line and column of a character offset. */
  locate(offset: number): { line: number; column: number };
}

export function parseConfigText(file: string, text: string): ParsedConfigDocument {
  const lineCounter = new LineCounter();
  const document = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, merge: true });
  const locate = (offset: number) => {
    const pos = lineCounter.linePos(offset);
    return { line: pos.line, column: pos.col };
  };
  const issues: ConfigIssue[] = [...document.errors, ...document.warnings].map((error) => {
    const { line, column } = locate(error.pos[0]);
    if (error.code === "DUPLICATE_KEY") {
      const duplicate = duplicateKeyAt(document, error.pos[0]);
      if (duplicate !== undefined) {
        const first = locate(duplicate.firstOffset);
        return { file, line, column, path: formatPath(duplicate.path), message: `YAML: duplicate key "${duplicate.key}" (first at line ${first.line}, column ${first.column}); give each key once` };
      }
    }
    return { file, line, column, path: "", message: `YAML: ${error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}` };
  });
  // The parser reports an unclosed flow collection once for each collection it is nested in, all at the same place.
  const said = new Set<string>();
  const distinct = issues.filter((issue) => {
    const key = `${issue.line}:${issue.column}:${issue.path}:${issue.message}`;
    if (said.has(key)) return false;
    said.add(key);
    return true;
  });
  return { file, document, issues: distinct, locate };
}

/** The key whose second occurrence starts at `offset`: its name, key path and where it first appears. */
function duplicateKeyAt(document: Document, offset: number): { key: string; path: PropertyKey[]; firstOffset: number } | undefined {
  let found: { key: string; path: PropertyKey[]; firstOffset: number } | undefined;
  visit(document, {
    Pair(_key, pair, ancestors) {
      if (!isScalar(pair.key) || pair.key.range?.[0] !== offset) return undefined;
      const map = ancestors[ancestors.length - 1];
      const name = pair.key.value;
      const first = isMap(map) ? map.items.find((other) => isScalar(other.key) && other.key.value === name) : undefined;
      found = { key: String(name), path: pathOf([...ancestors, pair], undefined), firstOffset: (first?.key as Node | undefined)?.range?.[0] ?? offset };
      return visit.BREAK;
    },
  });
  return found;
}

/**
 * The document as plain data. Aliases (`*name`) and merge keys (`<<: *name`) are supported; an
 * alias without its anchor, or so many aliases that they look like an alias bomb, is an issue at
 * the alias instead of an exception.
 */
export function plainValue(parsed: ParsedConfigDocument): { ok: true; value: unknown } | { ok: false } {
  const aliases: { source: string; offset: number; path: PropertyKey[] }[] = [];
  visit(parsed.document, {
    Alias(key, node, ancestors) {
      aliases.push({ source: node.source, offset: node.range?.[0] ?? 0, path: pathOf(ancestors, key) });
      if (node.resolve(parsed.document) === undefined) {
        parsed.issues.push({
          file: parsed.file,
          ...parsed.locate(node.range?.[0] ?? 0),
          path: formatPath(pathOf(ancestors, key)),
          message: `alias *${node.source} has no anchor &${node.source} before it: define the anchor first (anchors apply to what follows them)`,
        });
      }
    },
  });
  if (parsed.issues.length > 0) return { ok: false };
  try {
    return { ok: true, value: parsed.document.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) as unknown };
  } catch (error) {
    const first = aliases[0];
    parsed.issues.push({
      file: parsed.file,
      ...(first === undefined ? { line: 1, column: 1 } : parsed.locate(first.offset)),
      path: first === undefined ? "" : formatPath(first.path),
      message: `YAML: ${(error as Error).message}; aliases expand to at most ${MAX_ALIAS_COUNT} copies of their anchor`,
    });
    return { ok: false };
  }
}

const MAX_ALIAS_COUNT = 100;

/**
 * Checks every value as written: a NUL character (no server accepts one in a name or password)
 * and a number in hexadecimal or octal notation (`0x10` reads as 16, rarely what a size meant).
 */
export function checkScalars(parsed: ParsedConfigDocument): void {
  visit(parsed.document, {
    Scalar(key, node, ancestors) {
      if (key === "key" || isAlias(node)) return;
      const where = () => ({ file: parsed.file, ...parsed.locate(node.range?.[0] ?? 0), path: formatPath(pathOf(ancestors, key)) });
      if (typeof node.value === "string" && node.value.includes("\u0000")) {
        parsed.issues.push({ ...where(), message: "contains a NUL character (\\0), which no server accepts in a name, password or path: remove it" });
      } else if (typeof node.value === "number" && (node.format === "HEX" || node.format === "OCT")) {
        const written = node.source ?? String(node.value);
        parsed.issues.push({ ...where(), message: `${written} would be read as the number ${node.value}: write numbers in decimal, or quote text ("${written}")` });
      }
    },
  });
}

function pathOf(ancestors: readonly unknown[], key: unknown): PropertyKey[] {
  const path: PropertyKey[] = [];
  const chain = [...ancestors.slice(1)];
  for (let i = 0; i < chain.length; i++) {
    const node = chain[i];
    const next = i + 1 < chain.length ? chain[i + 1] : undefined;
    if (isPair(node)) {
      const k = node.key;
      path.push(isScalar(k) ? String(k.value) : "?");
    } else if (node && typeof node === "object" && "items" in node && !isMap(node)) {
      const items = (node as { items: unknown[] }).items;
      const index = items.indexOf(next ?? undefined);
      if (index >= 0) path.push(index);
    }
  }
  if (typeof key === "number") path.push(key);
  return path;
}

const REFERENCE = /\$\$\{|\$\{([^}]*)\}?/g;
/** A reference nested in another's default, as in `${A:-${B}}`: not supported (a default is plain text). */
const NESTED_REFERENCE = /\$\{[^}]*\$\{/;
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Replaces `${VAR}` and `${VAR:-default}` in every value; `$${` stands for a literal `${`. */
export function interpolateEnv(parsed: ParsedConfigDocument, env: Readonly<Record<string, string | undefined>>): void {
  visit(parsed.document, {
    Scalar(key, node, ancestors) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("$")) return;
      const original = node.value;
      const nested = NESTED_REFERENCE.exec(original.replaceAll("$${", ""));
      if (nested !== null) {
        const at = parsed.locate(node.range?.[0] ?? 0);
        parsed.issues.push({
          file: parsed.file,
          ...at,
          path: formatPath(pathOf(ancestors, key)),
          message: `"${original}" nests a reference in a default; references cannot be nested (a default is plain text): set the variable, or write the default out`,
        });
        return;
      }
      let failed = false;
      const replaced = original.replace(REFERENCE, (match: string, body: string | undefined, offset: number) => {
        if (match === "$${") return "${";
        const at = parsed.locate((node.range?.[0] ?? 0) + (node.type === "PLAIN" ? offset : 0));
        const where = { file: parsed.file, ...at, path: formatPath(pathOf(ancestors, key)) };
        if (!match.endsWith("}")) {
          parsed.issues.push({ ...where, message: `unterminated "\${" in "${original}": write \${NAME} or \${NAME:-default}` });
          failed = true;
          return match;
        }
        const separator = body!.indexOf(":-");
        const name = separator >= 0 ? body!.slice(0, separator) : body!;
        if (!NAME.test(name)) {
          parsed.issues.push({ ...where, message: `"\${${body}}" is not a variable reference: write \${NAME} or \${NAME:-default}` });
          failed = true;
          return match;
        }
        const value = env[name];
        if (value !== undefined && value !== "") return value;
        if (separator >= 0) return body!.slice(separator + 2);
        parsed.issues.push({ ...where, message: `environment variable ${name} is not set and has no default (write \${${name}:-default} to give one)` });
        failed = true;
        return match;
      });
      if (failed || replaced === original) return;
      // An unquoted `${PORT}` becomes whatever YAML type its value reads as (a number, a boolean).
      node.value = node.type === "PLAIN" ? readPlainScalar(replaced) : replaced;
    },
  });
}

function readPlainScalar(text: string): unknown {
  const value = parseDocument(text).toJS() as unknown;
  // A hexadecimal or octal number stays text (and is refused where a number is expected), as when written in the file.
  if (typeof value === "number" && /^[-+]?0[xo]/i.test(text.trim())) return text;
  return (value === null && text.trim() !== "") || typeof value === "number" || typeof value === "boolean" ? value : text;
}

/**
 * `<key>_file: PATH` for a secret key (password, token, api_key) is replaced by `<key>: <file
 * contents>`, trailing newline removed. Relative paths are read from the config file's folder.
 */
/** A secret read from a file: where its `<key>_file` stood (`["sinks", 0, "password_file"]`) and the file's absolute path. */
export interface SecretFile {
  readonly at: readonly PropertyKey[];
  readonly key: string;
  readonly file: string;
}

export function readSecretFiles(parsed: ParsedConfigDocument, secretKeys: readonly string[]): SecretFile[] {
  const baseDir = dirname(resolve(parsed.file));
  const read: SecretFile[] = [];
  visit(parsed.document, {
    Map(_key, map, ancestors) {
      // Pairs whose file could not be used are dropped: their problem is reported once, here.
      const failed: unknown[] = [];
      for (const pair of map.items as Pair<Node, Node>[]) {
        if (!isScalar(pair.key) || typeof pair.key.value !== "string" || !pair.key.value.endsWith("_file")) continue;
        const secretKey = pair.key.value.slice(0, -"_file".length);
        if (!secretKeys.includes(secretKey)) continue;
        const where = parsed.locate(pair.key.range?.[0] ?? 0);
        const at = [...pathOf([...ancestors, map, pair], undefined)];
        const path = formatPath(at);
        const issue = (message: string) => {
          parsed.issues.push({ file: parsed.file, ...where, path, message });
          failed.push(pair);
        };
        if (map.items.some((other) => isScalar(other.key) && other.key.value === secretKey)) {
          issue(`give either ${secretKey} or ${secretKey}_file, not both`);
          continue;
        }
        const value = isScalar(pair.value) ? pair.value.value : undefined;
        if (typeof value !== "string" || value === "") {
          issue(`expected the path of a file holding the ${secretKey}`);
          continue;
        }
        const filePath = resolve(baseDir, value);
        let content: string;
        try {
          content = readSecretFile(filePath);
        } catch (error) {
          issue(`cannot read ${secretKey} file "${value}"${value === filePath ? "" : " (relative to the config file)"}: ${describeFsError(error)}`);
          continue;
        }
        read.push({ at, key: secretKey, file: filePath });
        const secret = new Scalar(content);
        secret.range = pair.value?.range ?? null;
        const key = new Scalar(secretKey);
        key.range = pair.key.range ?? null;
        pair.key = key as Node;
        pair.value = secret as Node;
      }
      map.items = map.items.filter((pair) => !failed.includes(pair));
    },
  });
  return read;
}

/** Source range start of the node at `path`, or of its closest existing ancestor. */
export function offsetOf(document: Document, path: readonly PropertyKey[], keyNamed?: string): number {
  for (let depth = path.length; depth >= 0; depth--) {
    const node = depth === 0 ? document.contents : document.getIn(path.slice(0, depth) as unknown[], true);
    if (!node || typeof node !== "object") continue;
    if (depth === path.length && keyNamed !== undefined && isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && p.key.value === keyNamed);
      const range = (pair?.key as Node | undefined)?.range;
      if (range) return range[0];
    }
    const range = (node as Node).range;
    if (range) return range[0];
  }
  return 0;
}

const FS_ERRORS: Record<string, string> = {
  ENOENT: "no such file",
  EACCES: "permission denied",
  EISDIR: "it is a directory",
  ENOTDIR: "a part of the path is not a directory",
};

export function describeFsError(error: unknown): string {
  if (error instanceof FileRefused) return `${error.message} (${error.code})`;
  const code = (error as NodeJS.ErrnoException).code;
  return code ? `${FS_ERRORS[code] ?? code} (${code})` : String(error);
}
