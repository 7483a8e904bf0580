/**
 * End to end through the real daemon: a private TLS-only PostgreSQL (hostssl + scram-sha-256, a
 * CA made at test time), captured with verify-full by a least-privilege role (LOGIN REPLICATION,
 * USAGE, SELECT, a publication an administrator made) whose password comes from password_file,
 * into the embedded log and DuckDB. Then the same daemon with another CA: it stops at once with
 * PG_TLS_FAILED naming the server (exit 1), without retrying it as an outage, and the password
 * appears nowhere in what it printed.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { makeCa, startTlsPostgres } from "../services/tls.ts";
import type { TlsServer } from "../services/tls.ts";
import { freePort, killAllDaemons, randomName, removeDir, runSluice, SluiceDaemon, tempDir, waitCaughtUp } from "./helpers.ts";

const PASSWORD = "tls-e2e-Very-Distinct-Password-7731";
const dir = tempDir("source-tls");
let server: TlsServer;
let admin: pg.Client;

before(async () => {
  server = await startTlsPostgres();
  admin = new pg.Client({ host: server.host, port: server.port, user: server.admin.user, password: server.admin.password, database: "postgres", ssl: { ca: readFileSync(server.ca.caFile, "utf8") } });
  await admin.connect();
  await admin.query("CREATE SCHEMA shop");
  await admin.query("CREATE TABLE shop.orders (id int PRIMARY KEY, item text NOT NULL)");
  await admin.query("INSERT INTO shop.orders SELECT i, 'item ' || i FROM generate_series(1, 50) i");
  await admin.query(`CREATE ROLE capture LOGIN REPLICATION PASSWORD '${PASSWORD}'`);
  await admin.query("GRANT USAGE ON SCHEMA shop TO capture");
  await admin.query("GRANT SELECT ON shop.orders TO capture");
  await admin.query("CREATE PUBLICATION orders_pub FOR TABLE shop.orders");
  writeFileSync(join(dir, "pg-password"), `${PASSWORD}\n`);
});

after(async () => {
  await killAllDaemons();
  await admin?.end().catch(() => undefined);
  await server?.stop();
  removeDir(dir);
});

// One deployment for every test: they share one embedded log, whose checkpoints a renamed deployment may not resume (DEPLOYMENT_RENAMED).
const deployment = randomName("dep");

function config(caFile: string): Record<string, unknown> {
  return {
    name: deployment,
    sources: [
      {
        kind: "postgres",
        name: "shop",
        host: server.host,
        port: server.port,
        database: "postgres",
        user: "capture",
        password_file: join(dir, "pg-password"),
        tables: ["shop.*"],
        publication: "orders_pub",
        create_publication: false,
        heartbeat_interval: "1s",
        tls: { mode: "verify-full", ca_file: caFile },
      },
    ],
    topics: { kind: "embedded", path: join(dir, "log.db") },
    sinks: [{ kind: "duckdb", name: "warehouse", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "100ms" } }],
  };
}

async function duckCount(): Promise<number> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const instance = await DuckDBInstance.create(join(dir, "warehouse.duckdb"));
  const connection = await instance.connect();
  try {
    const reader = await connection.runAndReadAll(`SELECT count(*)::INTEGER AS n FROM main."shop_orders"`);
    return Number(reader.getRowObjects()[0]!["n"]);
  } finally {
    connection.closeSync();
    instance.closeSync();
  }
}

test("verify-full with a least-privilege role: snapshot and stream reach DuckDB through the daemon", { timeout: 180_000 }, async () => {
  const daemon = await SluiceDaemon.start(dir, config(server.ca.caFile), "good");
  await admin.query("INSERT INTO shop.orders SELECT i, 'streamed ' || i FROM generate_series(51, 60) i");
  await waitCaughtUp(daemon, admin);
  await daemon.stop();
  assert.equal(await duckCount(), 60);
  assert.ok(!readFileSync(daemon.logFile, "utf8").includes(PASSWORD), "the password is not in the log");
});

test("another CA: the daemon stops at once with PG_TLS_FAILED naming the server, exit 1, no retries", { timeout: 120_000 }, async () => {
  const other = await makeCa(dir, "other");
  const file = join(dir, "bad.yaml");
  writeFileSync(file, JSON.stringify({ ...config(other.caFile), http: { listen: `127.0.0.1:${await freePort()}` } }));
  const { code, stdout, stderr } = await runSluice(["run", "-c", file], dir);
  const output = stdout + stderr;
  assert.equal(code, 1, output.slice(-3000));
  assert.match(output, /PG_TLS_FAILED/);
  assert.match(output, /source shop stopped: .*PostgreSQL at 127\.0\.0\.1:\d+ \(source shop\): certificate verify failed/);
  assert.doesNotMatch(output, /source connect failed; retrying/);
  assert.ok(!output.includes(PASSWORD), "the password is not in the output");
});
