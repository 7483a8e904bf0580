/**
 * Server error codes about the data sent: another set of rows may succeed. Their messages may quote a row's
 * text (a parse error shows the value it read), so nothing else in them is read as the server's own state.
 */
export const DATA_CODES: ReadonlySet<number> = new Set([6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 376, 407, 691]);
