// What the sweep before the integration run takes for a killed test run's debris, and what it leaves.
import assert from "node:assert/strict";
import { test } from "node:test";
import { DEBRIS_AGE_MS, debrisDeployments, debrisSlots } from "./sweep.ts";

const now = Date.parse("2026-12-07T21:00:00Z");
const old = now - DEBRIS_AGE_MS - 1;
const recent = now - 60_000;

test("a test deployment is debris when every one of its topics was untouched for the age; names of no test, and deployments in use, are kept", () => {
  const topics = [
    // randomName("dep") (10 hex): a killed rebuild-history run.
    { topic: "dep_106406159c.sluice.checkpoints", lastWriteMs: old },
    { topic: "dep_106406159c.src_cfdf65ea21.e2e_kafka_157f54ce4e.orders", lastWriteMs: old },
    // testDeployment (8 hex) with the suffixes subject-keys-kafka adds.
    { topic: "keys_fcece36a.sluice.subject-keys", lastWriteMs: old },
    { topic: "keys_fcece36a-cache.sluice.checkpoints", lastWriteMs: old },
    { topic: "keys_fcece36a_big.sluice.checkpoints", lastWriteMs: old },
    // A test running now: one topic written a minute ago keeps the whole deployment.
    { topic: "dep_f6669fb17f.sluice.checkpoints", lastWriteMs: old },
    { topic: "dep_f6669fb17f.sluice.instances", lastWriteMs: recent },
    // No test's names: a hand-made deployment, the broker's own topics, a topic with no deployment part.
    { topic: "probe21b.sluice.checkpoints", lastWriteMs: old },
    { topic: "shop.pg.public.orders", lastWriteMs: old },
    { topic: "__consumer_offsets", lastWriteMs: old },
    { topic: "dep_106406159c", lastWriteMs: old },
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
