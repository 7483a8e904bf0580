// ClickHouse really works from @clickhouse/client: create a MergeTree table, insert rows as
// JSONEachRow, read them back, drop the table.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createClient } from '@clickhouse/client';
import { clickhouse } from '../../services/ports.ts';

const suffix = randomBytes(5).toString('hex');

test('clickhouse: create, insert JSONEachRow, select, drop', { timeout: 60_000 }, async () => {
  const client = createClient({
    url: clickhouse.url,
    username: clickhouse.username,
    password: clickhouse.password,
    database: clickhouse.database,
    request_timeout: 30_000,
  });
  const table = `smoke_${suffix}`;
  try {
    const ping = await client.ping();
    assert.equal(ping.success, true, `ping: ${JSON.stringify(ping)}`);

    const version = await (await client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' })).json<{ v: string }>();
    assert.match(version[0]!.v, /^\d+\.\d+/);

    await client.command({
      query: `CREATE TABLE ${table} (id UInt64, name String, _version UInt64)
              ENGINE = MergeTree ORDER BY id`,
    });
    const rows = [
      { id: 1, name: `one-${suffix}`, _version: 10 },
      { id: 2, name: `two-${suffix}`, _version: 11 },
      { id: 3, name: 'three, with "quotes" and ünïcödé', _version: 12 },
    ];
    await client.insert({ table, values: rows, format: 'JSONEachRow' });

    const rs = await client.query({ query: `SELECT id, name, _version FROM ${table} ORDER BY id`, format: 'JSONEachRow' });
    const back = await rs.json<{ id: string | number; name: string; _version: string | number }>();
    // UInt64 comes back as a string in JSON formats (output_format_json_quote_64bit_integers)
    assert.deepEqual(
      back.map((r) => ({ id: Number(r.id), name: r.name, _version: Number(r._version) })),
      rows,
    );

    const count = await (await client.query({ query: `SELECT count() AS c FROM ${table} WHERE id >= 2`, format: 'JSONEachRow' })).json<{ c: string | number }>();
    assert.equal(Number(count[0]!.c), 2);
  } finally {
    await client.command({ query: `DROP TABLE IF EXISTS ${table}` }).catch(() => {});
    const left = await client
      .query({ query: `EXISTS TABLE ${table}`, format: 'TabSeparated' })
      .then((r) => r.text())
      .catch(() => 'error');
    await client.close();
    assert.equal(left.trim(), '0', 'table dropped');
  }
});
