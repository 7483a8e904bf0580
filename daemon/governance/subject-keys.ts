/**
 * Crypto-shredding (issue 18, docs/governance.md): one AES-256-GCM data key per data subject,
 * wrapped by a master key read from a file, kept in a compacted topic of Sluice's own topic log
 * (embedded log or Kafka). Destroying a subject's key (a tombstone) makes every value encrypted
 * with it unreadable, wherever copies of the records are.
 *
 * Record of the key topic: key "<source>\u0000<subject>", value = wrapped data key:
 *   "SK1" | master key id (8 bytes) | IV (12) | GCM tag (16) | encrypted data key (32)
 * Memory: at most `cacheSize` unwrapped keys, and one index entry per subject (the offset of its
 * latest record); a key not cached is fetched from the topic at that offset.
 */
import { createCipheriv, createDecipheriv, createHash, createSecretKey, randomBytes, randomFillSync, timingSafeEqual } from "node:crypto";
import type { KeyObject } from "node:crypto";
import { KiB, readBoundedFile } from "../../config/bounded-file.ts";
import type { ProducedRecord, StoredRecord, TopicConsumer, TopicLog } from "../../connectors/contracts.ts";
import { SluiceError } from "../../connectors/errors.ts";
import { subjectKeysTopic } from "../../connectors/topics/names.ts";

const WRAP_MAGIC = Buffer.from("SK1");

function keyError(message: string, context: Record<string, unknown> = {}): SluiceError {
  return new SluiceError(message, { code: "GOVERNANCE_KEY_INVALID", context: { component: "governance", ...context } });
}

/** Like a secret file (config/document.ts): a master key file holds 64 hex digits or 44 base64 characters. */
const MASTER_KEY_FILE_MAX_BYTES = 64 * KiB;

/** The master key: 32 bytes, written in its file as 64 hex digits or as base64. */
export class MasterKey {
  readonly id: Buffer;
  /** Prepared once: a raw key is imported again by every createCipheriv (most of a wrap's cost, and capture wraps a key per new subject). */
  private readonly key: KeyObject;

  constructor(key: Buffer) {
    if (key.length !== 32) throw keyError(`a master key has 32 bytes, this one ${key.length}`);
    this.key = createSecretKey(key);
    this.id = createHash("sha256").update(key).digest().subarray(0, 8);
  }

  static fromFile(path: string): MasterKey {
    let text: string;
    try {
      text = readBoundedFile(path, MASTER_KEY_FILE_MAX_BYTES).toString("utf8").trim();
    } catch (error) {
      throw keyError(`cannot read the master key file ${path}: ${(error as Error).message}`, { path });
    }
    const bytes = /^[0-9a-fA-F]{64}$/.test(text) ? Buffer.from(text, "hex") : Buffer.from(text, "base64");
    if (bytes.length !== 32) throw keyError(`the master key file ${path} must hold 32 bytes as 64 hex digits or base64 (e.g. from "openssl rand -hex 32"); it holds ${bytes.length} bytes`, { path });
    return new MasterKey(bytes);
  }

  static generate(): MasterKey {
    return new MasterKey(randomBytes(32));
  }

  wrap(dataKey: Buffer): Buffer {
    const iv = randomBytes(12);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    cipher.setAAD(this.id);
    const sealed = Buffer.concat([cipher.update(dataKey), cipher.final()]);
    return Buffer.concat([WRAP_MAGIC, this.id, iv, cipher.getAuthTag(), sealed]);
  }

  /** Whether `wrapped` was wrapped by this master key. */
  wrapped(wrapped: Uint8Array): boolean {
    return Buffer.from(wrapped.subarray(3, 11)).equals(this.id);
  }

  unwrap(wrapped: Uint8Array): Buffer {
    const bytes = Buffer.from(wrapped);
    if (bytes.length !== 3 + 8 + 12 + 16 + 32 || !bytes.subarray(0, 3).equals(WRAP_MAGIC)) throw keyError("a stored subject key is not in Sluice's format");
    if (!this.wrapped(bytes)) throw keyError(`a stored subject key was wrapped by master key ${bytes.subarray(3, 11).toString("hex")}, not by this one (${this.id.toString("hex")}); give the previous master key too, or finish the rotation`);
    const decipher = createDecipheriv("aes-256-gcm", this.key, bytes.subarray(11, 23));
    decipher.setAAD(this.id);
    decipher.setAuthTag(bytes.subarray(23, 39));
    try {
      return Buffer.concat([decipher.update(bytes.subarray(39)), decipher.final()]);
    } catch {
      throw keyError("a stored subject key fails its integrity check (altered, or wrapped by another key with the same id)");
    }
  }
}

/**
 * Where a subject's parking key is kept in the key topic (as the key of a source of this name):
 * the key its personal values in a parked or dead-lettered change are sealed with while its own
 * key cannot be used (wrapped by a master key this process was not given; parked-personal.ts).
 * Wrapped by the current master key, destroyed with the subject's key by `destroy`.
 */
export function parkingKeySource(source: string): string {
  return `${source}\u0001parking`;
}

