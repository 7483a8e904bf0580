/**
 * End to end (issue 18): personal columns of changes capture writes outside the data topics — the
 * parking topic of a table halted by a `halt` data check, and the source's dead-letter topic of a
 * `dead-letter` check — are sealed with their subject's key, never in clear, so `sluice forget`
 * reaches them: a release after the forget re-publishes the forgotten subject's personal values as
 * null, another subject's with their value. A table with a transform and no personal columns has the transformed column
 * sealed there too, with the table's parking key, and the release masks it as capture does. PostgreSQL → the embedded log →
 * DuckDB, through the CLI.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, readEmbeddedTopics, removeDir, runSluice, startReady, tempDir, waitFor } from "./helpers.ts";
import type { SluiceDaemon, SourceStatus } from "./helpers.ts";

const schema = randomName("e2e_parked");
const source = randomName("src");
const deployment = randomName("dep");
const dir = tempDir("governance-parked");
const masterKeyFile = join(dir, "master.key");
const customers = `${schema}.customers`;
const signups = `${schema}.signups`;
const accounts = `${schema}.accounts`;
/** A table with a transform and no personal columns: its parked and dead-lettered cards are sealed with the table's parking key. */
const payments = `${schema}.payments`;
const personal = { subject: "customer_id", columns: ["email"] };
/** `accountsMax`: the accounts table's halt check's max (raised for the restart that releases it). */
function governanceOf(accountsMax: number) {
  return {
    tables: {
      [customers]: { personal, checks: [{ check: "range", column: "amount", min: 0, max: 1000, action: "halt" }] },
      [signups]: { personal, checks: [{ check: "regex", column: "code", pattern: "^[A-Z]+$", action: "dead-letter" }] },
      [accounts]: { personal, checks: [{ check: "range", column: "amount", min: 0, max: accountsMax, action: "halt" }] },
      [payments]: {
        transforms: { card: { kind: "mask", keep_last: 4 } },
        checks: [
          { check: "range", column: "amount", min: 0, max: accountsMax, action: "halt" },
          { check: "regex", column: "code", pattern: "^[A-Z]+$", action: "dead-letter" },
        ],
      },
    },
  };
}
const governance = governanceOf(1000);
function config(accountsMax: number): Record<string, unknown> {
  return {
    name: deployment,
    personal_data: { master_key_file: masterKeyFile },
    sources: [pgSourceConfig(source, [`${schema}.*`], { governance: governanceOf(accountsMax) })],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "duck", path: join(dir, "wh.duckdb"), batch: { max_wait: "50ms" } }],
  };
}
const parkingTopic = `${deployment}.sluice.halted.${source}`;
const deadLetterTopic = `${deployment}.dlq.${source}`;
/** Every personal value written below: none may be in the topic log's files, at any time. */
const CLEAR = ["ann@halt.example", "bob@halt.example", "ann.two@halt.example", "nobody@halt.example", "eve@dlq.example", "dan@dlq.example", "nobody@dlq.example", "fay@restart.example", "gus@restart.example", "4111222233334444", "5500666677778888"];

let client: pg.Client;
let daemon: SluiceDaemon;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".customers (id int PRIMARY KEY, customer_id int, email text, amount int)`);
  await client.query(`CREATE TABLE "${schema}".signups (id int PRIMARY KEY, customer_id int, email text, code text)`);
  await client.query(`CREATE TABLE "${schema}".accounts (id int PRIMARY KEY, customer_id int, email text, amount int)`);
  await client.query(`CREATE TABLE "${schema}".payments (id int PRIMARY KEY, card text, amount int, code text)`);
  await client.query(`CREATE TABLE "${schema}".marks (id int PRIMARY KEY)`);
  writeFileSync(masterKeyFile, `${randomBytes(32).toString("hex")}\n`);
  daemon = await startReady(dir, config(1000), "run");
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}` }).catch(() => undefined);
  await client.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`).catch(() => undefined);
  await client?.end();
  removeDir(dir);
});

/** The topic log's files as bytes. */
function logBytes(): string {
  return ["log.db", "log.db-wal"]
    .filter((f) => existsSync(join(dir, f)))
    .map((f) => readFileSync(join(dir, f)).toString("latin1"))
    .join("");
}

function assertNoClearValue(when: string): void {
  const bytes = logBytes();
  for (const clear of CLEAR) assert.ok(!bytes.includes(clear), `${when}: clear personal value ${clear} is in the topic log`);
  const log = readFileSync(daemon.logFile, "utf8");
  for (const clear of CLEAR) assert.ok(!log.includes(clear), `${when}: clear personal value ${clear} is in the daemon's log`);
}

