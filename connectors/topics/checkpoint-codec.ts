/**
 * Checkpoints as stored by the topic logs: JSON with the bigint position fields as decimal
 * strings, so they round-trip exactly (JSON numbers lose precision beyond 2^53).
 */
import type { Checkpoint, Position } from "../contracts.ts";
import { SluiceError } from "../errors.ts";

interface StoredCheckpoint {
  source: string;
  commit: string;
  change: string;
  resume?: string;
}

export function encodeCheckpoint(checkpoint: Checkpoint): string {
  const stored: StoredCheckpoint = {
    source: checkpoint.source,
    commit: checkpoint.position.commit.toString(),
    change: checkpoint.position.change.toString(),
  };
  if (checkpoint.position.resume !== undefined) stored.resume = checkpoint.position.resume;
  return JSON.stringify(stored);
}

const INTEGER = /^-?\d+$/;

export function decodeCheckpoint(text: string, where: string): Checkpoint {
  let stored: Partial<StoredCheckpoint>;
  try {
    stored = JSON.parse(text) as Partial<StoredCheckpoint>;
  } catch (error) {
    throw corrupt(where, text, error);
  }
  const { source, commit, change, resume } = stored ?? {};
  if (typeof source !== "string" || typeof commit !== "string" || typeof change !== "string" || !INTEGER.test(commit) || !INTEGER.test(change)) {
    throw corrupt(where, text);
  }
  if (resume !== undefined && typeof resume !== "string") throw corrupt(where, text);
  const position: Position = resume === undefined ? { commit: BigInt(commit), change: BigInt(change) } : { commit: BigInt(commit), change: BigInt(change), resume };
  return { source, position };
}

function corrupt(where: string, text: string, cause?: unknown): SluiceError {
  return new SluiceError(`stored checkpoint in ${where} is not a valid checkpoint: ${text.slice(0, 200)}`, {
    code: "CHECKPOINT_CORRUPT",
    context: { component: "topics", where },
    cause,
  });
}

const ENTRY_NAME = /^[A-Za-z0-9_.\-/]+$/;

/** Where the logs keep a source's entry (Checkpoint.entries): beside its checkpoint, under a key no source name has (a source name has no "/"). */
export function checkpointEntryKey(source: string, name: string): string {
  if (!ENTRY_NAME.test(name)) {
    throw new SluiceError(`checkpoint entry name ${JSON.stringify(name)} of source ${source} is not letters, digits and -_./`, {
      code: "CHECKPOINT_ENTRY_INVALID",
      context: { component: "topics", source },
    });
  }
  return `${source}/${name}`;
}

/** The name of the entry `key` holds for `source`; null when `key` is not one of that source's entries. */
export function checkpointEntryName(source: string, key: string): string | null {
  return key.length > source.length + 1 && key.startsWith(`${source}/`) ? key.slice(source.length + 1) : null;
}

/** What readCheckpoint returns: the stored checkpoint with the entries kept for its source (none: no `entries`). */
export function withEntries(checkpoint: Checkpoint, entries: ReadonlyMap<string, string>): Checkpoint {
  const { source, position } = checkpoint;
  return entries.size === 0 ? { source, position } : { source, position, entries: Object.fromEntries(entries) };
}

/** The entries kept once `written` is stored after a checkpoint that kept `kept` (what a log does; for doubles of one). */
export function keepEntries(kept: Checkpoint | null, written: Checkpoint): Checkpoint {
  const entries = new Map(Object.entries(kept?.entries ?? {}).filter((e): e is [string, string] => e[1] !== null));
  for (const [name, value] of Object.entries(written.entries ?? {})) {
    if (value === null) entries.delete(name);
    else entries.set(name, value);
  }
  return withEntries(written, entries);
}

/** Key and value of a record of a log's checkpoint topic, in the order stored. */
interface CheckpointTopicRecord {
  readonly key: Uint8Array | null;
  readonly value: Uint8Array | null;
}

const utf8 = new TextDecoder();

/**
 * A source's checkpoint with its entries from the records of a topic keeping checkpoints by key
 * (Kafka's), taken one at a time as they are read: it keeps the source's last checkpoint
 * (undecoded) and its entries, so reading a topic that holds many records per key (the active
 * segment of Kafka's compacted checkpoint topic) costs the keys' memory, not the records'.
 */
export class CheckpointFold {
  private readonly source: string;
  private latest: Uint8Array | null = null;
  private readonly entries = new Map<string, string>();

  constructor(source: string) {
    this.source = source;
  }

  add(record: CheckpointTopicRecord): void {
    if (record.key === null) return;
    const key = utf8.decode(record.key);
    if (key === this.source) {
      this.latest = record.value;
      return;
    }
    const name = checkpointEntryName(this.source, key);
    if (name === null) return;
    if (record.value === null) this.entries.delete(name);
    else this.entries.set(name, utf8.decode(record.value));
  }

  /** The checkpoint of the records added so far; null when none. */
  checkpoint(where: string): Checkpoint | null {
    return this.latest === null ? null : withEntries(decodeCheckpoint(utf8.decode(this.latest), where), this.entries);
  }
}

/** The records (key, value text; null: a tombstone) a checkpoint's entries are stored as in such a topic, before the checkpoint's own. */
export function entryRecords(checkpoint: Checkpoint): { readonly key: string; readonly value: string | null }[] {
  return Object.entries(checkpoint.entries ?? {}).map(([name, value]) => ({ key: checkpointEntryKey(checkpoint.source, name), value }));
}
