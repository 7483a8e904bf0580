/**
 * The YAML document of a config file with its source positions, and the two rewrites done on it
 * before validation: `${VAR}` / `${VAR:-default}` interpolation and `<secret>_file` reading.
 * Rewriting the parsed nodes (not the text) keeps every line and column exact.
 */
import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { isMap, isPair, isScalar, LineCounter, parseDocument, Scalar, visit } from "yaml";
import type { Document, Node, Pair } from "yaml";
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
    return { file, line, column, path: "", message: `YAML: ${error.message.split("\n")[0]!.replace(/ at line \d+, column \d+:?$/, "")}` };
  });
  return { file, document, issues, locate };
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
const NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** Replaces `${VAR}` and `${VAR:-default}` in every value; `$${` stands for a literal `${`. */
export function interpolateEnv(parsed: ParsedConfigDocument, env: Readonly<Record<string, string | undefined>>): void {
  visit(parsed.document, {
    Scalar(key, node, ancestors) {
      if (key === "key" || typeof node.value !== "string" || !node.value.includes("$")) return;
      const original = node.value;
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
  return (value === null && text.trim() !== "") || typeof value === "number" || typeof value === "boolean" ? value : text;
}

/**
 * `<key>_file: PATH` for a secret key (password, token, api_key) is replaced by `<key>: <file
 * contents>`, trailing newline removed. Relative paths are read from the config file's folder.
 */
export function readSecretFiles(parsed: ParsedConfigDocument, secretKeys: readonly string[]): void {
  const baseDir = dirname(resolve(parsed.file));
  visit(parsed.document, {
    Map(_key, map, ancestors) {
      // Pairs whose file could not be used are dropped: their problem is reported once, here.
      const failed: unknown[] = [];
      for (const pair of map.items as Pair<Node, Node>[]) {
        if (!isScalar(pair.key) || typeof pair.key.value !== "string" || !pair.key.value.endsWith("_file")) continue;
        const secretKey = pair.key.value.slice(0, -"_file".length);
        if (!secretKeys.includes(secretKey)) continue;
        const at = parsed.locate(pair.key.range?.[0] ?? 0);
        const path = formatPath([...pathOf([...ancestors, map, pair], undefined)]);
        const issue = (message: string) => {
          parsed.issues.push({ file: parsed.file, ...at, path, message });
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
          content = readFileSync(filePath, "utf8").replace(/\r?\n$/, "");
        } catch (error) {
          issue(`cannot read ${secretKey} file "${value}"${value === filePath ? "" : " (relative to the config file)"}: ${describeFsError(error)}`);
          continue;
        }
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
  const code = (error as NodeJS.ErrnoException).code;
  return code ? `${FS_ERRORS[code] ?? code} (${code})` : String(error);
}
