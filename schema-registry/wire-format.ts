/**
 * Confluent's wire format: magic byte 0, the schema id as a 4-byte big-endian integer, then the
 * Avro binary encoding of the value.
 */
import type { Type } from "avsc";
import { AvroValueError } from "./schema-errors.ts";

export const MAGIC_BYTE = 0;
export const HEADER_LENGTH = 5;

export function frame(schemaId: number, payload: Uint8Array): Buffer {
  const message = Buffer.allocUnsafe(HEADER_LENGTH + payload.length);
  writeHeader(message, schemaId);
  message.set(payload, HEADER_LENGTH);
  return message;
}

export function unframe(message: Uint8Array): { schemaId: number; payload: Buffer } {
  const buffer = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
  if (buffer.length < HEADER_LENGTH) throw new AvroValueError(`message of ${buffer.length} bytes is too short for the schema-id header`);
  if (buffer[0] !== MAGIC_BYTE) throw new AvroValueError(`message starts with byte ${buffer[0]}, not the magic byte ${MAGIC_BYTE}`);
  return { schemaId: buffer.readUInt32BE(1), payload: buffer.subarray(HEADER_LENGTH) };
}

/** The schema id of a framed message, checked as unframe does, without a view of its payload. */
export function schemaIdOf(message: Uint8Array): number {
  return schemaIdIn(message, 0, message.length);
}

/** schemaIdOf of the message from `start` to `end` of `bytes`. */
export function schemaIdIn(bytes: Uint8Array, start: number, end: number): number {
  if (end - start < HEADER_LENGTH) throw new AvroValueError(`message of ${end - start} bytes is too short for the schema-id header`);
  if (bytes[start] !== MAGIC_BYTE) throw new AvroValueError(`message starts with byte ${bytes[start]}, not the magic byte ${MAGIC_BYTE}`);
  return ((bytes[start + 1]! << 24) >>> 0) + (bytes[start + 2]! << 16) + (bytes[start + 3]! << 8) + bytes[start + 4]!;
}

let scratch = Buffer.allocUnsafe(64 * 1024);

/** Encodes a value with its schema id in one pass (no intermediate payload buffer). */
export function encodeFramed(schemaId: number, type: Type, value: unknown): Buffer {
  for (;;) {
    const end = type.encode(value, scratch, HEADER_LENGTH);
    if (end >= 0) {
      const message = Buffer.allocUnsafe(end);
      scratch.copy(message, 0, 0, end);
      writeHeader(message, schemaId);
      return message;
    }
    scratch = Buffer.allocUnsafe(Math.max(scratch.length * 2, scratch.length - end));
  }
}

function writeHeader(buffer: Buffer, schemaId: number): void {
  if (!Number.isInteger(schemaId) || schemaId < 0 || schemaId > 0xffffffff) {
    throw new AvroValueError(`schema id ${schemaId} does not fit the 4-byte header`);
  }
  buffer[0] = MAGIC_BYTE;
  buffer.writeUInt32BE(schemaId, 1);
}
