/**
 * A new table renamed between the catalog look's listing and its ALTER PUBLICATION (real PostgreSQL; the listing is
 * hooked so the rename always lands there): the ALTER meets no table under the name listed, hands the table back as
 * renamed, and the next look adds it under its name then, with its backfill. The same look's check that the captured
 * tables are in the publication tried it a second time under its dead name, and the next one told it as taken out of
 * the publication while capture ran.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import { pino } from "pino";
import type { Pump } from "../common/online-snapshot-test-support.ts";
import { Fold, noTasks, pump, stopPumps, waitCheckpointAt, waitFor } from "../common/online-snapshot-test-support.ts";
import { adminClient, checkpointing, cleanUp, newSource, randomName, sourceConfig } from "./int-test-support.ts";
import { isSnapshotIncomplete } from "./positions.ts";
import type { PostgresSource } from "./source.ts";

const schema = randomName("pgfix2_renrace");
let admin: pg.Client;
let stopCheckpoints: () => Promise<void>;
const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "initial", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 300 });

before(async () => {
  admin = await adminClient();
  stopCheckpoints = checkpointing();
  await admin.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".base (id int PRIMARY KEY, v text); INSERT INTO "${schema}".base VALUES (1, 'b1')`);
});

after(async () => {
  await stopCheckpoints();
  await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.end();
});

async function caughtUp(state: Pump): Promise<void> {
  const lsn = (await admin.query<{ lsn: string }>("SELECT (pg_current_wal_lsn() - '0/0'::pg_lsn)::text AS lsn")).rows[0]!.lsn;
  await waitCheckpointAt(state, BigInt(lsn));
}

/** Runs `then` once, right after the first catalog listing of the captured tables that holds `table`, before the listing's result is used. */
function hookListing(source: PostgresSource, table: string, then: () => Promise<void>): void {
  const catalog = (source as unknown as { catalog: pg.Client }).catalog;
  const query = catalog.query.bind(catalog) as (text: string, values?: unknown[]) => Promise<pg.QueryResult>;
  let armed = true;
  (catalog as unknown as { query: typeof query }).query = async (text: string, values?: unknown[]) => {
    const result = await query(text, values);
    if (armed && typeof text === "string" && text.includes("NOT c.relispartition") && result.rows.some((row) => row["schema"] === schema && row["table"] === table)) {
      armed = false;
      await then();
    }
    return result;
  };
}

test("a new table renamed between the look's listing and its ALTER PUBLICATION is captured and backfilled under its new name by the next look, tried once under its dead name, and told as renamed", { timeout: 90_000 }, async () => {
  const lines: { level: number; msg: string; table?: string; tables?: unknown }[] = [];
  const logger = pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as { level: number; msg: string }) });
  const source: PostgresSource = newSource(config, { tableDiscoveryMs: 300, logger });
  const fold = new Fold("fresh_renamed");
  const pumps: Pump[] = [];
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const state = pump(source, [fold]);
    pumps.push(state);
    await waitFor("streaming", () => state.checkpoint !== null && !isSnapshotIncomplete(state.checkpoint.position) && noTasks(state), 30_000);
    let renamed = false;
    hookListing(source, "fresh", async () => {
      await admin.query(`ALTER TABLE "${schema}".fresh RENAME TO fresh_renamed`);
      renamed = true;
    });
    await admin.query(`CREATE TABLE "${schema}".fresh (id int PRIMARY KEY, v text); INSERT INTO "${schema}".fresh SELECT g, 'r' || g FROM generate_series(1, 3) g`);
    await waitFor("the rename between the listing and the ALTER", () => renamed, 20_000);
    await waitFor("the renamed table published under its new name", async () => {
      const published = await admin.query("SELECT 1 FROM pg_publication_tables WHERE pubname = $1 AND schemaname = $2 AND tablename = 'fresh_renamed'", [config.publication, schema]);
      return published.rowCount === 1;
    }, 20_000);
    await admin.query(`INSERT INTO "${schema}".fresh_renamed VALUES (4, 'after')`);
    await caughtUp(state);
    await waitFor("the backfill read under the new name", () => noTasks(state) && fold.visible().size === 4, 20_000);
    assert.deepEqual([...fold.visible()].map(([id, row]) => [id, row["v"]]).sort(), [["1", "r1"], ["2", "r2"], ["3", "r3"], ["4", "after"]]);
    for (const id of ["1", "2", "3"]) assert.ok((fold.reads.get(id) ?? 0) > 0, `row ${id} read by the backfill`);
    assert.deepEqual(lines.filter((l) => l.msg.includes("dropped meanwhile")), [], "not told as dropped");
    const handedBack = lines.filter((l) => l.msg.includes("was renamed meanwhile") && l.table === `${schema}.fresh`);
    assert.equal(handedBack.length, 1, "handed back as renamed once: not tried again under its old name in the same look");
    const added = lines.filter((l) => Array.isArray(l.tables) && l.tables.includes(`${schema}.fresh_renamed`));
    assert.deepEqual(added.filter((l) => /taken out while capture ran|kept out by a lock/.test(l.msg)), [], "not told as taken out of the publication");
    const told = added.filter((l) => l.msg.includes("renamed while being added to publication"));
    assert.equal(told.length, 1, JSON.stringify(added));
    assert.match(told[0]!.msg, /are added under their names now; their rows are read by an online snapshot/);
  } finally {
    await stopPumps(pumps, [source]);
  }
});
