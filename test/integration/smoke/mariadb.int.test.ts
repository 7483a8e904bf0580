// MariaDB really works for change data capture: row-based binlog with full images and
// metadata, GTIDs, and the binlog position moves when a row is written.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import mysql from 'mysql2/promise';
import type { Connection, RowDataPacket } from 'mysql2/promise';
import { mariadb } from '../../services/ports.ts';

const suffix = randomBytes(5).toString('hex');

async function connect(): Promise<Connection> {
  return mysql.createConnection({
    host: mariadb.host,
    port: mariadb.port,
    user: mariadb.user,
    password: mariadb.password,
    database: mariadb.database,
    connectTimeout: 10_000,
  });
}

async function binlogStatus(c: Connection): Promise<{ file: string; position: number }> {
  const [rows] = await c.query<RowDataPacket[]>('SHOW MASTER STATUS');
  assert.equal(rows.length, 1, 'SHOW MASTER STATUS returns a row (binlog is on)');
  const row = rows[0]!;
  assert.equal(typeof row.File, 'string');
  assert.match(row.File as string, /\.\d{6}$/);
  return { file: row.File as string, position: Number(row.Position) };
}

test('mariadb: binlog settings for change data capture', async () => {
  const c = await connect();
  try {
    const [rows] = await c.query<RowDataPacket[]>(
      `SELECT @@version AS version, @@log_bin AS log_bin, @@binlog_format AS binlog_format,
              @@binlog_row_image AS binlog_row_image, @@binlog_row_metadata AS binlog_row_metadata,
              @@server_id AS server_id, @@gtid_strict_mode AS gtid_strict_mode,
              @@log_slave_updates AS log_slave_updates, @@gtid_current_pos AS gtid_current_pos`,
    );
    const s = rows[0]!;
    assert.match(String(s.version), /^10\.11\..*MariaDB/);
    assert.equal(Number(s.log_bin), 1);
    assert.equal(s.binlog_format, 'ROW');
    assert.equal(s.binlog_row_image, 'FULL');
    assert.equal(s.binlog_row_metadata, 'FULL');
    assert.equal(Number(s.server_id), 1);
    assert.equal(Number(s.gtid_strict_mode), 1);
    assert.equal(Number(s.log_slave_updates), 1);
    assert.equal(typeof s.gtid_current_pos, 'string');

    const [grants] = await c.query<RowDataPacket[]>('SHOW GRANTS FOR CURRENT_USER()');
    const text = grants.map((g) => String(Object.values(g)[0])).join('\n');
    assert.match(text, /GRANT ALL PRIVILEGES ON \*\.\*/);
  } finally {
    await c.end();
  }
});

test('mariadb: an insert advances the binlog position and the GTID', async () => {
  const table = `smoke_${suffix}`;
  const c = await connect();
  try {
    await c.query(`CREATE TABLE ${table} (id INT PRIMARY KEY, name VARCHAR(64) NOT NULL) ENGINE=InnoDB`);
    const before = await binlogStatus(c);
    const [g1] = await c.query<RowDataPacket[]>('SELECT @@gtid_binlog_pos AS pos');

    await c.query(`INSERT INTO ${table} (id, name) VALUES (?, ?)`, [1, `row-${suffix}`]);

    const after = await binlogStatus(c);
    const [g2] = await c.query<RowDataPacket[]>('SELECT @@gtid_binlog_pos AS pos, @@gtid_current_pos AS cur');
    if (after.file === before.file) {
      assert.ok(after.position > before.position, `position ${before.position} -> ${after.position}`);
    } else {
      assert.ok(after.file > before.file, `binlog rotated ${before.file} -> ${after.file}`);
    }
    assert.notEqual(g2[0]!.pos, g1[0]!.pos, 'gtid_binlog_pos moved');
    assert.match(String(g2[0]!.pos), /^0-1-\d+$/, 'GTID domain 0, server 1');
    assert.equal(g2[0]!.cur, g2[0]!.pos);

    // the row event is in the binlog, written by this server
    const [events] = await c.query<RowDataPacket[]>(`SHOW BINLOG EVENTS IN ? FROM ?`, [
      after.file === before.file ? before.file : after.file,
      after.file === before.file ? before.position : 4,
    ]);
    const types = events.map((e) => String(e.Event_type));
    assert.ok(types.includes('Gtid'), `events: ${types.join(',')}`);
    assert.ok(types.includes('Table_map'), `events: ${types.join(',')}`);
    assert.ok(types.some((t) => t.startsWith('Write_rows')), `events: ${types.join(',')}`);
  } finally {
    await c.query(`DROP TABLE IF EXISTS ${table}`);
    await c.end();
  }
});
