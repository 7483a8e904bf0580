/**
 * Sealing of personal values off capture's main thread (issue 18, throughput): the row images of
 * a batch are sealed by worker threads while the main thread goes on (reading and decoding the
 * source's next changes). Each row image is still one AES-256-GCM operation with its own IV
 * (subject-keys.ts seal); only the thread that runs it changes. One batch is in flight per caller,
 * so memory stays bounded by the batch; a failed worker makes the caller seal on its own thread.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { sealedAad, sealedText } from "./subject-keys.ts";

export interface SealJob {
  readonly key: Buffer;
  /** The values as sealValues writes them (JSON text). */
  readonly json: string;
  readonly table: string;
  readonly subject: string;
}

/**
 * A request and its reply are bytes in transferred buffers, not strings: cloning a batch's strings
 * both ways cost more CPU than sealing them.
 */
export interface SealRequest {
  readonly id: number;
  /** The distinct data keys of the request, 32 bytes each, one after the other (a view of a pooled Buffer would copy its whole pool). */
  readonly keys: Uint8Array;
  readonly keyOf: Int32Array;
  /** Per job its AAD then its values' JSON text (UTF-8). */
  readonly data: Uint8Array;
  /** Per job: where its AAD starts, where its JSON starts, where its JSON ends (in `data`). */
  readonly bounds: Int32Array;
}

/** Per job its payload (sealInto: 32 bytes + the JSON's), one after the other in `payloads`. */
export type SealReply = { readonly id: number; readonly payloads: Uint8Array } | { readonly id: number; readonly error: string };

const WORKER_URL = new URL("./seal-worker.ts", import.meta.url);

interface Pending {
  readonly resolve: (payloads: Buffer) => void;
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
      else waiting?.resolve(Buffer.from(reply.payloads.buffer, reply.payloads.byteOffset, reply.payloads.byteLength));
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

  seal(request: SealRequest): Promise<Buffer> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(request.id, { resolve, reject });
      // Each in a buffer of its own (never a pooled Buffer's), handed over, not copied.
      this.worker.postMessage(request, [request.keys.buffer, request.keyOf.buffer, request.data.buffer, request.bounds.buffer] as ArrayBuffer[]);
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
    const parts = await Promise.all(
      this.workers.map(async (worker, i) => {
        const part = jobs.slice(i * per, (i + 1) * per);
        if (part.length === 0) return [];
        const { request, payloadEnds } = this.request(part);
        const payloads = await worker.seal(request);
        return part.map((job, j) => sealedText(payloads, j === 0 ? 0 : payloadEnds[j - 1]!, payloadEnds[j]!, job.table, job.subject));
      }),
    );
    return parts.flat();
  }

  private request(jobs: readonly SealJob[]): { request: SealRequest; payloadEnds: Int32Array } {
    const index = new Map<Buffer, number>();
    const distinct: Buffer[] = [];
    const keyOf = new Int32Array(jobs.length);
    const aads = jobs.map((job) => sealedAad(job.table, job.subject));
    // Room for the longest UTF-8 of each JSON text (3 bytes per UTF-16 unit); its own buffer, to be transferred.
    let size = 0;
    for (let i = 0; i < jobs.length; i++) size += aads[i]!.length + 3 * jobs[i]!.json.length;
    const data = Buffer.allocUnsafeSlow(size);
    const bounds = new Int32Array(3 * jobs.length);
    const payloadEnds = new Int32Array(jobs.length);
    let at = 0;
    let payloadAt = 0;
    for (let i = 0; i < jobs.length; i++) {
      const job = jobs[i]!;
      let k = index.get(job.key);
      if (k === undefined) {
        k = distinct.length;
        index.set(job.key, k);
        distinct.push(job.key);
      }
      keyOf[i] = k;
      bounds[3 * i] = at;
      at += aads[i]!.copy(data, at);
      bounds[3 * i + 1] = at;
      const written = data.write(job.json, at, "utf8");
      at += written;
      bounds[3 * i + 2] = at;
      payloadAt += 32 + written;
      payloadEnds[i] = payloadAt;
    }
    const keys = new Uint8Array(32 * distinct.length);
    distinct.forEach((key, i) => keys.set(key, 32 * i));
    return { request: { id: this.nextId++, keys, keyOf, data, bounds }, payloadEnds };
  }
}

let shared: SealWorkers | null = null;

/** The process's seal workers: as many as the cores left beside the main thread, at least one, at most four (config/memory.ts counts them). */
export function sealWorkers(): SealWorkers {
  shared ??= new SealWorkers(Math.min(4, availableParallelism() - 1));
  return shared;
}
