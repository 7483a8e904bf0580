/**
 * A source's password_file is read again for each new connection (PostgreSQL's clientConfig, MySQL/MariaDB's
 * connectionOptions), as a sink's is: a password rotated on the database and in its file (a Kubernetes Secret updated
 * in place) is taken at the reconnect that capture makes while it waits out the refusal (daemon/capture.ts).
 */
import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfigFile } from "../../config/load.ts";
import { currentSecret } from "../../config/secret-files.ts";
import type { MysqlSourceConfig, PostgresSourceConfig } from "../../config/schema.ts";
import { connectionOptions } from "../mysql/connection-settings.ts";
import { clientConfig } from "../postgres/connection-settings.ts";

test("a PostgreSQL and a MySQL source read their password_file again at each new connection", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-source-pw-"));
  writeFileSync(join(dir, "pg-password"), "first-pg\n");
  writeFileSync(join(dir, "my-password"), "first-my\n");
  writeFileSync(
    join(dir, "c.yaml"),
    "name: shop\nsources:\n  - name: pg\n    kind: postgres\n    database: app\n    user: u\n    password_file: pg-password\n    tables: [public.t]\n" +
      "  - name: my\n    kind: mysql\n    server_id: 4242\n    user: u\n    password_file: my-password\n    tables: [app.t]\nsinks: []\n",
  );
  const config = loadConfigFile(join(dir, "c.yaml"), { env: {} });
  const pg = config.sources.find((s) => s.name === "pg") as PostgresSourceConfig;
  const my = config.sources.find((s) => s.name === "my") as MysqlSourceConfig;
  assert.equal(clientConfig(pg, "replication").password, "first-pg");
  assert.equal(connectionOptions(my, "binlog").password, "first-my");
  writeFileSync(join(dir, "pg-password"), "rotated-pg\n");
  writeFileSync(join(dir, "my-password"), "rotated-my\n");
  assert.equal(clientConfig(pg, "replication").password, "rotated-pg");
  assert.equal(clientConfig(pg, "catalog").password, "rotated-pg");
  assert.equal(connectionOptions(my, "binlog").password, "rotated-my");
});

test("Kafka's topics.sasl.password_file is read again at each authentication", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-kafka-pw-"));
  writeFileSync(join(dir, "kafka-password"), "first-kafka\n");
  writeFileSync(
    join(dir, "c.yaml"),
    "name: shop\nsources:\n  - name: pg\n    kind: postgres\n    database: app\n    user: u\n    password: p\n    tables: [public.t]\ntopics:\n  kind: kafka\n  brokers: [\"b1:9092\"]\n  sasl:\n    mechanism: scram-sha-512\n    username: sluice\n    password_file: kafka-password\nsinks: []\n",
  );
  const config = loadConfigFile(join(dir, "c.yaml"), { env: {} });
  assert.equal(config.topics.kind, "kafka");
  const sasl = config.topics.kind === "kafka" ? config.topics.sasl : undefined;
  assert.equal(sasl?.password, "first-kafka");
  assert.equal(currentSecret(sasl!, "password", "topics.sasl"), "first-kafka");
  writeFileSync(join(dir, "kafka-password"), "rotated-kafka\n");
  assert.equal(currentSecret(sasl!, "password", "topics.sasl"), "rotated-kafka", "kafka-auth.ts reads it so at each authentication");
});
