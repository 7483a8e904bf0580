/** MariaDB's INET4, INET6 and UUID columns, logged as fixed binary, to the text MariaDB prints. */

export function formatInet4(bytes: Buffer, column: string): string {
  if (bytes.length !== 4) throw new RangeError(`column ${column}: INET4 value of ${bytes.length} bytes`);
  return [...bytes].join(".");
}

/** RFC 5952: lower-case hex, longest run of two or more zero groups as "::", IPv4-mapped as ::ffff:a.b.c.d. */
export function formatInet6(bytes: Buffer, column: string): string {
  if (bytes.length !== 16) throw new RangeError(`column ${column}: INET6 value of ${bytes.length} bytes`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(i));
  if (groups.slice(0, 5).every((g) => g === 0) && groups[5] === 0xffff) return `::ffff:${[...bytes.subarray(12)].join(".")}`;
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(":");
  return `${hex.slice(0, bestStart).join(":")}::${hex.slice(bestStart + bestLength).join(":")}`;
}

/**
 * MariaDB stores RFC 4122 UUIDs of versions 1 to 5 with their groups reversed, so that time-based
 * ids sort by time (llllllll-mmmm-Vhhh-vsss-nnnnnnnnnnnn is stored as nnnnnnnnnnnn vsss Vhhh mmmm llllllll);
 * other UUIDs as they are.
 */
export function formatMariadbUuid(bytes: Buffer, column: string): string {
  if (bytes.length !== 16) throw new RangeError(`column ${column}: UUID value of ${bytes.length} bytes`);
  const hex = bytes.toString("hex");
  const stored = [hex.slice(0, 12), hex.slice(12, 16), hex.slice(16, 20), hex.slice(20, 24), hex.slice(24)];
  const [n, s, vh, m, l] = stored as [string, string, string, string, string];
  const version = Number.parseInt(vh[0]!, 16);
  const variant = Number.parseInt(s[0]!, 16);
  if (version >= 1 && version <= 5 && (variant & 0xc) === 0x8) return `${l}-${m}-${vh}-${s}-${n}`;
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
