/**
 * End to end (issue 18, item 2): erasable personal data. PostgreSQL, embedded topic log and
 * built-in registry, DuckDB, ClickHouse and Elasticsearch sinks. Personal columns of two tables
 * (subject customer_id) reach the topics only encrypted and the sinks decrypted; `sluice forget`
 * (a dry run first, then against the running daemon) nulls one subject's personal columns in
 * every sink and leaves the other subjects alone; a forget killed with -9 is finished by running it
 * again; running it twice is harmless; and a full rebuild of every sink from the topics afterwards
 * does not bring the erased values back, while everything else replays as before.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse, elasticsearch } from "../services/ports.ts";
import type { SluiceDaemon } from "./helpers.ts";
import { clickhouseQuery, deleteElasticIndices, dropClickHouseDatabase, dropPostgres, esRequest, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, REPO, runSluice, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("erase_pg");
const source = randomName("pgsrc");
const deployment = randomName("dep");
const chDatabase = randomName("erase_ch");
const dir = tempDir("erasure");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const masterKeyFile = join(dir, "master.key");
/**
 * The key admin lease of the `sluice forget` runs below (they inherit this process's environment):
 * 5 s instead of 30 s, so the run after a kill -9 waits the dead run's lease out in seconds. Still
 * four renewals long, so a live run keeps it.
 */
const KEY_ADMIN_LEASE_MS = 5_000;
process.env["SLUICE_KEY_ADMIN_LEASE_MS"] = String(KEY_ADMIN_LEASE_MS);

function config(): Record<string, unknown> {
  if (!existsSync(masterKeyFile)) writeFileSync(masterKeyFile, `${randomBytes(32).toString("hex")}\n`);
  return {
    name: deployment,
    personal_data: { master_key_file: masterKeyFile },
    sources: [
      pgSourceConfig(source, [`${schema}.*`], {
        governance: {
          tables: {
            [`${schema}.customers`]: { personal: { subject: "customer_id", columns: ["email", "phone"] } },
            [`${schema}.orders`]: { personal: { subject: "customer_id", columns: ["address"] } },
          },
        },
      }),
    ],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [
      { kind: "duckdb", name: "local", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } },
      { kind: "clickhouse", name: "warehouse", url: clickhouse.url, user: clickhouse.username, password: clickhouse.password, database: chDatabase, batch: { max_wait: "100ms" } },
      { kind: "elasticsearch", name: "search", nodes: [elasticsearch.url], batch: { max_wait: "100ms" } },
    ],
  };
}

type Row = Record<string, string | null>;
const CUSTOMER_COLUMNS = ["id", "customer_id", "email", "phone", "city"] as const;
const ORDER_COLUMNS = ["id", "customer_id", "address", "amount"] as const;
const canonical = (columns: readonly string[]) => (row: Record<string, unknown>): Row => Object.fromEntries(columns.map((c) => [c, row[c] === null || row[c] === undefined ? null : String(row[c])]));

const customers = [
  { id: 1, customer_id: 101, email: "ann@example.com", phone: "555-0101", city: "Lyon" },
  { id: 2, customer_id: 101, email: "ann.work@example.com", phone: null, city: "Paris" },
  { id: 3, customer_id: 202, email: "bob@example.com", phone: "555-0202", city: "Nice" },
  { id: 4, customer_id: 303, email: "cid@example.com", phone: "555-0303", city: "Lille" },
];
const orders = [
  { id: 10, customer_id: 101, address: "1 rue Ann", amount: 5 },
  { id: 11, customer_id: 202, address: "2 rue Bob", amount: 7 },
  { id: 12, customer_id: 303, address: "3 rue Cid", amount: 9 },
];
const CLEAR = ["ann@example.com", "ann.work@example.com", "555-0101", "1 rue Ann", "cid@example.com", "3 rue Cid"];

let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".customers (id int PRIMARY KEY, customer_id int NOT NULL, email text NOT NULL, phone text, city text)`);
  await client.query(`CREATE TABLE "${schema}".orders (id int PRIMARY KEY, customer_id int NOT NULL, address text, amount int NOT NULL)`);
  for (const c of customers) await client.query(`INSERT INTO "${schema}".customers VALUES ($1, $2, $3, $4, $5)`, [c.id, c.customer_id, c.email, c.phone, c.city]);
  for (const o of orders) await client.query(`INSERT INTO "${schema}".orders VALUES ($1, $2, $3, $4)`, [o.id, o.customer_id, o.address, o.amount]);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end();
  await dropClickHouseDatabase(chDatabase).catch(() => undefined);
  await deleteElasticIndices(`${schema}_`).catch(() => undefined);
  removeDir(dir);
});

