/**
 * A sink's secrets given by file (`password_file`, `api_key_file`) are read again each time the sink opens,
 * so a secret rotated in its file (a Kubernetes Secret updated in place) is taken when the sink reconnects,
 * without a restart. The load notes each sink's secret files on its config (`secret_files`: key -> absolute
 * path), which travels with it to the sink's thread.
 */
import { readBoundedFile } from "./bounded-file.ts";
import type { SecretFile } from "./document.ts";
import { SECRET_FILE_MAX_BYTES } from "./document.ts";
import { rememberSecrets } from "./redact.ts";
import type { SluiceConfig } from "./schema.ts";

interface WithSecretFiles {
  secret_files?: Record<string, string>;
}

/** Notes on each sink's config the secrets its section read from files. */
export function noteSinkSecretFiles(config: SluiceConfig, files: readonly SecretFile[]): void {
  for (const { at, key, file } of files) {
    if (at.length !== 3 || at[0] !== "sinks" || typeof at[1] !== "number") continue;
    const sink = config.sinks[at[1]] as (WithSecretFiles & object) | undefined;
    if (sink === undefined) continue;
    sink.secret_files = { ...sink.secret_files, [key]: file };
  }
}

/**
 * The sink's secret `key` as it stands now: its file read again when it was given by file (a file that cannot be
 * read now leaves the value read at the start, whose refusal the sink then reports), else the configured value.
 */
export function currentSecret(sinkConfig: object, key: string): string | undefined {
  const given = (sinkConfig as Record<string, unknown>)[key];
  const configured = typeof given === "string" ? given : undefined;
  const file = (sinkConfig as WithSecretFiles).secret_files?.[key];
  if (file === undefined) return configured;
  try {
    const value = readBoundedFile(file, SECRET_FILE_MAX_BYTES).toString("utf8").replace(/\r?\n$/, "");
    rememberSecrets([value]);
    return value;
  } catch {
    return configured;
  }
}
