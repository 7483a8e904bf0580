/**
 * The REST API as two independent Confluent client libraries use it, unchanged: each registers,
 * fetches, encodes and decodes through a real registry server, and Sluice's own codec reads what
 * they write and writes what they read.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { AvroDeserializer, AvroSerializer, SchemaRegistryClient, SerdeType } from "@confluentinc/schemaregistry";
import { SchemaRegistry as KafkajsRegistry, SchemaType } from "@kafkajs/confluent-schema-registry";
import type { ChangeEvent, TableSchema } from "../connectors/contracts.ts";
import { BIGINT_LONG, createAvroType } from "./avro-runtime.ts";
import { fromEnvelope, toEnvelope } from "./envelope-codec.ts";
import { FramedDecoder } from "./framed-codec.ts";
import { openMemoryStore } from "./log-store.ts";
import { subjectForTopic } from "./registry.ts";
import { RemoteRegistry } from "./remote-registry.ts";
import { startRegistryServer } from "./rest-server.ts";
import type { RegistryServer } from "./rest-server.ts";
import { mapTable } from "./table-mapping.ts";
import { encodeFramed } from "./wire-format.ts";

const TABLE: TableSchema = {
  source: "shop",
  database: "shopdb",
  schema: "public",
  table: "items",
  sourceKind: "postgres",
  key: ["id"],
  columns: [
    { name: "id", dbType: "int8", nullable: false, primaryKeyIndex: 1 },
    { name: "name", dbType: "text", nullable: false },
    { name: "price", dbType: "numeric(10,2)", nullable: true },
    { name: "created", dbType: "timestamptz", nullable: false },
    { name: "doc", dbType: "jsonb", nullable: true },
  ],
};
const TOPIC = "shop.public.items";
const MAPPING = mapTable(TABLE);

const EVENT: ChangeEvent = {
  op: "c",
  key: { id: 42n },
  before: null,
  after: { id: 42n, name: "lamp", price: "19.90", created: 1_700_000_000_000_000n, doc: '{"color":"red"}' },
  source: {
    connector: "postgres",
    name: "shop",
    db: "shopdb",
    schema: "public",
    table: "items",
    position: { commit: 5000n, change: 4990n },
    txId: "777",
    commitTimeMs: 1_700_000_000_000,
    snapshot: false,
  },
  schema: TABLE,
};

/**
 * Debezium's envelope carries ts_ns (nanoseconds since the epoch, beyond 2^53), which avsc's
 * default long refuses: a JavaScript consumer of Debezium topics needs an exact long type, as here.
 */
const exactLongs = (schema: unknown) => (schema === "long" || (typeof schema === "object" && schema !== null && (schema as { type?: unknown }).type === "long") ? BIGINT_LONG : undefined);

let server: RegistryServer;
let remote: RemoteRegistry;

before(async () => {
  server = await startRegistryServer({ port: 0, store: await openMemoryStore() });
  remote = new RemoteRegistry({ url: server.url });
});
after(async () => {
  await server.close();
});

describe("@kafkajs/confluent-schema-registry", () => {
  it("registers, fetches, encodes and decodes a Sluice envelope", async () => {
    const client = new KafkajsRegistry({ host: server.url }, { [SchemaType.AVRO]: { typeHook: exactLongs as never } });
    const subject = subjectForTopic(`kafkajs.${TOPIC}`, "value");
    const { id } = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(MAPPING.envelopeSchema) }, { subject });
    assert.equal(await client.getLatestSchemaId(subject), id);
    assert.equal(await client.getRegistryIdBySchema(subject, { type: SchemaType.AVRO, schema: JSON.stringify(MAPPING.envelopeSchema) }), id);
    const fetched = await client.getSchema(id);
    assert.equal((fetched as unknown as { name: string }).name, "shop.public.items.Envelope");

    // kafkajs writes, Sluice reads.
    const encodedByClient = await client.encode(id, toEnvelope(EVENT, MAPPING, { processedAtMs: 1 }));
    const decoded = await new FramedDecoder(remote).decode(encodedByClient, createAvroType(MAPPING.envelopeSchema));
    assert.equal(decoded.schemaId, id);
    assert.deepEqual(fromEnvelope(decoded.value as Record<string, unknown>, MAPPING), EVENT);

    // Sluice writes, kafkajs reads.
    const encodedBySluice = encodeFramed(id, createAvroType(MAPPING.envelopeSchema), toEnvelope(EVENT, MAPPING));
    const read = (await client.decode(encodedBySluice)) as { op: string; after: { name: string; price: Buffer; created: string }; source: { lsn: bigint; ts_ns: bigint } };
    assert.equal(read.op, "c");
    assert.equal(read.after.name, "lamp");
    assert.deepEqual([...read.after.price], [0x07, 0xc6], "19.90 as unscaled 1990");
    assert.equal(read.after.created, "2023-11-14T22:13:20Z", "timestamptz as Debezium's ZonedTimestamp");
    assert.equal(read.source.lsn, 4990n);
    assert.equal(read.source.ts_ns, 1_700_000_000_000_000_000n);
  });

  it("registers a second, compatible version and sees the incompatible one refused", async () => {
    const client = new KafkajsRegistry({ host: server.url });
    const subject = "kafkajs-evolution-value";
    const v1 = { type: "record", name: "E", fields: [{ name: "a", type: "int" }] };
    const v2 = { type: "record", name: "E", fields: [{ name: "a", type: "int" }, { name: "b", type: ["null", "string"], default: null }] };
    const first = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(v1) }, { subject });
    const second = await client.register({ type: SchemaType.AVRO, schema: JSON.stringify(v2) }, { subject });
    assert.notEqual(first.id, second.id);
    await assert.rejects(
      client.register({ type: SchemaType.AVRO, schema: JSON.stringify({ type: "record", name: "E", fields: [{ name: "a", type: "string" }] }) }, { subject }),
      (error: unknown) => (error as { status?: number }).status === 409,
    );
    const old = await client.encode(first.id, { a: 1 });
    assert.deepEqual({ ...((await client.decode(old, { [SchemaType.AVRO]: { readerSchema: v2 as never } })) as object) }, { a: 1, b: null });
  });
});

