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

function mountTinyFs(): string {
  if (process.getuid?.() !== 0) return "needs root to mount a 3 MiB tmpfs";
  const mount = mkdtempSync(join(tmpdir(), "sluice-open-full-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=3m", "tmpfs", mount], { stdio: "ignore" });
    return mount;
  } catch {
    rmSync(mount, { recursive: true, force: true });
    return "mounting a tmpfs was refused";
  }
}

test("the disk full at the first open (the log file not made yet): the open waits, says the path and the disk, and opens once space is freed", async (t) => {
  const mount = mountTinyFs();
  if (!mount.startsWith("/")) return t.skip(mount);
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
    execFileSync("umount", [mount]);
    rmSync(mount, { recursive: true, force: true });
  }
});
