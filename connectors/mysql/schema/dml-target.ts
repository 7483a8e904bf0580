/**
 * The table a data-changing statement writes -- INSERT/REPLACE ... [INTO] t, UPDATE t, DELETE FROM
 * t, LOAD DATA ... INTO TABLE t -- when the binlog carries the statement instead of its rows (a
 * session set binlog_format=STATEMENT or MIXED). Sluice cannot capture such changes; this finds
 * whom to tell. Multi-table forms are not recognised (null).
 */
import type { TableName } from "./ddl-parser.ts";
import { tokenize } from "./sql-tokens.ts";
import type { Token } from "./sql-tokens.ts";

const MODIFIERS = new Set(["LOW_PRIORITY", "DELAYED", "HIGH_PRIORITY", "IGNORE", "QUICK", "CONCURRENT", "LOCAL"]);
/** The target comes early: a long statement's values are not read. */
const HEAD_CHARS = 2048;

function keyword(token: Token | undefined): string | null {
  return token?.kind === "word" && !token.quoted ? token.text.toUpperCase() : null;
}

export function dmlTarget(statement: string, defaultDatabase: string): TableName | null {
  const verb = /^\s*([A-Za-z]+)/.exec(statement)?.[1]?.toUpperCase();
  if (verb !== "INSERT" && verb !== "REPLACE" && verb !== "UPDATE" && verb !== "DELETE" && verb !== "LOAD") return null;
  const tokens = tokenize(statement.slice(0, HEAD_CHARS));
  let i = 1;
  const skipModifiers = () => {
    while (MODIFIERS.has(keyword(tokens[i]) ?? "")) i++;
  };
  if (verb === "LOAD") {
    while (i < tokens.length && !(keyword(tokens[i]) === "INTO" && keyword(tokens[i + 1]) === "TABLE")) i++;
    i += 2;
  } else {
    skipModifiers();
    if (verb === "DELETE") {
      if (keyword(tokens[i]) !== "FROM") return null;
      i++;
    } else if (keyword(tokens[i]) === "INTO") i++;
  }
  const first = tokens[i];
  if (first?.kind !== "word") return null;
  const dot = tokens[i + 1];
  const second = tokens[i + 2];
  if (dot?.kind === "punct" && dot.text === "." && second?.kind === "word") return { database: first.text, table: second.text };
  return defaultDatabase === "" ? null : { database: defaultDatabase, table: first.text };
}
