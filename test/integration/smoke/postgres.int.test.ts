// PostgreSQL really works for change data capture: logical decoding through a replication slot
// (pgoutput, the plugin Sluice uses, and test_decoding) sees a committed change.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { postgres } from '../../services/ports.ts';

const suffix = randomBytes(5).toString('hex');

function connect(): pg.Client {
  return new pg.Client({
    host: postgres.host,
    port: postgres.port,
    user: postgres.user,
    password: postgres.password,
    database: postgres.database,
    connectionTimeoutMillis: 10_000,
  });
}

test('postgres: server settings for logical replication', async () => {
  const c = connect();
  await c.connect();
  try {
    const { rows } = await c.query<{ name: string; setting: string }>(
      `SELECT name, setting FROM pg_settings
        WHERE name IN ('wal_level', 'max_replication_slots', 'max_wal_senders', 'server_version_num')`,
    );
    const s = Object.fromEntries(rows.map((r) => [r.name, r.setting]));
    assert.equal(s.wal_level, 'logical');
    assert.ok(Number(s.max_replication_slots) >= 20, `max_replication_slots=${s.max_replication_slots}`);
    assert.ok(Number(s.max_wal_senders) >= 20, `max_wal_senders=${s.max_wal_senders}`);
    assert.ok(Number(s.server_version_num) >= 150000, `server_version_num=${s.server_version_num}`);
    const role = await c.query<{ rolsuper: boolean; rolreplication: boolean }>(
      'SELECT rolsuper, rolreplication FROM pg_roles WHERE rolname = current_user',
    );
    assert.deepEqual(role.rows[0], { rolsuper: true, rolreplication: true });
    const ext = await c.query("SELECT 1 FROM pg_available_extensions WHERE name = 'hstore'");
    assert.equal(ext.rowCount, 1, 'hstore extension is available');
  } finally {
    await c.end();
  }
});

test('postgres: pgoutput slot sees an insert', async () => {
  const table = `smoke_pgoutput_${suffix}`;
  const pub = `smoke_pub_${suffix}`;
  const slot = `smoke_slot_pgo_${suffix}`;
  const c = connect();
  await c.connect();
  try {
    await c.query(`CREATE TABLE ${table} (id int PRIMARY KEY, name text NOT NULL)`);
    await c.query(`CREATE PUBLICATION ${pub} FOR TABLE ${table}`);
    const created = await c.query<{ lsn: string }>(
      `SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')`,
      [slot],
    );
    assert.match(created.rows[0]!.lsn, /^[0-9A-F]+\/[0-9A-F]+$/);

    await c.query(`INSERT INTO ${table} (id, name) VALUES (1, 'hello-pgoutput-${suffix}')`);

    const { rows } = await c.query<{ lsn: string; data: Buffer }>(
      `SELECT lsn::text, data FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
         'proto_version', '1', 'publication_names', $2)`,
      [slot, pub],
    );
    const kinds = rows.map((r) => String.fromCharCode(r.data[0]!));
    // Begin, Relation, Insert, Commit
    assert.deepEqual(kinds, ['B', 'R', 'I', 'C']);
    const relation = rows[1]!.data.toString('latin1');
    assert.ok(relation.includes(table), 'relation message names the table');
    const insert = rows[2]!.data.toString('utf8');
    assert.ok(insert.includes(`hello-pgoutput-${suffix}`), 'insert message carries the new row');

    // consumed: a second read is empty
    const again = await c.query(
      `SELECT 1 FROM pg_logical_slot_get_binary_changes($1, NULL, NULL,
         'proto_version', '1', 'publication_names', $2)`,
      [slot, pub],
    );
    assert.equal(again.rowCount, 0);
  } finally {
    await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    await c.query(`DROP PUBLICATION IF EXISTS ${pub}`);
    await c.query(`DROP TABLE IF EXISTS ${table}`);
    await c.end();
  }
  const check = connect();
  await check.connect();
  try {
    const left = await check.query('SELECT 1 FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    assert.equal(left.rowCount, 0, 'slot dropped');
  } finally {
    await check.end();
  }
});

test('postgres: test_decoding slot sees update and delete with old keys', async () => {
  const table = `smoke_td_${suffix}`;
  const slot = `smoke_slot_td_${suffix}`;
  const c = connect();
  await c.connect();
  try {
    await c.query(`CREATE TABLE ${table} (id int PRIMARY KEY, name text NOT NULL)`);
    await c.query(`ALTER TABLE ${table} REPLICA IDENTITY FULL`);
    await c.query(`INSERT INTO ${table} VALUES (7, 'before')`);
    await c.query(`SELECT pg_create_logical_replication_slot($1, 'test_decoding')`, [slot]);
    await c.query(`UPDATE ${table} SET name = 'after' WHERE id = 7`);
    await c.query(`DELETE FROM ${table} WHERE id = 7`);
    const { rows } = await c.query<{ data: string }>(
      'SELECT data FROM pg_logical_slot_get_changes($1, NULL, NULL)',
      [slot],
    );
    // The slot decodes the whole server's WAL: tests running beside this one write other tables meanwhile.
    const lines = rows.map((r) => r.data).filter((d) => d.startsWith(`table public.${table}:`));
    assert.deepEqual(lines, [
      `table public.${table}: UPDATE: old-key: id[integer]:7 name[text]:'before' new-tuple: id[integer]:7 name[text]:'after'`,
      `table public.${table}: DELETE: id[integer]:7 name[text]:'after'`,
    ]);
  } finally {
    await c.query('SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1', [slot]);
    await c.query(`DROP TABLE IF EXISTS ${table}`);
    await c.end();
  }
});
