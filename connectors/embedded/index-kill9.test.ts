/**
 * kill -9 while appending and while compaction indexes keys: appends write no key, and the index
 * moves with `indexed_offset` in compaction's own transaction, so after any crash the file holds
 * whole produce calls with their checkpoint, an index that never runs ahead of it, and compaction
 * still leaves exactly each key's last record.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";
import { after, test } from "node:test";
import { createLogger } from "../../runtime/logger.ts";
import { readToEnd } from "../topics/contract-suite.ts";
import { EmbeddedTopicLog } from "./embedded-log.ts";
import { CRASH_TOPIC, crashKey } from "./testdata/index-crash-writer.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-index-kill9-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const KEYS = 20_000;

/** Runs the writer until `line` has been printed `times` times, then kills it `delayMs` later; returns its last line. */
async function killAfter(path: string, line: "append" | "index", times: number, delayMs: number): Promise<string> {
  const child = spawn(process.execPath, [join(import.meta.dirname, "testdata", "index-crash-writer.ts"), path, String(KEYS)], { stdio: ["ignore", "pipe", "pipe"] });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  let last = "";
  let seen = 0;
  let buffered = "";
  const exited = new Promise<void>((resolve) => child.on("exit", () => resolve()));
  const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
  child.stdout.on("data", (chunk: Buffer) => {
    buffered += chunk.toString();
    const lines = buffered.split("\n");
    buffered = lines.pop()!;
    for (const l of lines) {
      last = l;
      if (l === line && ++seen === times) setTimeout(() => child.kill("SIGKILL"), delayMs);
    }
  });
  await exited;
  clearTimeout(timer);
  assert.equal(child.signalCode, "SIGKILL", `the writer was killed, not finished: ${stderr}`);
  return last;
}

test("kill -9 mid-append and mid-index leaves whole produce calls, an index behind the records, and compaction keeps each key's last record", async () => {
  const path = join(dir, "crash.db");
  const lastLines: string[] = [];
  for (let round = 0; round < 8; round++) {
    // Even rounds: while the job indexes (a run takes tens of ms); odd rounds: while appending.
    lastLines.push(round % 2 === 0 ? await killAfter(path, "index", 1 + (round % 3), round % 4) : await killAfter(path, "append", 5 + round, round % 3));
  }
  assert.ok(lastLines.some((line) => line === "index"), `a kill landed in a job run: last lines ${lastLines.join(", ")}`);

  const db = new DatabaseSync(path, { readOnly: true });
  const partitions = db.prepare("SELECT partition, next_offset, indexed_offset FROM partitions ORDER BY partition").all() as { partition: number; next_offset: number; indexed_offset: number }[];
  db.close();
  for (const p of partitions) assert.ok(p.indexed_offset <= p.next_offset, `partition ${p.partition}: indexed ${p.indexed_offset} of ${p.next_offset}`);

  let now = Date.now() + 60_000;
  const log = EmbeddedTopicLog.open({ path, logger: createLogger("silent"), maintenanceIntervalMs: 0, maintenanceBudget: 10_000, clock: () => now });
  try {
    const written = Number((await log.readCheckpoint("crash"))!.position.commit);
    const ends = await log.endOffsets(CRASH_TOPIC);
    assert.equal(ends.reduce((sum, e) => sum + e.offset, 0n), BigInt(written), "every stored record is covered by the checkpoint, and no more");
    for (let i = 0; i < 20; i++) log.runMaintenance();
    now += 60_000;
    const last = new Map<string, string>();
    for (let n = 0; n < written; n++) last.set(crashKey(n, KEYS), `v${n}`);
    const consumer = await log.consumer("check", [CRASH_TOPIC]);
    const records = await readToEnd(log, consumer, [CRASH_TOPIC]);
    await consumer.close();
    const decoder = new TextDecoder();
    const kept = new Map(records.map((r) => [decoder.decode(r.key!), decoder.decode(r.value!)]));
    assert.equal(records.length, kept.size, "one record per key");
    assert.deepEqual(kept, last);
  } finally {
    await log.close();
  }
});
