/**
 * How each way a SASL exchange can fail is classified. kafkajs's built-in PLAIN and SCRAM wrap every failure during the
 * exchange in KafkaJSSASLAuthenticationError; only the broker refusing the credentials is a refusal (counted, and waited
 * out once they were accepted), a connection failing meanwhile is a connection failure (retriable, also at the first
 * start). The broker here is a scripted one (kafkajs's saslAuthenticate, the exchange's request function, answered by a
 * SCRAM-SHA-512 server after RFC 5802); the real broker's refusals are in kafka-tls.int.test.ts.
 */
import assert from "node:assert/strict";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, test } from "node:test";
import kafkajs from "kafkajs";
import type { AuthenticationProviderArgs, Logger } from "kafkajs";
import { type KafkaAuthOutcome, type KafkaSaslConfig, saslMechanism, watchKafkaAuthentications } from "./kafka-auth.ts";
import { isRetriableKafkaError, kafkaError } from "./kafka-errors.ts";

const { KafkaJSProtocolError } = kafkajs;
// Exported by kafkajs, missing from its typings.
const { KafkaJSConnectionClosedError } = kafkajs as unknown as { KafkaJSConnectionClosedError: new (message: string, broker: { host: string; port: number }) => Error };
const brokers = ["b1:9093"];
const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined, namespace: () => quiet } as unknown as Logger;

interface SaslStep {
  request: { encode: () => Promise<Buffer> | Buffer };
  response?: { parse: (data: Buffer) => Promise<unknown> };
}

/** The client's message of a step (kafkajs writes it as Kafka BYTES: an int32 length, then the text). */
async function clientMessage(step: SaslStep): Promise<string> {
  return (await step.request.encode()).subarray(4).toString();
}

type Exchange = (step: SaslStep, index: number) => Promise<unknown>;

/** A SCRAM-SHA-512 server holding `password` for every user (RFC 5802); `signature` spoils its server signature. */
function scramBroker(password: () => string, options: { onClientFinal?: () => void; signature?: "wrong" } = {}): Exchange {
  const salt = randomBytes(16);
  const iterations = 4096;
  let authMessagePrefix = "";
  let serverFirst = "";
  const hmac = (key: Buffer, text: string) => createHmac("sha512", key).update(text).digest();
  return async (step, index) => {
    const message = await clientMessage(step);
    if (index === 0) {
      const bare = message.slice(message.indexOf("n=", 3));
      const nonce = /r=([^,]+)/.exec(bare)![1]!;
      serverFirst = `r=${nonce}${randomBytes(12).toString("base64")},s=${salt.toString("base64")},i=${iterations}`;
      authMessagePrefix = `${bare},${serverFirst}`;
      return step.response!.parse(Buffer.from(serverFirst));
    }
    options.onClientFinal?.();
    const withoutProof = message.slice(0, message.lastIndexOf(",p="));
    const proof = Buffer.from(message.slice(message.lastIndexOf(",p=") + 3), "base64");
    const authMessage = `${authMessagePrefix},${withoutProof}`;
    const salted = pbkdf2Sync(password(), salt, iterations, 64, "sha512");
    const storedKey = createHash("sha512").update(hmac(salted, "Client Key")).digest();
    const clientSignature = hmac(storedKey, authMessage);
    const clientKey = Buffer.from(proof.map((byte, i) => byte ^ clientSignature[i]!));
    if (!createHash("sha512").update(clientKey).digest().equals(storedKey)) {
      throw new KafkaJSProtocolError(Object.assign(new Error("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512"), { type: "SASL_AUTHENTICATION_FAILED", code: 58, retriable: false }) as never);
    }
    const serverSignature = hmac(hmac(salted, "Server Key"), options.signature === "wrong" ? `${authMessage}x` : authMessage);
    return step.response!.parse(Buffer.from(`v=${serverSignature.toString("base64")}`));
  };
}

/** One authentication against the scripted broker; the outcomes the listener was told. */
async function authenticate(sasl: KafkaSaslConfig & object, exchange: Exchange): Promise<{ error: unknown; outcomes: KafkaAuthOutcome[] }> {
  const outcomes: KafkaAuthOutcome[] = [];
  watchKafkaAuthentications((outcome) => outcomes.push(outcome));
  let index = 0;
  const saslAuthenticate = ((step: SaslStep) => exchange(step, index++)) as unknown as AuthenticationProviderArgs["saslAuthenticate"];
  const error = await saslMechanism(sasl).authenticationProvider({ host: "b1", port: 9093, logger: quiet, saslAuthenticate }).authenticate().then(
    () => undefined,
    (failure: unknown) => failure,
  );
  return { error, outcomes };
}