function isParkingKeySource(source: string): boolean {
  return source.endsWith("\u0001parking");
}

/** A data key ready to use: creating the KeyObject and the key id for every value costs more than the encryption. */
export interface PreparedKey {
  readonly key: KeyObject;
  readonly id: Buffer;
}
const prepared = new WeakMap<Buffer, PreparedKey>();
export function preparedKey(dataKey: Buffer): PreparedKey {
  let entry = prepared.get(dataKey);
  if (!entry) {
    entry = { key: createSecretKey(dataKey), id: createHash("sha256").update(dataKey).digest().subarray(0, 4) };
    prepared.set(dataKey, entry);
  }
  return entry;
}

/** IVs drawn from the system's CSPRNG in blocks (one call per 1,024 values, not one each). */
const ivPool = Buffer.alloc(12 * 1_024);
let ivNext = ivPool.length;
function freshIv(): Buffer {
  if (ivNext === ivPool.length) {
    randomFillSync(ivPool);
    ivNext = 0;
  }
  ivNext += 12;
  // A view, not a copy: createCipheriv copies it before the pool is refilled.
  return ivPool.subarray(ivNext - 12, ivNext);
}

/** Prefix of every encrypted value (both formats) and of a reference to a sealed row. */
const ENCRYPTED_PREFIX = "sluice-enc:";
/** The first format: one AES-GCM operation per value (still read). */
const VALUE_PREFIX = "sluice-enc:v1:";
/** The current format: the personal values of one row image sealed together. */
const SEALED_PREFIX = "sluice-enc:v2:";
/** A personal column whose value is inside the sealed values of another column of the same row image. */
const REFERENCE_PREFIX = "sluice-enc:ref:";

/** What every seal of one prefix, context and subject shares: the text before the payload and the AAD. */
export interface SealHead {
  readonly text: string;
  readonly aad: Buffer;
  /** Scratch of SealWorkers' request being built (the request that last met this head, its place there): no Map per request. */
  mark: number;
  slot: number;
}

/**
 * Heads of recent (prefix, context, subject)s: a subject's rows come together (a snapshot, a
 * transaction), and building them cost more than the AES-GCM operation's own setup. Bounded.
 */
const sealHeads = new Map<string, Map<string, Map<string, SealHead>>>();
let sealHeadCount = 0;
function sealHead(prefix: string, context: string, subject: string): SealHead {
  // Keyed level by level: no string is built to look a head up.
  let byContext = sealHeads.get(prefix);
  if (byContext === undefined) sealHeads.set(prefix, (byContext = new Map()));
  let bySubject = byContext.get(context);
  if (bySubject === undefined) byContext.set(context, (bySubject = new Map()));
  let head = bySubject.get(subject);
  if (head === undefined) {
    if (sealHeadCount >= 4_096) {
      sealHeads.clear();
      sealHeads.set(prefix, (byContext = new Map([[context, (bySubject = new Map())]])));
      sealHeadCount = 0;
    }
    head = { text: `${prefix}${Buffer.from(subject).toString("base64url")}.`, aad: Buffer.from(`${context}\u0000${subject}`), mark: 0, slot: 0 };
    bySubject.set(subject, head);
    sealHeadCount += 1;
  }
  return head;
}

/**
 * Writes key id (4) | IV (12) | GCM tag (16) | AES-256-GCM(plain) with `aad` into `into` at `at`
 * (32 + plain's bytes: GCM's output is as long as its input, final adds nothing); returns how many bytes.
 */
export function sealInto(plain: Uint8Array | string, dataKey: Buffer, aad: Uint8Array, into: Uint8Array, at: number): number {
  return sealPrepared(plain, preparedKey(dataKey), aad, into, at);
}

/** sealInto with the data key prepared by the caller (a seal worker prepares each request's keys once, not once per row image). */
export function sealPrepared(plain: Uint8Array | string, { key, id }: PreparedKey, aad: Uint8Array, into: Uint8Array, at: number): number {
  const iv = freshIv();
  const cipher = createCipheriv("aes-256-gcm", key, iv);
  cipher.setAAD(aad);
  const sealed = typeof plain === "string" ? cipher.update(plain, "utf8") : cipher.update(plain);
  cipher.final();
  // TypedArray set, not Buffer copy: for these few bytes Buffer.copy's own checks cost more than the copy.
  into.set(id, at);
  into.set(iv, at + 4);
  into.set(cipher.getAuthTag(), at + 16);
  into.set(sealed, at + 32);
  return 32 + sealed.length;
}

const BASE64 = Buffer.from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
const PAD = 61; // "="

/**
 * Writes bytes from[start..end) in base64 (padded, as Buffer's "base64") into `to` at `at`, returns
 * where it ends: a seal worker writes a row image's whole sealed text as bytes, without a string per row.
 */
