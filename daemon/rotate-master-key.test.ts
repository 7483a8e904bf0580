import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import { createLogger } from "../runtime/logger.ts";
import { runRotateCommand } from "./forget-command.ts";
import { MasterKey, SubjectKeyStore, subjectKeyTopic } from "./governance/subject-keys.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-rotate-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");
const oldFile = join(dir, "old.key");
const newFile = join(dir, "new.key");
writeFileSync(oldFile, "01".repeat(32));
writeFileSync(newFile, "02".repeat(32));

const config = (personal: string) =>
  loadConfigText(
    join(dir, "c.yaml"),
    `name: dep
personal_data: ${personal}
sources:
  - { name: pg, kind: postgres, database: app, user: u, tables: [app.*], governance: { tables: { app.customers: { personal: { subject: customer_id, columns: [email] } } } } }
topics: { kind: embedded, path: ${join(dir, "log.db")} }
`,
    { env: {} },
  );

const output = () => {
  const io = { out: "", err: "", stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
};

test("rotate-master-key: a dry run counts the keys to rewrap; --execute rewraps them, can run again, and the old master key is no longer needed", async () => {
  const log = await EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const before = await SubjectKeyStore.open(log, subjectKeyTopic("dep"), MasterKey.fromFile(oldFile));
  await before.createKeys("pg", ["1", "2", "3"]);
  const keys = await Promise.all(["1", "2", "3"].map(async (s) => (await before.keyIfKnown("pg", s))!));
  await before.destroy("pg", "3");
  await before.close();
  await log.close();

  const rotating = config(`{ master_key_file: ${newFile}, previous_master_key_files: [${oldFile}] }`);
  const dry = output();
  assert.equal(await runRotateCommand(rotating, false, dry, logger), 0, dry.err);
  assert.match(dry.out, /2 subject keys, 2 wrapped by another master key/);
  assert.match(dry.out, /Run again with --execute to rewrap them/);
  const run = output();
  assert.equal(await runRotateCommand(rotating, true, run, logger), 0, run.err);
  assert.match(run.out, /Rewrapped 2 of 2 subject keys/);
  const again = output();
  assert.equal(await runRotateCommand(rotating, true, again, logger), 0, again.err);
  assert.match(again.out, /Rewrapped 0 of 2/);

  // Without the old key now: every live key opens, the destroyed one stays destroyed.
  const rotated = config(`{ master_key_file: ${newFile} }`);
  const check = output();
  assert.equal(await runRotateCommand(rotated, false, check, logger), 0, check.err);
  assert.match(check.out, /2 subject keys, 0 wrapped by another/);
  assert.match(check.out, /Nothing to rewrap/);
  assert.doesNotMatch(check.out, /--execute/);
  const read = await EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0, readOnly: true });
  try {
    const store = await SubjectKeyStore.open(read, subjectKeyTopic("dep"), MasterKey.fromFile(newFile), { create: false });
    assert.deepEqual(await store.keyIfKnown("pg", "1"), keys[0]);
    assert.deepEqual(await store.keyIfKnown("pg", "2"), keys[1]);
    assert.equal(await store.keyIfKnown("pg", "3"), null);
    await store.close();
  } finally {
    await read.close();
  }

  // Rotating before the old key is given is refused with what to do.
  const stale = output();
  const log2 = await EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger, maintenanceIntervalMs: 0 });
  const writer = await SubjectKeyStore.open(log2, subjectKeyTopic("dep"), MasterKey.fromFile(oldFile));
  await writer.createKeys("pg", ["9"]);
  await writer.close();
  await log2.close();
  assert.equal(await runRotateCommand(rotated, true, stale, logger), 1);
  assert.match(stale.err, /wrapped by a master key that was not given/);
});
