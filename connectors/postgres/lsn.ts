/** PostgreSQL log sequence numbers ("16/B374D848") as bigint, and the server's 2000-01-01 epoch. */

const LSN_PATTERN = /^([0-9A-Fa-f]{1,8})\/([0-9A-Fa-f]{1,8})$/;

export function parseLsn(text: string): bigint {
  const match = LSN_PATTERN.exec(text);
  if (match === null) throw new TypeError(`not an LSN: "${text}"`);
  return (BigInt(`0x${match[1]!}`) << 32n) | BigInt(`0x${match[2]!}`);
}

export function formatLsn(lsn: bigint): string {
  return `${(lsn >> 32n).toString(16).toUpperCase()}/${(lsn & 0xffffffffn).toString(16).toUpperCase()}`;
}

/** Microseconds between 1970-01-01 and 2000-01-01, PostgreSQL's timestamp epoch. */
export const POSTGRES_EPOCH_OFFSET_MICROS = 946_684_800_000_000n;

export function postgresMicrosToEpochMs(micros: bigint): number {
  return Number((micros + POSTGRES_EPOCH_OFFSET_MICROS) / 1000n);
}

export function epochMsToPostgresMicros(ms: number): bigint {
  return BigInt(Math.trunc(ms)) * 1000n - POSTGRES_EPOCH_OFFSET_MICROS;
}