export function writeBase64(from: Uint8Array, start: number, end: number, to: Uint8Array, at: number): number {
  let i = start;
  for (; i + 3 <= end; i += 3) {
    const n = (from[i]! << 16) | (from[i + 1]! << 8) | from[i + 2]!;
    to[at] = BASE64[n >>> 18]!;
    to[at + 1] = BASE64[(n >>> 12) & 63]!;
    to[at + 2] = BASE64[(n >>> 6) & 63]!;
    to[at + 3] = BASE64[n & 63]!;
    at += 4;
  }
  if (i < end) {
    const n = (from[i]! << 16) | (i + 1 < end ? from[i + 1]! << 8 : 0);
    to[at] = BASE64[n >>> 18]!;
    to[at + 1] = BASE64[(n >>> 12) & 63]!;
    to[at + 2] = i + 1 < end ? BASE64[(n >>> 6) & 63]! : PAD;
    to[at + 3] = PAD;
    at += 4;
  }
  return at;
}

/** key id (4) | IV (12) | GCM tag (16) | AES-256-GCM(plain), with AAD `${context}\0${subject}`, as text after `prefix`. */
function seal(prefix: string, plain: Buffer | string, dataKey: Buffer, context: string, subject: string): string {
  const head = sealHead(prefix, context, subject);
  const out = Buffer.allocUnsafe(32 + (typeof plain === "string" ? Buffer.byteLength(plain, "utf8") : plain.length));
  sealInto(plain, dataKey, head.aad, out, 0);
  return head.text + out.toString("base64");
}

/**
 * What every seal of `context` (the table) and `subject` shares: its text before the payload and its
 * AAD (what a seal worker gets in place of them). The text of sealed values is
 * `text + base64(payload)`, the payload written by sealInto with `aad`.
 */
export function sealedHead(context: string, subject: string): SealHead {
  return sealHead(SEALED_PREFIX, context, subject);
}

function unseal(text: string, dataKey: Buffer, context: string): Buffer {
  const by = encryptedBy(text);
  if (by === null) throw keyError("not a value encrypted by Sluice");
  const bytes = Buffer.from(text.slice(text.indexOf(".", ENCRYPTED_PREFIX.length) + 1), "base64");
  if (bytes.length < 32) throw keyError(`an encrypted value of ${context} is cut short`, { column: context });
  const decipher = createDecipheriv("aes-256-gcm", preparedKey(dataKey).key, bytes.subarray(4, 16));
  decipher.setAAD(Buffer.from(`${context}\u0000${by.subject}`));
  decipher.setAuthTag(bytes.subarray(16, 32));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(32)), decipher.final()]);
  } catch {
    throw keyError(`an encrypted value of ${context} fails its integrity check (altered, or encrypted for another column, table or subject)`, { column: context });
  }
}

/**
 * The first format, one value: "sluice-enc:v1:" + base64url(subject) + "." + base64(key id (4) |
 * IV (12) | GCM tag (16) | AES-256-GCM(value)); `context` is the table and column. Still read
 * (decryptValue); capture writes sealValues.
 */
export function encryptValue(plain: Buffer, dataKey: Buffer, context: string, subject: string): string {
  return seal(VALUE_PREFIX, plain, dataKey, context, subject);
}

/**
 * The personal values of one row image in ONE AES-256-GCM operation (one IV, one tag: the
 * per-operation cost of node:crypto dominated when each value had its own):
 * "sluice-enc:v2:" + base64url(subject) + "." + base64(key id (4) | IV (12) | GCM tag (16) |
 * AES-256-GCM(JSON {column: value text})). The subject is named so a reader finds its key without
 * the config, the key id (a digest of the data key) so it knows a value whose key is gone for good;
 * the subject and `context` (the table) are authenticated, the column names are inside the ciphertext.
 */
export function sealValues(values: Readonly<Record<string, string>>, dataKey: Buffer, context: string, subject: string): string {
  return sealJson(JSON.stringify(values), dataKey, context, subject);
}

/** sealValues of values already written as JSON text (a seal worker gets them so). */
export function sealJson(json: string, dataKey: Buffer, context: string, subject: string): string {
  return seal(SEALED_PREFIX, json, dataKey, context, subject);
}

/** The values sealed by sealValues, by column. */
export function openValues(text: string, dataKey: Buffer, context: string): Record<string, string> {
  if (!isSealed(text)) throw keyError("not values sealed by Sluice");
  const parsed: unknown = JSON.parse(unseal(text, dataKey, context).toString("utf8"));
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) throw keyError(`the sealed values of ${context} are not in Sluice's format`, { column: context });
  return parsed as Record<string, string>;
}

/** What a personal column holds when its value is sealed in `column` of the same row image (names no value). */
export function referenceTo(column: string): string {
  return `${REFERENCE_PREFIX}${column}`;
}

export function isSealed(value: unknown): value is string {
  return typeof value === "string" && value.startsWith(SEALED_PREFIX);
}

/** 4 bytes naming a data key (not secret: a digest). */
export function dataKeyId(dataKey: Buffer): Buffer {
  return preparedKey(dataKey).id;
}

/** An encrypted value of either format, or a reference to sealed values. */
export function isEncrypted(value: unknown): value is string {
  return typeof value === "string" && value.startsWith(ENCRYPTED_PREFIX);
}

