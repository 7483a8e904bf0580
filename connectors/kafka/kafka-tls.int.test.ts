/**
 * The Kafka topic log over SASL_SSL (SCRAM-SHA-512, client certificate required) against a private
 * broker from test/services/tls-sinks.ts: records go through, and a wrong CA, a wrong password or
 * a missing client certificate fail at once with a permanent error naming Kafka and the broker.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { retry } from "../../runtime/backoff.ts";
import { createLogger } from "../../runtime/logger.ts";
import { makeCa } from "../../test/services/tls.ts";
import { startTlsKafka } from "../../test/services/tls-sinks.ts";
import type { SecureKafka } from "../../test/services/tls-sinks.ts";
import { SluiceError } from "../errors.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { cuttableSockets } from "./cuttable-sockets.ts";
import { watchKafkaAuthentications } from "./kafka-auth.ts";
import type { KafkaAuthOutcome } from "./kafka-auth.ts";
import type { KafkaTopicsConfig } from "./kafka-client.ts";
import { KafkaTopicLog } from "./kafka-log.ts";
import { testDeployment, testKafkaConfig } from "./kafka-test-config.ts";

const logger = createLogger("silent");

describe("Kafka topic log over SASL_SSL (SCRAM-SHA-512, client certificate)", { timeout: 300_000 }, () => {
  let kafka: SecureKafka;
  let client: { certFile: string; keyFile: string };
  let otherCaDir: string;
  let otherCaFile: string;

  before(async () => {
    kafka = await startTlsKafka();
    client = await kafka.ca.clientCert("sluice-client");
    otherCaDir = mkdtempSync("/var/tmp/sluice-other-ca-");
    otherCaFile = (await makeCa(otherCaDir, "other")).caFile;
  });
  after(async () => {
    await kafka?.stop();
    if (otherCaDir) rmSync(otherCaDir, { recursive: true, force: true });
  });

  function config(overrides: { caFile?: string; password?: string; clientCert?: boolean } = {}): KafkaTopicsConfig {
    return testKafkaConfig({
      brokers: [`${kafka.host}:${kafka.port}`],
      sasl: { mechanism: "scram-sha-512", username: kafka.user, password: overrides.password ?? kafka.password },
      tls: {
        enabled: true,
        ca_file: overrides.caFile ?? kafka.ca.caFile,
        ...(overrides.clientCert === false ? {} : { cert_file: client.certFile, key_file: client.keyFile }),
      },
    });
  }

  /** Opens with the default retry policy (forever while retriable); the signal only bounds a wrongly retried failure. */
  async function openFailure(topics: KafkaTopicsConfig): Promise<SluiceError> {
    const signal = AbortSignal.timeout(60_000);
    const error = await KafkaTopicLog.open({ config: topics, deployment: testDeployment("tlsfail"), logger, signal }).then(
      async (log) => {
        await log.close();
        return null;
      },
      (e: unknown) => e,
    );
    assert.ok(error instanceof SluiceError, `expected a SluiceError, got ${String(error)}`);
    assert.equal(signal.aborted, false, "the failure came at once, not after retrying until the signal");
    return error;
  }

  test("produces and reads records through the secure connection (transactions, checkpoints)", async () => {
    const deployment = testDeployment("tlsok");
    const log = await KafkaTopicLog.open({ config: config(), deployment, logger });
    try {
      const topic = `${deployment}.src.public.t`;
      await log.createTopic({ name: topic, partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
      const records = ["a", "b", "c"].map((k, i) => ({ topic, key: Buffer.from(k), value: Buffer.from(`value-${i}`), timestamp: Date.now() }));
      await log.produce(records, { source: "src", position: { commit: 30n, change: 31n } });
      // A fresh broker loads its group coordinator for a moment: the consumer's join, which runs after it is made, fails
      // retriably (GROUP_LOAD_IN_PROGRESS) and the read with it, so a new consumer reads again, as the sink runner does.
      const read = await retry(
        async () => {
          const consumer = await log.consumer(`${deployment}.reader`, [topic]);
          try {
            return await readToEnd(log, consumer, [topic]);
          } finally {
            await consumer.close();
          }
        },
        { initialMs: 200, maxMs: 2_000, maxAttempts: 30 },
      );
      assert.deepEqual(read.map((r) => Buffer.from(r.value!).toString("utf8")).sort(), ["value-0", "value-1", "value-2"]);
      assert.deepEqual((await log.readCheckpoint("src"))?.position, { commit: 30n, change: 31n });
    } finally {
      await log.close();
    }
  });

  test("a password rotated on the broker while the log runs: the refusal is waited out (retriable, reported), the rotated password_file taken at the next attempt; records and checkpoint once each", async () => {
    const dir = mkdtempSync("/var/tmp/sluice-kafka-rotate-");
    const passwordFile = join(dir, "kafka-password");
    writeFileSync(passwordFile, kafka.password);
    const base = config();
    // As the config loader leaves topics.sasl given by password_file (config/secret-files.ts noteSecretFiles).
    const sasl = { ...base.sasl!, secret_files: { password: passwordFile } };
    const sockets = cuttableSockets();
    const outcomes: KafkaAuthOutcome[] = [];
    watchKafkaAuthentications((outcome) => outcomes.push(outcome));
    const deployment = testDeployment("rotate");
    const log = await KafkaTopicLog.open({ config: { ...base, sasl }, deployment, logger, socketFactory: sockets.factory, retry: { initialMs: 100, maxMs: 1_000 } });
    const rotated = "kafka-scram-rotated";
    try {
      const topic = `${deployment}.src.public.t`;
      await log.createTopic({ name: topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
      const record = (key: string) => ({ topic, key: Buffer.from(key), value: Buffer.from(`value-${key}`), timestamp: Date.now() });
      await log.produce([record("a")], { source: "src", position: { commit: 10n, change: 11n } });

      // The operator changes the password on the broker first; the file follows later. Connections already
      // authenticated stay: the next ones (here every one, reset) authenticate again with the file's old password.
      await kafka.setScramPassword(rotated);
      sockets.cut(true);
      sockets.cut(false);
      const produced = log.produce([record("b")], { source: "src", position: { commit: 20n, change: 21n } });
      let settled: unknown = "pending";
      produced.then(() => (settled = "done"), (error: unknown) => (settled = error));
      for (let i = 0; i < 300 && log.ready() && settled === "pending"; i++) await new Promise((r) => setTimeout(r, 100));
      assert.equal(settled, "pending", `the produce waits the refusal out instead of failing (${settled instanceof SluiceError ? `${settled.code}: ${settled.message}` : String(settled)})`);
      assert.equal(log.ready(), false, "not ready while refused");
      assert.ok(outcomes.some((o) => o.refused === null && !o.acceptedBefore), "authenticated with the first password");
      const refusal = outcomes.find((o) => o.refused !== null);
      assert.ok(refusal, `a refused authentication was reported (settled: ${String(settled)})`);
      assert.equal(refusal.acceptedBefore, true);
      assert.equal(refusal.username, kafka.user);
      assert.match(refusal.refused!, new RegExp(`user "${kafka.user}" at broker ${kafka.host}:${kafka.port}`));
      assert.doesNotMatch(refusal.refused!, new RegExp(kafka.password));
      // A consumer made meanwhile fails retriably (a sink opens it again), naming the refusal.
      const consumerFailure = await log.consumer(`${deployment}.reader`, [topic]).then(
        async (consumer) => {
          await consumer.close();
          return null;
        },
        (error: unknown) => error,
      );
      assert.ok(consumerFailure instanceof SluiceError, `the consumer failed: ${String(consumerFailure)}`);
      assert.equal(consumerFailure.code, "KAFKA_AUTH_FAILED");
      assert.equal(consumerFailure.retriable, true, consumerFailure.message);
      assert.match(consumerFailure.message, /waiting for the brokers to accept them/);
      assert.equal(settled, "pending", "the produce waits the refusal out");
      assert.equal(log.ready(), false);

      writeFileSync(passwordFile, rotated);
      await produced;
      assert.equal(log.ready(), true);
      assert.equal(outcomes.at(-1)?.refused, null, "accepted again");
      assert.deepEqual((await log.readCheckpoint("src"))?.position, { commit: 20n, change: 21n });
      const read = await retry(
        async () => {
          const consumer = await log.consumer(`${deployment}.reader`, [topic]);
          try {
            return await readToEnd(log, consumer, [topic]);
          } finally {
            await consumer.close();
          }
        },
        { initialMs: 200, maxMs: 2_000, maxAttempts: 30 },
      );
      assert.deepEqual(read.map((r) => Buffer.from(r.key!).toString("utf8")), ["a", "b"], "each record once");
    } finally {
      watchKafkaAuthentications(null);
      await log.close();
      // Back to the password the other tests use.
      await kafka.setScramPassword(kafka.password);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("a CA that did not sign the broker's certificate: KAFKA_TLS_FAILED, permanent, naming the broker", async () => {
    const error = await openFailure(config({ caFile: otherCaFile }));
    assert.equal(error.code, "KAFKA_TLS_FAILED", error.message);
    assert.equal(error.retriable, false);
    assert.match(error.message, new RegExp(`^Kafka ${kafka.host}:${kafka.port}: certificate verify failed`));
    assert.match(error.message, /topics\.tls/);
  });

  test("a wrong SCRAM password: KAFKA_AUTH_FAILED, permanent, naming the broker", async () => {
    const error = await openFailure(config({ password: "not-the-password" }));
    assert.equal(error.code, "KAFKA_AUTH_FAILED", error.message);
    assert.equal(error.retriable, false);
    assert.match(error.message, new RegExp(`^Kafka ${kafka.host}:${kafka.port} refused the credentials`));
    assert.match(error.message, new RegExp(`user "${kafka.user}"`), "names the user");
    assert.match(error.message, /check topics\.sasl/);
    assert.doesNotMatch(error.message, /not-the-password/);
  });

  test("no client certificate where the broker requires one: a permanent failure naming the broker", async () => {
    const error = await openFailure(config({ clientCert: false }));
    assert.equal(error.retriable, false, `${error.code}: ${error.message}`);
    assert.match(error.message, new RegExp(`Kafka ${kafka.host}:${kafka.port}`));
  });

  test("an unreadable ca_file is a configuration error naming the option and the path", async () => {
    const error = await openFailure(config({ caFile: join(otherCaDir, "missing.crt") }));
    assert.equal(error.code, "TLS_FILE_UNREADABLE");
    assert.match(error.message, /topics\.tls\.ca_file .*missing\.crt/);
  });
});
