/**
 * A file of schema version 2, written by the Sluice before indexed_offset (testdata/make-v2-log.ts:
 * keys partly merged into latest_keys, partly left in pending_keys by a writer that stopped without
 * closing), opened by this one: read-only it is left as it is; the first writable open moves it to
 * version 3, and compaction then leaves exactly what the old Sluice's compaction left.
 */
import assert from "node:assert/strict";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, test } from "node:test";
import { gunzipSync } from "node:zlib";
import { createLogger } from "../../runtime/logger.ts";
import { openTopicLogForCommand } from "../topics/open.ts";
import type { TopicsConfig } from "../../config/schema.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";
import { COMPACTED_AT, dump } from "./testdata/make-v2-log.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-embedded-upgrade-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const expected = JSON.parse(readFileSync(join(import.meta.dirname, "testdata/v2-log.expected.json"), "utf8")) as ReturnType<typeof dump>;

function fixture(name: string): string {
  const path = join(dir, name);
  writeFileSync(path, gunzipSync(readFileSync(join(import.meta.dirname, "testdata/v2-log.db.gz"))));
  return path;
}

function inspect(path: string): { version: number; pendingTable: boolean; partitions: { next_offset: number; indexed_offset: number | null }[] } {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    const pendingTable = db.prepare("SELECT 1 FROM sqlite_master WHERE name = 'pending_keys'").get() !== undefined;
    const hasColumn = (db.prepare("SELECT name FROM pragma_table_info('partitions')").all() as { name: string }[]).some((c) => c.name === "indexed_offset");
    const partitions = db.prepare(`SELECT next_offset, ${hasColumn ? "indexed_offset" : "NULL AS indexed_offset"} FROM partitions ORDER BY topic_id, partition`).all() as { next_offset: number; indexed_offset: number | null }[];
    return { version, pendingTable, partitions };
  } finally {
    db.close();
  }
}

test("a version 2 file opens read-only as it is", async () => {
  const path = fixture("read-only.db");
  const config = { kind: "embedded", path, partitions: 2, retention: { max_age: 0 } } as Extract<TopicsConfig, { kind: "embedded" }>;
  const command = await openTopicLogForCommand(config, "dep", logger, "read-only");
  try {
    assert.deepEqual(await command.topicNames(), ["dep.src.public.items", "dep.src.public.legacy"]);
    assert.deepEqual((await command.endOffsets("dep.src.public.legacy")).map((o) => o.offset), [7n]);
  } finally {
    await command.close();
  }
  assert.equal(inspect(path).version, 2);
  assert.equal(inspect(path).pendingTable, true);
});

test("the first writable open moves a version 2 file to 3 (pending keys merged, every partition indexed to its end), and compaction leaves what the old Sluice's left", async () => {
  const path = fixture("upgrade.db");
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0, clock: () => COMPACTED_AT, tombstoneRetentionMs: 86_400_000 });
  try {
    const after = inspect(path);
    assert.equal(after.version, 3);
    assert.equal(after.pendingTable, false);
    for (const p of after.partitions) assert.equal(p.indexed_offset, p.next_offset);
    for (let i = 0; i < 10; i++) log.runMaintenance();
    assert.deepEqual(dump(path), expected);
  } finally {
    await log.close();
  }
});

test("after the upgrade, records appended are indexed by compaction and supersede the upgraded ones", async () => {
  const path = fixture("upgrade-append.db");
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0, clock: () => COMPACTED_AT, tombstoneRetentionMs: 86_400_000 });
  try {
    const key = (k: string) => new TextEncoder().encode(k);
    // k0..k49 land on both partitions; w was written before the legacy topic's switch and after it.
    await log.produce([...Array.from({ length: 50 }, (_, i) => ({ topic: "dep.src.public.items", key: key(`k${i}`), value: key(`d${i}`), timestamp: COMPACTED_AT })), { topic: "dep.src.public.legacy", key: key("w"), value: key("w3"), timestamp: COMPACTED_AT }]);
    for (let i = 0; i < 10; i++) log.runMaintenance();
    const now = dump(path);
    const items = [...now["dep.src.public.items:0"]!, ...now["dep.src.public.items:1"]!];
    // The slow group (offset 100) has not read the old tombstones, but each was superseded by a newer value.
    assert.deepEqual(items.map(([k, v]) => `${k}=${v}`).sort(), Array.from({ length: 50 }, (_, i) => `k${i}=d${i}`).sort());
    assert.deepEqual(now["dep.src.public.legacy:0"]!.map(([k, v]) => `${k}=${v}`), ["y=y1", "z=z1", "x=x3", "w=w3"]);
  } finally {
    await log.close();
  }
});
