/**
 * The mutation log in one JSON file, rewritten atomically on each append: write a temporary file,
 * fsync it, rename it over the old one, fsync the directory. A crash leaves the old file or the
 * new one, never a torn one. One process owns the file.
 */
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { basename, dirname, join } from "node:path";
import { SluiceError } from "../connectors/errors.ts";
import { LogStore } from "./log-store.ts";
import type { StoreBackend, StoreMutation } from "./store.ts";

const FORMAT = "sluice-schema-store";
const FORMAT_VERSION = 1;

interface StoreFile {
  readonly format: typeof FORMAT;
  readonly version: number;
  readonly mutations: StoreMutation[];
}

export class FileBackend implements StoreBackend {
  readonly path: string;
  private mutations: StoreMutation[] = [];

  constructor(path: string) {
    this.path = path;
  }

  async load(): Promise<StoreMutation[]> {
    let text: string;
    try {
      text = await readFile(this.path, "utf8");
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
      throw this.error(`cannot read schema store ${this.path}: ${(error as Error).message}`, "SCHEMA_STORE_IO", error);
    }
    let file: StoreFile;
    try {
      file = JSON.parse(text) as StoreFile;
    } catch (error) {
      throw this.error(`schema store ${this.path} is not valid JSON: ${(error as Error).message}`, "SCHEMA_STORE_CORRUPT", error);
    }
    if (file.format !== FORMAT || file.version !== FORMAT_VERSION || !Array.isArray(file.mutations)) {
      throw this.error(`${this.path} is not a ${FORMAT} file of version ${FORMAT_VERSION}`, "SCHEMA_STORE_CORRUPT");
    }
    this.mutations = file.mutations;
    return [...this.mutations];
  }

  async append(mutations: readonly StoreMutation[]): Promise<void> {
    const next = [...this.mutations, ...mutations];
    await this.writeAtomically({ format: FORMAT, version: FORMAT_VERSION, mutations: next });
    this.mutations = next;
  }

  async close(): Promise<void> {}

  private async writeAtomically(content: StoreFile): Promise<void> {
    const directory = dirname(this.path);
    const temporary = join(directory, `.${basename(this.path)}.${process.pid}.tmp`);
    try {
      await mkdir(directory, { recursive: true });
      const handle = await open(temporary, "w");
      try {
        await handle.writeFile(`${JSON.stringify(content, null, 1)}\n`, "utf8");
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, this.path);
      const directoryHandle = await open(directory, "r");
      try {
        await directoryHandle.sync();
      } finally {
        await directoryHandle.close();
      }
    } catch (error) {
      await rm(temporary, { force: true });
      throw this.error(`cannot write schema store ${this.path}: ${(error as Error).message}`, "SCHEMA_STORE_IO", error);
    }
  }

  private error(message: string, code: string, cause?: unknown): SluiceError {
    return new SluiceError(message, { code, retriable: code === "SCHEMA_STORE_IO", context: { component: "schema-registry", path: this.path }, cause });
  }
}

export function openFileStore(path: string): Promise<LogStore> {
  return LogStore.open(new FileBackend(path));
}
