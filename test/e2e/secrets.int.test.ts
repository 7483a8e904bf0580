/**
 * End to end (issue 13, item 4): secrets stay secret. Daemons run at debug/trace level with a
 * distinctive value for every secret the config has (source passwords, Kafka SASL password,
 * ClickHouse password, Elasticsearch password and API key, registry token, admin and read
 * tokens; some inline, some from *_file, some from ${ENV}), against servers that refuse them or
 * cannot be reached, so drivers fail and report their settings. Everything printed — standard
 * output and error of `sluice run` (including its failure when a source stops), the /status
 * answer, `sluice status`, and `sluice validate` on a config whose errors sit next to secrets —
 * is searched for each value: none appears, nor its base64 in a Basic auth header.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { clickhouse, kafka, mariadb } from "../services/ports.ts";
import { dropPostgres, freePort, pgClient, pgSourceConfig, randomName, removeDir, REPO, runSluice, sleep, tempDir, waitFor } from "./helpers.ts";

const id = randomName("s");
const SECRETS = {
  pgPassword: `pgPw-${id}-Zx81`,
  mysqlPassword: `myPw-${id}-Qv27`,
  saslPassword: `saslPw-${id}-Hk55`,
  clickhousePassword: `chPw-${id}-Rt93`,
  esPassword: `esPw-${id}-Lm04`,
  esApiKey: `esKey-${id}-Wd66`,
  registryToken: `regTok-${id}-Np38`,
  adminToken: `adminTok-${id}-Jb71`,
  readToken: `readTok-${id}-Cs19`,
  numericPassword: "31415926535897",
};
const schema = randomName("e2e_secrets");
const source = randomName("src");
const dir = tempDir("secrets");
let client: pg.Client;
const children: ChildProcess[] = [];

/** The forms a secret could be printed in: as is, and as the base64 of a Basic auth header (user:password). */
function forms(user: string | undefined, secret: string): string[] {
  return [secret, ...(user === undefined ? [] : [Buffer.from(`${user}:${secret}`).toString("base64")])];
}

function assertNoSecret(what: string, text: string): void {
  const leaks: string[] = [];
  const users: Record<string, string | undefined> = { pgPassword: "sluice", mysqlPassword: "sluice", saslPassword: "sluice", clickhousePassword: clickhouse.username, esPassword: "elastic" };
  for (const [name, secret] of Object.entries(SECRETS)) {
    for (const form of forms(users[name], secret)) if (text.includes(form)) leaks.push(`${name} (${form === secret ? "as is" : "base64"})`);
  }
  assert.deepEqual(leaks, [], `${what} shows secrets: ${leaks.join(", ")}\n--- ${what} ---\n${text.slice(-6000)}`);
}

