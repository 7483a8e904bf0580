/**
 * A seal worker (seal-workers.ts): seals row images' personal values for capture's main thread,
 * one AES-256-GCM operation per row image, exactly as sealValues does there, and writes each row
 * image's whole sealed text (its head's text + base64 of the payload) as ASCII bytes.
 */
import { parentPort } from "node:worker_threads";
import { preparedKey, sealPrepared, writeBase64 } from "./subject-keys.ts";
import type { PreparedKey } from "./subject-keys.ts";
import type { SealReply, SealRequest } from "./seal-workers.ts";

/**
 * The prepared data keys (subject-keys.ts preparedKey) of recent requests, by the keys' bytes: made
 * once per key, not once per batch, and looked up once per request and head, not per row image. Bounded.
 */
const recentKeys = new Map<string, PreparedKey>();
const RECENT_KEYS = 4_096;

function dataKey(all: Buffer, i: number): PreparedKey {
  const bytes = all.subarray(32 * i, 32 * (i + 1));
  const id = bytes.toString("latin1");
  let key = recentKeys.get(id);
  if (key === undefined) {
    if (recentKeys.size >= RECENT_KEYS) recentKeys.clear();
    key = preparedKey(Buffer.from(bytes));
    recentKeys.set(id, key);
  }
  return key;
}

/** Where one row image's payload is sealed before it is written in base64: reused, grown as needed. */
let scratch = Buffer.allocUnsafeSlow(4_096);

const base64Length = (bytes: number) => 4 * Math.ceil(bytes / 3);

const port = parentPort!;
port.on("message", (request: SealRequest) => {
  let reply: SealReply;
  const transfer: ArrayBuffer[] = [];
  try {
    const { headBounds, headOf, json, jsonEnds } = request;
    const allKeys = Buffer.from(request.keys.buffer, request.keys.byteOffset, request.keys.byteLength);
    const heads = Buffer.from(request.heads.buffer, request.heads.byteOffset, request.heads.byteLength);
    const headCount = headBounds.length / 3;
    const keys = new Array<PreparedKey>(headCount);
    const aads = new Array<Buffer>(headCount);
    for (let h = 0; h < headCount; h++) {
      keys[h] = dataKey(allKeys, h);
      aads[h] = heads.subarray(headBounds[3 * h]!, headBounds[3 * h + 1]!);
    }
    const jobs = headOf.length;
    // At most: each head's text and the base64 of 32 bytes + 3 per UTF-16 unit of its JSON.
    let size = 0;
    let longest = 0;
    for (let i = 0, start = 0; i < jobs; start = jsonEnds[i]!, i++) {
      const h = headOf[i]!;
      const units = jsonEnds[i]! - start;
      if (units > longest) longest = units;
      size += headBounds[3 * h + 2]! - headBounds[3 * h + 1]! + base64Length(32 + 3 * units);
    }
    if (scratch.length < 32 + 3 * longest) scratch = Buffer.allocUnsafeSlow(32 + 3 * longest);
    const texts = Buffer.allocUnsafeSlow(size);
    const ends = new Int32Array(jobs);
    let at = 0;
    for (let i = 0, start = 0; i < jobs; start = jsonEnds[i]!, i++) {
      const h = headOf[i]!;
      at += heads.copy(texts, at, headBounds[3 * h + 1]!, headBounds[3 * h + 2]!);
      const sealed = sealPrepared(json.slice(start, jsonEnds[i]!), keys[h]!, aads[h]!, scratch, 0);
      at = writeBase64(scratch, 0, sealed, texts, at);
      ends[i] = at;
    }
    reply = { id: request.id, texts: new Uint8Array(texts.buffer, 0, at), ends };
    transfer.push(texts.buffer as ArrayBuffer, ends.buffer as ArrayBuffer);
  } catch (error) {
    reply = { id: request.id, error: error instanceof Error ? error.message : String(error) };
  }
  port.postMessage(reply, transfer);
});
