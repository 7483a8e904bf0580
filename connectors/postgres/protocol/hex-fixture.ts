/**
 * Byte fixtures for tests, written as annotated hex: whitespace is ignored and `#` starts a
 * comment to the end of the line, so every field of a fixture can be labelled.
 */
export function hex(annotated: string): Buffer {
  const digits = annotated
    .split("\n")
    .map((line) => line.replace(/#.*$/, ""))
    .join("")
    .replace(/\s+/g, "");
  if (!/^([0-9a-fA-F]{2})*$/.test(digits)) throw new TypeError(`bad hex fixture: ${digits}`);
  return Buffer.from(digits, "hex");
}

/** The hex of a UTF-8 string followed by its NUL terminator. */
export function cstr(text: string): string {
  return `${Buffer.from(text, "utf8").toString("hex")}00`;
}

/** The hex of a UTF-8 string without a terminator. */
export function utf8(text: string): string {
  return Buffer.from(text, "utf8").toString("hex");
}
