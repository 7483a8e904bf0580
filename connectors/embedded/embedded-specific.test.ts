/** Behaviour only the embedded log has: leases, compaction, reopening, disk full, a file system turned read-only. */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import type { ProducedRecord } from "../topics/contract.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";
import { mountExt4, mountTmpfs } from "../../test/mounts.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-embedded-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const rec = (topic: string, key: string, value: string | null, timestamp = 1): ProducedRecord => ({ topic, key: encoder.encode(key), value: value === null ? null : encoder.encode(value), timestamp });

test("a sink lease excludes other owners until it expires; the lost owner cannot renew", async () => {
  let now = 1_000_000;
  const log = EmbeddedTopicLog.open({ path: join(dir, "lease.db"), logger, maintenanceIntervalMs: 0, clock: () => now });
  assert.deepEqual(await log.groupActivity("g"), { active: false, members: [] });
  assert.equal(await log.acquireLease("g", "A", 10_000), true);
  assert.equal(await log.acquireLease("g", "B", 10_000), false);
  assert.deepEqual(await log.groupActivity("g"), { active: true, members: ["A"] });
  now += 5_000;
  assert.equal(await log.renewLease("g", "A", 10_000), true);
  now += 9_000;
  assert.equal(await log.acquireLease("g", "B", 10_000), false, "renewed lease still held");
  now += 2_000;
  assert.deepEqual(await log.groupActivity("g"), { active: false, members: [] });
  assert.equal(await log.acquireLease("g", "B", 10_000), true, "expired lease taken over");
  assert.equal(await log.renewLease("g", "A", 10_000), false, "A lost it");
  await log.releaseLease("g", "A");
  assert.equal((await log.groupActivity("g")).active, true, "releasing someone else's lease does nothing");
  await log.releaseLease("g", "B");
  assert.equal((await log.groupActivity("g")).active, false);
  await log.close();
});

