import assert from "node:assert/strict";
import { test } from "node:test";
import { configSchema } from "../../config/schema.ts";
import { lostTopicPolicyOf } from "../topics/open.ts";
import { framedSchemaId, holdsSealedValue, isDeploymentDataTopic, isDeploymentSourceTopic, judgeLostTopics, RESERVED_ID_MARGIN, sealedLookTopics } from "./lost-internal-topics.ts";
import type { DeploymentTraces, InternalTopicsFound, LostTopicPolicy } from "./lost-internal-topics.ts";

const kept: InternalTopicsFound = { registry: "kept", checkpoints: "kept", schemaHistoryMissing: false, topicIdsMissing: false, subjectKeys: "kept" };
const policy: LostTopicPolicy = { builtinRegistry: true, mysqlSources: [], sources: [{ name: "pg", transactionTopic: false, outboxTopic: null }], accept: false };
const ran: DeploymentTraces = { framed: new Map([["d.pg.public.a", [3, 9]], ["d.pg.public.b", [4]]]), dataTopics: ["d.pg.public.a", "d.pg.public.b"], checkpointed: ["pg"], sealed: [], highestSchemaId: null };
const firstStart: DeploymentTraces = { framed: new Map(), dataTopics: [], checkpointed: [], sealed: [], highestSchemaId: null };

test("a registry gone where records reference schema ids is refused; accepted, the ids are kept through the highest; a remote registry's topic or a first start says nothing", () => {
  const lost = { ...kept, registry: "missing" as const };
  assert.equal(judgeLostTopics("d", lost, ran, policy).refusal?.code, "INTERNAL_TOPIC_LOST");
  assert.match(judgeLostTopics("d", lost, ran, policy).refusal!.message, /records in d\.pg\.public\.a, d\.pg\.public\.b reference schema ids 3, 4, 9/);
  const accepted = judgeLostTopics("d", lost, ran, { ...policy, accept: true });
  assert.equal(accepted.refusal, null);
  assert.equal(accepted.reserveIdsThrough, 9 + RESERVED_ID_MARGIN, "older records may name a higher id than the sample: a registered-again schema takes its old id");
  assert.deepEqual(accepted.warnings.map((w) => w.topic), ["d.sluice.schemas"]);
  assert.deepEqual(judgeLostTopics("d", lost, ran, { ...policy, builtinRegistry: false }), { refusal: null, warnings: [], reserveIdsThrough: null });
  assert.deepEqual(judgeLostTopics("d", { registry: "missing", checkpoints: "missing", schemaHistoryMissing: true, topicIdsMissing: true, subjectKeys: "missing" }, firstStart, { ...policy, mysqlSources: ["my"] }), { refusal: null, warnings: [], reserveIdsThrough: null });
});

test("accepted, a registry's recorded highest id above the sampled ones keeps new ids above it", () => {
  const accepted = judgeLostTopics("d", { ...kept, registry: "missing" }, { ...ran, highestSchemaId: 20_000 }, { ...policy, accept: true });
  assert.equal(accepted.reserveIdsThrough, 20_000 + RESERVED_ID_MARGIN);
  assert.equal(judgeLostTopics("d", { ...kept, registry: "missing" }, { ...ran, highestSchemaId: 2 }, { ...policy, accept: true }).reserveIdsThrough, 9 + RESERVED_ID_MARGIN);
});

test("the subjects' keys gone or empty where records hold sealed personal values are refused; a first start, no sealed value, or no personal_data says nothing", () => {
  const personal = { ...policy, personalData: true };
  const sealed = { ...ran, sealed: ["d.pg.public.a", "d.sluice.halted.pg"] };
  for (const subjectKeys of ["missing", "empty"] as const) {
    const refusal = judgeLostTopics("d", { ...kept, subjectKeys }, sealed, personal).refusal!;
    assert.equal(refusal.code, "INTERNAL_TOPIC_LOST");
    assert.match(refusal.message, new RegExp(`d\\.sluice\\.subject-keys \\(the data subjects' keys of the personal columns\\) is ${subjectKeys === "missing" ? "gone" : "empty"}, while records in d\\.pg\\.public\\.a, d\\.sluice\\.halted\\.pg hold personal values`));
    assert.match(refusal.message, /cannot be decrypted/);
    assert.doesNotMatch(refusal.message, /schema ids kept above/, "the registry is not lost");
  }
  const accepted = judgeLostTopics("d", { ...kept, subjectKeys: "missing" }, sealed, { ...personal, accept: true });
  assert.equal(accepted.refusal, null);
  assert.deepEqual(accepted.warnings.map((w) => w.topic), ["d.sluice.subject-keys"]);
  assert.equal(accepted.reserveIdsThrough, null);
  assert.equal(judgeLostTopics("d", { ...kept, subjectKeys: "missing" }, ran, personal).refusal, null, "no sealed value: personal columns never captured (just configured, or an upgrade)");
  assert.equal(judgeLostTopics("d", { ...kept, subjectKeys: "missing" }, firstStart, personal).refusal, null, "a first start");
  assert.equal(judgeLostTopics("d", { ...kept, subjectKeys: "missing" }, sealed, policy).refusal, null, "without personal_data nothing reads or makes keys");
});

