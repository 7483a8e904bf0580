/**
 * Building block of crypto-shredding (issue 18; not wired into capture or the sinks yet): one
 * AES-256-GCM data key per data subject, wrapped by a master key read from a file, kept in a
 * compacted topic of Sluice's own topic log (embedded log or Kafka). Destroying a subject's key (a
 * tombstone) makes every value encrypted with it unreadable, wherever copies of the records are.
 *
 * Record of the key topic: key "<source>\u0000<subject>", value = wrapped data key:
 *   "SK1" | master key id (8 bytes) | IV (12) | GCM tag (16) | encrypted data key (32)
 * Memory: the wrapped keys of every live subject (about 150 bytes each).
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { ProducedRecord, StoredRecord, TopicLog } from "../../connectors/contracts.ts";
import { SluiceError } from "../../connectors/errors.ts";

const WRAP_MAGIC = Buffer.from("SK1");
const VALUE_PREFIX = "sluice-enc:v1:";

function keyError(message: string, context: Record<string, unknown> = {}): SluiceError {
  return new SluiceError(message, { code: "GOVERNANCE_KEY_INVALID", context: { component: "governance", ...context } });
}

/** The master key: 32 bytes, written in its file as 64 hex digits or as base64. */
export class MasterKey {
  readonly id: Buffer;
  private readonly key: Buffer;

  constructor(key: Buffer) {
    if (key.length !== 32) throw keyError(`a master key has 32 bytes, this one ${key.length}`);
    this.key = key;
    this.id = createHash("sha256").update(key).digest().subarray(0, 8);
  }

