/**
 * Capture with the least privileges docs/postgres.md lists: a role with only LOGIN REPLICATION,
 * USAGE on the schema, SELECT on the captured tables and a publication an administrator made
 * (owned by the role). Each missing grant is a permanent PG_PRIVILEGE_MISSING that names the grant,
 * the object and the statement that fixes it.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import type pg from "pg";
import type { PostgresSourceConfig } from "../../config/schema.ts";
import { adminClient, byId, cleanUp, connectError, newSource, randomName, readUntil, snapshotFinished, sourceConfig } from "./int-test-support.ts";

const schema = randomName("lp");
const role = randomName("capture");
const password = "least-privilege-secret";
const publication = randomName("pub");
let admin: pg.Client;
const configs: PostgresSourceConfig[] = [];

function roleConfig(overrides: Partial<PostgresSourceConfig> = {}): PostgresSourceConfig {
  const config = sourceConfig({
    tables: [`${schema}.*`],
    user: role,
    password,
    publication,
    create_publication: false,
    heartbeat_interval: 200,
    ...overrides,
  });
  configs.push(config);
  return config;
}

before(async () => {
  admin = await adminClient();
  await admin.query(`CREATE SCHEMA "${schema}"`);
  await admin.query(`CREATE TABLE "${schema}".accounts (id int PRIMARY KEY, owner text NOT NULL)`);
  await admin.query(`CREATE TABLE "${schema}".orders (id int PRIMARY KEY, total numeric NOT NULL)`);
  await admin.query(`INSERT INTO "${schema}".accounts SELECT i, 'owner ' || i FROM generate_series(1, 10) i`);
  await admin.query(`INSERT INTO "${schema}".orders SELECT i, i * 2 FROM generate_series(1, 5) i`);
  // Exactly the grants of docs/postgres.md.
  await admin.query(`CREATE ROLE "${role}" LOGIN REPLICATION PASSWORD '${password}'`);
  await admin.query(`GRANT USAGE ON SCHEMA "${schema}" TO "${role}"`);
  await admin.query(`GRANT SELECT ON "${schema}".accounts, "${schema}".orders TO "${role}"`);
  await admin.query(`CREATE PUBLICATION "${publication}" FOR TABLE "${schema}".accounts, "${schema}".orders`);
  await admin.query(`ALTER PUBLICATION "${publication}" OWNER TO "${role}"`);
});

after(async () => {
  for (const config of configs) await cleanUp(admin, config);
  await admin.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  await admin.query(`DROP OWNED BY "${role}"`).catch(() => undefined);
  await admin.query(`DROP ROLE IF EXISTS "${role}"`);
  await admin.end();
});

test("captures (snapshot, stream, heartbeat) with only REPLICATION, USAGE, SELECT and an administrator's publication", async () => {
  const config = roleConfig();
  const source = newSource(config);
  try {
    await source.connect(null, AbortSignal.timeout(30_000));
    const snapshot = await readUntil(source, snapshotFinished);
    assert.equal(snapshot.events.filter((e) => e.op === "r").length, 15);
    await admin.query(`INSERT INTO "${schema}".accounts VALUES (100, 'streamed')`);
    await admin.query(`UPDATE "${schema}".orders SET total = 99 WHERE id = 1`);
    const streamed = await readUntil(source, (c) => byId(c.events, 100) !== undefined && c.events.some((e) => e.op === "u"));
    assert.equal(byId(streamed.events, 100, "c")?.after?.["owner"], "streamed");
    // Heartbeats (pg_logical_emit_message) work for a REPLICATION role: a position arrives without any captured change.
    const before = streamed.batches.at(-1)!.checkpoint.position.commit;
    const quiet = await readUntil(source, (c) => c.batches.some((b) => b.checkpoint.position.commit > before));
    assert.equal(quiet.events.length, 0);
  } finally {
    await source.close();
  }
});

test("without SELECT on a captured table: PG_PRIVILEGE_MISSING naming the table and the GRANT", async () => {
  await admin.query(`REVOKE SELECT ON "${schema}".orders FROM "${role}"`);
  try {
    const error = await connectError(roleConfig());
    assert.equal(error.code, "PG_PRIVILEGE_MISSING");
    assert.equal(error.retriable, false);
    assert.equal(error.context["grant"], "SELECT");
    assert.ok(error.message.includes(`GRANT SELECT ON "${schema}"."orders" TO "${role}"`), error.message);
    assert.ok(!error.message.includes("accounts"), error.message);
  } finally {
    await admin.query(`GRANT SELECT ON "${schema}".orders TO "${role}"`);
  }
});

test("without USAGE on the schema: PG_PRIVILEGE_MISSING naming the schema", async () => {
  await admin.query(`REVOKE USAGE ON SCHEMA "${schema}" FROM "${role}"`);
  try {
    const error = await connectError(roleConfig());
    assert.equal(error.code, "PG_PRIVILEGE_MISSING");
    assert.ok(error.message.includes(`GRANT USAGE ON SCHEMA "${schema}" TO "${role}"`), error.message);
  } finally {
    await admin.query(`GRANT USAGE ON SCHEMA "${schema}" TO "${role}"`);
  }
});

test("without the REPLICATION attribute: PG_PRIVILEGE_MISSING naming it", async () => {
  await admin.query(`ALTER ROLE "${role}" NOREPLICATION`);
  try {
    const error = await connectError(roleConfig());
    assert.equal(error.code, "PG_PRIVILEGE_MISSING");
    assert.equal(error.retriable, false);
    assert.ok(error.message.includes(`ALTER ROLE "${role}" REPLICATION`), error.message);
  } finally {
    await admin.query(`ALTER ROLE "${role}" REPLICATION`);
  }
});

test("creating its own publication without owning the tables: PG_PRIVILEGE_MISSING with the statement for an administrator", async () => {
  const own = randomName("pub");
  const error = await connectError(roleConfig({ publication: own, create_publication: true }));
  assert.equal(error.code, "PG_PRIVILEGE_MISSING");
  assert.equal(error.retriable, false);
  assert.match(error.message, /must be owner of table|permission denied for database/);
  assert.ok(error.message.includes(`CREATE PUBLICATION "${own}" FOR TABLE`), error.message);
});
