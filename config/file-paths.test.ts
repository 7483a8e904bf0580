import assert from "node:assert/strict";
import { test } from "node:test";
import { dataPaths } from "./file-paths.ts";
import { loadConfigText } from "./load.ts";

// Found on a live deployment: a relative master_key_file was read from the daemon's working directory while the
// secrets' *_file beside it were read from the config file's folder; started elsewhere, the daemon could not start.
test("relative files Sluice reads are found from the config file's folder; data paths stay as written (the working directory)", () => {
  const config = loadConfigText(
    "/etc/sluice/prod.yaml",
    `name: shop
sources:
  - name: pg
    kind: postgres
    database: app
    user: u
    tables: [public.*]
    tls: { mode: verify-full, ca_file: certs/ca.pem, cert_file: ./certs/client.pem, key_file: /abs/client.key }
    outbox: { tables: [public.outbox], payload: { format: avro, schemas: { order: schemas/order.avsc } } }
topics: { kind: embedded, path: data/sluice.db }
sinks:
  - { name: wh, kind: duckdb, sources: [pg], path: ./warehouse.duckdb }
http:
  tls: { cert_file: tls/server.pem, key_file: tls/server.key, ca_file: tls/ca.pem }
personal_data:
  master_key_file: keys/master.key
  previous_master_key_files: [keys/old.key, /run/secrets/older.key]
`,
    { env: {} },
  );
  const source = config.sources[0]!;
  assert.deepEqual(source.tls, { mode: "verify-full", ca_file: "/etc/sluice/certs/ca.pem", cert_file: "/etc/sluice/certs/client.pem", key_file: "/abs/client.key" });
  assert.deepEqual(source.outbox?.payload.schemas, { order: "/etc/sluice/schemas/order.avsc" });
  assert.deepEqual(config.http.tls, { cert_file: "/etc/sluice/tls/server.pem", key_file: "/etc/sluice/tls/server.key", ca_file: "/etc/sluice/tls/ca.pem" });
  assert.equal(config.personal_data?.master_key_file, "/etc/sluice/keys/master.key");
  assert.deepEqual(config.personal_data?.previous_master_key_files, ["/etc/sluice/keys/old.key", "/run/secrets/older.key"]);
  // Data paths: where an existing deployment's log and warehouse are; only shown resolved.
  assert.equal(config.topics.kind === "embedded" && config.topics.path, "data/sluice.db");
  assert.deepEqual(dataPaths(config, "/var/lib/sluice"), [
    { key: "topics.path", written: "data/sluice.db", resolved: "/var/lib/sluice/data/sluice.db" },
    { key: "sinks[0].path", sink: "wh", written: "./warehouse.duckdb", resolved: "/var/lib/sluice/warehouse.duckdb" },
  ]);
});

// Review of 20b537c: keys ending in _file(s) were taken for files wherever they were, the names of a user's tables too.
test("tables, columns and aggregate types the user names are not taken for files, whatever their names end in", () => {
  const config = loadConfigText(
    "/etc/sluice/prod.yaml",
    `name: shop
sources:
  - name: pg
    kind: postgres
    database: app
    user: u
    tables: [public.*]
    key_columns: { public.user_files: [id], public.last_file: [id] }
    outbox: { tables: [public.outbox], payload: { format: avro, schemas: { order_file: schemas/order.avsc } } }
    governance:
      hash_key: a-secret-of-sixteen
      tables:
        public.user_files: { transforms: { key_file: { kind: hash } } }
topics: { kind: embedded, path: data/sluice.db }
sinks:
  - { name: wh, kind: duckdb, sources: [pg], path: ./warehouse.duckdb }
`,
    { env: {} },
  );
  const source = config.sources[0]!;
  assert.equal(source.kind, "postgres");
  assert.deepEqual(source.kind === "postgres" && source.key_columns, { "public.user_files": ["id"], "public.last_file": ["id"] });
  assert.deepEqual(source.outbox?.payload.schemas, { order_file: "/etc/sluice/schemas/order.avsc" });
  assert.deepEqual(source.governance?.tables["public.user_files"]?.transforms, { key_file: { kind: "hash" } });
});
