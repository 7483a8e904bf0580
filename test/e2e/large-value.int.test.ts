/**
 * End to end: large values go from PostgreSQL through the embedded log into DuckDB byte for byte:
 * a TOASTed text of 3 MiB (with multi-byte characters) and a bytea of 5 MiB, one change of 8 MiB.
 * Such a change reaches capture as one replication message put together from many socket reads,
 * is queued and encoded without copies where it can be (connectors/postgres/wal-buffer.ts,
 * schema-registry/avro-writer.ts, over 4 MiB): a slip there (a buffer handed on while still
 * written, a slice off by a byte, a character cut at a boundary) shows as a value that differs. A
 * bytea of 4 MiB or more stopped the source before (its hex text overflowed the stack of the
 * regular expression that checked it). Compared by md5 on both sides, after an insert, an update
 * that leaves the large text unchanged (TOAST: the sink keeps its value) and an update of both.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, SluiceDaemon, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("e2e_large");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("large-value");
const MiB = 2 ** 20;
let client: pg.Client;

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".big (id int PRIMARY KEY, t text, b bytea, n int)`);
});

after(async () => {
  await killAllDaemons();
  await dropPostgres(client, names);
  await client.end();
  removeDir(dir);
});

/** About `bytes` bytes of UTF-8 text: random hex with two-, three- and four-byte characters between, so slices of it may cut a character. */
const largeText = (bytes: number) => `(SELECT string_agg(md5(random()::text || g::text) || 'é€😀', '') FROM generate_series(1, ${Math.floor(bytes / 41)}) g)`;
/** `bytes` random bytes. */
const largeBytes = (bytes: number) => `(SELECT decode(string_agg(md5(random()::text || g::text), ''), 'hex') FROM generate_series(1, ${bytes / 16}) g)`;

async function query(daemon: SluiceDaemon, sql: string): Promise<Record<string, unknown>[]> {
  const response = await fetch(`${daemon.url}/sinks/warehouse/query`, { method: "POST", body: sql, signal: AbortSignal.timeout(20_000) });
  if (response.status !== 200) throw new Error(`query answered ${response.status}: ${await response.text()}`);
  return ((await response.json()) as { rows: Record<string, unknown>[] }).rows;
}

type Digest = { id: number; t: string | null; b: string | null; tBytes: number; bBytes: number; n: number };

async function inPostgres(): Promise<Digest[]> {
  const { rows } = await client.query<Record<keyof Digest, string>>(`SELECT id, md5(t) AS t, md5(b) AS b, octet_length(t) AS "tBytes", octet_length(b) AS "bBytes", n FROM "${schema}".big ORDER BY id`);
  return rows.map((r) => ({ id: Number(r.id), t: r.t, b: r.b, tBytes: Number(r.tBytes), bBytes: Number(r.bBytes), n: Number(r.n) }));
}

async function inDuckDb(daemon: SluiceDaemon): Promise<Digest[]> {
  const rows = await query(daemon, `SELECT id::INT AS id, md5(t) AS t, md5(b) AS b, octet_length(encode(t))::INT AS "tBytes", octet_length(b)::INT AS "bBytes", n::INT AS n FROM "${schema}_big" ORDER BY id`);
  return rows as Digest[];
}

test("a 3 MiB text and a 5 MiB bytea arrive in DuckDB byte for byte, through an insert, an update leaving the text unchanged (TOAST) and an update of both", { timeout: 120_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, {
    name: deployment,
    sources: [pgSourceConfig(source, [`${schema}.*`])],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
  });
  const arrived = async (expected: Digest[]) => {
    const seen = await waitFor("the rows in DuckDB as in PostgreSQL", async () => {
      const rows = await inDuckDb(daemon).catch(() => []);
      return rows.length === expected.length && rows.every((r, i) => r.n === expected[i]!.n) ? rows : undefined;
    }, { daemon, timeoutMs: 60_000 });
    assert.deepEqual(seen, expected);
  };

  await client.query(`INSERT INTO "${schema}".big VALUES (1, ${largeText(3 * MiB)}, ${largeBytes(5 * MiB)}, 1), (2, 'small', '\\x00ff', 1)`);
  const inserted = await inPostgres();
  assert.ok(inserted[0]!.tBytes > 2 * MiB && inserted[0]!.bBytes === 5 * MiB);
  await arrived(inserted);

  // The text is left alone: pgoutput sends it as unchanged TOAST and the sink keeps what it has.
  await client.query(`UPDATE "${schema}".big SET b = ${largeBytes(5 * MiB)}, n = 2 WHERE id = 1`);
  await client.query(`UPDATE "${schema}".big SET n = 2 WHERE id = 2`);
  const updated = await inPostgres();
  assert.equal(updated[0]!.t, inserted[0]!.t);
  assert.notEqual(updated[0]!.b, inserted[0]!.b);
  await arrived(updated);

  await client.query(`UPDATE "${schema}".big SET t = ${largeText(3 * MiB)}, b = ${largeBytes(5 * MiB)}, n = 3 WHERE id = 1`);
  await client.query(`UPDATE "${schema}".big SET n = 3 WHERE id = 2`);
  const replaced = await inPostgres();
  assert.notEqual(replaced[0]!.t, updated[0]!.t);
  await arrived(replaced);
  await daemon.stop();
});
