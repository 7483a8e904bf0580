/**
 * Text for a terminal from names anyone who may create a table chooses: control characters (an
 * escape sequence can recolour the terminal, move its cursor, set its title or, on some, write its
 * clipboard) and the bidirectional embedding, override and isolate characters (U+202A-U+202E,
 * U+2066-U+2069, which reorder what follows them: a line could show text other than what it holds)
 * are shown as \u escapes instead of being sent to it. On one line, so are line breaks.
 */

// C0 controls but tab and line feed, DEL, the C1 controls (U+0080-U+009F; U+009B is a one-character CSI), bidi controls.
// --json output stays JSON: these occur only in its strings, where \uXXXX is the same character.
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;
const CONTROL_BREAK_OR_BIDI = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

const escaped = (char: string): string => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`;

/** `text` with its control characters but tabs and line breaks (and its bidi controls) escaped: a command's whole output. */
export function terminalText(text: string): string {
  return text.replace(CONTROL, escaped);
}

/** `text` on one line, every control character, line break and bidi override escaped: a table's cell or a progress line. */
export function oneLine(text: string): string {
  return text.replace(CONTROL_BREAK_OR_BIDI, escaped);
}
