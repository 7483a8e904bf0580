/**
 * Exact decimals: digit strings ("-12.3400") to unscaled integers and Avro's decimal bytes
 * (two's-complement, big-endian, minimal length), and back.
 */

export interface ParsedDecimal {
  /** The digits without sign or point, as an integer. */
  readonly unscaled: bigint;
  /** Digits after the decimal point (never negative). */
  readonly scale: number;
}

const DECIMAL = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/** Parses "-12.3400", "12", ".5", "1.5e3" exactly. Throws on anything else (including NaN/Infinity). */
export function parseDecimal(text: string): ParsedDecimal {
  const match = DECIMAL.exec(text.trim());
  const [, sign = "", whole = "", fraction = "", exponentText] = match ?? [];
  if (!match || (whole === "" && fraction === "")) throw new RangeError(`"${text}" is not a decimal number`);
  let digits = whole + fraction;
  let scale = fraction.length - (exponentText === undefined ? 0 : Number(exponentText));
  if (scale < 0) {
    digits += "0".repeat(-scale);
    scale = 0;
  }
  const magnitude = BigInt(digits === "" ? "0" : digits);
  return { unscaled: sign === "-" ? -magnitude : magnitude, scale };
}

/** The unscaled integer of `text` at exactly `scale` digits. Throws if that would drop non-zero digits. */
export function toUnscaled(text: string, scale: number): bigint {
  const parsed = parseDecimal(text);
  if (parsed.scale <= scale) return parsed.unscaled * 10n ** BigInt(scale - parsed.scale);
  const divisor = 10n ** BigInt(parsed.scale - scale);
  if (parsed.unscaled % divisor !== 0n) throw new RangeError(`"${text}" has more than ${scale} digits after the decimal point`);
  return parsed.unscaled / divisor;
}

/** Formats an unscaled integer (a bigint, or a safe integer) with exactly `scale` digits after the point. */
export function formatUnscaled(unscaled: bigint | number, scale: number): string {
  const negative = unscaled < 0;
  let digits = (negative ? -unscaled : unscaled).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, "0");
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return negative ? `-${digits}` : digits;
}

/**
 * The digit string of Avro decimal bytes at `scale`, as formatUnscaled(bytesToUnscaled(bytes), scale):
 * up to SAFE_DECIMAL_BYTES bytes (every numeric(p, s) with p <= 14) without bigint arithmetic.
 */
export function bytesToDecimalText(bytes: Uint8Array, scale: number): string {
  return formatUnscaled(bytes.length === 0 || bytes.length > SAFE_DECIMAL_BYTES ? bytesToUnscaled(bytes) : smallBytesToNumber(bytes), scale);
}

/**
 * Avro decimal bytes of a digit string at exactly `scale` digits, as unscaledToBytes(toUnscaled(...)):
 * plain text ("-12.34") of up to 15 digits is read as a number, anything else as a bigint.
 */
export function decimalBytes(text: string, scale: number): Buffer {
  const unscaled = smallUnscaled(text, scale);
  return unscaled === undefined ? unscaledToBytes(toUnscaled(text, scale)) : safeIntegerToBytes(unscaled);
}

/** The unscaled value of "-?digits[.digits]" at `scale` when it is exact in a double (at most 15 digits), else undefined. */
export function smallUnscaled(text: string, scale: number): number | undefined {
  const negative = text.charCodeAt(0) === 45;
  let value = 0;
  let digits = 0;
  let fraction = -1;
  for (let i = negative ? 1 : 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === 46 && fraction === -1 && digits > 0) {
      fraction = 0;
      continue;
    }
    const digit = code - 48;
    if (digit < 0 || digit > 9) return undefined;
    value = value * 10 + digit;
    digits++;
    if (fraction >= 0) fraction++;
  }
  if (digits === 0 || fraction === 0) return undefined;
  const fractionDigits = Math.max(fraction, 0);
  if (fractionDigits > scale || digits + scale - fractionDigits > 15) return undefined;
  value *= 10 ** (scale - fractionDigits);
  return negative ? -value : value;
}

/** unscaledToBytes of a safe integer, in double arithmetic. */
function safeIntegerToBytes(unscaled: number): Buffer {
  if (unscaled >= -128 && unscaled <= 127) return Buffer.of(unscaled & 0xff);
  const byteLength = safeIntegerByteLength(unscaled);
  const bytes = Buffer.allocUnsafe(byteLength);
  writeSafeInteger(unscaled, bytes, 0, byteLength);
  return bytes;
}

