/**
 * Decoding framed messages: the writer schema is fetched by id (once) and, when the caller reads
 * with its own (newer) schema, resolved against it. Resolvers are cached per (reader, writer id).
 */
import type { Type } from "avsc";
import { createAvroType } from "./avro-runtime.ts";
import type { SchemaRegistry } from "./registry.ts";
import { HEADER_LENGTH, schemaIdOf } from "./wire-format.ts";

type Resolver = ReturnType<Type["createResolver"]>;

export interface DecodedMessage {
  readonly schemaId: number;
  readonly value: unknown;
}

export class FramedDecoder {
  private readonly registry: Pick<SchemaRegistry, "getById">;
  private readonly writerTypes = new Map<number, Promise<Type>>();
  /** The writer types fetched: decoding needs no promise once a schema is here. */
  private readonly readyTypes = new Map<number, Type>();
  /** Per reader type: writer id → resolver, or null when the schemas encode identically. */
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

  /**
   * The payload read where it is, after the header (a view of it per message, twice a change, was
   * garbage for a sink thread's collector), and checked as Type.fromBuffer checks a whole buffer.
   */
  private read(message: Uint8Array, schemaId: number, writer: Type, reader: Type | undefined): unknown {
    const buffer = Buffer.isBuffer(message) ? message : Buffer.from(message.buffer, message.byteOffset, message.byteLength);
    const resolver = reader ? this.resolverFor(reader, schemaId, writer) : null;
    const { value, offset } = (reader ?? writer).decode(buffer, HEADER_LENGTH, resolver ?? undefined);
    if (offset < 0) throw new Error("truncated buffer");
    if (offset < buffer.length) throw new Error("trailing data");
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