function run(configFile: string, env: Record<string, string> = {}): { child: ChildProcess; output: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [join(REPO, "daemon/sluice.js"), "run", "-c", configFile], { cwd: dir, env: { ...process.env, ...env }, stdio: ["ignore", "pipe", "pipe"] });
  children.push(child);
  let text = "";
  child.stdout!.on("data", (c: Buffer) => (text += c.toString("utf8")));
  child.stderr!.on("data", (c: Buffer) => (text += c.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return { child, output: () => text, exited };
}

async function stop(child: ChildProcess, exited: Promise<number | null>): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  await exited;
  clearTimeout(timer);
}

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id int PRIMARY KEY, note text)`);
  await client.query(`INSERT INTO "${schema}".items SELECT g, 'note ' || g FROM generate_series(1, 5) g`);
  writeFileSync(join(dir, "clickhouse.password"), `${SECRETS.clickhousePassword}\n`);
  writeFileSync(join(dir, "admin.token"), `${SECRETS.adminToken}\n`);
});

after(async () => {
  for (const child of children) if (child.exitCode === null) child.kill("SIGKILL");
  await dropPostgres(client, { slot: `sluice_${source}`, publication: `sluice_${source}`, schema });
  await client.end();
  removeDir(dir);
});

test("a daemon whose sinks cannot reach Elasticsearch: its log, /status and sluice status show no secret", async () => {
  const port = await freePort();
  const closed = await freePort();
  const configFile = join(dir, "sinks.yaml");
  writeFileSync(
    configFile,
    JSON.stringify({
      name: `${id}_sinks`,
      sources: [pgSourceConfig(source, [`${schema}.*`])],
      topics: { kind: "embedded", path: join(dir, "sinks.db") },
      schema_registry: { kind: "builtin", token: SECRETS.registryToken },
      sinks: [
        { kind: "elasticsearch", name: "es_basic", nodes: [`http://127.0.0.1:${closed}`], username: "elastic", password: SECRETS.esPassword },
        { kind: "elasticsearch", name: "es_key", nodes: [`http://127.0.0.1:${closed}`], api_key: SECRETS.esApiKey },
      ],
      http: { listen: `127.0.0.1:${port}`, admin_token_file: "admin.token", read_token: "${SLUICE_SECRETS_READ_TOKEN}" },
      logging: { level: "debug" },
    }),
  );
  process.env["SLUICE_SECRETS_READ_TOKEN"] = SECRETS.readToken;
  const daemon = run(configFile);
  // Each sink retries opening its unreachable Elasticsearch, logging the driver's error each time.
  await waitFor("both sinks to fail opening", async () => {
    const output = daemon.output();
    return ["es_basic", "es_key"].every((sink) => output.split("\n").some((line) => line.includes(`"sink":"${sink}"`) && line.includes("sink open failed; retrying"))) || undefined;
  }, { timeoutMs: 90_000, intervalMs: 500, lastSeen: () => daemon.output().slice(-3000) });
  const response = await fetch(`http://127.0.0.1:${port}/status`, { headers: { authorization: `Bearer ${SECRETS.readToken}` } });
  assert.equal(response.status, 200);
  const status = await response.text();
  // A few retries' worth of driver errors in the log.
  await sleep(3_000);
  const cli = await runSluice(["status", "-c", configFile], dir);
  // The daemon answered, its sinks NOT READY (Elasticsearch unreachable): exit 3 (1e09b08).
  assert.equal(cli.code, 3, cli.stderr);
  const refused = await fetch(`http://127.0.0.1:${port}/registry/subjects`, { headers: { authorization: `Bearer ${SECRETS.registryToken}x` } });
  assert.equal(refused.status, 401);
  await stop(daemon.child, daemon.exited);
  const output = daemon.output();
  assert.match(output, /sink open failed; retrying/);
  assertNoSecret("the daemon's output", output);
  assertNoSecret("/status", status);
  assertNoSecret("sluice status", cli.stdout + cli.stderr);
});

