/**
 * Which Kafka failures are waited out (retriable) and which stop a component: an outage, a
 * consumer that crashed and has no group yet, a partition moved by a rebalance (e.g. after a
 * kill -9 the dead member holds partitions until its session times out) are retriable; fenced
 * producers, refused credentials and other protocol refusals are not.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import kafkajs from "kafkajs";
import { SluiceError } from "../errors.ts";
import { isConnectionClosed, isRetriableKafkaError, isUnknownTopicOrPartition, kafkaError } from "./kafka-errors.ts";
import { ACCEPTED_BEFORE } from "./kafka-auth.ts";

const { KafkaJSConnectionError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } = kafkajs;
const brokers = ["127.0.0.1:9092"];

test("a refused connection, also inside kafkajs's retries-exceeded wrapper, is retriable (KAFKA_UNAVAILABLE)", () => {
  const refused = new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:9092");
  const wrapped = new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 3000 });
  for (const error of [refused, wrapped]) {
    assert.equal(isRetriableKafkaError(error), true);
    const sluice = kafkaError(error, "list topics", brokers);
    assert.equal(sluice.code, "KAFKA_UNAVAILABLE");
    assert.equal(sluice.retriable, true);
    assert.match(sluice.message, /Kafka 127\.0\.0\.1:9092 unavailable during list topics/);
  }
});

test("a connection the broker closed under a request: kafkajs's 'Closed connection', and the reset or broken pipe a real network mostly reports (also wrapped); not a refused connection", () => {
  const { KafkaJSConnectionClosedError } = kafkajs as unknown as { KafkaJSConnectionClosedError: new (message: string, broker: { host: string; port: number }) => Error };
  const reset = new KafkaJSConnectionError("Connection error: read ECONNRESET", { broker: "127.0.0.1:9092", code: "ECONNRESET" });
  const pipe = new KafkaJSConnectionError("Connection error: write EPIPE", { broker: "127.0.0.1:9092", code: "EPIPE" });
  const closed = new KafkaJSConnectionClosedError("Closed connection", { host: "127.0.0.1", port: 9092 });
  for (const error of [reset, pipe, closed, new KafkaJSNumberOfRetriesExceeded(pipe, { retryCount: 5, retryTime: 3000 })]) assert.equal(isConnectionClosed(error), true, error.message);
  assert.equal(isConnectionClosed(new KafkaJSConnectionError("Connection error: connect ECONNREFUSED 127.0.0.1:9092", { broker: "127.0.0.1:9092", code: "ECONNREFUSED" })), false);
  assert.equal(isConnectionClosed(new KafkaJSConnectionError("Connection timeout", { broker: "127.0.0.1:9092" })), false);
});

test("no broker answering the coordinator lookup (a transactional produce during an outage) is retriable", () => {
  const error = Object.assign(new KafkaJSNonRetriableError("Failed to find group coordinator"), { name: "KafkaJSGroupCoordinatorNotFound" });
  assert.equal(isRetriableKafkaError(error), true);
  assert.equal(kafkaError(error, "produce", brokers).code, "KAFKA_UNAVAILABLE");
});

test("'Consumer group was not initialized' (a consumer between a crash and its rejoin) is retriable", () => {
  const error = new KafkaJSNonRetriableError("Consumer group was not initialized, consumer#run must be called first");
  assert.equal(isRetriableKafkaError(error), true);
  const sluice = kafkaError(error, "commit offsets", brokers);
  assert.equal(sluice.code, "KAFKA_CONSUMER_REJOINING");
  assert.equal(sluice.retriable, true);
  assert.match(sluice.message, /rejoining its group.*during commit offsets/);
});

test("PARTITION_NOT_ASSIGNED from a seek (partitions moved in a rebalance) stays retriable through kafkaError", () => {
  const notAssigned = new SluiceError("cannot seek t/0: not assigned to this member of group \"g\" now", { code: "PARTITION_NOT_ASSIGNED", retriable: true, context: { component: "kafka" } });
  assert.equal(isRetriableKafkaError(notAssigned), true);
  assert.equal(kafkaError(notAssigned, "seek", brokers), notAssigned);
});

test("permanent refusals are not retriable: fenced producer, bad credentials, a non-retriable protocol error", () => {
  const fenced = Object.assign(new KafkaJSProtocolError("There is a newer producer with the same transactionalId"), { type: "PRODUCER_FENCED", retriable: false });
  assert.equal(isRetriableKafkaError(fenced), false);
  assert.equal(kafkaError(fenced, "produce", brokers).code, "KAFKA_PRODUCER_FENCED");
  // As kafkajs throws it (its typings give the class no constructor arguments, so it is built by name here).
  const auth = Object.assign(new Error("SASL PLAIN authentication failed"), { name: "KafkaJSSASLAuthenticationError" });
  assert.equal(isRetriableKafkaError(auth), false);
  assert.equal(kafkaError(auth, "connect", brokers).code, "KAFKA_AUTH_FAILED");
  const tooLarge = Object.assign(new KafkaJSProtocolError("The request included a message larger than the max message size the server will accept"), { type: "MESSAGE_TOO_LARGE", retriable: false });
  assert.equal(isRetriableKafkaError(tooLarge), false);
  assert.equal(kafkaError(tooLarge, "produce", brokers).code, "KAFKA_MESSAGE_TOO_LARGE");
  assert.match(kafkaError(tooLarge, "produce", brokers).message, /max\.message\.bytes.*topics\.batch_bytes/, "says which limits and what to change");
  // A batch over the topic's segment.bytes: the same kind of refusal, handled as one (the producer reads the limits again).
  const overSegment = Object.assign(new KafkaJSProtocolError("The request included message batch larger than the configured segment size on the server"), { type: "RECORD_LIST_TOO_LARGE", retriable: false });
  assert.equal(kafkaError(overSegment, "produce", brokers).code, "KAFKA_MESSAGE_TOO_LARGE");
  assert.match(kafkaError(overSegment, "produce", brokers).message, /segment\.bytes.*topics\.batch_bytes/);
  const other = new KafkaJSNonRetriableError("Invalid topic undefined");
  assert.equal(isRetriableKafkaError(other), false);
});

test("refused SASL credentials the brokers accepted before in this process (a password rotation under way) are KAFKA_AUTH_FAILED, retriable, also inside kafkajs's retry wrapper", () => {
  const refused = () => Object.assign(new Error("SASL SCRAM SHA512 authentication failed (user \"sluice\" at broker b1:9092)"), { name: "KafkaJSSASLAuthenticationError" });
  const atStart = refused();
  assert.equal(isRetriableKafkaError(atStart), false);
  assert.match(kafkaError(atStart, "connect", brokers).message, /check topics\.sasl/);
  for (const error of [Object.assign(refused(), { [ACCEPTED_BEFORE]: true }), new KafkaJSNumberOfRetriesExceeded(Object.assign(refused(), { [ACCEPTED_BEFORE]: true }), { retryCount: 1, retryTime: 100 })]) {
    assert.equal(isRetriableKafkaError(error), true);
    const sluice = kafkaError(error, "produce", brokers);
    assert.equal(sluice.code, "KAFKA_AUTH_FAILED");
    assert.equal(sluice.retriable, true);
    assert.match(sluice.message, /refused the credentials during produce: .*user "sluice" at broker b1:9092.*waiting for the brokers to accept them/);
  }
});

test("a failed certificate check or TLS handshake, also inside kafkajs's retry wrapper, is permanent (KAFKA_TLS_FAILED)", () => {
  const untrusted = new KafkaJSConnectionError("Connection error: self-signed certificate in certificate chain", { broker: brokers[0]!, code: "SELF_SIGNED_CERT_IN_CHAIN" });
  const refusedCert = new KafkaJSConnectionError("Connection error: tlsv13 alert certificate required", { broker: brokers[0]!, code: "ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED" });
  for (const error of [untrusted, refusedCert, new KafkaJSNumberOfRetriesExceeded(untrusted, { retryCount: 5, retryTime: 3000 })]) {
    assert.equal(isRetriableKafkaError(error), false);
    const sluice = kafkaError(error, "connect", brokers);
    assert.equal(sluice.code, "KAFKA_TLS_FAILED");
    assert.equal(sluice.retriable, false);
    assert.match(sluice.message, /^Kafka 127\.0\.0\.1:9092: (certificate verify failed|TLS handshake failed): .* during connect; check topics\.tls/);
  }
});

test("a commit refused because the group rebalanced meanwhile (a member joined or died) is retriable: the sink reopens its consumer (KAFKA_GROUP_REBALANCED)", () => {
  for (const type of ["ILLEGAL_GENERATION", "REBALANCE_IN_PROGRESS", "UNKNOWN_MEMBER_ID"]) {
    const error = Object.assign(new KafkaJSProtocolError("Specified group generation id is not valid"), { type, retriable: false });
    assert.equal(isRetriableKafkaError(error), true, type);
    const sluice = kafkaError(error, "commit offsets", brokers);
    assert.equal(sluice.code, "KAFKA_GROUP_REBALANCED", type);
    assert.equal(sluice.retriable, true);
    assert.match(sluice.message, /group rebalanced during commit offsets/);
  }
});

test("a topic-partition the broker does not host (a topic deleted while Sluice writes it) stays retriable and says what it means if it lasts", () => {
  const error = Object.assign(new KafkaJSProtocolError("This server does not host this topic-partition"), { type: "UNKNOWN_TOPIC_OR_PARTITION", retriable: true });
  const sluice = kafkaError(new KafkaJSNumberOfRetriesExceeded(error, { retryCount: 5, retryTime: 3000 }), "produce", brokers);
  assert.equal(sluice.code, "KAFKA_UNAVAILABLE");
  assert.equal(sluice.retriable, true);
  assert.match(sluice.message, /does not host this topic-partition.*if it lasts, the topic was deleted: capture creates it again \(it then holds only the changes since/);
  assert.equal(isUnknownTopicOrPartition(new KafkaJSNumberOfRetriesExceeded(error, { retryCount: 5, retryTime: 3000 })), true, "seen inside kafkajs's wrapper");
});