/** Commits a row of the marks table and waits for its capture: every change committed before it is captured (and parked or dead-lettered). */
async function capturedSoFar(id: number): Promise<void> {
  const metric = () => daemon.metric("sluice_changes_captured_total", { table: `${schema}.marks` });
  const before = await metric();
  await client.query(`INSERT INTO "${schema}".marks VALUES (${id})`);
  await waitFor(`marks row ${id} captured`, async () => (await metric()) > before, { daemon, timeoutMs: 30_000 });
}

async function duckRows(table: string, column = "email"): Promise<{ id: number; email: string | null }[] | null> {
  const response = await fetch(`${daemon.url}/sinks/duck/query`, { method: "POST", body: `SELECT id, ${column} AS email FROM "${schema}_${table}" ORDER BY id`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return null;
  return ((await response.json()) as { rows: { id: unknown; email: unknown }[] }).rows.map((r) => ({ id: Number(r.id), email: r.email === null ? null : String(r.email) }));
}

async function forget(subject: string): Promise<void> {
  const run = await runSluice(["forget", "-c", daemon.configFile, "--source", source, "--subject", subject, "--execute"]);
  assert.equal(run.code, 0, run.stderr + run.stdout);
}

test("a change parked by a halt check keeps its personal values sealed; after forget, the release re-publishes that subject's as null and another subject's intact", { timeout: 60_000 }, async () => {
  // Row 1 (subject 101) fails the halt check: the table halts, rows 2-4 are parked behind it.
  await client.query(`INSERT INTO "${schema}".customers VALUES (1, 101, 'ann@halt.example', 5000)`);
  await client.query(`INSERT INTO "${schema}".customers VALUES (2, 202, 'bob@halt.example', 10)`);
  await client.query(`INSERT INTO "${schema}".customers VALUES (3, 101, 'ann.two@halt.example', 20)`);
  await client.query(`INSERT INTO "${schema}".customers VALUES (4, NULL, 'nobody@halt.example', 30)`);
  await capturedSoFar(1);
  const halted = async () => ((await daemon.status()).sources as SourceStatus[])[0]?.halted.filter((h) => h.table === customers) ?? [];
  assert.equal((await halted()).length, 1, "the customers table is halted at capture");
  assertNoClearValue("parked");
  assert.ok(logBytes().includes("sluice-enc:v2:"), "the parked values are in the topic log sealed");

  await forget("101");
  const skip = await runSluice(["halted", "-c", daemon.configFile, "skip", "--source", source, "--table", customers, "--execute"]);
  assert.equal(skip.code, 0, skip.stderr + skip.stdout);
  assert.match(skip.stdout, /re-published 3 parked change\(s\); the table is captured again/, skip.stdout);
  let last: unknown;
  await waitFor(
    "the released customers in DuckDB: subject 101's email erased, 202's intact, the subjectless row's null",
    async () => {
      last = await duckRows("customers");
      return JSON.stringify(last) === JSON.stringify([{ id: 2, email: "bob@halt.example" }, { id: 3, email: null }, { id: 4, email: null }]);
    },
    { daemon, timeoutMs: 30_000, lastSeen: () => last },
  );
  assertNoClearValue("released");
});

test("a change sent to the dead-letter topic by a check keeps its personal values sealed (or null without a subject); after forget they open to null, another subject's to its value", { timeout: 60_000 }, async () => {
  await client.query(`INSERT INTO "${schema}".signups VALUES (1, 501, 'eve@dlq.example', 'bad code')`);
  await client.query(`INSERT INTO "${schema}".signups VALUES (2, 602, 'dan@dlq.example', 'bad!')`);
  await client.query(`INSERT INTO "${schema}".signups VALUES (3, NULL, 'nobody@dlq.example', 'no')`);
  await client.query(`INSERT INTO "${schema}".signups VALUES (4, 602, 'dan@dlq.example', 'OK')`);
  await capturedSoFar(2);
  assertNoClearValue("dead-lettered");
  await forget("501");
  await waitFor("the accepted signup in DuckDB", async () => JSON.stringify(await duckRows("signups")) === JSON.stringify([{ id: 4, email: "dan@dlq.example" }]), { daemon, timeoutMs: 30_000 });
  await daemon.stop();
  assertNoClearValue("stopped");

  // What a reader of the topics gets, with the deployment's master key (the daemon stopped: the embedded log is free).
  const { openTopicLog } = await import("../../connectors/topics/open.ts");
  const { createLogger } = await import("../../runtime/logger.ts");
  const { MasterKey, SubjectKeyStore, subjectKeyTopic } = await import("../../daemon/governance/subject-keys.ts");
  const { ParkedPersonalData, SEALED_HEADER, NULLED_HEADER } = await import("../../daemon/governance/parked-personal.ts");
  const { deserializeEventBytes } = await import("../../daemon/event-json.ts");
  const records = await readEmbeddedTopics(join(dir, "log.db"), [deadLetterTopic, parkingTopic]);
  const log = await openTopicLog(
    { kind: "embedded", path: join(dir, "log.db"), partitions: 1, retention: { cleanup_policy: "compact", max_age: 0, tombstones: 86_400_000, min_compaction_lag: 0 }, max_record_bytes: 16 * 2 ** 20 },
    "reader",
    createLogger("silent"),
  );
  try {
    const store = await SubjectKeyStore.open(log, subjectKeyTopic(deployment), MasterKey.fromFile(masterKeyFile), { create: false });
    const reader = new ParkedPersonalData({ name: source, governance } as never, async () => store);
    const opened = async (topic: string) => {
      const out: { id: number; email: unknown; sealed: string | undefined; nulled: string | undefined }[] = [];
      for (const record of records.filter((r) => r.topic === topic && r.value !== null)) {
        const headers = Object.fromEntries(Object.entries(record.headers).map(([k, v]) => [k, Buffer.from(v)]));
        const event = await reader.open(deserializeEventBytes(record.value!), headers);
        out.push({ id: Number(event.key["id"]), email: event.after?.["email"] ?? null, sealed: record.headers[SEALED_HEADER], nulled: record.headers[NULLED_HEADER] });
      }
      return out;
    };
    const dead = await opened(deadLetterTopic);
    assert.deepEqual(
      dead.map(({ id, email }) => ({ id, email })),
      [
        { id: 1, email: null },
        { id: 2, email: "dan@dlq.example" },
        { id: 3, email: null },
      ],
      "subject 501 forgotten: null; 602: its value; no subject: never written",
    );
    assert.deepEqual(
      dead.map((d) => d.sealed),
      ['["email"]', '["email"]', undefined],
    );
    assert.match(dead[2]!.nulled ?? "", /^email: the row has no subject \(customer_id is null\)/);
    // The parking topic of the first test: subject 101 forgotten, 202 kept, the subjectless row nulled.
    const parked = await opened(parkingTopic);
    assert.deepEqual(
      parked.map(({ id, email }) => ({ id, email })),
      [
        { id: 1, email: null },
        { id: 2, email: "bob@halt.example" },
        { id: 3, email: null },
        { id: 4, email: null },
      ],
    );
    assert.match(parked[3]!.nulled ?? "", /^email: the row has no subject/);
    await store.close();
  } finally {
    await log.close();
  }
});

test("parked changes re-published by a restart whose check accepts them (the retry path): a subject forgotten meanwhile gets null, another its value; a table with a transform and no personal columns parks and dead-letters it sealed, and the release masks it", { timeout: 60_000 }, async () => {
  await daemon.stop();
  daemon = await startReady(dir, config(1000), "run2");
  await client.query(`INSERT INTO "${schema}".accounts VALUES (1, 701, 'fay@restart.example', 5000)`);
  await client.query(`INSERT INTO "${schema}".accounts VALUES (2, 802, 'gus@restart.example', 6000)`);
  // payments: a card failing the dead-letter check, then one failing the halt check (the table halts, the change is parked).
  await client.query(`INSERT INTO "${schema}".payments VALUES (2, '5500666677778888', 10, 'bad!')`);
  await client.query(`INSERT INTO "${schema}".payments VALUES (1, '4111222233334444', 5000, 'OK')`);
  await capturedSoFar(3);
  assertNoClearValue("parked before the restart");
  const letters = await runSluice(["dead-letters", "-c", daemon.configFile, "--source", source, "--table", payments, "--values"]);
  assert.equal(letters.code, 0, letters.stderr + letters.stdout);
  assert.match(letters.stdout, /after: \{"id":2,"card":"sluice-enc:v2:[^"]+","amount":10,"code":"bad!"\}/, letters.stdout);
  assert.match(letters.stdout, /personal: sealed with a parking key: card: the table has no personal columns.*the table's parking key, no data subject's/, letters.stdout);
  await forget("701");
  await daemon.stop();
  daemon = await startReady(dir, config(100_000), "run3");
  let last: unknown;
  await waitFor(
    "the accounts re-published at start in DuckDB: 701's email erased, 802's intact",
    async () => {
      last = await duckRows("accounts");
      return JSON.stringify(last) === JSON.stringify([{ id: 1, email: null }, { id: 2, email: "gus@restart.example" }]);
    },
    { daemon, timeoutMs: 30_000, lastSeen: () => last },
  );
  await waitFor(
    "the payment re-published at start in DuckDB, masked as at capture (the dead-lettered one not published)",
    async () => {
      last = await duckRows("payments", "card");
      return JSON.stringify(last) === JSON.stringify([{ id: 1, email: "************4444" }]);
    },
    { daemon, timeoutMs: 30_000, lastSeen: () => last },
  );
  assertNoClearValue("re-published");
  await daemon.stop();
});
