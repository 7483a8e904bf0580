/**
 * Test support: the fast encoding path (avro-writer.ts, envelope-writer.ts) against the general
 * one (row and envelope objects encoded by avsc). Any difference in bytes, headers or bookkeeping
 * fails the calling test.
 */
import assert from "node:assert/strict";
import type { ChangeEvent, Row } from "../connectors/contracts.ts";
import { createAvroType } from "./avro-runtime.ts";
import { AvroOutput, AvroWriterCompiler } from "./avro-writer.ts";
import type { EnvelopeExtras } from "./envelope-codec.ts";
import type { ChangeEventEncoder } from "./event-codec.ts";
import type { RowSide } from "./row-codec.ts";
import type { TableAvroMapping } from "./table-mapping.ts";

/** A row's Value record written by the compiled writers equals avsc's encoding of toAvro's record, with the same bookkeeping. */
export function assertRowWriterAgrees(mapping: TableAvroMapping, row: Row, message?: string): void {
  const valueType = createAvroType(mapping.valueSchema);
  const writers = new AvroWriterCompiler().fieldsOf(valueType).map((field) => field.write);
  // A small buffer, so growing it is exercised too.
  const out = new AvroOutput(8);
  const side: RowSide = {};
  mapping.valueCodec.writeAvro(row, side, out, writers);
  const expectedSide: RowSide = {};
  const expected = valueType.toBuffer(mapping.valueCodec.toAvro(row, expectedSide));
  assert.deepEqual(out.take(), expected, message);
  assert.deepEqual(side, expectedSide, message);
}

/** The fast path handles the event (it must not fall back) and gives exactly the general path's key, value and headers. */
export function assertFastPathAgrees(encoder: ChangeEventEncoder, event: ChangeEvent, extras: EnvelopeExtras & { processedAtMs: number }, message?: string): void {
  assert.ok(encoder.fast, `${message ?? ""}: the table has a fast encoder`);
  const fast = encoder.fastEncode(encoder.fast, event, extras);
  const general = encoder.generalEncode(event, extras);
  assert.deepEqual(fast, general, message);
}
