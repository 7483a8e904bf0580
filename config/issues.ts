import { ConfigError } from "../connectors/errors.ts";

/** One problem in a config file, located by file, line, column and key path. */
export interface ConfigIssue {
  readonly file: string;
  /** 1-based; 0 when the problem has no place in the file. */
  readonly line: number;
  readonly column: number;
  /** Key path such as "sources[0].password"; empty for the whole file. */
  readonly path: string;
  readonly message: string;
}

export function formatIssue(issue: ConfigIssue): string {
  const where = issue.line > 0 ? `${issue.file}:${issue.line}:${issue.column}` : issue.file;
  return issue.path === "" ? `${where}: ${issue.message}` : `${where}: ${issue.path}: ${issue.message}`;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const part of path) {
    if (typeof part === "number") out += `[${part}]`;
    else out += out === "" ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Every problem found in a config file, all at once. Exit code 2. */
export class ConfigValidationError extends ConfigError {
  readonly issues: readonly ConfigIssue[];

  constructor(file: string, issues: readonly ConfigIssue[]) {
    const lines = issues.map(formatIssue);
    super(`${file}: ${issues.length} problem${issues.length === 1 ? "" : "s"}\n${lines.map((l) => `  ${l}`).join("\n")}`, {
      code: "CONFIG_INVALID",
      context: { component: "config" },
    });
    this.issues = issues;
  }
}

/** The closest candidate to a misspelt word, if it is close enough to be a plausible typo. */
export function nearest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const distance = editDistance(word.toLowerCase(), candidate.toLowerCase());
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  const allowed = Math.max(2, Math.floor(word.length / 3));
  if (bestDistance <= allowed) return best;
  // "bulk_size" for "bulk_bytes": same first word of a snake_case key.
  const head = word.split("_")[0]!.toLowerCase();
  const sameHead = candidates.filter((c) => c.includes("_") && c.split("_")[0]!.toLowerCase() === head);
  return word.includes("_") && sameHead.length === 1 ? sameHead[0] : undefined;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length]!;
}
