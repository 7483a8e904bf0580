import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import net from "node:net";
import { kafka as kafkaService } from "../../test/services/ports.ts";
import { recordTestName } from "../../test/services/test-names.ts";
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

/** A deployment name no other test run uses, recorded in the ledger of test names (test/services/test-names.ts) for the sweep. */
export function testDeployment(prefix: string): string {
  return recordTestName(`${prefix}_${randomBytes(4).toString("hex")}`);
}

/** Deletes a test deployment's topics and consumer groups from the test broker. */
export async function deleteKafkaDeployment(deployment: string): Promise<void> {
  const { Kafka, logLevel } = await import("kafkajs");
  // Without it kafkajs arms a timer at a negative delay after each response (Node prints TimeoutNegativeWarning).
  (await import("./kafka-client.ts")).guardRequestQueue();
  const admin = new Kafka({ clientId: "sluice-test-cleanup", brokers: [...kafkaService.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${deployment}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    const groups = (await admin.listGroups()).groups.map((g) => g.groupId).filter((g) => g.startsWith(`${deployment}.`));
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
  } finally {
    await admin.disconnect();
  }
}

/**
 * Runs `use` while watching every socket connected meanwhile, then `close` (which must end what `use`
 * connected), and asserts that some socket was connected and that every one is closed (within 1 s).
 */
export async function assertConnectionsClosed(use: () => Promise<void>, close: () => Promise<void>, what: string): Promise<void> {
  const sockets: net.Socket[] = [];
  const connect = net.Socket.prototype.connect;
  net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
    sockets.push(this);
    return (connect as (...a: unknown[]) => net.Socket).apply(this, args);
  } as typeof connect;
  try {
    await use();
  } finally {
    net.Socket.prototype.connect = connect;
    await close();
  }
  for (let i = 0; i < 50 && sockets.some((s) => !s.destroyed); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(sockets.length > 0);
  assert.deepEqual(sockets.filter((s) => !s.destroyed).map((s) => `${s.localPort} -> ${s.remotePort}`), [], `every connection ${what} made is closed`);
}

