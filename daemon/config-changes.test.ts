import assert from "node:assert/strict";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfigFile, loadConfigText } from "../config/load.ts";
import { settingsNeedingRestart } from "./config-changes.ts";

const base = `name: d
sources: [{name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: first-secret-value, tables: ["public.*"]}]
sinks:
  - {name: wh, kind: duckdb, path: /tmp/not-used.duckdb}
  - {name: ch, kind: clickhouse, url: "http://127.0.0.1:8123", database: cdc}
http: {listen: "127.0.0.1:8080", admin_token: first-admin-token-0123456789}
`;

test("a config read again at SIGHUP: the settings that need a restart are named by key path (sinks by name), never with their values; token changes are not among them", () => {
  const running = loadConfigText("sluice.yaml", base);
  assert.deepEqual(settingsNeedingRestart(running, loadConfigText("sluice.yaml", base)), []);
  assert.deepEqual(settingsNeedingRestart(running, loadConfigText("sluice.yaml", base.replace("first-admin-token-0123456789", "second-admin-token-0123456789"))), []);
  const kindChanged = base.replace(`{name: ch, kind: clickhouse, url: "http://127.0.0.1:8123", database: cdc}`, `{name: ch, kind: duckdb, path: /tmp/other.duckdb}`);
  const changed = settingsNeedingRestart(running, loadConfigText("sluice.yaml", kindChanged));
  assert.ok(changed.includes(`sinks["ch"].kind`), changed.join(", "));
  assert.ok(!changed.some((path) => path.startsWith(`sinks["wh"]`)), changed.join(", "));
  const reordered = base.replace(/  - \{name: wh.*\n(  - \{name: ch.*\n)/, (_all, ch: string) => `${ch}  - {name: wh, kind: duckdb, path: /tmp/not-used.duckdb}\n`);
  assert.deepEqual(settingsNeedingRestart(running, loadConfigText("sluice.yaml", reordered)), [], "sinks in another order are the same sinks");
  const secret = settingsNeedingRestart(running, loadConfigText("sluice.yaml", base.replace("first-secret-value", "second-secret-value").replace(/  - \{name: ch.*\n/, "")));
  assert.deepEqual(secret, [`sources["pg"].password`, `sinks["ch"] (removed)`]);
  assert.ok(!secret.join(" ").includes("secret-value"), "no value is named");
});

test("a sink password given by password_file and changed in its file is not among the settings needing a restart: the sink reads it again when it connects next", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-reload-"));
  writeFileSync(join(dir, "ch-pw"), "first-ch-password\n");
  const withFile = base.replace(`database: cdc}`, `database: cdc, password_file: ch-pw}`);
  writeFileSync(join(dir, "sluice.yaml"), withFile);
  const running = loadConfigFile(join(dir, "sluice.yaml"), { env: {} });
  writeFileSync(join(dir, "ch-pw"), "second-ch-password\n");
  assert.deepEqual(settingsNeedingRestart(running, loadConfigFile(join(dir, "sluice.yaml"), { env: {} })), []);
  writeFileSync(join(dir, "sluice.yaml"), base.replace(`database: cdc}`, `database: cdc, password: third-ch-password}`));
  assert.deepEqual(settingsNeedingRestart(running, loadConfigFile(join(dir, "sluice.yaml"), { env: {} })), [`sinks["ch"].password`, `sinks["ch"].secret_files`], "a password given in the config itself still needs a restart");
});

test("a source's password_file and Kafka's topics.sasl.password_file changed in their files are not among the settings needing a restart: they are read again at the next connection and at each Kafka authentication", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-reload-"));
  writeFileSync(join(dir, "pg-pw"), "first-pg-password\n");
  writeFileSync(join(dir, "kafka-pw"), "first-kafka-password\n");
  const withFiles = base
    .replace("password: first-secret-value", "password_file: pg-pw")
    .replace("sinks:\n", `topics: {kind: kafka, brokers: ["127.0.0.1:9092"], sasl: {mechanism: scram-sha-512, username: sluice, password_file: kafka-pw}}\nsinks:\n`);
  writeFileSync(join(dir, "sluice.yaml"), withFiles);
  const running = loadConfigFile(join(dir, "sluice.yaml"), { env: {} });
  writeFileSync(join(dir, "pg-pw"), "second-pg-password\n");
  writeFileSync(join(dir, "kafka-pw"), "second-kafka-password\n");
  assert.deepEqual(settingsNeedingRestart(running, loadConfigFile(join(dir, "sluice.yaml"), { env: {} })), []);
  writeFileSync(join(dir, "sluice.yaml"), withFiles.replace("password_file: kafka-pw", "password: third-kafka-password"));
  assert.deepEqual(
    settingsNeedingRestart(running, loadConfigFile(join(dir, "sluice.yaml"), { env: {} })),
    ["topics.sasl.password", "topics.sasl.secret_files"],
    "a SASL password given in the config itself still needs a restart",
  );
});
