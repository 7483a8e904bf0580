/**
 * What a consumer reading by Avro field name sees in a Sluice record: its `after` values by field
 * name, read with plain avsc from the registered schema, and each field's column (its
 * sluice.original.name, else the field's own name).
 */
import { createAvroType } from "./avro-runtime.ts";
import type { AvroRecordJson } from "./avro-schema.ts";
import type { SchemaRegistry } from "./registry.ts";
import { ORIGINAL_NAME_PROPERTY } from "./table-mapping.ts";
import { unframe } from "./wire-format.ts";

export async function afterByField(registry: Pick<SchemaRegistry, "getById">, value: Uint8Array): Promise<{ fields: Record<string, unknown>; columns: Record<string, string> }> {
  const { schemaId, payload } = unframe(value);
  const envelope = JSON.parse(await registry.getById(schemaId)) as AvroRecordJson;
  const record = createAvroType(envelope).fromBuffer(payload) as { after: Record<string, unknown> };
  // The Value record is defined in the `before` field's union and named by `after`'s.
  const before = envelope.fields.find((f) => f.name === "before")!.type as unknown[];
  const row = before.find((branch) => typeof branch === "object") as AvroRecordJson;
  const columns = Object.fromEntries(row.fields.map((f) => [f.name, String((f as unknown as Record<string, unknown>)[ORIGINAL_NAME_PROPERTY] ?? f.name)]));
  return { fields: { ...record.after }, columns };
}