/** What every sink should hold: the rows with the personal columns of `erased` subjects null. */
function expected(erased: readonly number[], changes: { customers?: typeof customers; orders?: typeof orders } = {}): { customers: Row[]; orders: Row[] } {
  const blank = <T extends { customer_id: number }>(row: T, columns: readonly string[]): T => (erased.includes(row.customer_id) ? { ...row, ...Object.fromEntries(columns.map((c) => [c, null])) } : row);
  return {
    customers: (changes.customers ?? customers).map((c) => canonical(CUSTOMER_COLUMNS)(blank(c, ["email", "phone"]))),
    orders: (changes.orders ?? orders).map((o) => canonical(ORDER_COLUMNS)(blank(o, ["address"]))),
  };
}

async function duckRows(daemon: SluiceDaemon | null, configFile: string, table: string, columns: readonly string[]): Promise<Row[] | null> {
  const sql = `SELECT * FROM "${schema}_${table}" ORDER BY id`;
  if (daemon) {
    const response = await fetch(`${daemon.url}/sinks/local/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(10_000) });
    if (response.status !== 200) return null;
    return ((await response.json()) as { rows: Record<string, unknown>[] }).rows.map(canonical(columns));
  }
  const run = await runSluice(["query", "-c", configFile, "--sink", "local", "--json", sql]);
  if (run.code !== 0) return null;
  const parsed = JSON.parse(run.stdout) as Record<string, unknown>[] | { rows: Record<string, unknown>[] };
  return (Array.isArray(parsed) ? parsed : parsed.rows).map(canonical(columns));
}

async function clickhouseRows(table: string, columns: readonly string[]): Promise<Row[] | null> {
  try {
    const text = (await clickhouseQuery(`SELECT * FROM \`${chDatabase}\`.\`${schema}_${table}\` ORDER BY id FORMAT JSONEachRow`)).toString("utf8");
    return text
      .split("\n")
      .filter((line) => line.trim() !== "")
      .map((line) => canonical(columns)(JSON.parse(line) as Record<string, unknown>));
  } catch {
    return null;
  }
}

async function elasticRows(table: string, columns: readonly string[]): Promise<Row[] | null> {
  const alias = `${schema}_${table}`.toLowerCase();
  await esRequest("POST", `/${alias}/_refresh`);
  const answer = await esRequest("POST", `/${alias}/_search`, { size: 100, sort: [{ id: "asc" }] });
  if (answer.status !== 200) return null;
  return (answer.json as { hits: { hits: { _source: Record<string, unknown> }[] } }).hits.hits.map((h) => canonical(columns)(h._source));
}

async function sinksHold(daemon: SluiceDaemon | null, configFile: string, want: { customers: Row[]; orders: Row[] }, label: string): Promise<void> {
  for (const [table, columns] of [
    ["customers", CUSTOMER_COLUMNS],
    ["orders", ORDER_COLUMNS],
  ] as const) {
    const wanted = JSON.stringify(want[table]);
    const options = { timeoutMs: 90_000, ...(daemon ? { daemon } : {}) };
    let last: unknown;
    const check = (what: string, read: () => Promise<Row[] | null>) =>
      waitFor(`${label}: ${what} ${table}`, async () => {
        last = await read();
        return JSON.stringify(last) === wanted;
      }, { ...options, lastSeen: () => ({ want: want[table], got: last }) });
    await check("DuckDB", () => duckRows(daemon, configFile, table, columns));
    await check("ClickHouse", () => clickhouseRows(table, columns));
    await check("Elasticsearch", () => elasticRows(table, columns));
  }
}

/** The topic log's files as bytes: no clear personal value may be in them. */
function logBytes(): string {
  return ["log.db", "log.db-wal"].filter((f) => existsSync(join(dir, f))).map((f) => readFileSync(join(dir, f)).toString("latin1")).join("");
}

/** `sluice forget --execute`, killed with -9 as soon as it says anything (the key is destroyed by then, the sinks not all done). */
function forgetKilled(configFile: string, subject: string): Promise<string> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(REPO, "daemon/sluice.js"), "forget", "-c", configFile, "--source", source, "--subject", subject, "--execute"], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      child.kill("SIGKILL");
    });
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.once("exit", () => resolve(out));
  });
}