test("compaction keeps the latest record per key and drops old tombstones", async () => {
  let now = 10_000_000;
  const log = EmbeddedTopicLog.open({ path: join(dir, "compact.db"), logger, maintenanceIntervalMs: 0, clock: () => now, tombstoneRetentionMs: 1000 });
  await log.createTopic({ name: "c", partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
  await assert.rejects(log.produce([{ topic: "c", key: null, value: encoder.encode("x"), timestamp: 1 }]), { code: "RECORD_KEY_MISSING" });
  await log.produce([rec("c", "a", "a1", now), rec("c", "b", "b1", now), rec("c", "a", "a2", now)]);
  await log.produce([rec("c", "b", null, now), rec("c", "c", "c1", now)]);
  log.runMaintenance();
  const read = async () => {
    const consumer = await log.consumer(`read-${Math.random()}`, ["c"]);
    const records = await readToEnd(log, consumer, ["c"]);
    await consumer.close();
    return records.map((r) => [decoder.decode(r.key!), r.value === null ? null : decoder.decode(r.value), r.offset]);
  };
  assert.deepEqual(await read(), [["a", "a2", 2n], ["b", null, 3n], ["c", "c1", 4n]]);
  now += 5_000;
  log.runMaintenance();
  log.runMaintenance();
  assert.deepEqual(await read(), [["a", "a2", 2n], ["c", "c1", 4n]]);
  assert.deepEqual((await log.endOffsets("c"))[0]!.offset, 5n, "offsets are never reused");
  await log.close();
});

test("records, offsets and checkpoints survive closing and reopening", async () => {
  const path = join(dir, "reopen.db");
  const first = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  await first.createTopic({ name: "t", partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  await first.produce([rec("t", "a", "1"), rec("t", "b", "2")], { source: "s", position: { commit: 7n, change: 8n } });
  await first.setCommittedOffsets("g", [{ topic: "t", partition: 0, offset: 1n }]);
  await first.close();
  const second = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  assert.deepEqual(await second.readCheckpoint("s"), { source: "s", position: { commit: 7n, change: 8n } });
  assert.deepEqual(await second.committedOffsets("g"), [{ topic: "t", partition: 0, offset: 1n }]);
  assert.equal((await second.endOffsets("t")).reduce((n, o) => n + o.offset, 0n), 2n);
  await second.close();
});

test("a large produce call is split into bounded rows and read back whole, in order", async () => {
  const log = EmbeddedTopicLog.open({ path: join(dir, "split.db"), logger, maintenanceIntervalMs: 0, maxRowBytes: 4096 });
  await log.createTopic({ name: "s", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  await log.produce(Array.from({ length: 100 }, (_, i) => rec("s", "k", `${i}`.padStart(300, "0"))));
  const consumer = await log.consumer("g", ["s"]);
  const small = await consumer.poll({ maxRecords: 1000, maxBytes: 1000, maxWaitMs: 0 });
  assert.equal(small.length, 3, "maxBytes bounds a poll (323 bytes per record)");
  const rest = await readToEnd(log, consumer, ["s"]);
  assert.deepEqual([...small, ...rest].map((r) => Number(decoder.decode(r.value!))), Array.from({ length: 100 }, (_, i) => i));
  await log.close();
});

// Mounted inside the test, not as the file loads: a run that filters this test out would leave the mount behind.
test("disk full: produce rejects with TOPIC_LOG_DISK_FULL, nothing of the call is stored, the checkpoint does not advance", async (t) => {
  const tiny = mountTmpfs("3m");
  if (typeof tiny === "string") return t.skip(tiny);
  const { mount } = tiny;
  try {
    const path = join(mount, "sluice.db");
    writeFileSync(join(mount, "ballast"), Buffer.alloc(1024 * 1024));
    const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
    await log.createTopic({ name: "t", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    const value = "v".repeat(1024);
    let acknowledged = 0;
    let failure: (Error & { code?: string; retriable?: boolean }) | undefined;
    for (let batch = 0; batch < 1000 && !failure; batch++) {
      try {
        await log.produce(Array.from({ length: 50 }, (_, i) => rec("t", `k${i}`, value)), { source: "s", position: { commit: BigInt(batch), change: BigInt(batch) } });
        acknowledged = batch + 1;
      } catch (error) {
        failure = error as Error & { code?: string };
      }
    }
    assert.ok(failure, "the filesystem filled up");
    assert.equal(failure.code, "TOPIC_LOG_DISK_FULL");
    assert.equal(failure.retriable, true);
    assert.match(failure.message, /disk full during produce/);
    assert.deepEqual(await log.readCheckpoint("s"), { source: "s", position: { commit: BigInt(acknowledged - 1), change: BigInt(acknowledged - 1) } });
    assert.equal((await log.endOffsets("t"))[0]!.offset, BigInt(acknowledged * 50));
    await log.close();

    rmSync(join(mount, "ballast"));
    const reopened = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
    assert.deepEqual(await reopened.readCheckpoint("s"), { source: "s", position: { commit: BigInt(acknowledged - 1), change: BigInt(acknowledged - 1) } });
    const consumer = await reopened.consumer("g", ["t"]);
    assert.equal((await readToEnd(reopened, consumer, ["t"])).length, acknowledged * 50, "every acknowledged record, no more");
    await reopened.produce([rec("t", "k", "after")], { source: "s", position: { commit: 10_000n, change: 10_000n } });
    assert.equal((await reopened.readCheckpoint("s"))!.position.commit, 10_000n, "space freed: produce works again");
    await reopened.close();
  } finally {
    tiny.unmount();
  }
});

test("a topic deleted and created again gets another identity, even with the same row id in the same millisecond; the file's id is in every topic's", async () => {
  const log = EmbeddedTopicLog.open({ path: join(dir, "identity.db"), logger, maintenanceIntervalMs: 0, clock: () => 1_000 });
  const spec = { name: "t.identity", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false };
  await log.createTopic(spec);
  const first = (await log.topicIds([spec.name])).get(spec.name);
  await log.deleteTopic(spec.name);
  await log.createTopic(spec);
  const second = (await log.topicIds([spec.name])).get(spec.name);
  assert.ok(first?.startsWith(`${log.logId}/`) && second?.startsWith(`${log.logId}/`), `${first} and ${second} carry the file's id ${log.logId}`);
  assert.notEqual(second, first);
  await log.close();
  const reopened = EmbeddedTopicLog.open({ path: join(dir, "identity.db"), logger, maintenanceIntervalMs: 0 });
  assert.equal((await reopened.topicIds([spec.name])).get(spec.name), second, "stable across opens");
  await reopened.close();
});

/**
 * Another process on the log at `path` (made first if new) taking a 5 min sink lease on group g as `owner`, staying
 * until it is killed. Resolves once it holds the lease; `kill` kills it with SIGKILL and waits for its exit.
 */
async function leaseHolder(path: string, owner: string): Promise<{ readonly kill: () => Promise<void> }> {
  await EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 }).close();
  const script = `
    const { EmbeddedTopicLog } = await import(${JSON.stringify(new URL("./embedded-log.ts", import.meta.url).href)});
    const { createLogger } = await import(${JSON.stringify(new URL("../../runtime/logger.ts", import.meta.url).href)});
    const log = EmbeddedTopicLog.open({ path: ${JSON.stringify(path)}, logger: createLogger("silent"), maintenanceIntervalMs: 0 });
    console.log(await log.acquireLease("g", ${JSON.stringify(owner)}, 300_000));
    setInterval(() => undefined, 1_000);
  `;
  const holder = spawn(process.execPath, ["--input-type=module", "-e", script], { stdio: ["ignore", "pipe", "inherit"] });
  const exited = once(holder, "exit");
  const kill = async () => {
    if (holder.exitCode === null && holder.signalCode === null) holder.kill("SIGKILL");
    await exited;
  };
  try {
    const [line] = (await once(holder.stdout, "data")) as [Buffer];
    assert.equal(line.toString().trim(), "true", "the other process took the lease");
  } catch (error) {
    await kill();
    throw error;
  }
  return { kill };
}

test("a sink lease another live process holds under the same name is its own: not taken, renewed or released (two containers with a fixed hostname, both PID 1)", async () => {
  const path = join(dir, "lease-same-name.db");
  const holder = await leaseHolder(path, "app:1");
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  try {
    assert.equal(await log.acquireLease("g", "app:1", 10_000), false, "the live holder of the same name keeps it");
    assert.equal(await log.renewLease("g", "app:1", 10_000), false, "nor is it renewed as this process's");
    await log.releaseLease("g", "app:1");
    assert.deepEqual(await log.groupActivity("g"), { active: true, members: ["app:1"] }, "nor released");
    await holder.kill();
    assert.equal(await log.acquireLease("g", "app:1", 10_000), true, "once it is killed, the lease is taken");
    assert.equal(await log.renewLease("g", "app:1", 10_000), true);
    assert.equal(await log.acquireLease("g", "app:1", 10_000), true, "and taken again by its holder");
    await log.releaseLease("g", "app:1");
    assert.equal((await log.groupActivity("g")).active, false);
  } finally {
    await holder.kill();
    await log.close();
  }
});

test("a sink lease a killed process of this machine left is taken at once; one a live process holds is not", async () => {
  const path = join(dir, "lease-killed.db");
  const holder = await leaseHolder(path, "killed");
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  try {
    assert.equal(await log.acquireLease("g", "restarted", 10_000), false, "the live holder keeps it");
    assert.deepEqual(await log.groupActivity("g"), { active: true, members: ["killed"] });
    await holder.kill();
    assert.equal(await log.acquireLease("g", "restarted", 10_000), true, "the killed holder's lease is taken");
    assert.deepEqual(await log.groupActivity("g"), { active: true, members: ["restarted"] });
    assert.equal(await log.renewLease("g", "restarted", 10_000), true);
    await log.releaseLease("g", "restarted");
    assert.equal((await log.groupActivity("g")).active, false);
  } finally {
    await holder.kill();
    await log.close();
  }
});

test("the file system turned read-only under the log (ext4 after a disk error): produce fails naming the read-only file system and what to do", async (t) => {
  const failing = mountExt4({ remountReadOnlyOnError: true });
  if (typeof failing === "string") return t.skip(failing);
  const { mount, trigger } = failing;
  let log: EmbeddedTopicLog | undefined;
  try {
    const path = join(mount, "sluice.db");
    log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
    await log.createTopic({ name: "t", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    await log.produce([rec("t", "k", "before")], { source: "s", position: { commit: 1n, change: 1n } });
    writeFileSync(trigger, "1");
    const failure = await log.produce([rec("t", "k", "v".repeat(64 * 1024))], { source: "s", position: { commit: 2n, change: 2n } }).then(
      () => undefined,
      (error: unknown) => error as Error & { code?: string },
    );
    assert.ok(failure, "the write on the read-only file system failed");
    assert.equal(failure.code, "TOPIC_LOG_FILE_SYSTEM_READ_ONLY", failure.message);
    assert.match(failure.message, new RegExp(`embedded topic log ${path}: its file system turned read-only during produce .*mount it writable again, then start Sluice again`));
  } finally {
    await log?.close().catch(() => undefined);
    failing.unmount();
  }
});
