import { randomBytes } from "node:crypto";
import { kafka as kafkaService } from "../../test/services/ports.ts";
import type { KafkaTopicsConfig } from "./kafka-client.ts";

/** A Kafka topics config for the test broker from test/services/. */
export function testKafkaConfig(overrides: Partial<KafkaTopicsConfig> = {}): KafkaTopicsConfig {
  return {
    kind: "kafka",
    brokers: [...kafkaService.brokers],
    client_id: "sluice-test",
    partitions: 3,
    replication_factor: 1,
    compression: "none",
    linger: 5,
    batch_bytes: 2 ** 20,
    max_in_flight: 5,
    transactions: true,
    retention: { cleanup_policy: "compact" as const, max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 },
    max_record_bytes: 16 * 2 ** 20,
    ...overrides,
  };
}

/** A deployment name no other test run uses. */
export function testDeployment(prefix: string): string {
  return `${prefix}_${randomBytes(4).toString("hex")}`;
}
