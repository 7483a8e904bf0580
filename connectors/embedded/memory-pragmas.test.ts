/** The embedded log's connections keep to their share of the memory budget: topics.cache_size as SQLite's page cache, no memory-mapped reads. */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { DatabaseSync } from "node:sqlite";
import type { TopicsConfig } from "../../config/schema.ts";
import { createLogger } from "../../runtime/logger.ts";
import { openTopicLog } from "../topics/open.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";

const logger = createLogger("silent");
const dir = mkdtempSync(join(tmpdir(), "sluice-embedded-memory-"));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The log's own connection (private: what the daemon's log really runs with). */
const pragma = (log: EmbeddedTopicLog, name: string) => Object.values((log as unknown as { db: DatabaseSync }).db.prepare(`PRAGMA ${name}`).get()!)[0];

test("topics.cache_size becomes the connection's page cache; memory-mapped reads are off", async () => {
  const config = { kind: "embedded", path: join(dir, "log.db"), partitions: 1, retention: { max_age: 0, tombstones: 1000, min_compaction_lag: 0, cleanup_policy: "compact" }, max_record_bytes: 2 ** 20, cache_size: 6 * 2 ** 20 } as Extract<TopicsConfig, { kind: "embedded" }>;
  const log = (await openTopicLog(config, "dep", logger)) as EmbeddedTopicLog;
  try {
    // Negative: KiB rather than pages.
    assert.equal(pragma(log, "cache_size"), -6 * 1024);
    assert.equal(pragma(log, "mmap_size"), 0);
  } finally {
    await log.close();
  }
});

test("without cache_size SQLite's default page cache stays", async () => {
  const log = EmbeddedTopicLog.open({ path: join(dir, "plain.db"), logger, maintenanceIntervalMs: 0 });
  try {
    assert.equal(pragma(log, "cache_size"), -2000);
    assert.equal(pragma(log, "mmap_size"), 0);
  } finally {
    await log.close();
  }
});
