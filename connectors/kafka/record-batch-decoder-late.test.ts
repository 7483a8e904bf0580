// Its own file, so its own process: here kafkajs's fetch decoding loads before Sluice's decoders are installed, as in a
// program (or test) that uses kafkajs directly and then Sluice's Kafka modules.
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { test } from "node:test";

const require = createRequire(import.meta.url);
const DECODE_MESSAGES = "kafkajs/src/protocol/requests/fetch/v4/decodeMessages.js";

test("Sluice's record batch decoder is installed when kafkajs's fetch decoding loaded first", async () => {
  const early = require(DECODE_MESSAGES) as unknown;
  const { decodeRecordBatch, RECORD_BATCH_DECODER } = await import("./record-batch-decoder.ts");
  await import("./emptied-batches.ts");
  const current = require(DECODE_MESSAGES) as unknown;
  assert.notEqual(current, early, "decodeMessages loaded again, taking the replaced decoder");
  assert.equal(require(RECORD_BATCH_DECODER), decodeRecordBatch);
});
