/** The configured `tables` ("schema.table", with * and ? wildcards) as a predicate on names. */
export type TableMatcher = (schema: string, table: string) => boolean;

function globToRegExp(glob: string): RegExp {
  const source = glob.replace(/[.+^${}()|[\]\\-]/g, "\\$&").replaceAll("*", ".*").replaceAll("?", ".");
  return new RegExp(`^${source}$`);
}

export function tableMatcher(patterns: readonly string[]): TableMatcher {
  const compiled = patterns.map((pattern) => {
    const dot = pattern.indexOf(".");
    return { schema: globToRegExp(pattern.slice(0, dot)), table: globToRegExp(pattern.slice(dot + 1)) };
  });
  return (schema, table) => compiled.some((p) => p.schema.test(schema) && p.table.test(table));
}
