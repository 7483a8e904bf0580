/**
 * The catalog connection runs one query at a time against the real PostgreSQL. Its users (the
 * heartbeat, slot lag for metrics, table discovery) query it independently; pg's own queue for a
 * query issued while another runs is deprecated (its warning was in the daemon's log).
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import pg from "pg";
import { postgres } from "../../test/services/ports.ts";
import { adminClient, cleanUp, newSource, randomName, readUntil, sourceConfig } from "./int-test-support.ts";
import { oneQueryAtATime } from "./serial-queries.ts";

/** Counts, per client, queries sent to pg while another of the same client had not settled; only clients `watched` picks. */
function overlapCounter(watched: (client: pg.Client) => boolean): { overlaps: () => number; restore: () => void } {
  const original = pg.Client.prototype.query;
  const inFlight = new Map<pg.Client, number>();
  let overlaps = 0;
  pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]): unknown {
    const result = (original as (...a: unknown[]) => unknown).apply(this, args);
    if (!watched(this) || !(result instanceof Promise)) return result;
    const running = (inFlight.get(this) ?? 0) + 1;
    inFlight.set(this, running);
    if (running > 1) overlaps++;
    const settle = () => void inFlight.set(this, inFlight.get(this)! - 1);
    result.then(settle, settle);
    return result;
  } as typeof original;
  return { overlaps: () => overlaps, restore: () => void (pg.Client.prototype.query = original) };
}

const applicationName = (client: pg.Client): string => (client as unknown as { connectionParameters?: { application_name?: string } }).connectionParameters?.application_name ?? "";

let admin: pg.Client;

before(async () => {
  admin = await adminClient();
});

after(async () => {
  await admin.end();
});

test("oneQueryAtATime: queries issued together reach the server one after another, in order; a failed one does not hold up the next", async () => {
  const client = new pg.Client({ ...postgres, application_name: "serial-test" });
  const counter = overlapCounter((c) => c === client);
  try {
    await client.connect();
    oneQueryAtATime(client);
    const results = await Promise.allSettled([
      client.query<{ v: number }>("SELECT 1 AS v FROM pg_sleep(0.05)"),
      client.query("SELECT * FROM no_such_table_anywhere"),
      client.query<{ v: number }>("SELECT $1::int AS v", [2]),
      client.query<{ v: number }>({ text: "SELECT 3 AS v" }),
    ]);
    assert.deepEqual(
      results.map((r) => (r.status === "fulfilled" ? r.value.rows[0]?.v : "failed")),
      [1, "failed", 2, 3],
    );
    assert.equal(counter.overlaps(), 0);
    assert.throws(() => client.query("SELECT 1", () => undefined), TypeError, "a callback query cannot wait its turn");
  } finally {
    counter.restore();
    await client.end();
  }
});

test("the source's catalog connection runs one query at a time: heartbeat, table discovery and slot lag scrapes wait for each other", async () => {
  const schema = randomName("s_serial");
  await admin.query(`CREATE SCHEMA "${schema}"; CREATE TABLE "${schema}".t (id int PRIMARY KEY, v text)`);
  const config = sourceConfig({ tables: [`${schema}.*`], snapshot: { mode: "never", parallelism: 1, chunk_rows: 100 }, heartbeat_interval: 3 });
  const counter = overlapCounter((client) => applicationName(client) === `sluice:${config.name}:catalog`);
  const source = newSource(config, { tableDiscoveryMs: 5 });
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    await admin.query(`INSERT INTO "${schema}".t VALUES (1, 'a')`);
    await readUntil(source, (c) => c.events.length >= 1);
    // Streaming: the heartbeat (every 3 ms) and table discovery (every 5 ms) run; a scrape reads the slot's lag meanwhile.
    const until = Date.now() + 1_500;
    let scrapes = 0;
    while (Date.now() < until) {
      assert.notEqual(await source.slotMetrics(), undefined);
      scrapes++;
    }
    assert.ok(scrapes > 10, `scrapes ${scrapes}`);
    assert.equal(counter.overlaps(), 0, "queries sent to the catalog connection while another ran");
  } finally {
    counter.restore();
    await source.close();
    await cleanUp(admin, config, schema);
  }
});
