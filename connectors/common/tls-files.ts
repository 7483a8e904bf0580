/**
 * Reads the PEM files a `tls` section names (a source's, a sink's, the Kafka topic log's). A missing or unreadable file is a
 * configuration error naming the option and the path, never a connection failure to retry.
 */
import { PEM_FILE_MAX_BYTES, readBoundedFile } from "../../config/bounded-file.ts";
import { ConfigError } from "../errors.ts";
import type { ErrorContext } from "../errors.ts";

export interface TlsFileOptions {
  readonly ca_file?: string | undefined;
  readonly cert_file?: string | undefined;
  readonly key_file?: string | undefined;
}

export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** Who the files belong to, for the error: e.g. `sink "es"` with the option path `sinks[].tls`. */
export interface TlsFilesOwner {
  readonly label: string;
  /** Where the options sit in the config, e.g. "tls" or "topics.tls". */
  readonly section: string;
  readonly context: ErrorContext;
}

/** `owner`: a source's name, or who else the files belong to. */
export function readTlsFiles(tls: TlsFileOptions, owner: string | TlsFilesOwner): TlsFiles {
  const { label, section, context } = typeof owner === "string" ? { label: `source "${owner}"`, section: "tls", context: { source: owner } } : owner;
  const files: TlsFiles = {};
  const read = (option: keyof TlsFileOptions, path: string | undefined): string | undefined => {
    if (path === undefined) return undefined;
    try {
      return readBoundedFile(path, PEM_FILE_MAX_BYTES).toString("utf8");
    } catch (error) {
      throw new ConfigError(`${label}: cannot read ${section}.${option} ${path}: ${(error as Error).message}`, {
        code: "TLS_FILE_UNREADABLE",
        cause: error,
        context: { ...context, option: `${section}.${option}`, path },
      });
    }
  };
  const ca = read("ca_file", tls.ca_file);
  const cert = read("cert_file", tls.cert_file);
  const key = read("key_file", tls.key_file);
  if (ca !== undefined) files.ca = ca;
  if (cert !== undefined) files.cert = cert;
  if (key !== undefined) files.key = key;
  return files;
}