function passwordFile(value: string): string {
  const file = join(mkdtempSync(join(tmpdir(), "sluice-kafka-auth-")), "password");
  writeFileSync(file, value);
  return file;
}

afterEach(() => watchKafkaAuthentications(null));

test("a connection reset during the SASL exchange is a connection failure, retriable, not a refusal: at the first start and once the credentials were accepted", async () => {
  const sasl = { mechanism: "scram-sha-512" as const, username: "sluice", password: "right" };
  const reset: Exchange = async () => {
    throw new KafkaJSConnectionClosedError("Closed connection", { host: "b1", port: 9093 });
  };
  for (const when of ["at the first start", "after an acceptance"]) {
    if (when === "after an acceptance") assert.equal((await authenticate(sasl, scramBroker(() => "right"))).error, undefined, "accepted");
    const { error, outcomes } = await authenticate(sasl, reset);
    assert.equal((error as Error).name, "KafkaJSConnectionClosedError", `${when}: ${(error as Error).message}`);
    assert.match((error as Error).message, /during the SASL authentication of user "sluice" at broker b1:9093/);
    assert.equal(isRetriableKafkaError(error), true, when);
    const sluice = kafkaError(error, "connect", brokers);
    assert.equal(sluice.code, "KAFKA_UNAVAILABLE", `${when}: ${sluice.message}`);
    assert.deepEqual(outcomes, [], `${when}: not told as a refusal (sluice_kafka_auth_refused, SluiceKafkaAuthRefused)`);
  }
});

test("the broker answering SASL_AUTHENTICATION_FAILED is a refusal: permanent at the first start, waited out once the credentials were accepted", async () => {
  const sasl = { mechanism: "scram-sha-512" as const, username: "sluice", password: "right" };
  const first = await authenticate(sasl, scramBroker(() => "rotated"));
  assert.equal(isRetriableKafkaError(first.error), false);
  assert.match(kafkaError(first.error, "connect", brokers).message, /refused the credentials during connect: .*user "sluice" at broker b1:9093.*check topics\.sasl/);
  assert.deepEqual(first.outcomes.map((o) => [o.refused !== null, o.acceptedBefore]), [[true, false]]);

  assert.equal((await authenticate(sasl, scramBroker(() => "right"))).error, undefined);
  const later = await authenticate(sasl, scramBroker(() => "rotated"));
  assert.equal(isRetriableKafkaError(later.error), true);
  assert.equal(kafkaError(later.error, "produce", brokers).code, "KAFKA_AUTH_FAILED");
  assert.deepEqual(later.outcomes.map((o) => [o.refused !== null, o.acceptedBefore]), [[true, true]]);
});

test("a password_file rotated during an exchange the broker accepts is read once for it: the login succeeds, no invalid server signature", async () => {
  const file = passwordFile("old-password\n");
  const sasl = { mechanism: "scram-sha-512" as const, username: "sluice", secret_files: { password: file } };
  // The Secret file is updated while the proof is on its way; the broker still holds the old password.
  const { error, outcomes } = await authenticate(sasl, scramBroker(() => "old-password", { onClientFinal: () => writeFileSync(file, "new-password\n") }));
  assert.equal(error, undefined, `accepted: ${(error as Error | undefined)?.message}`);
  assert.deepEqual(outcomes.map((o) => o.refused), [null]);
});

test("a broker whose SCRAM server signature does not check out refused nothing: not counted as a refusal, not waited out, said as such", async () => {
  const sasl = { mechanism: "scram-sha-512" as const, username: "sluice", password: "right" };
  assert.equal((await authenticate(sasl, scramBroker(() => "right"))).error, undefined);
  const { error, outcomes } = await authenticate(sasl, scramBroker(() => "right", { signature: "wrong" }));
  assert.match((error as Error).message, /Invalid server signature/);
  assert.deepEqual(outcomes, [], "not told as a refusal");
  assert.equal(isRetriableKafkaError(error), false);
  const sluice = kafkaError(error, "produce", brokers);
  assert.equal(sluice.code, "KAFKA_AUTH_FAILED");
  assert.match(sluice.message, /without the broker refusing the credentials: .*did not prove it holds this user's credentials/);
});
