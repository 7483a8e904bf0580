/**
 * End to end (issue 13, item 2): the real daemon's `POST /sinks/<duckdb sink>/query` can only read
 * the sink. Every attack reported against it — a DELETE behind a WITH, a row forged at the highest
 * version, files read with read_text/read_csv, directories listed with glob, SELECT * FROM
 * range(50000000), a 300 MiB request body — is refused or bounded, the sink's data (row count and
 * highest version) is unchanged, and the daemon keeps capturing. `sluice query` refuses the same,
 * through the daemon and (with the daemon stopped) on the file itself.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_query");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("query");
const secret = join(dir, "secret.csv");
const MAX_ROWS = 5_000;
const view = `main."${schema}_items"`;
const physical = `_sluice."${schema}_items__v1"`;
const MAX_VERSION = "18446744073709551615";
let client: pg.Client;

const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" }, query: { max_rows: MAX_ROWS, timeout: "1s" } }],
};

before(async () => {
  writeFileSync(secret, "api_token\ns3cr3t-value\n");
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, note text)`);
  await client.query(`INSERT INTO "${schema}".items SELECT g, 'note ' || g FROM generate_series(1, 20) g`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

interface Answer {
  status: number;
  body: { rows?: Record<string, unknown>[]; truncated?: string | null; error?: string; code?: string };
}

async function post(daemon: SluiceDaemon, sql: string): Promise<Answer> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(60_000) });
  return { status: response.status, body: (await response.json()) as Answer["body"] };
}

async function rows(daemon: SluiceDaemon, sql: string): Promise<Record<string, unknown>[]> {
  const answer = await post(daemon, sql);
  assert.equal(answer.status, 200, `${sql}: ${JSON.stringify(answer.body)}`);
  return answer.body.rows ?? [];
}

/** What the attacks must leave alone: rows, tombstones and the highest version of the sink's table. */
async function sinkState(daemon: SluiceDaemon): Promise<Record<string, unknown>> {
  return (await rows(daemon, `SELECT count(*)::INTEGER AS n, max(_sluice_version)::VARCHAR AS max_version, string_agg(note, ',' ORDER BY id) AS notes FROM ${physical}`))[0]!;
}

function rssBytes(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("VmRSS:"))!;
  return Number(/(\d+)/.exec(line)![1]) * 1024;
}

/** Announces a `declared`-byte body but sends only `sent` bytes of it; resolves with the raw answer. */
function postDeclared(daemon: SluiceDaemon, declared: number, sent: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(daemon.port, "127.0.0.1", () => {
      socket.write(`POST /sinks/warehouse/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\nContent-Length: ${declared}\r\n\r\n`);
      socket.write(`SELECT 1 -- ${"x".repeat(sent)}`);
    });
    let answer = "";
    socket.setTimeout(30_000, () => socket.destroy(new Error(`no answer to a ${declared}-byte body after its first ${sent} bytes`)));
    socket.on("data", (data: Buffer) => (answer += data.toString("utf8")));
    socket.on("close", () => resolve(answer));
    socket.on("error", reject);
  });
}

