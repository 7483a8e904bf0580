/**
 * What a JSON text would cost to parse, told before JSON.parse builds it. Parsed JSON takes far more
 * heap than its text where the text is mostly structure: each `[]` or `{}` (2-3 bytes) becomes an
 * object of 30-60 bytes. A 4 MiB request body of nested arrays, or of `{},` repeated, parsed on the
 * daemon's main thread (heap ~57 MiB) ended the daemon with its heap out of memory, and nesting some
 * thousands deep overflows the stack of any recursive reader of the value.
 */

export interface JsonShapeLimits {
  /** Arrays and objects inside one another. */
  readonly maxDepth: number;
  /** Values (elements and members, arrays and objects included), counted outside strings. */
  readonly maxValues: number;
}

/** Why `text` is refused (nested deeper, or holding more values, than `limits` allow), or null. Invalid JSON is left to JSON.parse. */
export function jsonShapeProblem(text: string, limits: JsonShapeLimits): string | null {
  let depth = 0;
  let values = 0;
  let inString = false;
  for (let at = 0; at < text.length; at++) {
    const c = text.charCodeAt(at);
    if (inString) {
      // A backslash escapes the next character (\" too).
      if (c === 0x5c) at++;
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limits.maxDepth) return `its arrays and objects are nested more than ${limits.maxDepth} deep`;
      if (++values > limits.maxValues) return `it holds more than ${limits.maxValues} values`;
    } else if (c === 0x5d || c === 0x7d) depth--;
    else if (c === 0x2c && ++values > limits.maxValues) return `it holds more than ${limits.maxValues} values`;
  }
  return null;
}
