import assert from "node:assert/strict";
import { createServer } from "node:net";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import { testKafkaConfig } from "../kafka/kafka-test-config.ts";
import { openTopicLogForCommand } from "./open.ts";

/** A port nothing listens on (bound, then let go). */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

test("an operator command meets an unreachable Kafka once (kafkajs retries within it), naming the brokers, not after rounds of its own retries", async () => {
  const lines: string[] = [];
  const sink = new Writable({ write: (chunk: Buffer, _encoding, done) => (lines.push(chunk.toString()), done()) });
  const broker = `127.0.0.1:${await closedPort()}`;
  await assert.rejects(openTopicLogForCommand(testKafkaConfig({ brokers: [broker] }), "cli3am", createLogger("info", sink), "read-only"), (error: Error & { code?: string }) => {
    assert.equal(error.code, "KAFKA_UNAVAILABLE");
    assert.ok(error.message.includes(broker), error.message);
    return true;
  });
  const retried = lines.map((l) => JSON.parse(l) as { msg: string }).filter((l) => l.msg === "Kafka unreachable; retrying");
  assert.equal(retried.length, 0);
});