/** The subject and key id of an encrypted value (either format), or null when it is not one (a reference is not). */
export function encryptedBy(text: string): { subject: string; keyId: string } | null {
  const prefix = text.startsWith(SEALED_PREFIX) ? SEALED_PREFIX : text.startsWith(VALUE_PREFIX) ? VALUE_PREFIX : null;
  if (prefix === null) return null;
  const dot = text.indexOf(".", prefix.length);
  if (dot < 0) return null;
  const payload = Buffer.from(text.slice(dot + 1, dot + 1 + 8), "base64");
  return { subject: Buffer.from(text.slice(prefix.length, dot), "base64url").toString(), keyId: payload.subarray(0, 4).toString("hex") };
}

/** A value of the first format. */
export function decryptValue(text: string, dataKey: Buffer, context: string): Buffer {
  if (!text.startsWith(VALUE_PREFIX)) throw keyError("not a value encrypted by Sluice");
  return unseal(text, dataKey, context);
}

const recordKey = (source: string, subject: string) => `${source}\u0000${subject}`;

/** Unwrapped data keys kept in memory by default (personal_data.key_cache_size): unwrapping costs an AES-GCM decryption, fetching a wrapped key a read of the log. */
export const DEFAULT_KEY_CACHE_SIZE = 10_000;
/** Tombstones of the key topic are kept (ten years): every reader then knows a subject was forgotten, not just unknown. */
const TOMBSTONE_RETENTION_MS = 10 * 365 * 86_400_000;
/** Index values below 0: a key this process wrote whose offset the follower has not read yet, and a destroyed key. */
const WRITTEN_HERE = -1;
const DESTROYED = -2;
/** Records read per seek when fetching wrapped keys: offsets closer than this are read together. */
const FETCH_SPAN = 256;
/**
 * Keys after a fetched one are cached too, up to this many (and a quarter of the cache): keys are
 * written in the order capture meets subjects, so a replay needs them in about that order, and one
 * seek then serves many misses.
 */
const READ_AHEAD = 128;
/**
 * The reader's fetch wait at the end of the key topic (Kafka; the default is 500 ms): a seek for a
 * miss waits for the fetch under way, so a short one serves misses quickly; idle, it costs about
 * 20 empty fetches a second.
 */
const READER_FETCH_WAIT_MS = 50;
/** How long one fetch of wrapped keys waits for the log before it fails (retried by its caller, like any read). */
const FETCH_TIMEOUT_MS = 30_000;
/** Offsets read at a time when the log reads by offsets (Kafka): what the follower holds at once. */
const RANGE_CHUNK = 5_000n;

/** Subjects destroyed since a watch began (SubjectKeyStore.watchDestroyed). */
export interface DestroyedKeys {
  /** The subjects destroyed since the watch began or since the last take, each once. */
  take(): { readonly source: string; readonly subject: string }[];
  close(): void;
}

export interface SubjectKeyStoreOptions {
  /** Master keys being rotated away from: still accepted for reading. */
  readonly previous?: readonly MasterKey[];
  /** Create the key topic when missing (default); false for read-only use (a dry run): a missing topic is an empty store. */
  readonly create?: boolean;
  /** Unwrapped keys kept in memory, least recently used dropped first (default DEFAULT_KEY_CACHE_SIZE). */
  readonly cacheSize?: number;
}

/** The key topic of a deployment. */
export function subjectKeyTopic(deployment: string): string {
  return subjectKeysTopic(deployment);
}

/**
 * The subjects' data keys of one deployment, read from a compacted topic and followed: `catchUp`
 * reads what was written since (by capture, by `sluice forget`, by a rotation).
 *
 * Memory is bounded by the cache, not by the number of subjects: in memory are at most
 * `cacheSize` unwrapped keys and, per subject, only its index entry (the offset of its latest
 * record in the key topic, or that it was destroyed). A key not cached is fetched from the topic
 * at that offset (one seek per run of nearby offsets), never by reading the topic again.
 */
export class SubjectKeyStore {
  private readonly log: TopicLog;
  private readonly topic: string;
  private readonly master: MasterKey;
  private readonly previous: readonly MasterKey[];
  private readonly cacheSize: number;
  /** "<source>\0<subject>" -> offset of its latest record (>= 0), WRITTEN_HERE or DESTROYED. */
  private readonly index = new Map<string, number>();
  private live = 0;
  /** The subjects destroyed since each watch began (watchDestroyed), by record key. */
  private readonly watches = new Set<Set<string>>();
  /** Unwrapped keys, least recently used first (about: see `cached`), with the clock of their last move to the end. */
  private readonly unwrapped = new Map<string, { readonly dataKey: Buffer; used: number }>();
  private clock = 0;
  private readonly group: string;
  private consumer: TopicConsumer | null = null;
  /**
   * Where the log reads ranges of offsets without a consumer group (Kafka: a new group waits the
   * broker's group.initial.rebalance.delay.ms, 3 s by default, before it reads, and the key store
   * opens on the way to a governed table's first record), the follower's next offset; the
   * consumer is then never made.
   */
  private readonly readRange: ((start: bigint, end: bigint) => Promise<StoredRecord[]>) | null;
  private next = 0n;
  private reading: Promise<void> = Promise.resolve();

