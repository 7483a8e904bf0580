/**
 * PostgresSource.prepare against the real server: it connects and reads the catalog only (no
 * publication, no slot), the next connect takes that connection up, and close ends a preparation
 * no connect took.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { adminClient, cleanUp, newSource, randomName, readUntil, slotRow, sourceConfig } from "./int-test-support.ts";

const schema = randomName("prep");
let admin: pg.Client;
const configs: ReturnType<typeof sourceConfig>[] = [];

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".t (id int PRIMARY KEY)`);
  await admin.query(`INSERT INTO "${schema}".t SELECT generate_series(1, 5)`);
});

after(async () => {
  for (const config of configs) await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

function config() {
  const c = sourceConfig({ tables: [`${schema}.t`] });
  configs.push(c);
  return c;
}

/** The source's catalog connections on the server (its application_name). */
async function catalogConnections(c: ReturnType<typeof config>): Promise<number> {
  const { rows } = await admin.query<{ n: string | number }>("SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1", [`sluice:${c.name}:catalog`]);
  return Number(rows[0]!.n);
}

async function until(condition: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await condition()) return;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.fail(`timed out waiting for ${what}`);
}

test("prepare connects and reads only; connect takes its connection up and captures as without it", async () => {
  const c = config();
  const source = newSource(c);
  try {
    source.prepare();
    await until(async () => (await catalogConnections(c)) === 1, "the prepared catalog connection");
    // Reading only: what connect creates is not there yet.
    assert.equal(await slotRow(admin, c.slot!), undefined, "no slot");
    assert.equal((await admin.query("SELECT 1 FROM pg_publication WHERE pubname = $1", [c.publication])).rowCount, 0, "no publication");
    await source.connect(null, AbortSignal.timeout(30_000));
    assert.equal(await catalogConnections(c), 1, "the prepared connection is the catalog connection");
    const collected = await readUntil(source, (so) => so.events.filter((e) => e.op === "r").length >= 5);
    assert.deepEqual(collected.events.filter((e) => e.op === "r").map((e) => e.after?.["id"]), [1, 2, 3, 4, 5]);
  } finally {
    await source.close();
  }
  await until(async () => (await catalogConnections(c)) === 0, "the catalog connection to end");
});

test("close ends a preparation no connect took up", async () => {
  const c = config();
  const source = newSource(c);
  source.prepare();
  try {
    await until(async () => (await catalogConnections(c)) === 1, "the prepared catalog connection");
  } finally {
    await source.close();
  }
  await until(async () => (await catalogConnections(c)) === 0, "the prepared connection to end");
  assert.equal(await slotRow(admin, c.slot!), undefined, "no slot");
});