describe("@confluentinc/schemaregistry", () => {
  it("registers, fetches, serializes and deserializes a Sluice key and envelope", async () => {
    const client = new SchemaRegistryClient({ baseURLs: [server.url] });
    const topic = `confluent.${TOPIC}`;
    const keyId = await client.register(subjectForTopic(topic, "key"), { schemaType: "AVRO", schema: JSON.stringify(MAPPING.keySchema) });
    const valueId = await client.register(subjectForTopic(topic, "value"), { schemaType: "AVRO", schema: JSON.stringify(MAPPING.envelopeSchema) });
    assert.notEqual(keyId, valueId);
    assert.equal((await client.getBySubjectAndId(subjectForTopic(topic, "value"), valueId)).schema, await remote.getById(valueId));
    const latest = await client.getLatestSchemaMetadata(subjectForTopic(topic, "value"));
    assert.deepEqual([latest.id, latest.version], [valueId, 1]);
    assert.equal(await client.getId(subjectForTopic(topic, "value"), { schemaType: "AVRO", schema: JSON.stringify(MAPPING.envelopeSchema) }), valueId);
    assert.equal(await client.getCompatibility(subjectForTopic(topic, "value")).catch(() => "none set"), "none set");

    const keySerializer = new AvroSerializer(client, SerdeType.KEY, { useLatestVersion: true, typeHook: exactLongs as never });
    const valueSerializer = new AvroSerializer(client, SerdeType.VALUE, { useLatestVersion: true, typeHook: exactLongs as never });
    const valueDeserializer = new AvroDeserializer(client, SerdeType.VALUE, { typeHook: exactLongs as never });

    // The client library writes, Sluice reads.
    const keyBytes = await keySerializer.serialize(topic, MAPPING.keyCodec?.toAvro(EVENT.key));
    const valueBytes = await valueSerializer.serialize(topic, toEnvelope(EVENT, MAPPING, { processedAtMs: 2 }));
    const decoder = new FramedDecoder(remote);
    const key = await decoder.decode(keyBytes, createAvroType(MAPPING.keySchema ?? "null"));
    assert.equal(key.schemaId, keyId);
    const decodedKey = MAPPING.keyCodec?.fromAvro(key.value as Record<string, unknown>);
    assert.deepEqual(decodedKey, { id: 42n });
    const value = await decoder.decode(valueBytes, createAvroType(MAPPING.envelopeSchema));
    assert.deepEqual(fromEnvelope(value.value as Record<string, unknown>, MAPPING, decodedKey), EVENT);

    // Sluice writes, the client library reads.
    const ours = encodeFramed(valueId, createAvroType(MAPPING.envelopeSchema), toEnvelope(EVENT, MAPPING));
    const read = (await valueDeserializer.deserialize(topic, ours)) as { after: { id: bigint; doc: string }; source: { sequence: string } };
    assert.equal(read.after.id, 42n);
    assert.equal(read.after.doc, '{"color":"red"}');
    assert.equal(read.source.sequence, '["5000","4990"]');
  });

  it("tests compatibility and manages config through the client", async () => {
    const client = new SchemaRegistryClient({ baseURLs: [server.url] });
    const subject = "confluent-config-value";
    await client.register(subject, { schemaType: "AVRO", schema: '{"type":"record","name":"C","fields":[{"name":"a","type":"int"}]}' });
    assert.equal(await client.updateCompatibility(subject, "FULL" as never), "FULL");
    assert.equal(await client.getCompatibility(subject), "FULL");
    assert.equal(await client.testSubjectCompatibility(subject, { schemaType: "AVRO", schema: '{"type":"record","name":"C","fields":[{"name":"a","type":"long"}]}' }), false);
    assert.equal(
      await client.testCompatibility(subject, 1, { schemaType: "AVRO", schema: '{"type":"record","name":"C","fields":[{"name":"a","type":"int"},{"name":"b","type":"int","default":0}]}' }),
      true,
    );
    assert.deepEqual(await client.getAllVersions(subject), [1]);
    assert.ok((await client.getAllSubjects()).includes(subject));
    assert.deepEqual(await client.deleteSubject(subject), [1]);
    assert.deepEqual(await client.deleteSubject(subject, true), [1]);
  });
});
