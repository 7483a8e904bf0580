/**
 * Global transaction ids in their two dialects.
 *
 * MySQL: a GTID is `source_uuid[:tag]:gno`; a set is `uuid:1-5:7-9,uuid2[:tag]:1-3` (intervals
 * per uuid and tag). Resuming sends the set of transactions already applied.
 *
 * MariaDB: a GTID is `domain-server-seq`; a position is the last GTID of every replication domain,
 * `0-1-103,1-2-5`. Resuming sets @slave_connect_state to the position.
 */
import type { BinaryReader } from "./protocol/binary-reader.ts";

export interface MysqlGtid {
  readonly uuid: string;
  readonly tag: string;
  readonly gno: bigint;
}

interface Interval {
  start: bigint;
  /** Inclusive. */
  end: bigint;
}

const UUID_PATTERN = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;

export function formatUuid(bytes: Uint8Array): string {
  const hex = Buffer.from(bytes).toString("hex");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function normalizeUuid(text: string): string {
  const hex = text.replaceAll("-", "").toLowerCase();
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** A MySQL GTID set. Keys are `uuid` or `uuid:tag`. */
export class MysqlGtidSet {
  private readonly sets = new Map<string, Interval[]>();

  static parse(text: string): MysqlGtidSet {
    const set = new MysqlGtidSet();
    const cleaned = text.replace(/\s+/g, "");
    if (cleaned === "") return set;
    for (const part of cleaned.split(",")) {
      const pieces = part.split(":");
      const uuid = pieces.shift() ?? "";
      if (!UUID_PATTERN.test(uuid)) throw new SyntaxError(`"${part}" is not a MySQL GTID set element (uuid:interval...)`);
      let tag = "";
      for (const piece of pieces) {
        const range = /^(\d+)(?:-(\d+))?$/.exec(piece);
        if (range === null) {
          if (!/^[a-z_][a-z0-9_]{0,31}$/i.test(piece)) throw new SyntaxError(`"${piece}" in "${part}" is neither an interval nor a GTID tag`);
          tag = piece.toLowerCase();
          continue;
        }
        const start = BigInt(range[1]!);
        const end = range[2] === undefined ? start : BigInt(range[2]);
        if (start < 1n || end < start) throw new SyntaxError(`bad GTID interval "${piece}" in "${part}"`);
        set.addInterval(normalizeUuid(uuid), tag, start, end);
      }
    }
    return set;
  }

  /**
   * The binary form of PREVIOUS_GTIDS_LOG_EVENT: untagged (an 8-byte sid count) or, since MySQL 8.3,
   * tagged (the format byte 1 first and last, the sid count in the six bytes between, and a tag per sid).
   */
  static decode(reader: BinaryReader): MysqlGtidSet {
    reader.need(8, "GTID set header");
    const head = reader.bytes.readBigUInt64LE(reader.pos);
    const tagged = (head & 0xffn) === 1n && head >> 56n === 1n;
    return MysqlGtidSet.decodeBody(reader, tagged ? Number((head >> 8n) & 0xffffffffffffn) : -1, tagged);
  }

  private static decodeBody(reader: BinaryReader, taggedCount: number, tagged: boolean): MysqlGtidSet {
    const set = new MysqlGtidSet();
    const count = tagged ? (reader.skip(8), taggedCount) : reader.u64Number("GTID sid count");
    for (let i = 0; i < count; i++) {
      const uuid = formatUuid(reader.bytesView(16));
      const tag = tagged ? reader.utf8(readSerializedUnsigned(reader)).toLowerCase() : "";
      const intervals = reader.u64Number("GTID interval count");
      for (let j = 0; j < intervals; j++) {
        const first = reader.i64();
        const endExclusive = reader.i64();
        if (first < 1n || endExclusive <= first) throw new RangeError(`bad GTID interval ${first}-${endExclusive}`);
        set.addInterval(uuid, tag, first, endExclusive - 1n);
      }
    }
    return set;
  }

  clone(): MysqlGtidSet {
    const copy = new MysqlGtidSet();
    for (const [key, intervals] of this.sets) copy.sets.set(key, intervals.map((i) => ({ ...i })));
    return copy;
  }

  get isEmpty(): boolean {
    return this.sets.size === 0;
  }

  get hasTags(): boolean {
    return [...this.sets.keys()].some((key) => key.includes(":"));
  }

  addAll(other: MysqlGtidSet): void {
    for (const [key, intervals] of other.sets) {
      const [uuid, tag = ""] = key.split(":") as [string, string?];
      for (const interval of intervals) this.addInterval(uuid, tag, interval.start, interval.end);
    }
  }

  add(gtid: MysqlGtid): void {
    this.addInterval(gtid.uuid, gtid.tag, gtid.gno, gtid.gno);
  }

  contains(gtid: MysqlGtid): boolean {
    const intervals = this.sets.get(keyOf(gtid.uuid, gtid.tag)) ?? [];
    return intervals.some((i) => i.start <= gtid.gno && gtid.gno <= i.end);
  }

  addInterval(uuid: string, tag: string, start: bigint, end: bigint): void {
    const key = keyOf(uuid, tag);
    const intervals = this.sets.get(key) ?? [];
    intervals.push({ start, end });
    intervals.sort((a, b) => (a.start < b.start ? -1 : a.start > b.start ? 1 : 0));
    const merged: Interval[] = [];
    for (const interval of intervals) {
      const last = merged.at(-1);
      if (last !== undefined && interval.start <= last.end + 1n) {
        if (interval.end > last.end) last.end = interval.end;
      } else merged.push({ ...interval });
    }
    this.sets.set(key, merged);
  }

  /** MySQL's text form: uuids in order, each with its untagged intervals, then its tags in order. */
  toString(): string {
    const byUuid = new Map<string, [string, Interval[]][]>();
    for (const [key, intervals] of this.sets) {
      const [uuid, tag = ""] = key.split(":") as [string, string?];
      const list = byUuid.get(uuid) ?? [];
      list.push([tag, intervals]);
      byUuid.set(uuid, list);
    }
    return [...byUuid.keys()]
      .sort()
      .map((uuid) => {
        const parts = byUuid.get(uuid)!.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
        return [uuid, ...parts.map(([tag, intervals]) => [tag, ...intervals.map(formatInterval)].filter((p) => p !== "").join(":"))].join(":");
      })
      .join(",");
  }

  /** The binary set COM_BINLOG_DUMP_GTID carries (format 0: tags are not supported there by Sluice). */
  encode(): Buffer {
    if (this.hasTags) throw new RangeError("a GTID set with tags cannot be sent in the untagged COM_BINLOG_DUMP_GTID format");
    const entries = [...this.sets.entries()].sort(([a], [b]) => (a < b ? -1 : 1));
    const size = 8 + entries.reduce((sum, [, intervals]) => sum + 16 + 8 + intervals.length * 16, 0);
    const out = Buffer.alloc(size);
    let offset = out.writeBigUInt64LE(BigInt(entries.length), 0);
    for (const [uuid, intervals] of entries) {
      offset += Buffer.from(uuid.replaceAll("-", ""), "hex").copy(out, offset);
      offset = out.writeBigUInt64LE(BigInt(intervals.length), offset);
      for (const interval of intervals) {
        offset = out.writeBigInt64LE(interval.start, offset);
        offset = out.writeBigInt64LE(interval.end + 1n, offset);
      }
    }
    return out;
  }
}

function keyOf(uuid: string, tag: string): string {
  return tag === "" ? uuid : `${uuid}:${tag}`;
}

function formatInterval(interval: Interval): string {
  return interval.start === interval.end ? `${interval.start}` : `${interval.start}-${interval.end}`;
}

/**
 * MySQL 8.3+ serialization's variable-length unsigned integer: the number of trailing one bits of
 * the first byte says how many bytes follow; the value is the little-endian bytes shifted right by
 * that count plus one (nine bytes when the first is 0xff).
 */
export function readSerializedUnsigned(reader: BinaryReader): number {
  const value = readSerializedUnsignedBig(reader);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new RangeError(`serialized integer ${value} is out of range`);
  return Number(value);
}

export function readSerializedUnsignedBig(reader: BinaryReader): bigint {
  const first = reader.u8();
  let extra = 0;
  while (extra < 8 && (first >> extra) & 1) extra++;
  if (extra === 8) return reader.u64();
  let value = BigInt(first);
  for (let i = 1; i <= extra; i++) value |= BigInt(reader.u8()) << BigInt(8 * i);
  return value >> BigInt(extra + 1);
}

export function readSerializedSigned(reader: BinaryReader): bigint {
  const zigzag = readSerializedUnsignedBig(reader);
  return zigzag & 1n ? -(zigzag >> 1n) - 1n : zigzag >> 1n;
}

export interface MariadbGtid {
  readonly domain: number;
  readonly server: number;
  readonly seq: bigint;
}

export function formatMariadbGtid(gtid: MariadbGtid): string {
  return `${gtid.domain}-${gtid.server}-${gtid.seq}`;
}

/** A MariaDB GTID position: the last GTID per replication domain. */
export class MariadbGtidPosition {
  private readonly domains = new Map<number, MariadbGtid>();

  static parse(text: string): MariadbGtidPosition {
    const position = new MariadbGtidPosition();
    for (const part of text.split(",").map((p) => p.trim()).filter((p) => p !== "")) {
      const match = /^(\d+)-(\d+)-(\d+)$/.exec(part);
      if (match === null) throw new SyntaxError(`"${part}" is not a MariaDB GTID (domain-server-sequence)`);
      position.update({ domain: Number(match[1]), server: Number(match[2]), seq: BigInt(match[3]!) });
    }
    return position;
  }

  clone(): MariadbGtidPosition {
    const copy = new MariadbGtidPosition();
    for (const gtid of this.domains.values()) copy.update(gtid);
    return copy;
  }

  get isEmpty(): boolean {
    return this.domains.size === 0;
  }

  update(gtid: MariadbGtid): void {
    this.domains.set(gtid.domain, gtid);
  }

  toString(): string {
    return [...this.domains.values()]
      .sort((a, b) => a.domain - b.domain)
      .map(formatMariadbGtid)
      .join(",");
  }
}
