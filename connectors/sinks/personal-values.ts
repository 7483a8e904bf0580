/**
 * Keeps the personal values a sink applies out of the error texts it reports. A sink holds the
 * decrypted value of a personal column; a server that refuses the row echoes it in its error
 * (Elasticsearch "Preview of field's value: '...'", ClickHouse "Cannot parse string '...'", DuckDB
 * "Duplicate key "email: ...""), and that text goes to logs, /status, halted-table messages and the
 * dead-letter topic's `sluice.error` header, none of which `sluice forget` reaches. The decryptor
 * marks each event it opened with the clear values; a `Redactor` replaces them (and the escaped
 * forms servers print) in a text before it leaves the sink.
 *
 * Cost: nothing is compiled. A redactor holds the distinct spellings of its values and looks each up
 * with indexOf, skipping the ones longer than the text, so its work is bounded by (spellings x text
 * length) and its memory by the spellings. A row's refusal is redacted with that row's values only
 * (redactFailures); an error about the whole batch with one redactor built once for all its texts.
 */
import type { ChangeEvent, SinkChange, SinkItemFailure } from "../contracts.ts";

export const PERSONAL_VALUE = "[personal value]";

/**
 * Values shorter than this are left: a 1-3 character value ("US", "F", "abc") would be blanked
 * inside table and column names and other words of the message, and tells little on its own.
 */
export const SHORTEST_REDACTED = 4;

// A symbol property, not a WeakMap: short-lived WeakMap keys cost V8's collector far more per event.
const OPENED: unique symbol = Symbol("sluice.personalValues");
type Marked = ChangeEvent & { [OPENED]?: readonly string[] };

/** Records the clear personal values the decryptor put into `event` (nothing when there are none). */
export function markPersonalValues(event: ChangeEvent, values: readonly string[]): void {
  if (values.length > 0) (event as Marked)[OPENED] = values;
}

/** Whether the decryptor put a clear personal value into the event. */
export function holdsPersonalValues(event: ChangeEvent): boolean {
  return (event as Marked)[OPENED] !== undefined;
}

/** The clear personal values marked on one event, or undefined (no array made: for the per-event path). */
export function markedValues(event: ChangeEvent): readonly string[] | undefined {
  return (event as Marked)[OPENED];
}

/** The clear personal values of the events (their before and after images). */
export function personalValuesOf(events: Iterable<ChangeEvent | undefined>): string[] {
  const values: string[] = [];
  for (const event of events) {
    const marked = event === undefined ? undefined : (event as Marked)[OPENED];
    if (marked !== undefined) values.push(...marked);
  }
  return values;
}

/**
 * Values servers quote in their errors, whatever they are: blanked only when the text concerns rows
 * with personal values, for a server that prints a value shortened or re-spelt (which the exact
 * replacement would miss).
 */
const QUOTED_VALUES: readonly RegExp[] = [
  // Elasticsearch: "failed to parse field [email] of type [long] in document with id '3'. Preview of field's value: 'ann@...'"
  /(Preview of field's value: )'[\s\S]*?'(?=\s\(|$|[;,"\]})])/g,
  // A Java NumberFormatException, as Elasticsearch's caused_by prints it.
  /(For input string: )"(?:[^"\\]|\\.)*"/g,
  // Elasticsearch's "immense term": the first bytes of the value as decimals, "'[90, 111, 195, 169, ...]...'".
  /(The prefix of the first immense term is: )'[^']*'/g,
];

const BACKSLASHED: Readonly<Record<string, string>> = { "\\": "\\\\", "'": "\\'", "\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0" };

