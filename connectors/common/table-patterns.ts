/**
 * The configured `tables` ("schema.table", with * and ? wildcards) as a predicate on names. A pattern
 * starting with "!" excludes what it matches from what the others include (e.g. an online schema change
 * tool's copies: ["shop.*", "!shop._*"]).
 */
export type TableMatcher = (schema: string, table: string) => boolean;

function globToRegExp(glob: string): RegExp {
  const source = glob.replace(/[.+^${}()|[\]\\-]/g, "\\$&").replaceAll("*", ".*").replaceAll("?", ".");
  // "s": a name may hold a line break (a quoted identifier), which * and ? match like any other character.
  return new RegExp(`^${source}$`, "s");
}

export const isExclusion = (pattern: string): boolean => pattern.startsWith("!");

/** The patterns that include tables (those not starting with "!"). */
export function includingPatterns(patterns: readonly string[]): string[] {
  return patterns.filter((pattern) => !isExclusion(pattern));
}

function compile(pattern: string): (schema: string, table: string) => boolean {
  const dot = pattern.indexOf(".");
  const schema = globToRegExp(pattern.slice(0, dot));
  const table = globToRegExp(pattern.slice(dot + 1));
  return (s, t) => schema.test(s) && table.test(t);
}

export function tableMatcher(patterns: readonly string[]): TableMatcher {
  const included = includingPatterns(patterns).map(compile);
  const excluded = patterns.filter(isExclusion).map((pattern) => compile(pattern.slice(1)));
  return (schema, table) => included.some((p) => p(schema, table)) && !excluded.some((p) => p(schema, table));
}
