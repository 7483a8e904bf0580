/**
 * Keeps the personal values a sink applies out of the error texts it reports. A sink holds the
 * decrypted value of a personal column; a server that refuses the row echoes it in its error
 * (Elasticsearch "Preview of field's value: '...'", ClickHouse "Cannot parse string '...'", DuckDB
 * "Duplicate key "email: ...""), and that text goes to logs, /status, halted-table messages and the
 * dead-letter topic's `sluice.error` header, none of which `sluice forget` reaches. The decryptor
 * marks each event it opened with the clear values; `redactPersonalValues` replaces them (and the
 * escaped forms servers print) in a text before it leaves the sink.
 */
import type { ChangeEvent } from "../contracts.ts";

export const PERSONAL_VALUE = "[personal value]";

const opened = new WeakMap<ChangeEvent, readonly string[]>();

/** Records the clear personal values the decryptor put into `event` (nothing when there are none). */
export function markPersonalValues(event: ChangeEvent, values: readonly string[]): void {
  if (values.length > 0) opened.set(event, values);
}

/** Whether the decryptor put a clear personal value into the event. */
export function holdsPersonalValues(event: ChangeEvent): boolean {
  return opened.has(event);
}

/** The clear personal values of the events (their before and after images). */
export function personalValuesOf(events: Iterable<ChangeEvent | undefined>): string[] {
  const values: string[] = [];
  for (const event of events) if (event !== undefined) values.push(...(opened.get(event) ?? []));
  return values;
}

/**
 * Values servers quote in their errors, whatever they are: used only when the text concerns rows
 * with personal values, for a server that prints a value shortened or re-spelt (which the exact
 * replacement would miss).
 */
const QUOTED_VALUES: readonly RegExp[] = [
  // Elasticsearch: "failed to parse field [email] of type [long] in document with id '3'. Preview of field's value: 'ann@...'"
  /(Preview of field's value: )'[\s\S]*?'(?=\s\(|$|[;,"\]})])/g,
  // A Java NumberFormatException, as Elasticsearch's caused_by prints it.
  /(For input string: )"(?:[^"\\]|\\.)*"/g,
];

const BACKSLASHED: Readonly<Record<string, string>> = { "\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0" };

function escapedForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  // ClickHouse quotes a string in its errors with backslash escapes (quote, backslash, control characters).
  const backslashed = value.replace(/[\\'\n\t\r\0]/g, (c) => BACKSLASHED[c]!);
  return [value, json, backslashed, value.replaceAll("'", "\\'"), value.replaceAll("'", "''"), value.replaceAll('"', '""')];
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/**
 * The text with every one of `values` (and its escaped forms) replaced by PERSONAL_VALUE, and the
 * value previews servers add blanked; the text unchanged when `values` is empty. A one-character
 * value is left (it would blank every such character of the message, and tells little).
 */
export function redactPersonalValues(text: string, values: readonly string[]): string {
  if (values.length === 0) return text;
  const forms = new Set<string>();
  for (const value of values) if (value.length > 1) for (const form of escapedForms(value)) forms.add(form);
  let out = text;
  if (forms.size > 0) {
    // Longest first, so a value containing another is replaced whole.
    const pattern = new RegExp([...forms].sort((a, b) => b.length - a.length).map(escapeRegExp).join("|"), "g");
    out = out.replace(pattern, PERSONAL_VALUE);
  }
  for (const quoted of QUOTED_VALUES) out = out.replace(quoted, (match, prefix: string) => `${prefix}${match.charAt(prefix.length)}${PERSONAL_VALUE}${match.charAt(prefix.length)}`);
  return out;
}

/**
 * Redacts, in place, an error about rows holding `values`: its message, stack, string context
 * fields and causes. In place, so its class and code (which decide halt or dead-letter, retry or
 * not) stay as they are. The same error, redacted twice, is unchanged the second time.
 */
export function redactErrorValues<E extends Error>(error: E, values: readonly string[]): E {
  if (values.length === 0) return error;
  const seen = new Set<unknown>();
  const walk = (node: unknown) => {
    if (!(node instanceof Error) || seen.has(node)) return;
    seen.add(node);
    node.message = redactPersonalValues(node.message, values);
    if (node.stack !== undefined) node.stack = redactPersonalValues(node.stack, values);
    const context = (node as { context?: unknown }).context;
    if (context !== null && typeof context === "object") {
      for (const [key, value] of Object.entries(context)) if (typeof value === "string") (context as Record<string, unknown>)[key] = redactPersonalValues(value, values);
    }
    walk(node.cause);
  };
  walk(error);
  return error;
}
