/**
 * Reads the PEM files a source's `tls` section names. A missing or unreadable file is a
 * configuration error naming the option and the path, never a connection failure to retry.
 */
import { readFileSync } from "node:fs";
import { ConfigError } from "../errors.ts";

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

export function readTlsFiles(tls: TlsFileOptions, source: string): TlsFiles {
  const files: TlsFiles = {};
  const read = (option: keyof TlsFileOptions, path: string | undefined): string | undefined => {
    if (path === undefined) return undefined;
    try {
      return readFileSync(path, "utf8");
    } catch (error) {
      throw new ConfigError(`source "${source}": cannot read tls.${option} ${path}: ${(error as Error).message}`, {
        code: "TLS_FILE_UNREADABLE",
        cause: error,
        context: { source, option: `tls.${option}`, path },
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
