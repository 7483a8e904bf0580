/**
 * A new slot waits for transactions open when its creation began (real PostgreSQL): PostgreSQL says nothing, so the
 * source's start hung without a word while a session sat idle in a transaction that had written (or a prepared
 * transaction was left uncommitted). The source warns, naming the session, and starts once it ends.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { pino } from "pino";
import type pg from "pg";
import { adminClient, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";

const schema = randomName("s_slotwait");
const config = sourceConfig({ tables: [`${schema}.*`] });
let admin: pg.Client;
let holder: pg.Client;

before(async () => {
  admin = await adminClient();
  holder = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (id int PRIMARY KEY)`);
});

after(async () => {
  await holder.query("ROLLBACK").catch(() => undefined);
  await holder.end();
  await cleanUp(admin, config, schema);
  await admin.end();
});

test("a slot's creation held by a session idle in a transaction warns naming it, and the start goes on once it ends", { timeout: 60_000 }, async () => {
  const pid = (await holder.query<{ pid: string }>("SELECT pg_backend_pid()::text AS pid")).rows[0]!.pid;
  await holder.query(`BEGIN; INSERT INTO "${schema}".t VALUES (1)`);
  const lines: { level: number; msg: string; transactions?: string | null }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line)) });
  const source = newSource(config, { logger, slotWaitWarnMs: 200 });
  let connected = false;
  const connecting = source.connect(null, AbortSignal.timeout(50_000)).then(() => (connected = true));
  try {
    const named = () => lines.find((l) => l.level === 40 && l.transactions?.includes(`pid ${pid} (`) === true);
    for (let i = 0; i < 200 && named() === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 50));
    const warning = named();
    assert.ok(warning, `a warning names pid ${pid}: ${JSON.stringify(lines.filter((l) => l.level >= 40))}`);
    assert.match(warning.msg, /is still being created after \d+ s/);
    assert.match(warning.transactions!, /idle in transaction/);
    assert.equal(connected, false, "the slot waits for the open transaction");
    await holder.query("COMMIT");
    await connecting;
  } finally {
    await holder.query("ROLLBACK").catch(() => undefined);
    await connecting.catch(() => undefined);
    await source.close();
  }
});
