/**
 * Writes v2-log.db.gz and v2-log.expected.json, the upgrade test's fixture (../upgrade.test.ts): an
 * embedded log file of schema version 2 as a Sluice before indexed_offset writes it, and what that
 * Sluice's own compaction leaves of it. Run with a checkout of 046010c (the last commit writing
 * version 2), from this directory's parent's checkout:
 *
 *   node connectors/embedded/testdata/make-v2-log.ts <checkout of 046010c>
 *
 * The file has two compacted partitions whose keys are partly merged into latest_keys (a close, a
 * compaction run) and partly left in pending_keys (the last writer stopped without closing, as a
 * killed daemon), tombstones a sink's group has and has not read, and a topic written uncompacted
 * before it was switched to compaction.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { gzipSync } from "node:zlib";
import type * as EmbeddedLogModule from "../embedded-log.ts";
import type * as LoggerModule from "../../../runtime/logger.ts";

export const WRITTEN_AT = 1_700_000_000_000;
export const COMPACTED_AT = WRITTEN_AT + 10 * 86_400_000;
const encoder = new TextEncoder();
const rec = (topic: string, key: string, value: string | null, timestamp = WRITTEN_AT) => ({ topic, key: encoder.encode(key), value: value === null ? null : encoder.encode(value), timestamp });

async function load(root: string) {
  const { EmbeddedTopicLog } = (await import(join(root, "connectors/embedded/embedded-log.ts"))) as typeof EmbeddedLogModule;
  const { createLogger } = (await import(join(root, "runtime/logger.ts"))) as typeof LoggerModule;
  return { EmbeddedTopicLog, logger: createLogger("silent") };
}

/** Child step: writes the file with the old Sluice and exits without closing it at the end. */
async function write(root: string, path: string): Promise<void> {
  const { EmbeddedTopicLog, logger } = await load(root);
  const items = { name: "dep.src.public.items", partitions: 2, retentionMs: null, retentionBytes: null, compacted: true };
  const legacy = { name: "dep.src.public.legacy", partitions: 1, retentionMs: null, retentionBytes: null, compacted: false };
  let log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0, clock: () => WRITTEN_AT });
  await log.createTopic(items);
  await log.createTopic(legacy);
  await log.produce(Array.from({ length: 300 }, (_, i) => rec(items.name, `k${i % 40}`, `a${i}`)));
  await log.produce([rec(legacy.name, "x", "x1"), rec(legacy.name, "x", "x2"), rec(legacy.name, "y", "y1"), rec(legacy.name, "z", "z1")]);
  await log.close(); // folds the pending keys
  log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0, clock: () => WRITTEN_AT });
  await log.createTopic({ ...legacy, compacted: true, acceptUncompacted: true });
  await log.produce([...Array.from({ length: 120 }, (_, i) => rec(items.name, `k${(i * 7) % 50}`, `b${i}`)), rec(items.name, "k3", null), rec(items.name, "k4", null), rec(legacy.name, "x", "x3"), rec(legacy.name, "w", "w1")]);
  log.runMaintenance(); // folds; nothing is old enough to go
  await log.setCommittedOffsets("dep.sink.slow", [{ topic: items.name, partition: 0, offset: 100n }, { topic: items.name, partition: 1, offset: 100n }]);
  await log.produce([...Array.from({ length: 90 }, (_, i) => rec(items.name, `k${(i * 3) % 45}`, `c${i}`)), rec(items.name, "k5", null), rec(legacy.name, "w", "w2")]);
  process.exit(0); // no close: these keys stay in pending_keys
}

/** Child step: compacts a copy with the old Sluice and prints every topic's records. */
async function compact(root: string, path: string): Promise<void> {
  const { EmbeddedTopicLog, logger } = await load(root);
  const log = EmbeddedTopicLog.open({ path, logger, maintenanceIntervalMs: 0, clock: () => COMPACTED_AT, tombstoneRetentionMs: 86_400_000 });
  for (let i = 0; i < 10; i++) log.runMaintenance();
  process.stdout.write(JSON.stringify(dump(path)));
  await log.close();
}

/** Every stored record, per topic and partition, in offset order: [key, value, offset]. */
export function dump(path: string): Record<string, [string, string | null, number][]> {
  const db = new DatabaseSync(path, { readOnly: true });
  try {
    const rows = db.prepare("SELECT t.name, b.partition, b.base_offset, b.payload FROM batches b JOIN topics t ON t.id = b.topic_id ORDER BY t.name, b.partition, b.last_offset").all() as { name: string; partition: number; base_offset: number; payload: Uint8Array }[];
    const out: Record<string, [string, string | null, number][]> = {};
    const decoder = new TextDecoder();
    for (const row of rows) {
      const view = new DataView(row.payload.buffer, row.payload.byteOffset, row.payload.byteLength);
      const records = (out[`${row.name}:${row.partition}`] ??= []);
      for (let at = 0; at < row.payload.length; ) {
        const delta = view.getUint32(at, true);
        const keyLength = view.getInt32(at + 12, true);
        const key = decoder.decode(row.payload.subarray(at + 16, at + 16 + keyLength));
        at += 16 + keyLength;
        const valueLength = view.getInt32(at, true);
        const value = valueLength < 0 ? null : decoder.decode(row.payload.subarray(at + 4, at + 4 + valueLength));
        at += 4 + Math.max(valueLength, 0) + 2; // no headers in the fixture
        records.push([key, value, row.base_offset + delta]);
      }
    }
    return out;
  } finally {
    db.close();
  }
}

async function main(): Promise<void> {
  const [step, root, path] = process.argv.slice(2);
  if (step === "write") return write(resolve(root!), path!);
  if (step === "compact") return compact(resolve(root!), path!);
  if (step === undefined) throw new Error("usage: node connectors/embedded/testdata/make-v2-log.ts <checkout of 046010c>");
  const old = resolve(step);
  const dir = mkdtempSync(join(tmpdir(), "sluice-v2-fixture-"));
  try {
    const file = join(dir, "v2.db");
    execFileSync(process.execPath, [import.meta.filename, "write", old, file], { stdio: "inherit" });
    const db = new DatabaseSync(file);
    db.exec("PRAGMA wal_checkpoint(TRUNCATE)");
    const pending = (db.prepare("SELECT count(*) AS n FROM pending_keys").get() as { n: number }).n;
    const version = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    db.close();
    if (version !== 2 || pending === 0) throw new Error(`expected a version 2 file with keys pending, got version ${version} with ${pending} pending`);
    writeFileSync(join(import.meta.dirname, "v2-log.db.gz"), gzipSync(readFileSync(file), { level: 9 }));
    copyFileSync(file, join(dir, "copy.db"));
    const expected = execFileSync(process.execPath, [import.meta.filename, "compact", old, join(dir, "copy.db")], { encoding: "utf8" });
    writeFileSync(join(import.meta.dirname, "v2-log.expected.json"), `${JSON.stringify(JSON.parse(expected))}\n`);
    console.log(`fixture written: version 2, ${pending} keys pending`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.main) await main();
