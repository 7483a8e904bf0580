/**
 * Sealing of personal values off capture's main thread (issue 18, throughput): the row images of
 * a batch are sealed by worker threads while the main thread goes on (reading and decoding the
 * source's next changes). Each row image is still one AES-256-GCM operation with its own IV
 * (subject-keys.ts seal); only the thread that runs it changes. One batch is in flight per caller,
 * so memory stays bounded by the batch; a failed worker makes the caller seal on its own thread.
 */
import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { sealedHead } from "./subject-keys.ts";
import type { SealHead } from "./subject-keys.ts";

/** The row images of a batch to seal, as parallel arrays (no object per row image): the i-th seal is keys[i], jsons[i], tables[i], subjects[i]. */
export interface SealBatch {
  /** The subject's data key. */
  readonly keys: Buffer[];
  /** The values as sealValues writes them (JSON text). */
  readonly jsons: string[];
  /** The authenticated context: the table. */
  readonly tables: string[];
  readonly subjects: string[];
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

/** The payloads of a request's row images as bytes: the i-th is payloads[ends[i - 1] (0 for the first) .. ends[i]]; its sealed text is its head's text + base64 of it. */
export interface SealedPayloads {
  readonly payloads: Buffer;
  readonly ends: Int32Array;
}

export class SealWorkers {
  private readonly size: number;
  private workers: SealWorker[] = [];
  private nextId = 0;
  /** The worker the next `sealPayloads` goes to. */
  private turn = 0;

  constructor(size: number) {
    this.size = Math.max(1, size);
  }

  /**
   * Starts the workers not running (a worker loads its modules before its first seal): capture
   * starts them with its encoder, so the first batch does not wait for that.
   */
  start(): this {
    this.workers = this.workers.filter((w) => w.usable);
    while (this.workers.length < this.size) this.workers.push(new SealWorker());
    return this;
  }

  /** The sealed text of each row image of the batch, in order. Rejects when a worker failed (the caller seals on its own thread then). */
  async seal(batch: SealBatch): Promise<string[]> {
    this.start();
    const count = batch.jsons.length;
    const heads = new Array<SealHead>(count);
    for (let i = 0; i < count; i++) heads[i] = sealedHead(batch.tables[i]!, batch.subjects[i]!);
    const sealed = new Array<string>(count);
    const per = Math.ceil(count / this.workers.length);
    await Promise.all(
      this.workers.map(async (worker, w) => {
        const from = w * per;
        const to = Math.min(count, from + per);
        if (from >= to) return;
        const { request, payloadEnds } = this.request(batch.keys, batch.jsons, heads, from, to);
        const payloads = await worker.seal(request);
        let start = 0;
        for (let i = from; i < to; i++) {
          const end = payloadEnds[i - from]!;
          sealed[i] = heads[i]!.text + payloads.toString("base64", start, end);
          start = end;
        }
      }),
    );
    return sealed;
  }

  /**
   * Seals row images on one worker, the workers taking turns (a caller sends a batch in several
   * requests): the i-th with keys[i], its values' JSON jsons[i] and AAD heads[i].aad (heads from
   * sealedHead). Rejects when the worker failed (the caller seals on its own thread then).
   */
  sealPayloads(keys: readonly Buffer[], jsons: readonly string[], heads: readonly SealHead[]): Promise<SealedPayloads> {
    this.start();
    const worker = this.workers[this.turn++ % this.workers.length]!;
    const { request, payloadEnds } = this.request(keys, jsons, heads, 0, jsons.length);
    return worker.seal(request).then((payloads) => ({ payloads, ends: payloadEnds }));
  }

  /** The request of row images `from` to `to` (excluded). */
  private request(keys: readonly Buffer[], jsons: readonly string[], heads: readonly SealHead[], from: number, to: number): { request: SealRequest; payloadEnds: Int32Array } {
    const jobs = to - from;
    const index = new Map<Buffer, number>();
    const distinct: Buffer[] = [];
    const keyOf = new Int32Array(jobs);
    // Room for the longest UTF-8 of each JSON text (3 bytes per UTF-16 unit); its own buffer, to be transferred.
    let size = 0;
    for (let i = from; i < to; i++) size += heads[i]!.aad.length + 3 * jsons[i]!.length;
    const data = Buffer.allocUnsafeSlow(size);
    const bounds = new Int32Array(3 * jobs);
    const payloadEnds = new Int32Array(jobs);
    let at = 0;
    let payloadAt = 0;
    for (let j = 0; j < jobs; j++) {
      const key = keys[from + j]!;
      let k = index.get(key);
      if (k === undefined) {
        k = distinct.length;
        index.set(key, k);
        distinct.push(key);
      }
      keyOf[j] = k;
      bounds[3 * j] = at;
      at += heads[from + j]!.aad.copy(data, at);
      bounds[3 * j + 1] = at;
      const written = data.write(jsons[from + j]!, at, "utf8");
      at += written;
      bounds[3 * j + 2] = at;
      payloadAt += 32 + written;
      payloadEnds[j] = payloadAt;
    }
    const keyBytes = new Uint8Array(32 * distinct.length);
    for (let k = 0; k < distinct.length; k++) keyBytes.set(distinct[k]!, 32 * k);
    return { request: { id: this.nextId++, keys: keyBytes, keyOf, data, bounds }, payloadEnds };
  }
}

let shared: SealWorkers | null = null;

/** The process's seal workers: as many as the cores left beside the main thread, at least one, at most four (config/memory.ts counts them). */
export function sealWorkers(): SealWorkers {
  shared ??= new SealWorkers(Math.min(4, availableParallelism() - 1));
  return shared;
}
