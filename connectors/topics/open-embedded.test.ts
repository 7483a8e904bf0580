/** Opening the embedded log for `sluice run`: a disk full (or the file locked) at the first start is waited out, not a failed start. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { test } from "node:test";
import type { TopicsConfig } from "../../config/schema.ts";
import { createLogger } from "../../runtime/logger.ts";
import { openTopicLog } from "./open.ts";
import { mountExt4, mountTmpfs } from "../../test/mounts.ts";

const logger = createLogger("silent");
const embedded = (path: string) => ({ kind: "embedded", path, partitions: 1, retention: { tombstones: 86_400_000, min_compaction_lag: 0 } }) as unknown as TopicsConfig;
const settled = (promise: Promise<unknown>) => Promise.race([promise.then(() => true, () => true), new Promise((resolve) => setTimeout(() => resolve(false), 1_500))]);

test("the log file locked by another writer at the first open: the open waits, says why, and opens once it is free", async () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-open-locked-"));
  const path = join(dir, "sluice.db");
  const holder = new DatabaseSync(path);
  holder.exec("PRAGMA journal_mode = WAL; BEGIN EXCLUSIVE; CREATE TABLE held (x)");
  const waits: (string | null)[] = [];
  const opening = openTopicLog(embedded(path), "d", logger, AbortSignal.timeout(60_000), undefined, { onWaiting: (why) => waits.push(why) });
  try {
    assert.equal(await settled(opening), false, "still waiting while the file is locked");
    assert.match(waits[0] ?? "", /locked by another writer \(.*\) during open/);
    holder.exec("ROLLBACK");
    holder.close();
    const log = await opening;
    assert.equal(waits.at(-1), null, "no longer waiting");
    await log.close();
  } finally {
    if (holder.isOpen) holder.close();
    await opening.then((log) => log.close()).catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the disk full at the first open (the log file not made yet): the open waits, says the path and the disk, and opens once space is freed", async (t) => {
  const tiny = mountTmpfs("3m");
  if (typeof tiny === "string") return t.skip(tiny);
  const { mount } = tiny;
  try {
    const ballast = join(mount, "ballast");
    try {
      execFileSync("dd", ["if=/dev/zero", `of=${ballast}`, "bs=64k"], { stdio: "ignore" });
    } catch {
      // dd stops with ENOSPC: the disk is full, as wanted
    }
    const path = join(mount, "sluice.db");
    const waits: (string | null)[] = [];
    const opening = openTopicLog(embedded(path), "d", logger, AbortSignal.timeout(60_000), undefined, { onWaiting: (why) => waits.push(why) });
    assert.equal(await settled(opening), false, "still waiting while the disk is full");
    assert.ok(waits[0]?.startsWith(`embedded topic log ${path}: disk full during open`), waits[0] ?? "no reason given");
    writeFileSync(ballast, "");
    const log = await opening;
    assert.equal(waits.at(-1), null);
    await log.close();
  } finally {
    tiny.unmount();
  }
});

function fill(file: string, blockSize: string): void {
  try {
    execFileSync("dd", ["if=/dev/zero", `of=${file}`, `bs=${blockSize}`], { stdio: "ignore" });
  } catch {
    // dd stops with ENOSPC: the disk is full, as wanted
  }
}

test("a nearly full ext4 disk at the first open (SQLite fails the commit of the schema), then a full one (the log's folder cannot be made): the open waits as disk full, and opens once space is freed", async (t) => {
  // No blocks reserved for root: ext4 keeps a few KB free after dd, which tmpfs does not.
  const mounted = mountExt4({ noReservedBlocks: true });
  if (typeof mounted === "string") return t.skip(mounted);
  const { mount } = mounted;
  const openings: Promise<unknown>[] = [];
  try {
    // dd with 64 KiB blocks leaves some 35 KB free: enough for SQLite to start the file, not to commit its schema.
    fill(join(mount, "ballast"), "64k");
    const path = join(mount, "sluice.db");
    const waits: (string | null)[] = [];
    const opening = openTopicLog(embedded(path), "d", logger, AbortSignal.timeout(60_000), undefined, { onWaiting: (why) => waits.push(why) });
    openings.push(opening);
    assert.equal(await settled(opening), false, "still waiting while the disk is nearly full");
    assert.ok(waits[0]?.startsWith(`embedded topic log ${path}: disk full during open`), waits[0] ?? "no reason given");
    writeFileSync(join(mount, "ballast"), "");
    const log = await opening;
    assert.equal(waits.at(-1), null);
    await log.close();
    // Full to the last block: the log's own folder cannot be made (mkdir fails ENOSPC).
    fill(join(mount, "ballast"), "64k");
    fill(join(mount, "ballast-last"), "1k");
    const nested = join(mount, "sub", "sluice.db");
    const nestedWaits: (string | null)[] = [];
    const nestedOpening = openTopicLog(embedded(nested), "d2", logger, AbortSignal.timeout(60_000), undefined, { onWaiting: (why) => nestedWaits.push(why) });
    openings.push(nestedOpening);
    assert.equal(await settled(nestedOpening), false, "still waiting while its folder cannot be made");
    assert.match(nestedWaits[0] ?? "", /disk full during open \(cannot create its folder .*: ENOSPC\)/);
    writeFileSync(join(mount, "ballast"), "");
    writeFileSync(join(mount, "ballast-last"), "");
    const nestedLog = await nestedOpening;
    assert.equal(nestedWaits.at(-1), null);
    await nestedLog.close();
  } finally {
    for (const pending of openings) await pending.then((log) => (log as { close(): Promise<void> }).close(), () => undefined);
    mounted.unmount();
  }
});

test("a first open waiting on a nearly full ext4 disk (the log file begun), the disk then filled to its last block (SQLite says disk I/O error): the open still waits as disk full, and opens once space is freed", async (t) => {
  const mounted = mountExt4({ noReservedBlocks: true });
  if (typeof mounted === "string") return t.skip(mounted);
  const { mount } = mounted;
  let opening: Promise<unknown> | undefined;
  try {
    fill(join(mount, "ballast"), "64k");
    const path = join(mount, "sluice.db");
    const waits: (string | null)[] = [];
    opening = openTopicLog(embedded(path), "d", logger, AbortSignal.timeout(60_000), undefined, { onWaiting: (why) => waits.push(why) });
    assert.equal(await settled(opening), false, "still waiting while the disk is nearly full");
    // The last blocks: SQLite, extending the file it began, now fails with SQLITE_IOERR rather than SQLITE_FULL.
    fill(join(mount, "ballast-last"), "1k");
    const seen = waits.length;
    let rejection: unknown;
    opening.catch((error: unknown) => (rejection = error));
    assert.equal(await settled(opening), false, `still waiting once the disk is full to its last block (${String(rejection)})`);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    assert.equal(await settled(opening), false, "still waiting after more tries on the full disk");
    assert.ok(waits.length > seen, "tried again on the full disk");
    for (const why of waits.slice(seen)) assert.ok(why?.startsWith(`embedded topic log ${path}: disk full during open`), why ?? "no reason given");
    writeFileSync(join(mount, "ballast"), "");
    writeFileSync(join(mount, "ballast-last"), "");
    const log = (await opening) as { close(): Promise<void> };
    assert.equal(waits.at(-1), null);
    await log.close();
  } finally {
    await opening?.then((log) => (log as { close(): Promise<void> }).close(), () => undefined);
    mounted.unmount();
  }
});
