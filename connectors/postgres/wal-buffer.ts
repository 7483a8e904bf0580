/**
 * The replication stream's read-ahead: WAL messages kept as bytes, not objects, until read.
 *
 * Why: the read-ahead holds tens of thousands of messages for a second or more while capture
 * catches up. As objects (the message, its payload Buffer, its LSN as a bigint, the queue entry)
 * each outlived two scavenges and was promoted to V8's old generation, to be marked and swept
 * there: the collector's work, not capture's. Here a message is a payload copied into a shared
 * slab and a row of numbers in a ring of typed arrays; its WalMessage object is made when it is
 * read (peek or shift), and dies young. Counting against the bound is the same as
 * ByteBoundedBuffer's (the message's bytes and ITEM_OVERHEAD_BYTES).
 *
 * A payload handed out is a view of its slab, and slabs are never reused (a slab goes when its
 * last message is read and no view of it is left), so a view kept by a decoded value stays valid.
 */
import { ByteBoundedBuffer, ITEM_OVERHEAD_BYTES } from "../common/byte-bounded-buffer.ts";
import type { WalMessage } from "./replication-stream.ts";
import { XLOGDATA_HEADER_BYTES } from "./protocol/replication-messages.ts";

const SLAB_BYTES = 256 * 1024;
/** Numbers per message in the ring: LSN high and low words, slab number, offset, length, cost, kind. */
const STRIDE = 7;
const DATA = 0;
const KEEPALIVE = 1;
const KEEPALIVE_REPLY = 2;
const EMPTY = Buffer.alloc(0);

export class WalBuffer extends ByteBoundedBuffer<WalMessage> {
  private ring = new Uint32Array(1024 * STRIDE);
  /** Index of the first message in the ring, and how many there are. */
  private first = 0;
  private count = 0;
  /** The slabs still holding unread messages, oldest first; `slabs[0]` is slab number `firstSlab`. */
  private slabs: Buffer[] = [];
  private firstSlab = 0;
  /** Where the next payload goes in the newest slab. */
  private writeAt = 0;
  /** The first message as an object, once peeked (shift hands out the same one). */
  private peeked: WalMessage | undefined;

  override get length(): number {
    return this.count;
  }

  /**
   * Queues an XLogData message: its start LSN (as the two 32-bit words of the header) and a copy
   * of its payload, `chunk` from `from` to `to`; the XLogData header is right before `from`. No
   * object is kept for it. A payload larger than a slab in a buffer the caller lets go (`owned`: a
   * message put together from several socket reads) becomes a slab itself, not copied: a change
   * of one large value is then held once here, not twice.
   */
  pushData(lsnHigh: number, lsnLow: number, chunk: Buffer, from: number, to = chunk.length, owned = false): void {
    if (this.failed !== null) return;
    const length = to - from;
    if (owned && length > SLAB_BYTES) {
      this.slabs.push(chunk.subarray(from, to));
      this.writeAt = length;
      this.append(lsnHigh, lsnLow, this.firstSlab + this.slabs.length - 1, 0, length, length + XLOGDATA_HEADER_BYTES + ITEM_OVERHEAD_BYTES, DATA);
      return;
    }
    const slab = this.room(length);
    chunk.copy(this.slabs[slab - this.firstSlab]!, this.writeAt, from, to);
    this.append(lsnHigh, lsnLow, slab, this.writeAt, length, length + XLOGDATA_HEADER_BYTES + ITEM_OVERHEAD_BYTES, DATA);
    this.writeAt += length;
  }

  override push(item: WalMessage, bytes: number): void {
    if (this.failed !== null) return;
    const high = Number(item.walStart >> 32n);
    const low = Number(item.walStart & 0xffff_ffffn);
    const cost = bytes + ITEM_OVERHEAD_BYTES;
    if (item.keepalive !== undefined) {
      // A keepalive holds no bytes; it keeps the newest slab, so the slab numbers in the ring never go down.
      this.append(high, low, Math.max(this.firstSlab, this.firstSlab + this.slabs.length - 1), 0, 0, cost, item.keepalive.replyRequested ? KEEPALIVE_REPLY : KEEPALIVE);
      return;
    }
    const length = item.payload.length;
    const slab = this.room(length);
    item.payload.copy(this.slabs[slab - this.firstSlab]!, this.writeAt);
    this.append(high, low, slab, this.writeAt, length, cost, DATA);
    this.writeAt += length;
  }

