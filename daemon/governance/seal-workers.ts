/**
 * Sealing of personal values off capture's main thread (issue 18, throughput): the row images of
 * a batch are sealed by worker threads while the main thread goes on (reading and decoding the
 * source's next changes). Each row image is still one AES-256-GCM operation with its own IV
 * (subject-keys.ts seal); only the thread that runs it changes. One batch is in flight per caller,
 * so memory stays bounded by the batch; a failed worker makes the caller seal on its own thread.
 */
import { Worker } from "node:worker_threads";
import { SEAL_WORKERS } from "../../config/memory.ts";
import type { SealHead } from "./subject-keys.ts";

/**
 * A request and its reply are few objects, not one per row image: cloning a batch's strings both
 * ways cost more CPU than sealing them. The row images' JSON texts go as one string (one copy), the
 * heads (AAD and text) once per distinct table and subject, and the reply is the row images' whole
 * sealed texts as ASCII bytes in one transferred buffer, which the main thread reads as one string.
 */
export interface SealRequest {
  readonly id: number;
  /** Per distinct head of the request: its subject's data key, 32 bytes each, one after the other (a view of a pooled Buffer would copy its whole pool). */
  readonly keys: Uint8Array;
  /** Per distinct head: its AAD, then its text (ASCII). */
  readonly heads: Uint8Array;
  /** Per distinct head: where its AAD starts, where its text starts, where its text ends (in `heads`). */
  readonly headBounds: Int32Array;
  /** Per job: its head. */
  readonly headOf: Int32Array;
  /** The jobs' values' JSON texts, one after the other. */
  readonly json: string;
  /** Per job: where its JSON text ends in `json` (UTF-16 units; the first starts at 0). */
  readonly jsonEnds: Int32Array;
}

/** Per job its sealed text (head text + base64 of the payload sealInto writes), one after the other in `texts`, the i-th ending at ends[i]. */
export type SealReply = { readonly id: number; readonly texts: Uint8Array; readonly ends: Int32Array } | { readonly id: number; readonly error: string };

const WORKER_URL = new URL("./seal-worker.ts", import.meta.url);

interface Pending {
  readonly resolve: (sealed: SealedPayloads) => void;
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
      // One string of all the texts (ASCII): each row image's text is a slice of it, not a copy.
      else waiting?.resolve({ texts: Buffer.from(reply.texts.buffer, reply.texts.byteOffset, reply.texts.byteLength).toString("latin1"), ends: reply.ends });
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

  seal(request: SealRequest): Promise<SealedPayloads> {
    if (this.failed) return Promise.reject(this.failed);
    return new Promise((resolve, reject) => {
      if (this.pending.size === 0) this.worker.ref();
      this.pending.set(request.id, { resolve, reject });
      // Each in a buffer of its own (never a pooled Buffer's), handed over, not copied.
      this.worker.postMessage(request, [request.keys.buffer, request.heads.buffer, request.headBounds.buffer, request.headOf.buffer, request.jsonEnds.buffer] as ArrayBuffer[]);
    });
  }
}

/** The sealed texts of a request's row images: the i-th is texts.slice(ends[i - 1] (0 for the first), ends[i]). */
export interface SealedPayloads {
  readonly texts: string;
  readonly ends: Int32Array;
}

/** Marks the heads already in the request being built (SealHead.mark): no Map per request. */
let requestMark = 0;

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

  /**
   * Seals row images on one worker, the workers taking turns (a caller sends a batch in several
   * requests): the i-th with keys[i], its values' JSON jsons[i] and AAD heads[i].aad (heads from
   * sealedHead). Rejects when the worker failed (the caller seals on its own thread then).
   */
  sealPayloads(keys: readonly Buffer[], jsons: readonly string[], heads: readonly SealHead[]): Promise<SealedPayloads> {
    this.start();
    const worker = this.workers[this.turn++ % this.workers.length]!;
    return worker.seal(this.request(keys, jsons, heads));
  }

  private request(keys: readonly Buffer[], jsons: readonly string[], heads: readonly SealHead[]): SealRequest {
    const jobs = jsons.length;
    const mark = ++requestMark;
    const distinct: SealHead[] = [];
    const distinctKeys: Buffer[] = [];
    const headOf = new Int32Array(jobs);
    const jsonEnds = new Int32Array(jobs);
    let headBytes = 0;
    let at = 0;
    for (let j = 0; j < jobs; j++) {
      const head = heads[j]!;
      const key = keys[j]!;
      if (head.mark !== mark || distinctKeys[head.slot] !== key) {
        head.mark = mark;
        head.slot = distinct.length;
        distinct.push(head);
        distinctKeys.push(key);
        headBytes += head.aad.length + head.text.length;
      }
      headOf[j] = head.slot;
      at += jsons[j]!.length;
      jsonEnds[j] = at;
    }
    // Each in a buffer of its own, to be transferred.
    const keyBytes = new Uint8Array(32 * distinct.length);
    const headData = Buffer.allocUnsafeSlow(headBytes);
    const headBounds = new Int32Array(3 * distinct.length);
    let written = 0;
    for (let h = 0; h < distinct.length; h++) {
      keyBytes.set(distinctKeys[h]!, 32 * h);
      headBounds[3 * h] = written;
      written += distinct[h]!.aad.copy(headData, written);
      headBounds[3 * h + 1] = written;
      written += headData.write(distinct[h]!.text, written, "latin1");
      headBounds[3 * h + 2] = written;
    }
    return { id: this.nextId++, keys: keyBytes, heads: headData, headBounds, headOf, json: jsons.join(""), jsonEnds };
  }
}
let shared: SealWorkers | null = null;

/** The process's seal workers: SEAL_WORKERS of them, as config/memory.ts counts them (one keeps ahead of capture's main thread). */
export function sealWorkers(): SealWorkers {
  shared ??= new SealWorkers(SEAL_WORKERS);
  return shared;
}
