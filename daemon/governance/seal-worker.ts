/**
 * A seal worker (seal-workers.ts): seals row images' personal values for capture's main thread,
 * one AES-256-GCM operation per row image, exactly as sealValues does there; the main thread
 * writes the text around each payload.
 */
import { parentPort } from "node:worker_threads";
import { sealInto } from "./subject-keys.ts";
import type { SealReply, SealRequest } from "./seal-workers.ts";

/**
 * The data keys of recent requests, by their bytes: the same Buffer for the same key, so its
 * prepared cipher key (subject-keys.ts preparedKey) is made once, not once per batch. Bounded.
 */
const recentKeys = new Map<string, Buffer>();
const RECENT_KEYS = 4_096;

function dataKey(all: Buffer, i: number): Buffer {
  const bytes = all.subarray(32 * i, 32 * (i + 1));
  const id = bytes.toString("latin1");
  let key = recentKeys.get(id);
  if (key === undefined) {
    if (recentKeys.size >= RECENT_KEYS) recentKeys.clear();
    key = Buffer.from(bytes);
    recentKeys.set(id, key);
  }
  return key;
}

const port = parentPort!;
port.on("message", (request: SealRequest) => {
  let reply: SealReply;
  const transfer: ArrayBuffer[] = [];
  try {
    const all = Buffer.from(request.keys.buffer, request.keys.byteOffset, request.keys.byteLength);
    const keys = Array.from({ length: all.length / 32 }, (_, i) => dataKey(all, i));
    const data = Buffer.from(request.data.buffer, request.data.byteOffset, request.data.byteLength);
    const { bounds, keyOf } = request;
    const jobs = keyOf.length;
    let size = 0;
    for (let i = 0; i < jobs; i++) size += 32 + bounds[3 * i + 2]! - bounds[3 * i + 1]!;
    const payloads = Buffer.allocUnsafeSlow(size);
    let at = 0;
    for (let i = 0; i < jobs; i++) {
      const aadAt = bounds[3 * i]!;
      const jsonAt = bounds[3 * i + 1]!;
      const jsonEnd = bounds[3 * i + 2]!;
      sealInto(data.subarray(jsonAt, jsonEnd), keys[keyOf[i]!]!, data.subarray(aadAt, jsonAt), payloads, at);
      at += 32 + jsonEnd - jsonAt;
    }
    reply = { id: request.id, payloads };
    transfer.push(payloads.buffer as ArrayBuffer);
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply, transfer);
});