test("sealed personal values are told in Avro and JSON payloads", () => {
  const avro = Buffer.concat([Buffer.from([0, 0, 0, 0, 7, 2, 0x50]), Buffer.from("sluice-enc:v2:MTA0Mg.AAAA"), Buffer.from([0])]);
  assert.equal(holdsSealedValue(avro), true);
  assert.equal(holdsSealedValue(new Uint8Array(avro.buffer, avro.byteOffset + 1, avro.length - 1)), true, "a view into a larger buffer");
  assert.equal(holdsSealedValue(Buffer.from('{"after":{"email":"sluice-enc:v1:MQ.abc"}}')), true);
  assert.equal(holdsSealedValue(Buffer.from('{"after":{"email":"sluice-enc:ref:email"}}')), false, "a reference alone names no value");
  assert.equal(holdsSealedValue(null), false);
});

test("an empty checkpoints topic where records were written is refused as a missing one", () => {
  const refusal = judgeLostTopics("d", { ...kept, checkpoints: "empty" }, ran, policy).refusal!;
  assert.match(refusal.message, /d\.sluice\.checkpoints \(the sources' checkpoints.*\) is empty/);
  assert.equal(judgeLostTopics("d", { ...kept, checkpoints: "empty" }, firstStart, policy).refusal, null, "topics created ahead of a first start");
});

test("the deployment's topics are those its sources' naming gives, not every topic under its name", () => {
  const sources = [{ name: "pg", transactionTopic: true, outboxTopic: "{deployment}.outbox.{aggregate_type}" }, { name: "my", transactionTopic: false, outboxTopic: null }];
  const mine = (topic: string) => isDeploymentSourceTopic("prod", { sources }, topic);
  assert.equal(mine("prod.public.orders"), false, "Debezium's topic.prefix=prod");
  assert.equal(mine("prod.pg.public.orders"), true);
  assert.equal(mine("prod.pg.transaction"), true);
  assert.equal(mine("prod.my.transaction"), false, "no transaction_metadata");
  assert.equal(mine("prod.outbox.Order"), true);
  assert.equal(mine("prodx.outbox.Order"), false);
  assert.equal(mine("prod.my.shop.items"), true);
  assert.equal(isDeploymentDataTopic("prod", { sources }, "prod.pg.transaction"), false);
  assert.equal(isDeploymentDataTopic("prod", { sources }, "prod.pg.public.orders"), true);
  assert.equal(isDeploymentSourceTopic("prod", { sources: [{ name: "pg", transactionTopic: false, outboxTopic: "{source}-events.{aggregate_type}.v1" }] }, "pg-events.Order.v1"), true);
});

test("many topics are named up to five and counted", () => {
  const framed = new Map(Array.from({ length: 8 }, (_, i) => [`d.pg.public.t${i}`, [i + 1]] as const));
  const refusal = judgeLostTopics("d", { ...kept, checkpoints: "missing" }, { framed, dataTopics: [...framed.keys()], checkpointed: [], sealed: [], highestSchemaId: null }, policy).refusal!;
  assert.match(refusal.message, /d\.pg\.public\.t4 and 3 more hold records/);
});

test("the schema id of a Confluent-framed payload", () => {
  assert.equal(framedSchemaId(Uint8Array.from([0, 0, 0, 1, 2, 9])), 258);
  assert.equal(framedSchemaId(Uint8Array.from([0, 255, 255, 255, 255])), 4294967295);
  assert.equal(framedSchemaId(Uint8Array.from([123, 34, 0, 0, 0])), null, "JSON");
  assert.equal(framedSchemaId(null), null);
});

test("the look for sealed values reads a sink's custom dead-letter topic too, not only those named <deployment>.dlq.*", () => {
  const config = configSchema.parse({
    name: "shop",
    personal_data: { master_key_file: "/nonexistent/master.key" },
    sources: [{ name: "pg", kind: "postgres", host: "h", database: "d", user: "u", tables: ["public.*"], governance: { tables: { "public.people": { personal: { subject: "id", columns: ["email"] } } } } }],
    sinks: [
      { name: "wh", kind: "duckdb", path: "/tmp/x.duckdb", dead_letter_topic: "audit-rejects" },
      { name: "lake", kind: "duckdb", path: "/tmp/y.duckdb" },
    ],
  });
  const policy = lostTopicPolicyOf(config);
  assert.deepEqual(policy.personalTopics, ["shop.pg.public.people", "shop.sluice.halted.pg", "shop.dlq.pg", "audit-rejects", "shop.dlq.lake"]);
  const existing = ["audit-rejects", "other-team.rejects", "shop.dlq.lake", "shop.dlq.pg", "shop.pg.public.orders", "shop.pg.public.people"];
  assert.deepEqual(sealedLookTopics("shop", policy, ["shop.pg.public.orders", "shop.pg.public.people"], existing), [
    "shop.pg.public.people",
    "audit-rejects",
    "shop.dlq.lake",
    "shop.dlq.pg",
    "shop.pg.public.orders",
  ]);
});
