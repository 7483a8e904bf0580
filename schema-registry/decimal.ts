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

/** Formats an unscaled integer with exactly `scale` digits after the point. */
export function formatUnscaled(unscaled: bigint, scale: number): string {
  const negative = unscaled < 0n;
  let digits = (negative ? -unscaled : unscaled).toString();
  if (scale > 0) {
    digits = digits.padStart(scale + 1, "0");
    digits = `${digits.slice(0, -scale)}.${digits.slice(-scale)}`;
  }
  return negative ? `-${digits}` : digits;
}

/** Two's-complement big-endian bytes, as short as possible (at least one byte). */
export function unscaledToBytes(unscaled: bigint): Buffer {
  if (unscaled >= -128n && unscaled <= 127n) return Buffer.of(Number(unscaled) & 0xff);
  let byteLength = 1;
  const magnitude = unscaled < 0n ? -unscaled - 1n : unscaled;
  while (magnitude >> BigInt(byteLength * 8 - 1) !== 0n) byteLength++;
  const twos = unscaled < 0n ? (1n << BigInt(byteLength * 8)) + unscaled : unscaled;
  return Buffer.from(twos.toString(16).padStart(byteLength * 2, "0"), "hex");
}

export function bytesToUnscaled(bytes: Uint8Array): bigint {
  if (bytes.length === 0) return 0n;
  const value = BigInt(`0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("hex")}`);
  return (bytes[0] as number) & 0x80 ? value - (1n << BigInt(bytes.length * 8)) : value;
}