test("daemons refused by ClickHouse, MariaDB, PostgreSQL and Kafka: their output, until they stop or fail, shows no secret", async () => {
  const clickhouseConfig = join(dir, "clickhouse.yaml");
  writeFileSync(
    clickhouseConfig,
    JSON.stringify({
      name: `${id}_ch`,
      sources: [
        pgSourceConfig(`${source}_ch`, [`${schema}.*`]),
        { kind: "mysql", name: `${source}_my`, host: mariadb.host, port: mariadb.port, user: mariadb.user, password: "${SLUICE_SECRETS_MYSQL_PASSWORD}", server_id: 4_000_000_000 + Math.floor(Math.random() * 1e8), tables: ["sluice.*"] },
      ],
      topics: { kind: "embedded", path: join(dir, "ch.db") },
      sinks: [{ kind: "clickhouse", name: "ch", url: clickhouse.url, user: clickhouse.username, password_file: "clickhouse.password", database: `${id}_db` }],
      http: { listen: `127.0.0.1:${await freePort()}`, admin_token_file: "admin.token" },
      logging: { level: "trace" },
    }),
  );
  const kafkaConfig = join(dir, "kafka.yaml");
  writeFileSync(
    kafkaConfig,
    JSON.stringify({
      name: `${id}_kafka`,
      sources: [pgSourceConfig(`${source}_bad`, [`${schema}.*`], { password: SECRETS.pgPassword })],
      topics: { kind: "kafka", brokers: kafka.brokers, sasl: { mechanism: "scram-sha-512", username: "sluice", password: SECRETS.saslPassword } },
      http: { listen: `127.0.0.1:${await freePort()}`, admin_token: SECRETS.adminToken },
      logging: { level: "trace" },
    }),
  );
  const failing = run(clickhouseConfig, { SLUICE_SECRETS_MYSQL_PASSWORD: SECRETS.mysqlPassword });
  const waiting = run(kafkaConfig);
  // A refused login stops the daemon; Kafka refusing SASL on its plain listener is retried: a few rounds of it.
  const code = await Promise.race([failing.exited, sleep(60_000).then(() => "still running")]);
  assert.equal(code, 1, failing.output().slice(-3000));
  await Promise.race([waiting.exited, sleep(5_000)]);
  await stop(waiting.child, waiting.exited);
  await dropPostgres(client, { slot: `sluice_${source}_ch`, publication: `sluice_${source}_ch` });
  const failed = failing.output();
  assert.match(failed, /refused the sink's login|Access denied/);
  assertNoSecret("the output of the daemon refused by ClickHouse and MariaDB", failed);
  const kafkaOutput = waiting.output();
  assert.match(kafkaOutput, /kafka|SASL|sasl/i, kafkaOutput.slice(-3000));
  assertNoSecret("the output of the daemon refused by Kafka", kafkaOutput);
});

test("sluice validate: errors next to secrets, and a valid config, show no secret", async () => {
  const invalid = join(dir, "invalid.yaml");
  writeFileSync(
    invalid,
    [
      `name: ${id}`,
      "sources:",
      "  - kind: postgres",
      "    name: pg",
      "    user: sluice",
      `    password: ${SECRETS.numericPassword}`,
      "    database: db",
      "    tables: [public.t]",
      "    porrt: 5432",
      "sinks:",
      "  - kind: clickhouse",
      "    name: ch",
      "    url: http://127.0.0.1:8123",
      `    password: [${SECRETS.clickhousePassword}]`,
      "  - kind: elasticsearch",
      "    name: es",
      "    nodes: [not-a-url]",
      `    api_key: ${SECRETS.esApiKey}`,
      "http:",
      `  admin_token: ${SECRETS.adminToken.slice(0, 10)}`,
      `  read_token: "${SECRETS.readToken} with spaces"`,
      "",
    ].join("\n"),
  );
  const failed = await runSluice(["validate", "-c", invalid], dir);
  assert.equal(failed.code, 2, failed.stdout + failed.stderr);
  assert.match(failed.stderr, /sources\[0\]\.password: expected a string, got a value that is not shown/);
  assert.match(failed.stderr, /sinks\[0\]\.password/);
  assert.match(failed.stderr, /http\.admin_token: expected at least 16 characters/);
  assertNoSecret("sluice validate (invalid)", failed.stdout + failed.stderr);
  assert.ok(!failed.stderr.includes(SECRETS.adminToken.slice(0, 10)), failed.stderr);

  const valid = join(dir, "valid.yaml");
  writeFileSync(
    valid,
    JSON.stringify({
      name: id,
      sources: [pgSourceConfig("pg", ["public.t"], { password: SECRETS.pgPassword })],
      sinks: [{ kind: "clickhouse", name: "ch", url: clickhouse.url, password_file: "clickhouse.password" }],
      http: { admin_token_file: "admin.token", read_token: SECRETS.readToken },
    }),
  );
  const ok = await runSluice(["validate", "-c", valid], dir);
  assert.equal(ok.code, 0, ok.stderr);
  assertNoSecret("sluice validate (valid)", ok.stdout + ok.stderr);
});
