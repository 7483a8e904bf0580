import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import { ConfigValidationError } from "../config/issues.ts";
import { captureWriter, everything, parseRoles, RoleError, selectParts } from "./roles.ts";

const cli = new URL("./sluice.js", import.meta.url).pathname;

const CONFIG = `name: t
sources:
  - {name: pg, kind: postgres, database: app, user: u, password: "\${PG_PASSWORD}", tables: [public.t]}
  - {name: my, kind: mysql, server_id: 7, user: u, password_file: /nonexistent/mysql-password, tables: [app.t]}
topics: {kind: kafka, brokers: ["127.0.0.1:9"]}
sinks:
  - {name: warehouse, kind: clickhouse, url: "http://127.0.0.1:8123"}
  - {name: search, kind: elasticsearch, nodes: ["http://127.0.0.1:9200"]}
`;

const config = { sources: [{ name: "pg" }, { name: "my" }], sinks: [{ name: "warehouse" }, { name: "search" }] } as Parameters<typeof selectParts>[0];

test("no role options run everything, as before roles existed", () => {
  assert.deepEqual(selectParts(config, parseRoles({})), everything(config));
  assert.deepEqual(selectParts(config, parseRoles({})), { sources: ["pg", "my"], sinks: ["warehouse", "search"], roles: ["capture", "sinks"] });
});

test("--role capture runs no sink; --role sinks captures nothing; repeated and comma-separated values add up", () => {
  assert.deepEqual(selectParts(config, parseRoles({ role: ["capture"] })), { sources: ["pg", "my"], sinks: [], roles: ["capture"] });
  assert.deepEqual(selectParts(config, parseRoles({ role: ["sinks"], sink: ["search"] })), { sources: [], sinks: ["search"], roles: ["sinks"] });
  assert.deepEqual(selectParts(config, parseRoles({ role: ["capture,sinks"], source: ["my"], sink: ["warehouse", "search"] })), { sources: ["my"], sinks: ["warehouse", "search"], roles: ["capture", "sinks"] });
  assert.deepEqual(selectParts(config, parseRoles({ role: ["capture", "sinks"] })), everything(config));
});

test("unknown roles and names are refused, naming what exists", () => {
  assert.throws(() => parseRoles({ role: ["sink"] }), (error: unknown) => error instanceof RoleError && /unknown role "sink"; roles are capture, sinks, all/.test(error.message));
  assert.throws(() => selectParts(config, parseRoles({ role: ["sinks"], sink: ["warehous"] })), /unknown sink "warehous"; the config's sinks are "warehouse", "search"/);
  assert.throws(() => parseRoles({ role: ["sinks"], source: ["pg"] }), /--source selects sources to capture/);
});

test("the capture's transactional id is the deployment's for every source, one per set of sources otherwise", () => {
  assert.equal(captureWriter(config, everything(config)), undefined);
  assert.equal(captureWriter(config, selectParts(config, parseRoles({ role: ["capture"], source: ["pg"] }))), "capture.pg");
  assert.equal(captureWriter(config, selectParts(config, parseRoles({ role: ["all"], source: ["my", "pg"] }))), undefined);
});

test("a process that does not capture a source needs none of its secrets (unset variable, missing secret file)", () => {
  const env = {};
  const failure = (() => {
    try {
      loadConfigText("c.yaml", CONFIG, { env });
    } catch (error) {
      return error;
    }
    return null;
  })();
  assert.ok(failure instanceof ConfigValidationError, "without roles both sources' secrets are needed");
  assert.match(failure.message, /PG_PASSWORD is not set/);
  assert.match(failure.message, /cannot read password file/);
  const sinksOnly = loadConfigText("c.yaml", CONFIG, { env, captures: () => false });
  assert.deepEqual(sinksOnly.sources.map((s) => s.name), ["pg", "my"], "the sources stay (their names make the sinks' topics)");
  assert.throws(() => loadConfigText("c.yaml", CONFIG, { env, captures: (name) => name === "pg" }), (error: unknown) => error instanceof ConfigValidationError && /PG_PASSWORD/.test(error.message) && !/password file/.test(error.message));
  const pgOnly = loadConfigText("c.yaml", CONFIG, { env: { PG_PASSWORD: "s3cret-pg-pass" }, captures: (name) => name === "pg" });
  assert.equal(pgOnly.sources[0]!.password, "s3cret-pg-pass");
});

test("sluice validate --role sinks accepts a config without source credentials; without roles it is refused", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-roles-"));
  const file = join(dir, "sluice.yaml");
  writeFileSync(file, CONFIG);
  const env: NodeJS.ProcessEnv = { ...process.env, SLUICE_CONFIG: "" };
  delete env["PG_PASSWORD"];
  const all = spawnSync(process.execPath, [cli, "validate", "-c", file], { encoding: "utf8", env });
  assert.equal(all.status, 2, all.stderr);
  const sinks = spawnSync(process.execPath, [cli, "validate", "-c", file, "--role", "sinks", "--sink", "search"], { encoding: "utf8", env });
  assert.equal(sinks.status, 0, sinks.stderr);
  assert.match(sinks.stdout, /this process: 0 sources captured, 1 sink/);
  const unknown = spawnSync(process.execPath, [cli, "run", "-c", file, "--role", "capture", "--source", "nope"], { encoding: "utf8", env });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown source "nope"; the config's sources are "pg", "my"/);
});

test("a process that does not run a sink needs none of its secrets either (a capture pod holds only source secrets)", () => {
  const text = CONFIG.replace('url: "http://127.0.0.1:8123"}', 'url: "http://127.0.0.1:8123", password: "${CH_PASSWORD}"}');
  const env = { PG_PASSWORD: "pg-secret-value-1" };
  assert.throws(() => loadConfigText("c.yaml", text, { env, captures: (name) => name === "pg" }), /CH_PASSWORD is not set/);
  const capture = loadConfigText("c.yaml", text, { env, captures: (name) => name === "pg", runsSink: () => false });
  assert.deepEqual(capture.sinks.map((s) => s.name), ["warehouse", "search"]);
});
