import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { describe, test } from "node:test";
import { ConfigValidationError, formatIssue } from "./issues.ts";
import { loadConfigFile, loadConfigText } from "./load.ts";
import { renderConfigReference } from "./reference.ts";

const here = new URL(".", import.meta.url).pathname;
const badDir = join(here, "testdata/bad");
const examplesDir = join(here, "examples");

function problems(file: string, env: Record<string, string> = {}): string[] {
  try {
    loadConfigFile(file, { env });
  } catch (error) {
    assert.ok(error instanceof ConfigValidationError, `expected ConfigValidationError, got ${String(error)}`);
    return error.issues.map((issue) => formatIssue({ ...issue, file: basename(issue.file) }));
  }
  assert.fail(`${file} was accepted`);
}

describe("broken config files each give their precise errors", () => {
  const fixtures = readdirSync(badDir).filter((f) => f.endsWith(".yaml")).sort();
  test("there are at least 30 of them", () => assert.ok(fixtures.length >= 30, `only ${fixtures.length}`));
  for (const fixture of fixtures) {
    test(fixture, () => {
      const expected = readFileSync(join(badDir, fixture.replace(/\.yaml$/, ".expected")), "utf8").trim().split("\n");
      assert.deepEqual(problems(join(badDir, fixture)), expected);
    });
  }
});

describe("example configs", () => {
  const examples = readdirSync(examplesDir).filter((f) => f.endsWith(".yaml"));
  test("the minimal, full and quickstart examples are there", () => assert.deepEqual(["full.yaml", "minimal.yaml", "quickstart.yaml"].filter((e) => !examples.includes(e)), []));
  for (const example of examples) {
    test(`${example} is valid`, () => {
      const config = loadConfigFile(join(examplesDir, example), { env: {} });
      assert.ok(config.sources.length >= 1);
    });
  }

  test("minimal.yaml takes the documented defaults", () => {
    const config = loadConfigFile(join(examplesDir, "minimal.yaml"), { env: {} });
    const pg = config.sources[0]!;
    assert.equal(pg.kind, "postgres");
    assert.equal(pg.port, 5432);
    assert.equal(pg.snapshot.mode, "initial");
    assert.equal(pg.max_buffer_bytes, undefined, "the read-ahead is a share of memory (config/memory.ts)");
    assert.equal(config.memory, undefined);
    assert.equal(pg.heartbeat_interval, 10_000);
    assert.deepEqual(config.topics, { kind: "embedded", path: "./data/sluice.db", partitions: 1, retention: { cleanup_policy: "compact", max_age: 7 * 86_400_000, tombstones: 7 * 86_400_000, min_compaction_lag: 3_600_000 }, max_record_bytes: 16 * 2 ** 20 });
    assert.equal(config.schema_registry.kind, "builtin");
    assert.equal(config.http.listen, "127.0.0.1:8080");
    assert.equal(config.sinks[0]!.on_error, "halt");
  });

  test("full.yaml reads its secret file and parses durations and sizes", () => {
    const config = loadConfigFile(join(examplesDir, "full.yaml"), { env: { KAFKA_BROKER: "kafka:9092" } });
    const maria = config.sources[1]!;
    assert.equal(maria.password, "sluice");
    assert.equal(config.topics.kind, "kafka");
    if (config.topics.kind !== "kafka") return;
    assert.deepEqual(config.topics.brokers, ["kafka:9092"]);
    assert.equal(config.topics.linger, 5);
    assert.equal(config.topics.batch_bytes, 2 ** 20);
    assert.equal(config.topics.retention.max_bytes, 10 * 2 ** 30);
    const analytics = config.sinks.find((s) => s.name === "analytics")!;
    assert.equal(analytics.batch.max_wait, 500);
  });
});