  override peek(): WalMessage | undefined {
    if (this.count === 0) return undefined;
    this.peeked ??= this.messageAt(this.first * STRIDE);
    return this.peeked;
  }

  override get nextBytes(): number {
    return this.count === 0 ? 0 : this.ring[this.first * STRIDE + 5]!;
  }

  override shift(): WalMessage | undefined {
    const message = this.peek();
    if (message === undefined) return undefined;
    const at = this.first * STRIDE;
    const cost = this.ring[at + 5]!;
    this.peeked = undefined;
    this.first = (this.first + 1) % (this.ring.length / STRIDE);
    this.count--;
    this.releaseSlabsBefore(this.count === 0 ? this.firstSlab + this.slabs.length - 1 : this.ring[this.first * STRIDE + 2]!);
    this.removed(cost);
    return message;
  }

  override clear(): void {
    this.first = 0;
    this.count = 0;
    this.peeked = undefined;
    this.firstSlab += this.slabs.length;
    this.slabs = [];
    this.writeAt = 0;
    this.cleared();
  }

  /** The slab number a payload of `length` bytes is written to at `writeAt` (a new slab when the newest is full). */
  private room(length: number): number {
    const newest = this.slabs.at(-1);
    if (newest === undefined || this.writeAt + length > newest.length) {
      this.slabs.push(Buffer.allocUnsafeSlow(Math.max(SLAB_BYTES, length)));
      this.writeAt = 0;
    }
    return this.firstSlab + this.slabs.length - 1;
  }

  private append(high: number, low: number, slab: number, offset: number, length: number, cost: number, kind: number): void {
    let capacity = this.ring.length / STRIDE;
    if (this.count === capacity) {
      // Grown in order: the oldest message first.
      const grown = new Uint32Array(this.ring.length * 2);
      const head = this.ring.subarray(this.first * STRIDE);
      grown.set(head);
      grown.set(this.ring.subarray(0, this.first * STRIDE), head.length);
      this.ring = grown;
      this.first = 0;
      capacity *= 2;
    }
    const at = ((this.first + this.count) % capacity) * STRIDE;
    const ring = this.ring;
    ring[at] = high;
    ring[at + 1] = low;
    ring[at + 2] = slab;
    ring[at + 3] = offset;
    ring[at + 4] = length;
    ring[at + 5] = cost;
    ring[at + 6] = kind;
    this.count++;
    this.added(cost);
  }

  private messageAt(at: number): WalMessage {
    const ring = this.ring;
    const high = ring[at]!;
    const low = ring[at + 1]!;
    // One bigint where the LSN fits a double's integers (every LSN for a long while).
    const walStart = high < 0x200000 ? BigInt(high * 0x1_0000_0000 + low) : (BigInt(high) << 32n) | BigInt(low);
    const kind = ring[at + 6]!;
    if (kind !== DATA) return { walStart, payload: EMPTY, keepalive: { replyRequested: kind === KEEPALIVE_REPLY } };
    const offset = ring[at + 3]!;
    return { walStart, payload: this.slabs[ring[at + 2]! - this.firstSlab]!.subarray(offset, offset + ring[at + 4]!) };
  }

  /** Lets go of the slabs before `firstNeeded` (never the newest, which is still written to). */
  private releaseSlabsBefore(firstNeeded: number): void {
    const newest = this.firstSlab + this.slabs.length - 1;
    const keepFrom = Math.min(firstNeeded, newest);
    if (keepFrom <= this.firstSlab) return;
    this.slabs.splice(0, keepFrom - this.firstSlab);
    this.firstSlab = keepFrom;
  }
}
