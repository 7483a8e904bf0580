/**
 * A snapshot's WHERE condition is put inside parentheses of Sluice's own chunk query. It must stay
 * one expression there: no ")" that closes Sluice's parenthesis (`true) UNION ALL SELECT ... WHERE (true`
 * would add rows of the condition's choosing to the snapshot). Whether a parenthesis is SQL or text
 * depends on how the server reads quotes, and a server may or may not treat a backslash in a string
 * as an escape (PostgreSQL's E'' strings and standard_conforming_strings, MySQL's
 * NO_BACKSLASH_ESCAPES), so the condition must be balanced read either way.
 */
import { SluiceError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";

export interface ConditionDialect {
  /** What starts a comment (or ends a statement), which could cut the condition short. */
  readonly cutters: RegExp;
  /** Characters that open and close a quoted string or identifier. */
  readonly quotes: string;
  /** A `$` starting a token may open a dollar-quoted string (PostgreSQL): such conditions are refused, not read. */
  readonly dollarQuotes: boolean;
}

export const POSTGRES_CONDITION: ConditionDialect = { cutters: /;|--|\/\*/, quotes: `'"`, dollarQuotes: true };
export const MYSQL_CONDITION: ConditionDialect = { cutters: /;|--|\/\*|#/, quotes: "'\"`", dollarQuotes: false };

/** A WHERE condition as one SQL expression (trimmed; null when there is none), or SNAPSHOT_WHERE_INVALID naming why not. */
export function checkWhere(where: string | null, table: string, context: ErrorContext, dialect: ConditionDialect): string | null {
  if (where === null) return null;
  const trimmed = where.trim();
  // Given but empty (e.g. an unset shell variable) it would read the whole table, and its reset remove rows: not a guess to make.
  if (trimmed === "") {
    throw new SluiceError(`the condition --where "${where}" is empty: leave --where out (or "where": null) to read the whole table`, { code: "SNAPSHOT_WHERE_INVALID", context: { ...context, table } });
  }
  if (dialect.cutters.test(trimmed)) {
    throw new SluiceError(`the condition --where "${where}" must be one SQL expression (no ";" or comments)`, { code: "SNAPSHOT_WHERE_INVALID", context: { ...context, table } });
  }
  const escape = conditionEscape(trimmed, dialect);
  if (escape !== null) {
    throw new SluiceError(`the condition --where "${where}" must be one SQL expression: it has ${escape}`, { code: "SNAPSHOT_WHERE_INVALID", context: { ...context, table } });
  }
  return trimmed;
}

/** Why `condition` could end Sluice's parenthesis, or null when every reading of its quotes keeps it one expression. */
export function conditionEscape(condition: string, dialect: ConditionDialect): string | null {
  for (const backslashEscapes of [false, true]) {
    const problem = scan(condition, dialect, backslashEscapes);
    if (problem !== null) return problem;
  }
  return null;
}

function scan(text: string, dialect: ConditionDialect, backslashEscapes: boolean): string | null {
  let depth = 0;
  let quote: string | null = null;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote !== null) {
      if (backslashEscapes && c === "\\" && quote !== "`") i++;
      else if (c === quote) {
        if (text[i + 1] === quote) i++;
        else quote = null;
      }
      continue;
    }
    if (dialect.quotes.includes(c)) quote = c;
    else if (c === "$" && dialect.dollarQuotes && !/[\p{L}\p{N}_$]/u.test(text[i - 1] ?? " ")) return `a "$" that may open a dollar-quoted string`;
    else if (c === "(") depth++;
    else if (c === ")" && --depth < 0) return `a ")" with no "(" before it`;
  }
  if (quote !== null) return `a quote ${quote} not closed`;
  return depth === 0 ? null : `a "(" not closed`;
}
