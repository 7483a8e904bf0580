/**
 * Decoding framed messages: the writer schema is fetched by id (once) and, when the caller reads
 * with its own (newer) schema, resolved against it. Resolvers are cached per (reader, writer id).
 */
import { createRequire } from "node:module";
import type { Type } from "avsc";
import { createAvroType } from "./avro-runtime.ts";
import type { SchemaRegistry } from "./registry.ts";
import { HEADER_LENGTH, schemaIdIn, schemaIdOf } from "./wire-format.ts";

type Resolver = ReturnType<Type["createResolver"]>;

/** avsc's read cursor (lib/utils.js Tap), which its types' and resolvers' `_read` take. */
interface Tap {
  buf: Buffer;
  pos: number;
}
interface Readable {
  _read(tap: Tap): unknown;
}
const { Tap: AvscTap } = createRequire(import.meta.url)("avsc/lib/utils.js") as { Tap: new (buf: Buffer, pos: number) => Tap };
const NO_BYTES = Buffer.alloc(0);
/**
 * One cursor for every message read here: avsc's Type.decode makes a cursor and a result object
 * per message (a sink thread reads two messages a change). Reads do not nest, so one is enough.
 */
const TAP = new AvscTap(NO_BYTES, 0);

/** What decodeNow/valueNow give before the writer's schema is here. */
export const NOT_YET: unique symbol = Symbol("schema not fetched yet");

export interface DecodedMessage {
  readonly schemaId: number;
  readonly value: unknown;
}

export class FramedDecoder {
  private readonly registry: Pick<SchemaRegistry, "getById">;
  private readonly writerTypes = new Map<number, Promise<Type>>();
  /** The writer types fetched: decoding needs no promise once a schema is here. */
  private readonly readyTypes = new Map<number, Type>();
  /** Per reader type: writer id -> resolver, or null when the schemas encode identically. */
  private readonly resolvers = new WeakMap<Type, Map<number, Resolver | null>>();

  constructor(registry: Pick<SchemaRegistry, "getById">) {
    this.registry = registry;
  }

  /** Decodes with the writer's schema, or with `reader` (resolving the writer's schema against it). */
  async decode(message: Uint8Array, reader?: Type): Promise<DecodedMessage> {
    const schemaId = schemaIdOf(message);
    const writer = this.readyTypes.get(schemaId) ?? (await this.writerType(schemaId));
    return { schemaId, value: this.read(message, schemaId, writer, reader) };
  }

  /** What decode gives, without a promise, once the writer's schema is here; undefined (nothing read) before. */
  decodeNow(message: Uint8Array, reader?: Type): DecodedMessage | undefined {
    const schemaId = schemaIdOf(message);
    const writer = this.readyTypes.get(schemaId);
    return writer === undefined ? undefined : { schemaId, value: this.read(message, schemaId, writer, reader) };
  }

  /** The value decodeNow reads, without its wrapper, or NOT_YET (nothing read). */
  valueNow(message: Uint8Array, reader?: Type): unknown {
    const schemaId = schemaIdOf(message);
    const writer = this.readyTypes.get(schemaId);
    return writer === undefined ? NOT_YET : this.read(message, schemaId, writer, reader);
  }

  /** valueNow of the message from `start` to `end` of `buffer` (a record read in place: no view of it). */
  valueIn(buffer: Buffer, start: number, end: number, reader?: Type): unknown {
    const schemaId = schemaIdIn(buffer, start, end);
    const writer = this.readyTypes.get(schemaId);
    return writer === undefined ? NOT_YET : this.readRange(buffer, start, end, schemaId, writer, reader);
  }

  private read(message: Uint8Array, schemaId: number, writer: Type, reader: Type | undefined): unknown {
    const buffer = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    return this.readRange(buffer, 0, buffer.length, schemaId, writer, reader);
  }

  /**
   * The payload read where it is, after the header (a view of it per message, twice a change, was
   * garbage for a sink thread's collector), and checked as Type.fromBuffer checks a whole buffer:
   * a message that ends before its value does is refused even when more bytes follow in `buffer`.
   */
  private readRange(buffer: Buffer, start: number, end: number, schemaId: number, writer: Type, reader: Type | undefined): unknown {
    const resolver = reader ? this.resolverFor(reader, schemaId, writer) : null;
    // What Type.decode does (avsc 5.7 lib/types.js), on the one cursor.
    TAP.buf = buffer;
    TAP.pos = start + HEADER_LENGTH;
    let value: unknown;
    let offset: number;
    try {
      value = ((resolver ?? reader ?? writer) as unknown as Readable)._read(TAP);
      offset = TAP.pos;
    } finally {
      TAP.buf = NO_BYTES;
    }
    if (offset > end) throw new Error("truncated buffer");
    if (offset < end) throw new Error("trailing data");
    return value;
  }

  writerType(schemaId: number): Promise<Type> {
    let type = this.writerTypes.get(schemaId);
    if (!type) {
      type = this.registry.getById(schemaId).then((text) => {
        const created = createAvroType(text);
        this.readyTypes.set(schemaId, created);
        return created;
      });
      this.writerTypes.set(schemaId, type);
      // A failed fetch is not cached: the next message retries it.
      type.catch(() => this.writerTypes.delete(schemaId));
    }
    return type;
  }

  private resolverFor(reader: Type, writerId: number, writer: Type): Resolver | null {
    let byWriter = this.resolvers.get(reader);
    if (!byWriter) {
      byWriter = new Map();
      this.resolvers.set(reader, byWriter);
    }
    let resolver = byWriter.get(writerId);
    if (resolver === undefined) {
      resolver = reader.equals(writer) ? null : reader.createResolver(writer);
      byWriter.set(writerId, resolver);
    }
    return resolver;
  }
}