/** How many bytes a safe integer's two's complement takes, as short as possible (at most 7). */
function safeIntegerByteLength(unscaled: number): number {
  let magnitude = unscaled < 0 ? -unscaled - 1 : unscaled;
  let byteLength = 1;
  while (magnitude >= 128) {
    magnitude = Math.floor(magnitude / 256);
    byteLength++;
  }
  return byteLength;
}

/** The `byteLength` bytes of a safe integer's two's complement, big-endian, into `bytes` at `at`. */
function writeSafeInteger(unscaled: number, bytes: Uint8Array, at: number, byteLength: number): void {
  const negative = unscaled < 0;
  // Two's complement of a negative value: the bytes of its magnitude minus one, inverted.
  let magnitude = negative ? -unscaled - 1 : unscaled;
  for (let i = at + byteLength - 1; i >= at; i--) {
    const byte = magnitude % 256;
    bytes[i] = negative ? 255 - byte : byte;
    magnitude = (magnitude - byte) / 256;
  }
}

/**
 * decimalBytes for a value that is written before the next one is asked for (capture's compiled
 * writers): a plain decimal of up to 15 digits comes back as a view of one buffer of this object,
 * overwritten by the next call, instead of a new Buffer per value; anything else as decimalBytes.
 */
export class ReusedDecimalBytes {
  private readonly bytes = Buffer.alloc(8);
  /** The views of the last n bytes, n = 1..7 (a safe integer takes at most 7). */
  private readonly views = [1, 2, 3, 4, 5, 6, 7].map((length) => this.bytes.subarray(8 - length));

  of(text: string, scale: number): Buffer {
    const unscaled = smallUnscaled(text, scale);
    if (unscaled === undefined) return unscaledToBytes(toUnscaled(text, scale));
    const byteLength = safeIntegerByteLength(unscaled);
    writeSafeInteger(unscaled, this.bytes, 8 - byteLength, byteLength);
    return this.views[byteLength - 1]!;
  }
}

const MIN_SAFE_BIG = BigInt(Number.MIN_SAFE_INTEGER);
const MAX_SAFE_BIG = BigInt(Number.MAX_SAFE_INTEGER);

/** Two's-complement big-endian bytes, as short as possible (at least one byte). */
export function unscaledToBytes(unscaled: bigint): Buffer {
  return unscaled >= MIN_SAFE_BIG && unscaled <= MAX_SAFE_BIG ? safeIntegerToBytes(Number(unscaled)) : bigintToBytes(unscaled);
}

/** unscaledToBytes in bigint arithmetic, for any magnitude (exported for tests of the double one). */
export function bigintToBytes(unscaled: bigint): Buffer {
  if (unscaled >= -128n && unscaled <= 127n) return Buffer.of(Number(unscaled) & 0xff);
  let byteLength = 1;
  const magnitude = unscaled < 0n ? -unscaled - 1n : unscaled;
  while (magnitude >> BigInt(byteLength * 8 - 1) !== 0n) byteLength++;
  const twos = unscaled < 0n ? (1n << BigInt(byteLength * 8)) + unscaled : unscaled;
  return Buffer.from(twos.toString(16).padStart(byteLength * 2, "0"), "hex");
}

/** Decimals of at most this many bytes are read in double arithmetic (|unscaled| < 2^47, exact). */
const SAFE_DECIMAL_BYTES = 6;

/** The two's-complement big-endian integer of 1 to SAFE_DECIMAL_BYTES bytes. */
function smallBytesToNumber(bytes: Uint8Array): number {
  let value = ((bytes[0] as number) << 24) >> 24;
  for (let i = 1; i < bytes.length; i++) value = value * 256 + (bytes[i] as number);
  return value;
}

export function bytesToUnscaled(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  if (bytes.length <= SAFE_DECIMAL_BYTES) return BigInt(smallBytesToNumber(bytes));
  return bigBytesToUnscaled(bytes);
}

/** bytesToUnscaled through the bytes' hex text, for any length (exported for tests of the double one). */
export function bigBytesToUnscaled(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  const value = BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`);
  return (bytes[0] as number) & 0x80 ? value - (1n << BigInt(bytes.length * 8)) : value;
}
