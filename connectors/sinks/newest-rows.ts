/**
 * Which row of a staged batch holds each key's newest change. A staged write keeps this until its
 * write, through several scavenges, so whatever it holds per row is promoted and marked by every
 * mark-compact meanwhile (the sink threads' collector at the default memory budget:
 * docs/benchmarks.md, issue 16). A key of one integer column, the common case, is kept in typed
 * arrays (no heap object per row); any other key by its text (keys.ts keyId) in a Map.
 */
import type { Row } from "../contracts.ts";

/** A key as NewestRows takes it: its integer (integerKey), else its text (keyId). */
export type RowKey = number | string;

/** No row. */
export const NO_ROW = -1;

/**
 * The key's integer when it is one column holding a safe integer (a number, or a bigint within
 * 2^53), else undefined. Two keys of one table have the same integer exactly when keyId gives them
 * the same text.
 */
export function integerKey(key: Row, columns: readonly string[]): number | undefined {
  if (columns.length !== 1) return undefined;
  const value = key[columns[0] as string];
  if (typeof value === "number") return Number.isSafeInteger(value) ? value : undefined;
  if (typeof value === "bigint") return value >= -MAX_SAFE && value <= MAX_SAFE ? Number(value) : undefined;
  return undefined;
}

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
const INITIAL_SLOTS = 1024;

export class NewestRows {
  /** Open addressing, linear probing: a slot's integer key and its row (NO_ROW: the slot is free). */
  #keys = new Float64Array(INITIAL_SLOTS);
  #rows = new Int32Array(INITIAL_SLOTS).fill(NO_ROW);
  #used = 0;
  #texts: Map<string, number> | null = null;

  /** The key's row, or NO_ROW. */
  get(key: RowKey): number {
    if (typeof key === "string") return this.#texts?.get(key) ?? NO_ROW;
    return this.#rows[this.#slotOf(key)] as number;
  }

  /** Makes `row` the key's row; returns the one it had, or NO_ROW. */
  set(key: RowKey, row: number): number {
    if (typeof key === "string") {
      const texts = (this.#texts ??= new Map());
      const previous = texts.get(key) ?? NO_ROW;
      texts.set(key, row);
      return previous;
    }
    const slot = this.#slotOf(key);
    const previous = this.#rows[slot] as number;
    this.#rows[slot] = row;
    if (previous === NO_ROW) {
      this.#keys[slot] = key;
      if (++this.#used * 2 > this.#rows.length) this.#grow();
    }
    return previous;
  }

  /** The slot holding the key, else the free slot where it would go. */
  #slotOf(key: number): number {
    const rows = this.#rows;
    const keys = this.#keys;
    const mask = rows.length - 1;
    // -0 and 0 land in one slot and compare equal, as keyId gives both "0".
    for (let slot = hash(key) & mask; ; slot = (slot + 1) & mask) {
      if (rows[slot] === NO_ROW || keys[slot] === key) return slot;
    }
  }

  #grow(): void {
    const keys = this.#keys;
    const rows = this.#rows;
    this.#keys = new Float64Array(2 * keys.length);
    this.#rows = new Int32Array(2 * rows.length).fill(NO_ROW);
    for (let slot = 0; slot < rows.length; slot++) {
      const row = rows[slot] as number;
      if (row === NO_ROW) continue;
      const to = this.#slotOf(keys[slot] as number);
      this.#keys[to] = keys[slot] as number;
      this.#rows[to] = row;
    }
  }
}

/**
 * A staged batch's rows, numbered in the order they were added: each row's version, each key's
 * newest row, and which rows a newer change of their key replaced (by version, ties in batch order,
 * as collapseChanges keeps them). Versions are kept in a typed array (0 .. 2^64-1): no bigint per row.
 */
export class StagedRows {
  readonly #newest = new NewestRows();
  #versions = new BigUint64Array(INITIAL_SLOTS);
  /** 1: a newer change of its key replaced the row (or it was older than the key's row when added). */
  #replaced = new Uint8Array(INITIAL_SLOTS);
  #count = 0;
  #anyReplaced = false;

  /** Rows added so far. */
  get count(): number {
    return this.#count;
  }

  /** Whether a change of `key` at `version` is older than the key's newest row. */
  older(key: RowKey, version: bigint): boolean {
    const row = this.#newest.get(key);
    return row !== NO_ROW && (this.#versions[row] as bigint) > version;
  }

  /** Adds the next row, a change of `key` at `version`: the key's newest unless the key's row is newer (then it is replaced itself). */
  add(key: RowKey, version: bigint): void {
    const row = this.#count++;
    if (row === this.#versions.length) {
      const versions = new BigUint64Array(2 * row);
      versions.set(this.#versions);
      this.#versions = versions;
      const replaced = new Uint8Array(2 * row);
      replaced.set(this.#replaced);
      this.#replaced = replaced;
    }
    this.#versions[row] = version;
    const previous = this.#newest.get(key);
    if (previous !== NO_ROW && (this.#versions[previous] as bigint) > version) {
      this.#replace(row);
      return;
    }
    if (previous !== NO_ROW) this.#replace(previous);
    this.#newest.set(key, row);
  }

  /** The rows no newer change replaced, ascending; undefined when that is every row. */
  kept(): number[] | undefined {
    if (!this.#anyReplaced) return undefined;
    const out: number[] = [];
    for (let row = 0; row < this.#count; row++) if (this.#replaced[row] === 0) out.push(row);
    return out;
  }

  #replace(row: number): void {
    this.#replaced[row] = 1;
    this.#anyReplaced = true;
  }
}

/** Mixes a safe integer's two 32-bit halves (murmur3's finalizer). */
function hash(key: number): number {
  let h = (key | 0) ^ Math.imul((key / 4294967296) | 0, 0x9e3779b1);
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