test("the query endpoint refuses every reported attack, bounds what it answers, and leaves the sink's data unchanged", { timeout: 240_000 }, async (t) => {
  const daemon = await SluiceDaemon.start(dir, config, "daemon");
  await waitFor("the 20 rows in DuckDB", async () => (await post(daemon, `SELECT count(*)::INTEGER AS n FROM ${view}`)).body.rows?.[0]?.["n"] === 20, { daemon, timeoutMs: 60_000 });
  await client.query(`DELETE FROM "${schema}".items WHERE id = 20`);
  await waitFor("the delete in DuckDB", async () => (await post(daemon, `SELECT count(*)::INTEGER AS n FROM ${view}`)).body.rows?.[0]?.["n"] === 19, { daemon, timeoutMs: 30_000 });
  const before = await sinkState(daemon);
  t.diagnostic(`sink before: ${JSON.stringify(before)}`);
  assert.equal(before["n"], 20, "19 rows and a tombstone");

  const writes: readonly (readonly [string, RegExp])[] = [
    [`WITH x AS (SELECT 1) DELETE FROM ${physical}`, /the query is a DELETE statement/],
    [`WITH x AS (SELECT 1) DELETE FROM ${view}`, /the query is a DELETE statement|not a SELECT statement/],
    [`INSERT INTO ${physical} VALUES (1000, 'forged', ${MAX_VERSION}, false)`, /the query is an? INSERT statement/],
    [`INSERT INTO ${physical} VALUES (1, 'forged', ${MAX_VERSION}, false) ON CONFLICT (id) DO UPDATE SET note = excluded.note, _sluice_version = excluded._sluice_version`, /an? INSERT statement/],
    [`UPDATE ${physical} SET _sluice_version = ${MAX_VERSION}, note = 'forged' WHERE id = 2`, /an? UPDATE statement/],
    [`SELECT 1; DELETE FROM ${physical}`, /2 statements \(SELECT, DELETE\)/],
    [`COPY ${physical} TO '${join(dir, "out.csv")}'`, /a COPY statement|not a SELECT statement/],
    [`ATTACH '${join(dir, "other.duckdb")}' AS other`, /ATTACH statement|not a SELECT statement/],
    ["SET enable_external_access = true", /SET statement/],
    ["INSTALL httpfs", /statement/],
    ["CALL checkpoint()", /a CALL statement/],
    ["SELECT * FROM checkpoint()", /calls checkpoint\(\)/],
    [`SELECT * FROM query('DELETE FROM ${physical.replaceAll("'", "''")}')`, /calls query\(\)/],
    [`EXPLAIN ANALYZE DELETE FROM ${physical}`, /an? EXPLAIN statement/],
  ];
  for (const [sql, refusal] of writes) {
    const answer = await post(daemon, sql);
    assert.equal(answer.status, 400, sql);
    assert.equal(answer.body.code, "QUERY_NOT_READ_ONLY", `${sql}: ${answer.body.error}`);
    assert.match(answer.body.error ?? "", refusal, sql);
    assert.match(answer.body.error ?? "", /only a single SELECT statement is allowed/, sql);
  }

  for (const sql of ["SELECT * FROM read_text('/etc/passwd')", `SELECT * FROM read_csv('${secret}')`, `SELECT * FROM read_text('${secret}')`, "SELECT * FROM glob('/etc/*')", `SELECT * FROM glob('${dir}/*')`]) {
    const answer = await post(daemon, sql);
    assert.equal(answer.status, 400, sql);
    assert.equal(answer.body.code, "QUERY_FAILED", sql);
    assert.match(answer.body.error ?? "", /queries cannot read files, directories or extensions.*file system operations are disabled/s, sql);
    assert.doesNotMatch(JSON.stringify(answer.body), /s3cr3t-value|root:x:/, sql);
  }

  // range(50000000): cut at query.max_rows, said in the answer; the daemon does not grow with it.
  const rssBefore = rssBytes(daemon.child.pid!);
  const range = await post(daemon, "SELECT * FROM range(50000000)");
  assert.equal(range.status, 200);
  assert.equal(range.body.rows?.length, MAX_ROWS);
  assert.match(range.body.truncated ?? "", new RegExp(`cut at ${MAX_ROWS} rows \\(the sink's query.max_rows\\)`));

  // A 300 MiB body: 413 once the head arrives, the connection closed after 1 MiB of it.
  const declared = 300 * 2 ** 20;
  const tooLarge = await postDeclared(daemon, declared, 2 ** 20);
  assert.match(tooLarge, /^HTTP\/1\.1 413 /);
  assert.match(tooLarge, /is larger than the 4194304 bytes this server takes \(http.max_body_bytes\)/);
  const grown = rssBytes(daemon.child.pid!) - rssBefore;
  t.diagnostic(`daemon RSS grew by ${(grown / 2 ** 20).toFixed(1)} MiB over the range query and the 300 MiB body`);
  assert.ok(grown < 256 * 2 ** 20, `the daemon grew by ${grown} bytes`);

  // A query running past query.timeout is interrupted.
  const slow = await post(daemon, "SELECT sum(hash(a.range + b.range)) AS s FROM range(100000000) a, range(100000000) b");
  assert.equal(slow.status, 504);
  assert.equal(slow.body.code, "QUERY_TIMEOUT");
  assert.match(slow.body.error ?? "", /ran past 1s \(the sink's query.timeout\) and was interrupted/);

  // The data is as it was; real changes still arrive and win over nothing forged.
  assert.deepEqual(await sinkState(daemon), before);
  await client.query(`UPDATE "${schema}".items SET note = 'changed' WHERE id = 1`);
  await waitFor("the update in DuckDB", async () => (await rows(daemon, `SELECT note FROM ${view} WHERE id = 1`))[0]?.["note"] === "changed", { daemon, timeoutMs: 30_000 });

  // sluice query through the daemon: the same refusals, and the cut said on standard error.
  const cliDelete = await runSluice(["query", "-c", daemon.configFile, `WITH x AS (SELECT 1) DELETE FROM ${physical}`]);
  assert.equal(cliDelete.code, 1, cliDelete.stderr);
  assert.match(cliDelete.stderr, /the query is a DELETE statement: only a single SELECT statement is allowed/);
  const cliRange = await runSluice(["query", "-c", daemon.configFile, "--json", "SELECT * FROM range(50000000)"]);
  assert.equal(cliRange.code, 0, cliRange.stderr);
  assert.equal((JSON.parse(cliRange.stdout) as unknown[]).length, MAX_ROWS);
  assert.match(cliRange.stderr, /cut at 5000 rows/);
  assert.equal(daemon.exitStatus, null);
  assert.equal(daemon.fatalLine, null);
  const after = await sinkState(daemon);
  await daemon.stop();

  // sluice query with no daemon: the file itself, with the same protections.
  const offlineRead = await runSluice(["query", "-c", daemon.configFile, `SELECT * FROM read_csv('${secret}')`]);
  assert.equal(offlineRead.code, 1);
  assert.match(offlineRead.stderr, /file system operations are disabled/);
  assert.doesNotMatch(offlineRead.stdout + offlineRead.stderr, /s3cr3t-value/);
  const offlineDelete = await runSluice(["query", "-c", daemon.configFile, `WITH x AS (SELECT 1) DELETE FROM ${physical}`]);
  assert.equal(offlineDelete.code, 1);
  assert.match(offlineDelete.stderr, /only a single SELECT statement is allowed/);
  const offline = await runSluice(["query", "-c", daemon.configFile, "--json", `SELECT count(*)::INTEGER AS n, max(_sluice_version)::VARCHAR AS max_version FROM ${physical}`]);
  assert.equal(offline.code, 0, offline.stderr);
  assert.deepEqual(JSON.parse(offline.stdout), [{ n: after["n"], max_version: after["max_version"] }]);
});
