/**
 * Capture with the least privileges docs/mysql.md lists: a user with only REPLICATION SLAVE and
 * REPLICATION CLIENT on *.* and SELECT on the captured database (no RELOAD, no LOCK TABLES: MariaDB's
 * consistent snapshot needs no lock). Each missing grant is a permanent MYSQL_PRIVILEGE_MISSING that
 * names the grant, the object and the GRANT statement.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type { Connection } from "mysql2/promise";
import pino from "pino";
import type { MysqlSourceConfig } from "../../config/schema.ts";
import { adminConnection, connectError, dropDatabase, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const database = randomName("lp");
const user = randomName("capture");
const password = "least-privilege-secret";
let admin: Connection;

function userConfig(overrides: Partial<MysqlSourceConfig> = {}): MysqlSourceConfig {
  return sourceConfig({ tables: [`${database}.*`], user, password, ...overrides });
}

before(async () => {
  admin = await adminConnection(database);
  await admin.query("CREATE TABLE accounts (id INT PRIMARY KEY, owner VARCHAR(100) NOT NULL)");
  await admin.query("CREATE TABLE orders (id INT PRIMARY KEY, total DECIMAL(10,2) NOT NULL)");
  await admin.query("INSERT INTO accounts VALUES (1, 'a'), (2, 'b'), (3, 'c')");
  await admin.query("INSERT INTO orders VALUES (1, 10.50), (2, 20.00)");
  // Exactly the grants of docs/mysql.md.
  await admin.query(`CREATE USER '${user}'@'%' IDENTIFIED BY '${password}'`);
  await admin.query(`GRANT REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO '${user}'@'%'`);
  await admin.query(`GRANT SELECT ON \`${database}\`.* TO '${user}'@'%'`);
});

after(async () => {
  await admin.query(`DROP USER IF EXISTS '${user}'@'%'`);
  await dropDatabase(admin, database);
  await admin.end();
});

async function withRevoked(grant: string, on: string, body: () => Promise<void>): Promise<void> {
  await admin.query(`REVOKE ${grant} ON ${on} FROM '${user}'@'%'`);
  try {
    await body();
  } finally {
    await admin.query(`GRANT ${grant} ON ${on} TO '${user}'@'%'`);
  }
}

test("captures (snapshot and binlog) with only REPLICATION SLAVE, REPLICATION CLIENT and SELECT on the database", async () => {
  const source = newSource(userConfig());
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const snapshot = await readUntil(source, snapshotFinished);
    assert.equal(snapshot.events.filter((e) => e.op === "r").length, 5);
    await admin.query("INSERT INTO accounts VALUES (100, 'streamed')");
    await admin.query("UPDATE orders SET total = 99 WHERE id = 1");
    const streamed = await readUntil(source, (c) => c.events.some((e) => e.after?.["id"] === 100) && c.events.some((e) => e.op === "u"));
    assert.equal(streamed.events.find((e) => e.after?.["id"] === 100)?.after?.["owner"], "streamed");
  } finally {
    await source.close();
  }
});

test("with only SELECT on the database, the start warns of the keyless table alone, not of every table", async () => {
  // MariaDB's information_schema.TABLE_CONSTRAINTS shows no row to a user whose only privilege on a table is SELECT.
  await admin.query("CREATE TABLE keyless (v INT)");
  const warnings: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) });
  const source = newSource(userConfig(), { logger });
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const named = warnings.filter((w) => String(w["msg"]).startsWith("table has no primary key")).map((w) => w["table"]);
    assert.deepEqual(named, [`${database}.keyless`]);
  } finally {
    await source.close();
    await admin.query("DROP TABLE keyless");
  }
});

test("without SELECT on the captured database: MYSQL_PRIVILEGE_MISSING naming the database and the GRANT", async () => {
  await withRevoked("SELECT", `\`${database}\`.*`, async () => {
    const error = await connectError(userConfig());
    assert.equal(error.code, "MYSQL_PRIVILEGE_MISSING");
    assert.equal(error.retriable, false);
    assert.ok(error.message.includes(`GRANT SELECT ON \`${database}\`.* TO`), error.message);
  });
});

test("without SELECT on a table named in tables: MYSQL_PRIVILEGE_MISSING naming the table", async () => {
  await admin.query(`REVOKE SELECT ON \`${database}\`.* FROM '${user}'@'%'`);
  await admin.query(`GRANT SELECT ON \`${database}\`.accounts TO '${user}'@'%'`);
  try {
    const error = await connectError(userConfig({ tables: [`${database}.accounts`, `${database}.orders`] }));
    assert.equal(error.code, "MYSQL_PRIVILEGE_MISSING");
    assert.ok(error.message.includes(`GRANT SELECT ON \`${database}\`.\`orders\` TO`), error.message);
  } finally {
    await admin.query(`REVOKE SELECT ON \`${database}\`.accounts FROM '${user}'@'%'`);
    await admin.query(`GRANT SELECT ON \`${database}\`.* TO '${user}'@'%'`);
  }
});

test("SELECT granted table by table with a database.* pattern: the granted tables suffice, a visible table without SELECT is named", async () => {
  await admin.query(`REVOKE SELECT ON \`${database}\`.* FROM '${user}'@'%'`);
  await admin.query(`GRANT SELECT ON \`${database}\`.accounts TO '${user}'@'%'`);
  await admin.query(`GRANT SELECT ON \`${database}\`.orders TO '${user}'@'%'`);
  try {
    const source = newSource(userConfig());
    try {
      await source.connect(null, AbortSignal.timeout(30_000));
      const snapshot = await readUntil(source, snapshotFinished);
      assert.ok(snapshot.events.filter((e) => e.op === "r").length >= 5);
    } finally {
      await source.close();
    }
    await admin.query(`REVOKE SELECT ON \`${database}\`.orders FROM '${user}'@'%'`);
    await admin.query(`GRANT INSERT ON \`${database}\`.orders TO '${user}'@'%'`);
    const error = await connectError(userConfig());
    assert.equal(error.code, "MYSQL_PRIVILEGE_MISSING");
    assert.ok(error.message.includes(`GRANT SELECT ON \`${database}\`.\`orders\` TO`), error.message);
  } finally {
    await admin.query(`REVOKE ALL PRIVILEGES ON \`${database}\`.orders FROM '${user}'@'%'`).catch(() => undefined);
    await admin.query(`REVOKE SELECT ON \`${database}\`.accounts FROM '${user}'@'%'`);
    await admin.query(`GRANT SELECT ON \`${database}\`.* TO '${user}'@'%'`);
  }
});

test("without REPLICATION CLIENT: MYSQL_PRIVILEGE_MISSING naming it", async () => {
  await withRevoked("REPLICATION CLIENT", "*.*", async () => {
    const error = await connectError(userConfig());
    assert.equal(error.code, "MYSQL_PRIVILEGE_MISSING");
    assert.equal(error.retriable, false);
    assert.ok(error.message.includes("GRANT REPLICATION CLIENT ON *.* TO"), error.message);
  });
});

test("without REPLICATION SLAVE: MYSQL_PRIVILEGE_MISSING naming it, before any snapshot", async () => {
  await withRevoked("REPLICATION SLAVE", "*.*", async () => {
    const error = await connectError(userConfig());
    assert.equal(error.code, "MYSQL_PRIVILEGE_MISSING");
    assert.equal(error.retriable, false);
    assert.ok(error.message.includes("GRANT REPLICATION SLAVE ON *.* TO"), error.message);
  });
});

test("with only SELECT on the database, the start warns of a table whose foreign key cascades, whose cascaded changes the binlog does not hold", async () => {
  await admin.query("CREATE TABLE items (id INT PRIMARY KEY, account INT, FOREIGN KEY (account) REFERENCES accounts (id) ON DELETE CASCADE ON UPDATE SET NULL)");
  await admin.query("CREATE TABLE notes (id INT PRIMARY KEY, account INT, FOREIGN KEY (account) REFERENCES accounts (id))");
  const warnings: Record<string, unknown>[] = [];
  const logger = pino({ level: "warn" }, { write: (line: string) => void warnings.push(JSON.parse(line) as Record<string, unknown>) });
  const source = newSource(userConfig(), { logger });
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const named = warnings.filter((w) => String(w["msg"]).includes("MySQL and MariaDB do not log the changes")).map((w) => [w["table"], w["references"], w["actions"]]);
    assert.deepEqual(named, [[`${database}.items`, `${database}.accounts`, ["ON DELETE CASCADE", "ON UPDATE SET NULL"]]], "items named with its actions; notes (no action) not");
  } finally {
    await source.close();
    await admin.query("DROP TABLE items, notes");
  }
});
