/** Operator commands open the embedded log read-only beside a running daemon: they read everything and write nothing. */
import assert from "node:assert/strict";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, test } from "node:test";
import type { TopicsConfig } from "../../config/schema.ts";
import { createLogger } from "../../runtime/logger.ts";
import { SluiceError } from "../errors.ts";
import { openTopicLogForCommand } from "../topics/open.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-embedded-ro-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const configFor = (path: string) => ({ kind: "embedded", path, partitions: 2, retention: { max_age: 0 } }) as Extract<TopicsConfig, { kind: "embedded" }>;
const readOnlyRefusal = (error: unknown) => error instanceof SluiceError && error.code === "TOPIC_LOG_READ_ONLY" && /read-only/.test(error.message);
const record = (value: string) => ({ topic: "dep.src.public.items", key: Buffer.from(value), value: Buffer.from(value), timestamp: Date.now() });

test("a command opening a log that does not exist creates nothing and says so", async () => {
  const path = join(dir, "missing", "sluice.db");
  await assert.rejects(openTopicLogForCommand(configFor(path), "dep", logger, "read-only"), (error: unknown) => error instanceof SluiceError && error.code === "TOPIC_LOG_NOT_FOUND" && error.message.includes(path));
  assert.equal(existsSync(join(dir, "missing")), false);
});

test("read-only beside a running writer: reads everything, refuses every write, takes no lock or lease", async () => {
  const path = join(dir, "running.db");
  const daemon = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  await daemon.createTopic({ name: "dep.src.public.items", partitions: 2, retentionMs: null, retentionBytes: null, compacted: false });
  await daemon.produce([record("a"), record("b")], { source: "src", position: { commit: 10n, change: 10n } });
  await daemon.registryJournal.append({ mutations: [] });
  assert.equal(await daemon.acquireLease("dep.sink.local", "daemon", 60_000), true);

  const command = await openTopicLogForCommand(configFor(path), "dep", logger, "read-only");
  try {
    assert.deepEqual(await command.topicNames(), ["dep.src.public.items"]);
    assert.equal((await command.readCheckpoint("src"))?.position.commit, 10n);
    assert.equal((await command.registryJournal.loadAll()).length, 1);
    assert.deepEqual(await command.groupActivity("dep.sink.local"), { active: true, members: ["daemon"] });
    const ends = await command.endOffsets("dep.src.public.items");
    assert.equal(ends.reduce((sum, e) => sum + e.offset, 0n), 2n);

    await assert.rejects(command.produce([record("c")]), readOnlyRefusal);
    await assert.rejects(command.createTopic({ name: "dep.other", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false }), readOnlyRefusal);
    await assert.rejects(command.setCommittedOffsets("dep.sink.local", [{ topic: "dep.src.public.items", partition: 0, offset: 0n }]), readOnlyRefusal);
    await assert.rejects(command.acquireLease("dep.sink.local", "command", 60_000), readOnlyRefusal);
    await assert.rejects(command.registryJournal.append({ mutations: [] }), readOnlyRefusal);
    assert.throws(() => (command as EmbeddedTopicLog).runMaintenance(), readOnlyRefusal);

    // The writer is undisturbed: it still writes and still holds its lease.
    await daemon.produce([record("d")], { source: "src", position: { commit: 20n, change: 20n } });
    assert.equal(await daemon.renewLease("dep.sink.local", "daemon", 60_000), true);
    assert.equal((await command.readCheckpoint("src"))?.position.commit, 20n, "the command sees the writer's progress");
    assert.equal((await command.committedOffsets("dep.sink.local")).length, 0);
  } finally {
    await command.close();
    await daemon.close();
  }
});

test("a command that writes (replay --execute) may take a lease of its own, but runs no retention job", async () => {
  const path = join(dir, "write.db");
  const daemon = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  await daemon.createTopic({ name: "dep.src.public.items", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
  const command = await openTopicLogForCommand(configFor(path), "dep", logger, "write");
  try {
    assert.equal(await command.acquireLease("dep.sink.local", "replay", 60_000), true);
    await command.setCommittedOffsets("dep.sink.local", [{ topic: "dep.src.public.items", partition: 0, offset: 0n }]);
    await command.releaseLease("dep.sink.local", "replay");
    assert.equal(await daemon.acquireLease("dep.sink.local", "daemon", 60_000), true);
  } finally {
    await command.close();
    await daemon.close();
  }
});

test("a file of schema version 1 (before pending_keys and indexed_offset) opens read-only as it is, and a writable open moves it to version 3, which a Sluice knowing only 1 or 2 refuses", async () => {
  const path = join(dir, "version1.db");
  const writer = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  await writer.createTopic({ name: "dep.src.public.items", partitions: 1, retentionMs: null, retentionBytes: null, compacted: true });
  await writer.produce([record("a")], { source: "src", position: { commit: 10n, change: 10n } });
  await writer.close();
  const userVersion = (file: string) => {
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      return (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    } finally {
      db.close();
    }
  };
  assert.equal(userVersion(path), 3);
  // As a Sluice from before the key list left it (version 2 is upgrade.test.ts's).
  const old = new DatabaseSync(path);
  old.exec("ALTER TABLE partitions DROP COLUMN indexed_offset; PRAGMA user_version = 1");
  old.close();

  const command = await openTopicLogForCommand(configFor(path), "dep", logger, "read-only");
  try {
    assert.deepEqual(await command.topicNames(), ["dep.src.public.items"]);
  } finally {
    await command.close();
  }
  assert.equal(userVersion(path), 1, "a read-only open changes nothing");

  const reopened = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0 });
  try {
    await reopened.produce([record("b")], { source: "src", position: { commit: 11n, change: 11n } });
    assert.deepEqual(await reopened.endOffsets("dep.src.public.items"), [{ topic: "dep.src.public.items", partition: 0, offset: 2n }]);
  } finally {
    await reopened.close();
  }
  assert.equal(userVersion(path), 3);
});
