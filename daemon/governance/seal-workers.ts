/**
 * Sealing of personal values off capture's main thread (issue 18, throughput): the row images of
 * a batch are sealed by worker threads while the main thread goes on (reading and decoding the
 * source's next changes). Each row image is still one AES-256-GCM operation with its own IV
 * (subject-keys.ts seal); only the thread that runs it changes. One batch is in flight per caller,
 * so memory stays bounded by the batch; a failed worker makes the caller seal on its own thread.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";

export interface SealJob {
  readonly key: Buffer;
  /** The values as sealValues writes them (JSON text). */
  readonly json: string;
  readonly table: string;
  readonly subject: string;
}

export interface SealRequest {
  readonly id: number;
  /** The distinct data keys of the request, 32 bytes each, one after the other (a view of a pooled Buffer would copy its whole pool). */
  readonly keys: Uint8Array;
  readonly keyOf: Int32Array;
  readonly jsons: string[];
  readonly tables: string[];
  readonly subjects: string[];
}

export type SealReply = { readonly id: number; readonly sealed: string[] } | { readonly id: number; readonly error: string };

const WORKER_URL = new URL("./seal-worker.ts", import.meta.url);

interface Pending {
  readonly resolve: (sealed: string[]) => void;
  readonly reject: (error: Error) => void;
}

class SealWorker {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private failed: Error | null = null;

  constructor() {
    // A small heap (config/memory.ts plans it): a worker holds one batch's values and their sealed text.
    this.worker = new Worker(WORKER_URL, { name: "seal", resourceLimits: { maxOldGenerationSizeMb: 24, maxYoungGenerationSizeMb: 6 } });
    this.worker.on("message", (reply: SealReply) => {
      const waiting = this.pending.get(reply.id);
      this.pending.delete(reply.id);
      if (this.pending.size === 0) this.worker.unref();
      if ("error" in reply) waiting?.reject(new Error(reply.error));
      else waiting?.resolve(reply.sealed);
    });
    const fail = (error: Error) => {
      this.failed ??= error;
      for (const waiting of this.pending.values()) waiting.reject(error);
      this.pending.clear();
    };
    this.worker.on("error", fail);
    this.worker.on("exit", (code) => fail(new Error(`seal worker exited (code ${code})`)));
    // After the listeners (adding one refs the worker again): an idle worker never keeps the process alive; one with a request does.
    this.worker.unref();
  }

  get usable(): boolean {
    return this.failed === null;
  }

  seal(request: SealRequest): Promise<string[]> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(request.id, { resolve, reject });
      this.worker.postMessage(request);
    });
  }
}

export class SealWorkers {
  private readonly size: number;
  private workers: SealWorker[] = [];
  private nextId = 0;

  constructor(size: number) {
    this.size = Math.max(1, size);
  }

  /** The sealed text of each job, in order. Rejects when a worker failed (the caller seals on its own thread then). */
  async seal(jobs: readonly SealJob[]): Promise<string[]> {
    this.workers = this.workers.filter((w) => w.usable);
    while (this.workers.length < this.size) this.workers.push(new SealWorker());
    const per = Math.ceil(jobs.length / this.workers.length);
    const parts = await Promise.all(this.workers.map((worker, i) => (i * per < jobs.length ? worker.seal(this.request(jobs.slice(i * per, (i + 1) * per))) : Promise.resolve([]))));
    return parts.flat();
  }

  private request(jobs: readonly SealJob[]): SealRequest {
    const index = new Map<Buffer, number>();
    const distinct: Buffer[] = [];
    const keyOf = new Int32Array(jobs.length);
    const jsons: string[] = new Array<string>(jobs.length);
    const tables: string[] = new Array<string>(jobs.length);
    const subjects: string[] = new Array<string>(jobs.length);
    jobs.forEach((job, i) => {
      let k = index.get(job.key);
      if (k === undefined) {
        k = distinct.length;
        index.set(job.key, k);
        distinct.push(job.key);
      }
      keyOf[i] = k;
      jsons[i] = job.json;
      tables[i] = job.table;
      subjects[i] = job.subject;
    });
    const keys = new Uint8Array(32 * distinct.length);
    distinct.forEach((key, i) => keys.set(key, 32 * i));
    return { id: this.nextId++, keys, keyOf, jsons, tables, subjects };
  }
}

let shared: SealWorkers | null = null;

/** The process's seal workers: as many as the cores left beside the main thread, at least one, at most four (config/memory.ts counts them). */
export function sealWorkers(): SealWorkers {
  shared ??= new SealWorkers(Math.min(4, availableParallelism() - 1));
  return shared;
}
