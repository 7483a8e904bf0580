// What the sweep before the integration run takes for a killed test run's debris, and what it leaves.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEBRIS_AGE_MS, debrisDeployments, debrisSlots, deploymentsLeft, slotsLeft } from "./sweep.ts";

const now = Date.parse("2026-12-07T21:00:00Z");
const old = now - DEBRIS_AGE_MS - 1;
const recent = now - 60_000;

test("a test deployment is debris when every one of its topics was untouched for the age; names of no test, and deployments in use, are kept", () => {
  const topics = [
    // randomName("dep") (10 hex): a killed rebuild-history run.
    { topic: "dep_106406159c.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "dep_106406159c.src_cfdf65ea21.e2e_kafka_157f54ce4e.orders", lastWriteMs: old, createdMs: old },
    // testDeployment (8 hex) with the suffixes subject-keys-kafka adds.
    { topic: "keys_fcece36a.sluice.subject-keys", lastWriteMs: old, createdMs: old },
    { topic: "keys_fcece36a-cache.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "keys_fcece36a_big.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    // A test running now: one topic written a minute ago keeps the whole deployment.
    { topic: "dep_f6669fb17f.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "dep_f6669fb17f.sluice.instances", lastWriteMs: recent, createdMs: old },
    // No test's names: a hand-made deployment, the broker's own topics, a topic with no deployment part.
    { topic: "probe21b.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "shop.pg.public.orders", lastWriteMs: old, createdMs: old },
    { topic: "__consumer_offsets", lastWriteMs: old, createdMs: old },
    { topic: "dep_106406159c", lastWriteMs: old, createdMs: old },
  ];
  assert.deepEqual(Object.fromEntries(debrisDeployments(topics, now)), {
    dep_106406159c: ["dep_106406159c.sluice.checkpoints", "dep_106406159c.src_cfdf65ea21.e2e_kafka_157f54ce4e.orders"],
    keys_fcece36a: ["keys_fcece36a.sluice.subject-keys"],
    "keys_fcece36a-cache": ["keys_fcece36a-cache.sluice.checkpoints"],
    keys_fcece36a_big: ["keys_fcece36a_big.sluice.checkpoints"],
  });
  assert.deepEqual([...debrisDeployments(topics, now, 3 * DEBRIS_AGE_MS).keys()], [], "younger than the age asked");
});

test("a test slot is debris when inactive and its position was not saved for the age; active, recent, unknown or other slots are kept", () => {
  const slots = [
    { name: "sluice_src_725b3cc793", active: false, savedMs: old },
    { name: "sluice_src_a1b2c3d4e5_o", active: false, savedMs: old },
    { name: "slot_60f326cdbe", active: false, savedMs: old },
    { name: "sluice_src_4d8a9582cb", active: true, savedMs: old },
    { name: "sluice_src_97bec7ac8a", active: false, savedMs: recent },
    { name: "sluice_src_72edd2c4b2", active: false, savedMs: null },
    { name: "probeq_slot", active: false, savedMs: old },
    { name: "sluice_pg", active: false, savedMs: old },
  ];
  assert.deepEqual(debrisSlots(slots, now), ["slot_60f326cdbe", "sluice_src_725b3cc793", "sluice_src_a1b2c3d4e5_o"]);
});

test("after the run: the test deployments with a topic created since it started, and the inactive test slots saved since then, are listed", () => {
  const start = now - 1_800_000;
  const topics = [
    { topic: "dep_106406159c.sluice.checkpoints", lastWriteMs: recent, createdMs: start + 1 },
    { topic: "dep_106406159c.src_cfdf65ea21.e2e_kafka_157f54ce4e.orders", lastWriteMs: recent, createdMs: start + 2 },
    // Created before the run, written during it: another checkout's test, or the sweep's business.
    { topic: "stale_31c3837f.sluice.checkpoints", lastWriteMs: recent, createdMs: start - 1 },
    // A topic created during the run in a deployment made before it: the deployment is listed with all its topics.
    { topic: "ident_kafka_0bf6e860.sluice.checkpoints", lastWriteMs: recent, createdMs: old },
    { topic: "ident_kafka_0bf6e860.pg.public.items", lastWriteMs: recent, createdMs: start },
    { topic: "probe21b.sluice.checkpoints", lastWriteMs: recent, createdMs: start + 1 },
  ];
  assert.deepEqual([...deploymentsLeft(topics, start)], [["dep_106406159c", 2], ["ident_kafka_0bf6e860", 2]]);
  const slots = [
    { name: "sluice_src_725b3cc793", active: false, savedMs: start + 1 },
    { name: "sluice_src_4d8a9582cb", active: true, savedMs: start + 1 },
    { name: "sluice_src_97bec7ac8a", active: false, savedMs: start - 1 },
    { name: "probeq_slot", active: false, savedMs: start + 1 },
  ];
  assert.deepEqual(slotsLeft(slots, start), ["sluice_src_725b3cc793"]);
});
