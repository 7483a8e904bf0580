/**
 * A sink's or a source's secrets given by file (`password_file`, `api_key_file`) are read again each time it
 * connects, so a secret rotated in its file (a Kubernetes Secret updated in place) is taken when the sink reopens or
 * the source reconnects (a password rotated on the database), without a restart. The load notes each sink's and
 * source's secret files on its config (`secret_files`: key -> absolute path), which travels with a sink's config to
 * its thread.
 */
import { readSecretFile } from "./bounded-file.ts";
import type { SecretFile } from "./document.ts";
import { rememberSecrets } from "./redact.ts";
import type { SluiceConfig } from "./schema.ts";

interface WithSecretFiles {
  secret_files?: Record<string, string>;
}

/** Notes on each sink's and source's config, and on Kafka's `topics.sasl`, the secrets its section read from files. */
export function noteSecretFiles(config: SluiceConfig, files: readonly SecretFile[]): void {
  for (const { at, key, file } of files) {
    if (at.length === 3 && at[0] === "topics" && at[1] === "sasl" && config.topics.kind === "kafka" && config.topics.sasl) {
      const sasl = config.topics.sasl as WithSecretFiles & object;
      sasl.secret_files = { ...sasl.secret_files, [key]: file };
      continue;
    }
    if (at.length !== 3 || (at[0] !== "sinks" && at[0] !== "sources") || typeof at[1] !== "number") continue;
    const section = (at[0] === "sinks" ? config.sinks[at[1]] : config.sources[at[1]]) as (WithSecretFiles & object) | undefined;
    if (section === undefined) continue;
    section.secret_files = { ...section.secret_files, [key]: file };
  }
}

/** A sink's secret file that could not be read at a (re)connection: never its value, which was not read. */
export interface UnreadableSecretFile {
  /** The sink's or source's name (its config section's `name`); undefined for `topics.sasl`. */
  readonly name: string | undefined;
  /** The config section when it is not a sink or a source: `topics.sasl` (Kafka's SASL password). */
  readonly section?: string;
  /** The secret's key (`password`, `api_key`): the config names its file `<key>_file`. */
  readonly key: string;
  readonly file: string;
  /** The errno code (ENOENT, EACCES, EISDIR...), ENOTREG or EFBIG. */
  readonly code: string;
  readonly reason: string;
}

/**
 * Told of each secret file a sink could not read again. A process-wide hook rather than a parameter: the reads happen
 * deep in the sinks' connection code, and each sink runs in a thread of its own (daemon/sink-worker.ts sets it there,
 * with the thread's logger and metrics), so there is one listener per sink.
 */
let unreadableListener: ((problem: UnreadableSecretFile) => void) | null = null;

export function reportUnreadableSecretFiles(listener: ((problem: UnreadableSecretFile) => void) | null): void {
  unreadableListener = listener;
}

/** Tells the listener of a secret-like file read at connections (a server's public key) that could not be read again. */
export function noteUnreadableSecretFile(problem: UnreadableSecretFile): void {
  unreadableListener?.(problem);
}

/** The value each sink config's secret file gave at its last read: what a failed read falls back to. */
const lastRead = new WeakMap<object, Map<string, string>>();

/**
 * The sink's secret `key` as it stands now: its file read again when it was given by file, else the configured value.
 * A file that cannot be read now (a Secret mount being swapped, its permissions changed) leaves the value read last,
 * which the server may then refuse: reported to the listener (reportUnreadableSecretFiles), not silently.
 */
export function currentSecret(sinkConfig: object, key: string, section?: string): string | undefined {
  const given = (sinkConfig as Record<string, unknown>)[key];
  const configured = typeof given === "string" ? given : undefined;
  const file = (sinkConfig as WithSecretFiles).secret_files?.[key];
  if (file === undefined) return configured;
  try {
    const value = readSecretFile(file);
    rememberSecrets([value]);
    const values = lastRead.get(sinkConfig) ?? new Map<string, string>();
    values.set(key, value);
    lastRead.set(sinkConfig, values);
    return value;
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    const name = (sinkConfig as { name?: unknown }).name;
    unreadableListener?.({ name: typeof name === "string" ? name : undefined, ...(section ? { section } : {}), key, file, code: typeof code === "string" ? code : "EUNKNOWN", reason: error instanceof Error ? error.message : String(error) });
    return lastRead.get(sinkConfig)?.get(key) ?? configured;
  }
}
