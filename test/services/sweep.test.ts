// What the sweep before the integration run takes for a killed test run's debris, and what it leaves: only what the
// ledger of test names says a test made, once that test's process is gone.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { clusterIdOf, DEBRIS_AGE_MS, debrisDeployments, debrisSlots, deleteTopicsThere, deploymentsLeft, dropSlot, parseMode, slotsLeft, sweepableNames } from "./sweep.ts";
import { creatorRuns, readTestNames, recordTestName, TestNames } from "./test-names.ts";

const now = Date.parse("2026-12-07T21:00:00Z");
const old = now - DEBRIS_AGE_MS - 1;
const recent = now - 60_000;
// What the ledger holds: randomName("dep") (10 hex), testDeployment("keys") (8 hex), randomName("src") (its slot is
// sluice_src_…), randomName("slot").
const ledger = new TestNames(["dep_106406159c", "keys_fcece36a", "dep_f6669fb17f", "src_725b3cc793", "src_a1b2c3d4e5", "slot_60f326cdbe", "src_4d8a9582cb", "src_97bec7ac8a", "src_72edd2c4b2"]);

test("a ledger deployment is debris when every one of its topics was untouched for the age; names not in the ledger are never taken, however they look", () => {
  const topics = [
    { topic: "dep_106406159c.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "dep_106406159c.src_cfdf65ea21.e2e_kafka_157f54ce4e.orders", lastWriteMs: old, createdMs: old },
    // With the suffixes subject-keys-kafka adds.
    { topic: "keys_fcece36a.sluice.subject-keys", lastWriteMs: old, createdMs: old },
    { topic: "keys_fcece36a-cache.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "keys_fcece36a_big.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    // A test running now: one topic written a minute ago keeps the whole deployment.
    { topic: "dep_f6669fb17f.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "dep_f6669fb17f.sluice.instances", lastWriteMs: recent, createdMs: old },
    // Other engineers' deployments that look like a test's (the first sweep deleted such live probes), a hand-made
    // one, the broker's own topics, a topic with no deployment part.
    { topic: "orders_20261207.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "my_app_deadbeef.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "probe_1a2b3c4d.pg.public.items", lastWriteMs: old, createdMs: old },
    { topic: "probe21b.sluice.checkpoints", lastWriteMs: old, createdMs: old },
    { topic: "__consumer_offsets", lastWriteMs: old, createdMs: old },
    { topic: "dep_106406159c", lastWriteMs: old, createdMs: old },
  ];
  assert.deepEqual(Object.fromEntries(debrisDeployments(topics, ledger, now)), {
    dep_106406159c: ["dep_106406159c.sluice.checkpoints", "dep_106406159c.src_cfdf65ea21.e2e_kafka_157f54ce4e.orders"],
    keys_fcece36a: ["keys_fcece36a.sluice.subject-keys"],
    "keys_fcece36a-cache": ["keys_fcece36a-cache.sluice.checkpoints"],
    keys_fcece36a_big: ["keys_fcece36a_big.sluice.checkpoints"],
  });
  assert.deepEqual([...debrisDeployments(topics, ledger, now, 3 * DEBRIS_AGE_MS).keys()], [], "younger than the age asked");
  assert.deepEqual([...debrisDeployments(topics, new TestNames([]), now).keys()], [], "an empty ledger takes nothing");
});

test("a ledger slot is debris when inactive and its position was not saved for the age; active, recent, unknown or unrecorded slots are kept", () => {
  const slots = [
    { name: "sluice_src_725b3cc793", active: false, savedMs: old },
    { name: "sluice_src_a1b2c3d4e5_o", active: false, savedMs: old },
    { name: "slot_60f326cdbe", active: false, savedMs: old },
    { name: "sluice_src_4d8a9582cb", active: true, savedMs: old },
    { name: "sluice_src_97bec7ac8a", active: false, savedMs: recent },
    { name: "sluice_src_72edd2c4b2", active: false, savedMs: null },
    // Match the old name patterns, but no test recorded them.
    { name: "slot_2026120712", active: false, savedMs: old },
    { name: "sluice_src_0123456789", active: false, savedMs: old },
    { name: "probeq_slot", active: false, savedMs: old },
  ];
  assert.deepEqual(debrisSlots(slots, ledger, now), ["slot_60f326cdbe", "sluice_src_725b3cc793", "sluice_src_a1b2c3d4e5_o"]);
});

test("only ledger names whose process is gone and that were recorded the age ago may be swept", () => {
  const entries = [
    { name: "dep_106406159c", pid: 1, startTicks: "1", recordedMs: old },
    { name: "dep_f6669fb17f", pid: 2, startTicks: "2", recordedMs: old },
    { name: "keys_fcece36a", pid: 3, startTicks: "3", recordedMs: recent },
  ];
  const names = sweepableNames(entries, now, (e) => e.pid === 2);
  assert.equal(names.ownerOf("dep_106406159c"), "dep_106406159c");
  assert.equal(names.ownerOf("dep_f6669fb17f"), null, "its process still runs");
  assert.equal(names.ownerOf("keys_fcece36a"), null, "recorded within the age");
});

test("randomName's record names this process, alive; a pid that ended or was reused is not", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-test-names-"));
  try {
    recordTestName("dep_0123456789", dir);
    recordTestName("not a name/../x", dir);
    assert.deepEqual(readdirSync(dir), ["dep_0123456789"]);
    const [entry] = readTestNames(dir);
    assert.equal(entry?.pid, process.pid);
    assert.ok(creatorRuns(entry!));
    assert.equal(creatorRuns({ ...entry!, startTicks: `${entry!.startTicks}1` }), false, "the same pid, started at another time");
    const ended = spawnSync(process.execPath, ["-e", "process.stdout.write(String(process.pid))"], { encoding: "utf8" });
    assert.equal(creatorRuns({ pid: Number(ended.stdout), startTicks: entry!.startTicks }), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("after the run: the ledger's deployments with a topic created since it started, and its inactive slots saved since then, are listed", () => {
  const start = now - 1_800_000;
  const topics = [
    { topic: "dep_106406159c.sluice.checkpoints", lastWriteMs: recent, createdMs: start + 1 },
    { topic: "dep_106406159c.src_cfdf65ea21.e2e_kafka_157f54ce4e.orders", lastWriteMs: recent, createdMs: start + 2 },
    // Created before the run, written during it: another checkout's test, or the sweep's business.
    { topic: "keys_fcece36a.sluice.checkpoints", lastWriteMs: recent, createdMs: start - 1 },
    // A topic created during the run in a deployment made before it: the deployment is listed with all its topics.
    { topic: "dep_f6669fb17f.sluice.checkpoints", lastWriteMs: recent, createdMs: old },
    { topic: "dep_f6669fb17f.pg.public.items", lastWriteMs: recent, createdMs: start },
    { topic: "orders_20261207.sluice.checkpoints", lastWriteMs: recent, createdMs: start + 1 },
  ];
  assert.deepEqual([...deploymentsLeft(topics, ledger, start)], [["dep_106406159c", 2], ["dep_f6669fb17f", 2]]);
  const slots = [
    { name: "sluice_src_725b3cc793", active: false, savedMs: start + 1 },
    { name: "sluice_src_4d8a9582cb", active: true, savedMs: start + 1 },
    { name: "sluice_src_97bec7ac8a", active: false, savedMs: start - 1 },
    { name: "slot_2026120712", active: false, savedMs: start + 1 },
  ];
  assert.deepEqual(slotsLeft(slots, ledger, start), ["sluice_src_725b3cc793"]);
});

test("a slot taken up again before its drop keeps its publication", async () => {
  const queries: string[] = [];
  const client = (slotDropped: boolean) => ({
    query: async (text: string) => {
      queries.push(text);
      return { rowCount: text.startsWith("SELECT pg_drop_replication_slot") ? (slotDropped ? 1 : 0) : null };
    },
  });
  assert.equal(await dropSlot(client(false), "sluice_src_725b3cc793"), false);
  assert.deepEqual(queries.filter((q) => q.startsWith("DROP PUBLICATION")), [], "the active slot's publication is kept");
  assert.equal(await dropSlot(client(true), "sluice_src_725b3cc793"), true);
  assert.deepEqual(queries.filter((q) => q.startsWith("DROP PUBLICATION")), ['DROP PUBLICATION IF EXISTS "sluice_src_725b3cc793"']);
});

test("two sweeps at once: topics another deleted meanwhile are no error, the rest are deleted", async () => {
  const unknown = Object.assign(new Error("retries exceeded"), { cause: Object.assign(new Error("This server does not host this topic-partition"), { type: "UNKNOWN_TOPIC_OR_PARTITION" }) });
  const there = new Set(["a.x", "a.y", "b.x"]);
  let listings = 0;
  const admin = {
    // The other sweep deletes a.y right after our listing.
    listTopics: async () => {
      const listed = [...there];
      if (++listings === 1) there.delete("a.y");
      return listed;
    },
    // As Kafka does: deletes the topics it has, then answers the batch with the error of one it has not.
    deleteTopics: async ({ topics }: { topics: string[] }) => {
      const missing = topics.filter((t) => !there.has(t));
      for (const t of topics) there.delete(t);
      if (missing.length > 0) throw unknown;
    },
  };
  await deleteTopicsThere(admin, ["a.x", "a.y", "b.x"]);
  assert.deepEqual([...there], []);
  const refused = { listTopics: async () => ["c.x"], deleteTopics: async () => Promise.reject(Object.assign(new Error("denied"), { type: "TOPIC_AUTHORIZATION_FAILED" })) };
  await assert.rejects(deleteTopicsThere(refused, ["c.x"]), /denied/, "other errors still fail the sweep");
});

test("the broker's cluster id is read from its data directory's meta.properties", () => {
  assert.equal(clusterIdOf("#\n#Mon Dec 07 04:59:35 UTC 2026\nnode.id=1\nversion=1\ncluster.id=y6gkB1Re5bJwUJZEspriBw\n"), "y6gkB1Re5bJwUJZEspriBw");
  assert.equal(clusterIdOf("node.id=1\n"), null);
});

test("--left-since takes epoch milliseconds and says so when given anything else", () => {
  assert.deepEqual(parseMode(["--left-since", "1796677200000"]), { kind: "left", sinceMs: 1796677200000 });
  assert.deepEqual(parseMode(["--dry-run"]), { kind: "sweep", dryRun: true });
  for (const bad of [["--left-since", "yesterday"], ["--left-since"], ["--left-since", "12s"]]) {
    const mode = parseMode(bad);
    assert.ok("error" in mode && /--left-since takes a time in milliseconds/.test(mode.error), JSON.stringify(mode));
  }
  const run = spawnSync(process.execPath, [fileURLToPath(new URL("./sweep.ts", import.meta.url)), "--left-since", "yesterday"], { encoding: "utf8" });
  assert.equal(run.status, 2);
  assert.match(run.stderr, /--left-since takes a time in milliseconds since the epoch \(date \+%s%3N\), not "yesterday"/);
  assert.equal(run.stdout, "", "nothing listed");
});