describe("interpolation and secrets", () => {
  const base = (extra: string) => `name: shop\nsources:\n  - name: pg\n    kind: postgres\n    database: app\n    user: u\n    tables: [public.t]\n${extra}`;

  test('tables: "!" patterns exclude; a list of exclusions alone is refused; anything else is not a pattern', () => {
    const config = loadConfigText("c.yaml", base("").replace("tables: [public.t]", 'tables: [public.*, "!public._*"]'), { env: {} });
    assert.deepEqual(config.sources[0]!.tables, ["public.*", "!public._*"]);
    assert.throws(() => loadConfigText("c.yaml", base("").replace("tables: [public.t]", 'tables: ["!public._*"]'), { env: {} }), /sources\[0\]\.tables: needs a pattern that includes tables/);
    assert.throws(() => loadConfigText("c.yaml", base("").replace("tables: [public.t]", 'tables: ["public.t!"]'), { env: {} }), /expected "schema.table"/);
  });

  test("an unquoted reference takes the type of its value; a quoted one stays a string", () => {
    const config = loadConfigText("c.yaml", base('    port: ${PGPORT}\n    host: "${PGHOST}"\n'), { env: { PGPORT: "6543", PGHOST: "10" } });
    assert.equal(config.sources[0]!.port, 6543);
    assert.equal(config.sources[0]!.host, "10");
  });

  test("defaults apply to unset and empty variables; $${ is a literal", () => {
    const config = loadConfigText("c.yaml", base("    password: ${PW:-fallback}\n    host: ${EMPTY:-db}\n    user: a$${b}\n").replace("    user: u\n", ""), { env: { EMPTY: "" } });
    assert.equal(config.sources[0]!.password, "fallback");
    assert.equal(config.sources[0]!.host, "db");
    assert.equal(config.sources[0]!.user, "a${b}");
  });

  test("a reference inside a longer value is replaced in place", () => {
    const config = loadConfigText("c.yaml", base("    host: db-${ENV}.internal\n"), { env: { ENV: "prod" } });
    assert.equal(config.sources[0]!.host, "db-prod.internal");
  });

  test("password_file is read relative to the config file, without its trailing newline", () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-config-"));
    writeFileSync(join(dir, "pw"), "s3cret\n");
    writeFileSync(join(dir, "c.yaml"), base("    password_file: pw\n"));
    assert.equal(loadConfigFile(join(dir, "c.yaml"), { env: {} }).sources[0]!.password, "s3cret");
  });

  test("all problems are reported at once, in file order", () => {
    const text = base("    port: x\n    nope: 1\nlogging: {level: loud}\n");
    assert.throws(
      () => loadConfigText("c.yaml", text, { env: {} }),
      (error: unknown) => {
        assert.ok(error instanceof ConfigValidationError);
        assert.deepEqual(
          error.issues.map((i) => [i.line, i.path]),
          [[8, "sources[0].port"], [9, "sources[0].nope"], [10, "logging.level"]],
        );
        return true;
      },
    );
  });

  test("an unreadable config file is a config error naming the file", () => {
    assert.throws(() => loadConfigFile("/nonexistent/sluice.yaml"), /\/nonexistent\/sluice.yaml: 1 problem[\s\S]*cannot read config file: no such file/);
  });
});