  private constructor(log: TopicLog, topic: string, master: MasterKey, options: SubjectKeyStoreOptions) {
    this.log = log;
    this.topic = topic;
    this.master = master;
    this.previous = options.previous ?? [];
    this.cacheSize = Math.max(1, options.cacheSize ?? DEFAULT_KEY_CACHE_SIZE);
    this.group = `${topic}.reader.${process.pid}.${Date.now()}.${randomBytes(3).toString("hex")}`;
    this.readRange = log.readRange ? (start, end) => log.readRange!(topic, 0, start, end) : null;
  }

  /** Opens the store: creates its compacted topic when missing (unless `create` is false), indexes every key. */
  static async open(log: TopicLog, topic: string, master: MasterKey, options: SubjectKeyStoreOptions = {}): Promise<SubjectKeyStore> {
    if (options.create !== false) await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true, tombstoneRetentionMs: TOMBSTONE_RETENTION_MS });
    const store = new SubjectKeyStore(log, topic, master, options);
    await store.catchUp();
    return store;
  }

  /** Live subject keys. */
  get size(): number {
    return this.live;
  }

  /** Unwrapped keys held in memory now (at most the cache size). */
  get cachedKeys(): number {
    return this.unwrapped.size;
  }

  /** Reads the key topic up to its end as it is now (after any read under way), so keys written or destroyed elsewhere are seen. */
  catchUp(): Promise<void> {
    return this.serially(() => this.readToEnd());
  }

  /** Same as catchUp (kept for callers of the first version). */
  refresh(): Promise<void> {
    return this.catchUp();
  }

  /** Reads of the one consumer, one at a time: following the topic and fetching keys both move its position. */
  private serially<T>(read: () => Promise<T>): Promise<T> {
    const run = this.reading.then(read);
    this.reading = run.then(() => undefined, () => undefined);
    return run;
  }

  private async readToEnd(): Promise<void> {
    if (!(await this.log.topicNames()).includes(this.topic)) return;
    if (this.readRange) return this.readRangesToEnd(this.readRange);
    const ends = await this.log.endOffsets(this.topic);
    if (ends.every((end) => end.offset === 0n)) return;
    const consumer = await this.reader(ends);
    const finished = () => ends.every((end) => (consumer.position(this.topic, end.partition) ?? 0n) >= end.offset);
    // The newest keys are cached as they are read (up to half the cache): values that use a key come soon after it.
    const warmFrom = Number(ends[0]!.offset) - Math.ceil(this.cacheSize / 2);
    while (!finished()) {
      const records: StoredRecord[] = await consumer.poll({ maxRecords: 5_000, maxBytes: 8 << 20, maxWaitMs: 200 });
      for (const record of records) this.follow(record, Number(record.offset) >= warmFrom);
    }
  }

  /** readToEnd by offsets: from the follower's next offset to the partition's end as it is now, a chunk at a time. */
  private async readRangesToEnd(readRange: (start: bigint, end: bigint) => Promise<StoredRecord[]>): Promise<void> {
    const { start, end } = await this.onlyPartition();
    const warmFrom = Number(end) - Math.ceil(this.cacheSize / 2);
    // Records before the partition's start are gone (deleted), as a consumer from the earliest offset would find.
    for (let from = this.next > start ? this.next : start; from < end; ) {
      const to = from + RANGE_CHUNK < end ? from + RANGE_CHUNK : end;
      for (const record of await readRange(from, to)) this.follow(record, Number(record.offset) >= warmFrom);
      this.next = from = to;
    }
  }

  private async onlyPartition(): Promise<{ start: bigint; end: bigint }> {
    const ranges = await this.log.partitionOffsets(this.topic);
    if (ranges.some((range) => range.partition !== 0)) throw keyError(`the key topic ${this.topic} must have one partition; it has ${ranges.length}`, { topic: this.topic });
    return ranges[0] ?? { start: 0n, end: 0n };
  }

  private async reader(ends: readonly { partition: number }[]): Promise<TopicConsumer> {
    if (!this.consumer) {
      if (ends.some((end) => end.partition !== 0)) throw keyError(`the key topic ${this.topic} must have one partition; it has ${ends.length}`, { topic: this.topic });
      this.consumer = await this.log.consumer(this.group, [this.topic], { fetchWaitMs: READER_FETCH_WAIT_MS });
      await this.consumer.seek(this.topic, 0, { kind: "earliest" });
    }
    return this.consumer;
  }

  private follow(record: StoredRecord, warm: boolean): void {
    if (record.key === null) return;
    const key = Buffer.from(record.key).toString();
    const before = this.index.get(key);
    const wasLive = before !== undefined && before !== DESTROYED;
    if (record.value === null) {
      this.index.set(key, DESTROYED);
      this.unwrapped.delete(key);
      if (wasLive) this.live -= 1;
      // A parking key's tombstone comes with its subject's, which the watches get.
      if (!key.includes("\u0001parking\u0000")) for (const watch of this.watches) watch.add(key);
      return;
    }
    this.index.set(key, Number(record.offset));
    if (!wasLive) this.live += 1;
    // A cached key is replaced by the record's (a rewrap keeps it, a new key after an erasure replaces it).
    if (warm || this.unwrapped.has(key)) this.cacheRecord(key, record.value);
  }

  private cacheRecord(key: string, wrapped: Uint8Array): void {
    try {
      const dataKey = this.unwrapWith(wrapped);
      const held = this.unwrapped.get(key)?.dataKey;
      // The same key (this process's own record, or a rewrap) keeps its Buffer: its prepared cipher key (preparedKey) stays made.
      this.remember(key, held !== undefined && held.length === dataKey.length && timingSafeEqual(held, dataKey) ? held : dataKey);
    } catch {
      // A key wrapped by a master key not given: reported where it is used.
      this.unwrapped.delete(key);
    }
  }

  /** Whether the subject has a key, without unwrapping it (also one wrapped by a master key this process was not given). */
  hasKey(source: string, subject: string): boolean {
    const at = this.index.get(recordKey(source, subject));
    return at !== undefined && at !== DESTROYED;
  }

  /** The subject's data key when it is in memory now (no read of the log). */
  cachedKey(source: string, subject: string): Buffer | undefined {
    return this.cached(recordKey(source, subject));
  }

  /** The subject's data key, or null when it has none (never had one, or it was destroyed). */
  async keyIfKnown(source: string, subject: string): Promise<Buffer | null> {
    const key = recordKey(source, subject);
    const cached = this.cached(key);
    if (cached) return cached;
    if (!this.hasKey(source, subject)) return null;
    const wrapped = (await this.fetch([key])).get(key);
    // Destroyed meanwhile (a tombstone read by a catch-up).
    if (!wrapped) return null;
    return this.remember(key, this.unwrapWith(wrapped));
  }

  /** Whether the subject's key was destroyed (a tombstone read, or `forgetLocally`). */
  wasDestroyed(source: string, subject: string): boolean {
    return this.index.get(recordKey(source, subject)) === DESTROYED;
  }

  /** The subject's data key, created (and stored durably, before any value uses it) when it has none. */
  async keyFor(source: string, subject: string): Promise<Buffer> {
    const known = await this.keyIfKnown(source, subject);
    if (known) return known;
    await this.createKeys(source, [subject]);
    return (await this.keyIfKnown(source, subject))!;
  }

  /**
   * Makes the keys of `subjects` ready: those not cached are fetched together (one pass over the
   * log, not one read each), those without a key are created in one durable write before any
   * value uses them. A key that cannot be unwrapped is left for its use to report.
   */
  async createKeys(source: string, subjects: readonly string[]): Promise<void> {
    const fetch: string[] = [];
    const create: string[] = [];
    for (const subject of new Set(subjects)) {
      const key = recordKey(source, subject);
      if (this.unwrapped.has(key)) continue;
      (this.hasKey(source, subject) ? fetch : create).push(subject);
    }
    if (fetch.length > 0) {
      const wrapped = await this.fetch(fetch.map((subject) => recordKey(source, subject)));
      for (const subject of fetch) {
        const key = recordKey(source, subject);
        const found = wrapped.get(key);
        if (!found) {
          if (!this.hasKey(source, subject)) create.push(subject);
          continue;
        }
        try {
          this.remember(key, this.unwrapWith(found));
        } catch {
          // keyIfKnown reports it where the key is used (halting the table).
        }
      }
    }
    if (create.length === 0) return;
    const created = create.map((subject) => {
      const dataKey = randomBytes(32);
      return { subject, dataKey, wrapped: this.master.wrap(dataKey) };
    });
    await this.log.produce(created.map(({ subject, wrapped }) => this.record(source, subject, wrapped)));
    for (const { subject, dataKey } of created) {
      const key = recordKey(source, subject);
      if (!this.hasKey(source, subject)) this.live += 1;
      // The follower learns its offset when it reads it; until then a fetch catches up first.
      this.index.set(key, WRITTEN_HERE);
      this.remember(key, dataKey);
    }
  }

  /** Destroys the subject's key and its parking key (tombstones; compaction removes the keys' earlier records). Idempotent. */
  async destroy(source: string, subject: string): Promise<boolean> {
    const had = this.hasKey(source, subject);
    await this.log.produce([this.record(source, subject, null), this.record(parkingKeySource(source), subject, null)]);
    this.forgetLocally(source, subject);
    return had;
  }

  /** Drops the subject's key (and its parking key) from this reader only (its tombstone is written by whoever destroys it): values read from now on stay encrypted. */
  forgetLocally(source: string, subject: string): void {
    if (!isParkingKeySource(source)) this.forgetLocally(parkingKeySource(source), subject);
    const key = recordKey(source, subject);
    if (this.hasKey(source, subject)) this.live -= 1;
    this.index.set(key, DESTROYED);
    this.unwrapped.delete(key);
    if (!isParkingKeySource(source)) for (const watch of this.watches) watch.add(key);
  }

  /**
   * The subjects whose key this store learns is destroyed from now on (a tombstone read, or
   * `forgetLocally`), until closed: a rebuild erases them in its new tables, where it may have
   * written a value it decrypted just before (governance/rebuild-erasures.ts). Erasures are few.
   */
  watchDestroyed(): DestroyedKeys {
    const destroyed = new Set<string>();
    this.watches.add(destroyed);
    return {
      take: () => {
        const subjects = [...destroyed].map((key) => {
          const split = key.indexOf("\u0000");
          return { source: key.slice(0, split), subject: key.slice(split + 1) };
        });
        destroyed.clear();
        return subjects;
      },
      close: () => {
        this.watches.delete(destroyed);
      },
    };
  }

  /** How many live keys are wrapped by a master key other than the current one (reads the key topic once). */
  async wrappedByOthers(): Promise<number> {
    let count = 0;
    await this.scanLive((_key, wrapped) => {
      if (!this.master.wrapped(wrapped)) count += 1;
    });
    return count;
  }

  /** Wraps every key not yet wrapped by the current master key again with it; returns how many. Re-runnable after a crash. */
  async rewrapAll(): Promise<number> {
    let records: ProducedRecord[] = [];
    let count = 0;
    const flush = async () => {
      if (records.length === 0) return;
      await this.log.produce(records);
      count += records.length;
      records = [];
    };
    await this.scanLive(async (key, wrapped) => {
      if (this.master.wrapped(wrapped)) return;
      const old = this.previous.find((m) => m.wrapped(wrapped));
      if (!old) throw keyError(`the key of subject record ${JSON.stringify(key.replace("\u0000", "/"))} was wrapped by a master key that was not given (id ${Buffer.from(wrapped.subarray(3, 11)).toString("hex")})`);
      // At the first NUL: a table's stand-in subject (parked-personal.ts tableStandIn) starts with one.
      const split = key.indexOf("\u0000");
      const source = key.slice(0, split);
      const subject = key.slice(split + 1);
      records.push(this.record(source, subject, this.master.wrap(old.unwrap(wrapped))));
      if (records.length >= 1_000) await flush();
    });
    await flush();
    // The follower reads the rewrapped records (their offsets) on its next catch-up.
    await this.catchUp();
    return count;
  }

  async close(): Promise<void> {
    await this.reading;
    const consumer = this.consumer;
    this.consumer = null;
    await consumer?.close().catch(() => undefined);
  }

  /** Every live key's latest record, read once from the start of the topic (by offsets, or with a consumer of its own): an administrative pass. */
  private async scanLive(visit: (key: string, wrapped: Uint8Array) => void | Promise<void>): Promise<void> {
    await this.catchUp();
    if (this.live === 0) return;
    const visitLive = async (record: StoredRecord) => {
      if (record.key === null || record.value === null) return;
      const key = Buffer.from(record.key).toString();
      if (this.index.get(key) === Number(record.offset)) await visit(key, record.value);
    };
    if (this.readRange) {
      const { start, end } = await this.onlyPartition();
      for (let from = start; from < end; from += RANGE_CHUNK) {
        for (const record of await this.readRange(from, from + RANGE_CHUNK < end ? from + RANGE_CHUNK : end)) await visitLive(record);
      }
      return;
    }
    const ends = await this.log.endOffsets(this.topic);
    const consumer = await this.log.consumer(`${this.group}.scan`, [this.topic]);
    try {
      await consumer.seek(this.topic, 0, { kind: "earliest" });
      const end = ends[0]?.offset ?? 0n;
      while ((consumer.position(this.topic, 0) ?? 0n) < end) {
        for (const record of await consumer.poll({ maxRecords: 5_000, maxBytes: 8 << 20, maxWaitMs: 200 })) await visitLive(record);
      }
    } finally {
      await consumer.close().catch(() => undefined);
    }
  }

  /** The wrapped keys of `keys` (record keys) from the topic, by the offsets in the index; absent: destroyed meanwhile. */
  private fetch(keys: readonly string[]): Promise<Map<string, Uint8Array>> {
    return this.serially(async () => {
      if (keys.some((key) => this.index.get(key) === WRITTEN_HERE)) await this.readToEnd();
      const found = await this.readAt(keys);
      // A record replaced since the follower read it (a rewrap) may be compacted away: read on, then fetch those again.
      const missed = keys.filter((key) => !found.has(key) && (this.index.get(key) ?? DESTROYED) >= 0);
      if (missed.length > 0) {
        await this.readToEnd();
        for (const [key, wrapped] of await this.readAt(missed)) found.set(key, wrapped);
      }
      return found;
    });
  }

  /**
   * The records at the indexed offsets of `keys`: one seek per run of offsets less than FETCH_SPAN
   * apart, the live keys of the records read after them cached (read-ahead); then the follower's
   * position is restored.
   */
  private async readAt(keys: readonly string[]): Promise<Map<string, Uint8Array>> {
    const wanted = new Map<number, string>();
    for (const key of keys) {
      const at = this.index.get(key);
      if (at !== undefined && at >= 0) wanted.set(at, key);
    }
    const found = new Map<string, Uint8Array>();
    if (wanted.size === 0) return found;
    if (this.readRange) return this.readRangesAt(this.readRange, wanted, found);
    const consumer = await this.reader([{ partition: 0 }]);
    const resume = consumer.position(this.topic, 0);
    const offsets = [...wanted.keys()].sort((a, b) => a - b);
    const deadline = Date.now() + FETCH_TIMEOUT_MS;
    const ahead = Math.min(READ_AHEAD, Math.floor(this.cacheSize / 4));
    try {
      let i = 0;
      while (i < offsets.length) {
        const from = offsets[i]!;
        let last = from;
        for (let j = i + 1; j < offsets.length && offsets[j]! - from < FETCH_SPAN; j++) last = offsets[j]!;
        await consumer.seek(this.topic, 0, { kind: "offset", offset: BigInt(from) });
        // Read until past `last` (compaction leaves gaps: fewer records than offsets).
        for (let past = false; !past; ) {
          if (Date.now() > deadline) throw keyError(`reading subject keys from ${this.topic} took longer than ${FETCH_TIMEOUT_MS / 1000} s`, { topic: this.topic });
          const records = await consumer.poll({ maxRecords: last - from + 1 + ahead, maxBytes: 1 << 20, maxWaitMs: 200 });
          for (const record of records) {
            const offset = Number(record.offset);
            const key = wanted.get(offset);
            if (key !== undefined && record.value !== null) found.set(key, record.value);
            else if (offset > last && offset <= last + ahead && record.key !== null && record.value !== null) {
              const other = Buffer.from(record.key).toString();
              if (this.index.get(other) === offset && !this.unwrapped.has(other)) this.cacheRecord(other, record.value);
            }
          }
          past = (consumer.position(this.topic, 0) ?? 0n) > BigInt(last);
        }
        while (i < offsets.length && offsets[i]! <= last) i++;
      }
    } finally {
      // The follower goes on from where it was: nothing it has not read yet is skipped.
      await consumer.seek(this.topic, 0, resume === null ? { kind: "earliest" } : { kind: "offset", offset: resume });
    }
    return found;
  }

  /**
   * readAt by offsets: one range per run of offsets less than FETCH_SPAN apart, with the read-ahead
   * after it, never past the follower's next offset (the index knows no offset beyond it).
   */
  private async readRangesAt(readRange: (start: bigint, end: bigint) => Promise<StoredRecord[]>, wanted: ReadonlyMap<number, string>, found: Map<string, Uint8Array>): Promise<Map<string, Uint8Array>> {
    const offsets = [...wanted.keys()].sort((a, b) => a - b);
    const ahead = Math.min(READ_AHEAD, Math.floor(this.cacheSize / 4));
    let i = 0;
    while (i < offsets.length) {
      const from = offsets[i]!;
      let last = from;
      for (let j = i + 1; j < offsets.length && offsets[j]! - from < FETCH_SPAN; j++) last = offsets[j]!;
      const to = BigInt(last + 1 + ahead) < this.next ? BigInt(last + 1 + ahead) : this.next;
      for (const record of await readRange(BigInt(from), to)) {
        const offset = Number(record.offset);
        const key = wanted.get(offset);
        if (key !== undefined && record.value !== null) found.set(key, record.value);
        else if (offset > last && record.key !== null && record.value !== null) {
          const other = Buffer.from(record.key).toString();
          if (this.index.get(other) === offset && !this.unwrapped.has(other)) this.cacheRecord(other, record.value);
        }
      }
      while (i < offsets.length && offsets[i]! <= last) i++;
    }
    return found;
  }

  private cached(key: string): Buffer | undefined {
    const entry = this.unwrapped.get(key);
    if (entry === undefined) return undefined;
    // Least recently used goes first: a hit moves to the end, unless it is in the newer half already
    // (a subject's rows come together; moving it on every hit cost more than the seal's key lookup).
    if (this.clock - entry.used > this.cacheSize >> 1) {
      this.unwrapped.delete(key);
      this.unwrapped.set(key, entry);
      entry.used = ++this.clock;
    }
    return entry.dataKey;
  }

  private unwrapWith(wrapped: Uint8Array): Buffer {
    const master = [this.master, ...this.previous].find((m) => m.wrapped(wrapped)) ?? this.master;
    return master.unwrap(wrapped);
  }

  private remember(key: string, dataKey: Buffer): Buffer {
    this.unwrapped.delete(key);
    this.unwrapped.set(key, { dataKey, used: ++this.clock });
    if (this.unwrapped.size > this.cacheSize) this.unwrapped.delete(this.unwrapped.keys().next().value!);
    return dataKey;
  }

  private record(source: string, subject: string, wrapped: Buffer | null): ProducedRecord {
    return { topic: this.topic, key: Buffer.from(recordKey(source, subject)), value: wrapped, timestamp: Date.now() };
  }
}
