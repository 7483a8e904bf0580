/**
 * MySQL's binary DECIMAL (NEWDECIMAL): the integer and fraction digits in groups of nine packed
 * into four big-endian bytes, a shorter group for the leftover digits, the sign in the top bit of
 * the first byte (inverted), and every byte inverted for negative numbers. Decoded to the exact
 * text MySQL prints, scale digits included: "-12.3400".
 */

const DIGITS_TO_BYTES = [0, 1, 1, 2, 2, 3, 3, 4, 4, 4] as const;

export function decimalBinaryLength(precision: number, scale: number): number {
  const integer = precision - scale;
  return Math.floor(integer / 9) * 4 + DIGITS_TO_BYTES[integer % 9]! + Math.floor(scale / 9) * 4 + DIGITS_TO_BYTES[scale % 9]!;
}

export function decodeDecimal(bytes: Uint8Array, offset: number, precision: number, scale: number): string {
  const integerDigits = precision - scale;
  const negative = (bytes[offset]! & 0x80) === 0;
  const mask = negative ? 0xff : 0;
  let pos = offset;
  const readGroup = (byteCount: number): number => {
    let value = 0;
    for (let i = 0; i < byteCount; i++) {
      let byte = bytes[pos]!;
      if (pos === offset) byte ^= 0x80;
      value = value * 256 + (byte ^ mask);
      pos++;
    }
    return value;
  };
  let integer = "";
  const leading = integerDigits % 9;
  if (leading > 0) integer += String(readGroup(DIGITS_TO_BYTES[leading]!));
  for (let i = 0; i < Math.floor(integerDigits / 9); i++) integer += String(readGroup(4)).padStart(9, "0");
  let fraction = "";
  for (let i = 0; i < Math.floor(scale / 9); i++) fraction += String(readGroup(4)).padStart(9, "0");
  const trailing = scale % 9;
  if (trailing > 0) fraction += String(readGroup(DIGITS_TO_BYTES[trailing]!)).padStart(trailing, "0");
  integer = integer.replace(/^0+/, "") || "0";
  const isZero = integer === "0" && !/[1-9]/.test(fraction);
  return `${negative && !isZero ? "-" : ""}${integer}${scale > 0 ? `.${fraction}` : ""}`;
}