function escapedForms(value: string): string[] {
  const json = JSON.stringify(value).slice(1, -1);
  // ClickHouse quotes a string in its errors with backslash escapes (quote, backslash, control characters).
  const backslashed = value.replace(/[\\'\n\t\r\0]/g, (c) => BACKSLASHED[c]!);
  const forms = [value, json, backslashed, value.replaceAll("'", "\\'"), value.replaceAll("'", "''"), value.replaceAll('"', '""')];
  // JSON written by an ASCII-only encoder (Jackson, Python): each non-ASCII UTF-16 unit as \uXXXX, in either case.
  if (/[^\x00-\x7f]/.test(json)) {
    const escaped = json.replace(/[^\x00-\x7f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
    forms.push(escaped, escaped.replace(/\\u([0-9a-f]{4})/g, (_m, hex: string) => `\\u${hex.toUpperCase()}`));
  }
  return forms;
}

/** Replaces a set of personal values, in all their spellings, in texts; built once, used for as many texts as needed. */
export class Redactor {
  /** Distinct spellings, longest first (a value containing another is replaced whole). */
  readonly #forms: readonly string[];
  /** Whether it was given any value, short ones included (then value previews are blanked). */
  readonly #any: boolean;

  constructor(values: Iterable<string>) {
    const forms = new Set<string>();
    const distinct = new Set(values);
    this.#any = distinct.size > 0;
    for (const value of distinct) if (value.length >= SHORTEST_REDACTED) for (const form of escapedForms(value)) forms.add(form);
    this.#forms = [...forms].sort((a, b) => b.length - a.length);
  }

  /** Whether it was given no value (then it leaves texts alone, value previews included). */
  get empty(): boolean {
    return !this.#any;
  }

  /**
   * The text with every value (and its escaped forms) replaced by PERSONAL_VALUE, and the value
   * previews servers add blanked. A text already redacted is unchanged: PERSONAL_VALUE is never
   * searched into.
   */
  text(text: string): string {
    if (this.empty) return text;
    const kept = placeholders(text);
    const spans: [number, number][] = [];
    for (const form of this.#forms) {
      if (form.length > text.length) continue;
      for (let at = text.indexOf(form); at !== -1; at = text.indexOf(form, at + form.length)) {
        const end = at + form.length;
        if (!kept.some(([s, e]) => at < e && end > s)) spans.push([at, end]);
      }
    }
    let out = spans.length === 0 ? text : replaceSpans(text, spans);
    for (const quoted of QUOTED_VALUES) out = out.replace(quoted, (match, prefix: string) => `${prefix}${match.charAt(prefix.length)}${PERSONAL_VALUE}${match.charAt(prefix.length)}`);
    return out;
  }

  /**
   * Redacts, in place, an error about rows holding the values: its message, stack, string context
   * fields and causes. In place, so its class and code (which decide halt or dead-letter, retry or
   * not) stay as they are. The same error, redacted twice, is unchanged the second time.
   */
  error<E extends Error>(error: E): E {
    if (this.empty) return error;
    const seen = new Set<unknown>();
    for (let node: unknown = error; node instanceof Error && !seen.has(node); node = node.cause) {
      seen.add(node);
      node.message = this.text(node.message);
      if (node.stack !== undefined) node.stack = this.text(node.stack);
      const context = (node as { context?: unknown }).context;
      if (context !== null && typeof context === "object") {
        for (const [key, value] of Object.entries(context)) if (typeof value === "string") (context as Record<string, unknown>)[key] = this.text(value);
      }
    }
    return error;
  }
}

/** Where PERSONAL_VALUE already stands in the text. */
function placeholders(text: string): [number, number][] {
  const spans: [number, number][] = [];
  for (let at = text.indexOf(PERSONAL_VALUE); at !== -1; at = text.indexOf(PERSONAL_VALUE, at + PERSONAL_VALUE.length)) spans.push([at, at + PERSONAL_VALUE.length]);
  return spans;
}

/** The text with each span (merged where they overlap) replaced by PERSONAL_VALUE. */
function replaceSpans(text: string, spans: [number, number][]): string {
  spans.sort((a, b) => a[0] - b[0] || b[1] - a[1]);
  let out = "";
  let from = 0;
  let open: [number, number] | null = null;
  for (const span of spans) {
    if (open !== null && span[0] < open[1]) {
      open[1] = Math.max(open[1], span[1]);
      continue;
    }
    if (open !== null) {
      out += text.slice(from, open[0]) + PERSONAL_VALUE;
      from = open[1];
    }
    open = [span[0], span[1]];
  }
  if (open !== null) out += text.slice(from, open[0]) + PERSONAL_VALUE + text.slice(open[1]);
  else out += text.slice(from);
  return out;
}

/** The text with `values` redacted (one redactor for this text: for many texts, build a Redactor once). */
export function redactPersonalValues(text: string, values: readonly string[]): string {
  return values.length === 0 ? text : new Redactor(values).text(text);
}

/** An error about rows holding `values`, redacted in place (see Redactor.error). */
export function redactErrorValues<E extends Error>(error: E, values: readonly string[]): E {
  return values.length === 0 ? error : new Redactor(values).error(error);
}

/**
 * Redacts each row's failure with the personal values of its own row only (its before and after
 * images): a refusal quotes the row it refuses, and a batch's values for each of its rows would be
 * rows x values of work. A failure whose index names no change of the batch gets the batch's.
 */
export function redactFailures(failures: readonly SinkItemFailure[], changes: readonly SinkChange[]): void {
  let batch: Redactor | null = null;
  for (const failure of failures) {
    const event = changes[failure.index]?.event;
    if (event !== undefined) {
      const values = personalValuesOf([event]);
      if (values.length > 0) new Redactor(values).error(failure.error);
    } else {
      batch ??= new Redactor(personalValuesOf(changes.map((c) => c.event)));
      batch.error(failure.error);
    }
  }
}