  static fromFile(path: string): MasterKey {
    let text: string;
    try {
      text = readFileSync(path, "utf8").trim();
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

/** A value's ciphertext as text: "sluice-enc:v1:" + base64(IV | tag | AES-256-GCM(value)); `context` (e.g. table and column) is authenticated. */
export function encryptValue(plain: Buffer, dataKey: Buffer, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv("aes-256-gcm", dataKey, iv);
  cipher.setAAD(Buffer.from(context));
  const sealed = Buffer.concat([cipher.update(plain), cipher.final()]);
  return VALUE_PREFIX + Buffer.concat([iv, cipher.getAuthTag(), sealed]).toString("base64");
}

export function isEncrypted(value: unknown): value is string {
  return typeof value === "string" && value.startsWith(VALUE_PREFIX);
}

export function decryptValue(text: string, dataKey: Buffer, context: string): Buffer {
  if (!isEncrypted(text)) throw keyError("not a value encrypted by Sluice");
  const bytes = Buffer.from(text.slice(VALUE_PREFIX.length), "base64");
  const decipher = createDecipheriv("aes-256-gcm", dataKey, bytes.subarray(0, 12));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(bytes.subarray(12, 28));
  try {
    return Buffer.concat([decipher.update(bytes.subarray(28)), decipher.final()]);
  } catch {
    throw keyError(`an encrypted value of ${context} fails its integrity check (altered, or encrypted for another column or subject)`, { column: context });
  }
}

const recordKey = (source: string, subject: string) => `${source}\u0000${subject}`;

/** The subjects' data keys of one deployment, read from and written to a compacted topic. */
export class SubjectKeyStore {
  private readonly log: TopicLog;
  private readonly topic: string;
  private readonly master: MasterKey;
  private readonly previous: readonly MasterKey[];
  private readonly wrappedKeys = new Map<string, Buffer>();
  private readonly group: string;

  private constructor(log: TopicLog, topic: string, master: MasterKey, previous: readonly MasterKey[]) {
    this.log = log;
    this.topic = topic;
    this.master = master;
    this.previous = previous;
    this.group = `${topic}.reader.${process.pid}.${Date.now()}.${randomBytes(3).toString("hex")}`;
  }

  /** Opens the store: creates its compacted topic when missing, reads every key. `previous`: master keys being rotated away from. */
  static async open(log: TopicLog, topic: string, master: MasterKey, previous: readonly MasterKey[] = []): Promise<SubjectKeyStore> {
    await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
    const store = new SubjectKeyStore(log, topic, master, previous);
    await store.refresh();
    return store;
  }

  get size(): number {
    return this.wrappedKeys.size;
  }

  /** Reads the key topic from the beginning again, so keys written or destroyed elsewhere are seen. */
  async refresh(): Promise<void> {
    const ends = await this.log.endOffsets(this.topic);
    const seen = new Map<string, Buffer | null>();
    if (!ends.every((end) => end.offset === 0n)) {
      const consumer = await this.log.consumer(this.group, [this.topic]);
      try {
        for (const end of ends) await consumer.seek(this.topic, end.partition, { kind: "earliest" });
        const finished = () => ends.every((end) => (consumer.position(this.topic, end.partition) ?? 0n) >= end.offset);
        while (!finished()) {
          const records: StoredRecord[] = await consumer.poll({ maxRecords: 5_000, maxBytes: 8 << 20, maxWaitMs: 200 });
          for (const record of records) {
            if (record.key === null) continue;
            seen.set(Buffer.from(record.key).toString(), record.value === null ? null : Buffer.from(record.value));
          }
        }
      } finally {
        await consumer.close();
      }
    }
    this.wrappedKeys.clear();
    for (const [key, wrapped] of seen) if (wrapped !== null) this.wrappedKeys.set(key, wrapped);
  }

  /** The subject's data key, or null when it has none (never had one, or it was destroyed). */
  keyIfKnown(source: string, subject: string): Buffer | null {
    const wrapped = this.wrappedKeys.get(recordKey(source, subject));
    if (!wrapped) return null;
    const master = [this.master, ...this.previous].find((m) => m.wrapped(wrapped)) ?? this.master;
    return master.unwrap(wrapped);
  }

  /** The subject's data key, created (and stored durably, before any value uses it) when it has none. */
  async keyFor(source: string, subject: string): Promise<Buffer> {
    const known = this.keyIfKnown(source, subject);
    if (known) return known;
    const dataKey = randomBytes(32);
    const wrapped = this.master.wrap(dataKey);
    await this.log.produce([this.record(source, subject, wrapped)]);
    this.wrappedKeys.set(recordKey(source, subject), wrapped);
    return dataKey;
  }

  /** Destroys the subject's key (a tombstone; compaction removes the key's earlier records). Idempotent. */
  async destroy(source: string, subject: string): Promise<boolean> {
    const had = this.wrappedKeys.has(recordKey(source, subject));
    await this.log.produce([this.record(source, subject, null)]);
    this.wrappedKeys.delete(recordKey(source, subject));
    return had;
  }

  /** Wraps every key not yet wrapped by the current master key again with it; returns how many. Re-runnable after a crash. */
  async rewrapAll(): Promise<number> {
    const records: ProducedRecord[] = [];
    for (const [key, wrapped] of this.wrappedKeys) {
      if (this.master.wrapped(wrapped)) continue;
      const old = this.previous.find((m) => m.wrapped(wrapped));
      if (!old) throw keyError(`the key of subject record ${JSON.stringify(key.replace("\u0000", "/"))} was wrapped by a master key that was not given (id ${wrapped.subarray(3, 11).toString("hex")})`);
      const [source, subject] = key.split("\u0000") as [string, string];
      records.push(this.record(source, subject, this.master.wrap(old.unwrap(wrapped))));
    }
    for (let i = 0; i < records.length; i += 1_000) await this.log.produce(records.slice(i, i + 1_000));
    for (const record of records) this.wrappedKeys.set(Buffer.from(record.key!).toString(), Buffer.from(record.value!));
    return records.length;
  }

  private record(source: string, subject: string, wrapped: Buffer | null): ProducedRecord {
    return { topic: this.topic, key: Buffer.from(recordKey(source, subject)), value: wrapped, timestamp: Date.now() };
  }
}