test("forget: a subject's personal columns leave every sink, other subjects stay, re-runs and a kill -9 are safe, and a full rebuild does not bring them back", { timeout: 600_000 }, async (t) => {
  const began = Date.now();
  const phases: string[] = [];
  const phase = (what: string) => phases.push(`${what} ${((Date.now() - began) / 1000).toFixed(1)} s`);
  let daemon: SluiceDaemon | null = await startReady(dir, config(), "run1");
  const configFile = daemon.configFile;
  await sinksHold(daemon, configFile, expected([]), "decrypted in the sinks");
  const log = logBytes();
  for (const clear of CLEAR) assert.ok(!log.includes(clear), `clear personal value ${clear} is in the topic log`);
  assert.ok(log.includes("sluice-enc:v2:") && log.includes("sluice-enc:ref:"), "the topic log holds the ciphertext (a row's personal values sealed together)");

  phase("decrypted in the sinks");
  // A dry run says what it would do and changes nothing.
  const dry = await runSluice(["forget", "-c", configFile, "--source", source, "--subject", "101"]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.match(dry.stdout, /has a key: it would be destroyed/);
  assert.match(dry.stdout, /sinks that would null them: local, warehouse, search/);
  assert.match(dry.stdout, /Dry run: nothing changed/);
  await sinksHold(daemon, configFile, expected([]), "after the dry run");

  phase("dry run");
  // Against the running daemon.
  const forget = await runSluice(["forget", "-c", configFile, "--source", source, "--subject", "101", "--execute"]);
  assert.equal(forget.code, 0, forget.stderr);
  assert.match(forget.stdout, /sink local: personal columns of the subject nulled \(3 rows\)/);
  assert.match(forget.stdout, /sink warehouse: personal columns of the subject nulled/);
  assert.match(forget.stdout, /sink search: personal columns of the subject nulled \(3 rows\)/);
  await sinksHold(daemon, configFile, expected([101]), "subject 101 forgotten");

  phase("forgotten");
  // Streaming goes on for everyone else. (A change of subject 101's rows would carry their personal
  // values again, under a new key: they are still in the source, which forget does not touch.)
  await client.query(`UPDATE "${schema}".customers SET email = 'bob@new.example' WHERE id = 3`);
  await client.query(`UPDATE "${schema}".orders SET amount = 8 WHERE id = 11`);
  const changed = { customers: customers.map((c) => (c.id === 3 ? { ...c, email: "bob@new.example" } : c)), orders: orders.map((o) => (o.id === 11 ? { ...o, amount: 8 } : o)) };
  await sinksHold(daemon, configFile, expected([101], changed), "streaming after the erasure");

  phase("streamed on");
  // kill -9 during a forget: it is either done or finished by running it again.
  const killed = await forgetKilled(configFile, "303");
  assert.match(killed, /key of subject "303"/);
  const rerun = await waitFor(
    `the forget of 303 to run again (the killed run's lease lapses within ${KEY_ADMIN_LEASE_MS / 1000} s)`,
    async () => {
      const run = await runSluice(["forget", "-c", configFile, "--source", source, "--subject", "303", "--execute"]);
      if (run.code !== 0 && !/refused: another forget/.test(run.stderr)) assert.fail(`forget failed: ${run.stderr}`);
      return run.code === 0 ? run : false;
    },
    { daemon, timeoutMs: 120_000, intervalMs: 1_000 },
  );
  assert.match(rerun.stdout, /was already gone/);
  await sinksHold(daemon, configFile, expected([101, 303], changed), "303 forgotten after a kill -9");

  phase("forgotten after a kill -9");
  // Running a completed forget again is harmless.
  const again = await runSluice(["forget", "-c", configFile, "--source", source, "--subject", "101", "--execute"]);
  assert.equal(again.code, 0, again.stderr);
  assert.match(again.stdout, /sink local: personal columns of the subject nulled \(0 rows\)/);
  const audit = await runSluice(["forget", "-c", configFile, "--source", source, "--subject", "101"]);
  assert.match(audit.stdout, /has no key any more/);
  assert.match(audit.stdout, /earlier erasure of this subject: completed at .* by /);
  await daemon.stop();
  daemon = null;

  phase("re-run and stopped");
  // A full rebuild of every sink from the topics: the erased values stay erased, the rest is back as it was.
  for (const sink of ["local", "warehouse", "search"]) {
    const rebuild = await runSluice(["replay", "-c", configFile, "--sink", sink, "--from-beginning", "--rebuild", "--execute"]);
    assert.equal(rebuild.code, 0, `rebuild of ${sink}: ${rebuild.stderr}`);
  }
  await sinksHold(null, configFile, expected([101, 303], changed), "after a full rebuild");

  phase("rebuilt");
  // A restarted daemon (capture and sinks reading their keys afresh) changes nothing either.
  daemon = await startReady(dir, config(), "run2");
  await client.query(`UPDATE "${schema}".customers SET city = 'Marseille' WHERE id = 3`);
  const later = { ...changed, customers: changed.customers.map((c) => (c.id === 3 ? { ...c, city: "Marseille" } : c)) };
  await sinksHold(daemon, daemon.configFile, expected([101, 303], later), "after a restart");
  await daemon.stop();
  phase("restarted and stopped");
  t.diagnostic(`phases: ${phases.join(", ")}`);
});
