/**
 * KafkaTopicLog.readRequestLimit's own logic over a stand-in admin: what a failed read of the brokers'
 * socket.request.max.bytes says, and that a later read still takes it. The broker side is in broker-limits.int.test.ts.
 */
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import { KafkaTopicLog } from "./kafka-log.ts";

test("a failed read of the brokers' socket.request.max.bytes (no DescribeConfigs on the cluster) is said once at warn naming the ACL, and a later read takes the limit", async () => {
  const lines: { level: string; msg: string }[] = [];
  const logger = createLogger("debug", new Writable({ write: (chunk: Buffer, _e, done) => (lines.push(JSON.parse(chunk.toString()) as { level: string; msg: string }), done()) }));
  let allowed = false;
  const denied = () => Object.assign(new Error("Cluster authorization failed"), { name: "KafkaJSProtocolError", type: "CLUSTER_AUTHORIZATION_FAILED" });
  const admin = {
    describeCluster: async () => ({ brokers: [{ nodeId: 1 }, { nodeId: 2 }] }),
    describeConfigs: async () => {
      if (!allowed) throw denied();
      return { resources: [{ configEntries: [{ configName: "socket.request.max.bytes", configValue: "300000" }] }, { configEntries: [{ configName: "socket.request.max.bytes", configValue: "500000" }] }] };
    },
  };
  // The class's own state this method uses; no connection is made.
  const log = Object.create(KafkaTopicLog.prototype) as KafkaTopicLog;
  Object.assign(log, { admin, logger, config: { brokers: ["127.0.0.1:9092"] }, closed: false, recordLimits: new Map(), inFlight: { track: <T>(p: Promise<T>) => p } });
  assert.equal(await log.readRequestLimit(), undefined);
  assert.equal(await log.readRequestLimit(), undefined);
  const said = lines.filter((l) => l.msg.startsWith("could not read the brokers' socket.request.max.bytes"));
  assert.deepEqual(said.map((l) => l.level), ["warn", "debug"], "warn once, then debug");
  assert.match(said[0]!.msg, /kafka-acls\.sh --add --allow-principal User:.* --operation DescribeConfigs --cluster/);
  allowed = true;
  assert.deepEqual(await log.readRequestLimit(), { was: null, now: 300000 - 1024, setting: "socket.request.max.bytes of the brokers (300000) less 1024 bytes of request framing" });
  assert.equal(log.recordLimitOf("any")?.bytes, 300000 - 1024);
});
