/**
 * A lossless JSON form of a ChangeEvent, for records that cannot be Avro (events of a halted
 * table, dead letters): bigints, bytes and the unchanged-TOAST marker survive the round trip.
 */
import type { ChangeEvent } from "../connectors/contracts.ts";
import { UNCHANGED } from "../connectors/contracts.ts";

export function serializeEvent(event: ChangeEvent): string {
  return JSON.stringify(event, (_key, value: unknown) => {
    if (typeof value === "bigint") return { $bigint: value.toString() };
    if (value instanceof Uint8Array) return { $bytes: Buffer.from(value).toString("base64") };
    if (value === UNCHANGED) return { $unchanged: true };
    return value;
  });
}

export function deserializeEvent(text: string): ChangeEvent {
  return JSON.parse(text, (_key, value: unknown) => {
    if (value !== null && typeof value === "object" && !Array.isArray(value)) {
      const tagged = value as Record<string, unknown>;
      if (typeof tagged["$bigint"] === "string") return BigInt(tagged["$bigint"]);
      if (typeof tagged["$bytes"] === "string") return new Uint8Array(Buffer.from(tagged["$bytes"], "base64"));
      if (tagged["$unchanged"] === true) return UNCHANGED;
    }
    return value;
  }) as ChangeEvent;
}