describe("YAML aliases, numbers and values as written", () => {
  test("anchors under x- keys, aliases and merge keys give each source the shared settings", () => {
    const text = [
      "name: shop",
      "x-postgres: &postgres {kind: postgres, host: db, database: app, user: u, snapshot: {mode: never}}",
      "sources:",
      "  - <<: *postgres",
      "    name: orders",
      "    tables: [public.orders]",
      "  - <<: *postgres",
      "    name: users",
      "    tables: &users [public.users]",
      "sinks:",
      "  - {name: warehouse, kind: duckdb, tables: *users}",
      "",
    ].join("\n");
    const config = loadConfigText("c.yaml", text, { env: {} });
    assert.deepEqual(config.sources.map((s) => [s.name, s.host, s.snapshot.mode, s.tables]), [["orders", "db", "never", ["public.orders"]], ["users", "db", "never", ["public.users"]]]);
    assert.deepEqual(config.sinks[0]!.tables, ["public.users"]);
  });

  test("a hexadecimal number from an environment variable is not read as a number either", () => {
    const text = "name: shop\nsources:\n  - name: pg\n    kind: postgres\n    database: app\n    user: u\n    tables: [public.t]\n    max_buffer_bytes: ${BUF}\n";
    assert.throws(() => loadConfigText("c.yaml", text, { env: { BUF: "0x10" } }), /sources\[0\]\.max_buffer_bytes: expected a size such as "512KiB", "64MiB" or "1GB", got "0x10"/);
    assert.equal(loadConfigText("c.yaml", text, { env: { BUF: "1048576" } }).sources[0]!.max_buffer_bytes, 2 ** 20);
  });

  test("quoted hexadecimal text stays text", () => {
    const text = 'name: shop\nsources:\n  - {name: pg, kind: postgres, database: app, user: "0x10", tables: [public.t]}\n';
    assert.equal(loadConfigText("c.yaml", text, { env: {} }).sources[0]!.user, "0x10");
  });

  test("durations and sizes at their bounds are accepted", () => {
    const text = "name: shop\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t], heartbeat_interval: 1d, max_buffer_bytes: 64KiB}\nshutdown: {timeout: 1s}\n";
    const config = loadConfigText("c.yaml", text, { env: {} });
    assert.equal(config.sources[0]!.heartbeat_interval, 86_400_000);
    assert.equal(config.sources[0]!.max_buffer_bytes, 65_536);
    assert.equal(config.shutdown.timeout, 1_000);
  });

  test("the HTTP listeners' connection limits default to 512 connections, 10 s for a head, 60 s for a request; a bad value is an error naming its key", () => {
    const withHttp = (http: string) => `name: shop\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t]}\n${http}`;
    const defaults = loadConfigText("c.yaml", withHttp(""), { env: {} }).http;
    assert.deepEqual([defaults.max_connections, defaults.headers_timeout, defaults.request_timeout], [512, 10_000, 60_000]);
    const set = loadConfigText("c.yaml", withHttp("http: {max_connections: 64, headers_timeout: 5s, request_timeout: 2m}\n"), { env: {} }).http;
    assert.deepEqual([set.max_connections, set.headers_timeout, set.request_timeout, set.listen], [64, 5_000, 120_000, "127.0.0.1:8080"]);
    assert.throws(() => loadConfigText("c.yaml", withHttp("http: {max_connections: 0}\n"), { env: {} }), /http\.max_connections: expected a number ≥ 1, got number 0/);
    assert.throws(() => loadConfigText("c.yaml", withHttp("http: {headers_timeout: 500ms}\n"), { env: {} }), /http\.headers_timeout: expected a duration from 1s to 5m, got "500ms"/);
    assert.throws(() => loadConfigText("c.yaml", withHttp("http: {request_timeout: soon}\n"), { env: {} }), /http\.request_timeout: expected a duration such as "500ms"/);
    assert.throws(
      () => loadConfigText("c.yaml", withHttp("http: {headers_timeout: 30s, request_timeout: 20s}\n"), { env: {} }),
      /http\.request_timeout: expected a request timeout of at least http\.headers_timeout \(30s\), got 20s/,
    );
    // Found on a live deployment: a read token file that was a copy of the admin token's was taken (at start and at
    // SIGHUP), so every read-only client held the admin scope.
    const token = "0123456789abcdef-same-token";
    assert.throws(
      () => loadConfigText("c.yaml", withHttp(`http: {admin_token: ${token}, read_token: ${token}}\n`), { env: {} }),
      (error: unknown) => /http\.read_token: expected a read token other than http\.admin_token/.test(String(error)) && !String(error).includes(token),
    );
    assert.equal(loadConfigText("c.yaml", withHttp(`http: {admin_token: ${token}, read_token: ${token}-read}\n`), { env: {} }).http.read_token, `${token}-read`);
  });

  test("the builtin registry's token is held to the API tokens' rules and is not the read token", () => {
    // Found probing a live daemon: `schema_registry.token: x` (or "", or the read token) was accepted. "x" let anyone
    // reaching the daemon guess their way to registry writes (deleting subjects); the read token's copy handed them to
    // every read-only client.
    const withRegistry = (lines: string) => `name: shop\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t]}\n${lines}`;
    const read = "0123456789abcdef-read-token";
    for (const weak of ['"x"', '""', '"has spaces in it, twenty"']) {
      assert.throws(() => loadConfigText("c.yaml", withRegistry(`schema_registry: {kind: builtin, token: ${weak}}\n`), { env: {} }), /schema_registry\.token: expected (at least 16 characters|a token of printable ASCII)/, weak);
    }
    assert.throws(
      () => loadConfigText("c.yaml", withRegistry(`http: {read_token: ${read}}\nschema_registry: {kind: builtin, token: ${read}}\n`), { env: {} }),
      (error: unknown) => /schema_registry\.token: expected a registry token other than http\.read_token/.test(String(error)) && !String(error).includes(read),
    );
    const config = loadConfigText("c.yaml", withRegistry(`http: {read_token: ${read}}\nschema_registry: {kind: builtin, token: ${read}-registry}\n`), { env: {} });
    assert.equal(config.schema_registry.kind === "builtin" ? config.schema_registry.token : undefined, `${read}-registry`);
  });
});

describe("Elasticsearch refresh_interval", () => {
  const withRefresh = (line: string) =>
    `name: shop\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t]}\nsinks:\n  - name: search\n    kind: elasticsearch\n    nodes: ["http://127.0.0.1:9200"]\n${line}`;
  const refreshOf = (line: string) => {
    const sink = loadConfigText("c.yaml", withRefresh(line), { env: {} }).sinks[0]!;
    assert.equal(sink.kind, "elasticsearch");
    return sink.kind === "elasticsearch" ? sink.refresh_interval : "not elasticsearch";
  };

  test("time values are kept as Elasticsearch reads them, -1 included", () => {
    for (const value of ["200ms", "1s", "30s", "2m", "1h", "1d", "-1"]) assert.equal(refreshOf(`    refresh_interval: "${value}"\n`), value);
    assert.equal(refreshOf("    refresh_interval: 500ms\n"), "500ms");
    assert.equal(refreshOf("    refresh_interval: -1\n"), "-1", "an unquoted -1 is a YAML number");
  });

  test("absent, the index setting is left alone", () => assert.equal(refreshOf(""), undefined));

  test("full.yaml sets 200ms", () => {
    const config = loadConfigFile(join(examplesDir, "full.yaml"), { env: { KAFKA_BROKER: "kafka:9092" } });
    const search = config.sinks.find((s) => s.kind === "elasticsearch");
    assert.equal(search?.kind === "elasticsearch" ? search.refresh_interval : undefined, "200ms");
  });
});

test("docs/config-reference.md is generated from the current schema (run npm run docs:config)", () => {
  const page = readFileSync(join(here, "../docs/config-reference.md"), "utf8");
  assert.equal(page, renderConfigReference());
  assert.match(page, /`sources\[\]\(kind: postgres\) slot`/);
});
