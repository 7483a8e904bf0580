/**
 * End to end (issue 18, item 2): runtime data checks at capture, PostgreSQL → embedded log →
 * DuckDB, with the real Prometheus scraping the daemon. A row failing a `warn` check is published
 * and counted; one failing a `dead-letter` check goes to <deployment>.dlq.<source> instead of its
 * topic; one failing a `halt` check halts its table at capture (parked, released with `sluice
 * halted`). The counters are on /metrics, scraped by Prometheus, the alert rule of
 * deploy/prometheus/rules.yml (windows scaled to seconds) fires, and `sluice status` lists the
 * failures. No log line carries a checked value.
 */
import assert from "node:assert/strict";
import { readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import type pg from "pg";
import { stringify } from "yaml";
import { prometheus } from "../services/ports.ts";
import { readYaml, repoPath } from "../deploy/support.ts";
import type { SluiceDaemon, SourceStatus } from "./helpers.ts";
import { dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, readEmbeddedTopics, removeDir, runSluice, startReady, tempDir, waitFor } from "./helpers.ts";

const schema = randomName("gov_checks");
const source = randomName("src");
const deployment = randomName("dep");
const dir = tempDir("governance-checks");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const alertName = `SluiceDataCheckFailuresTest_${source}`;
const rulesFile = join(prometheus.rulesDir, `governance-checks-${source}.yml`);
const targetsFile = join(prometheus.targetsDir, `governance-checks-${source}.json`);
const SECRET_VALUES = ["lower-case-code-secret", "99999.00"];
/** Prometheus scrapes this daemon every second (its target's __scrape_interval__ label; the shared Prometheus's default is 5 s)... */
const SCRAPE_INTERVAL = "1s";
/** ...so the rule's 10-minute windows scale to 8 s: eight scrapes each, and the alert for a new failure series fires for 8 s. */
const WINDOW_SECONDS = 8;

const config = {
  name: deployment,
  sources: [
    pgSourceConfig(source, [`${schema}.*`], {
      governance: {
        tables: {
          [`${schema}.orders`]: {
            checks: [
              { check: "not_null", column: "email", action: "warn" },
              { check: "regex", column: "code", pattern: "^[A-Z]+$", action: "dead-letter" },
              { check: "range", column: "amount", min: 0, max: 1000, action: "halt" },
            ],
          },
        },
      },
    }),
  ],
  topics: { kind: "embedded", path: join(dir, "log.db") },
  sinks: [{ kind: "duckdb", name: "local", path: join(dir, "warehouse.duckdb"), batch: { max_wait: "50ms" } }],
};

let client: pg.Client;
let daemon: SluiceDaemon;

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
}

/** SluiceDataCheckFailures with its 10-minute windows as WINDOW_SECONDS, on this source only. */
function scaledRule(): Rule {
  const rules = readYaml<{ groups: { rules: Rule[] }[] }>(repoPath("deploy/prometheus/rules.yml"));
  const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === "SluiceDataCheckFailures");
  assert.ok(rule, "deploy/prometheus/rules.yml has SluiceDataCheckFailures");
  const expr = rule.expr.replaceAll("sluice_data_check_failures_total", `sluice_data_check_failures_total{source="${source}"}`).replaceAll("10m", `${WINDOW_SECONDS}s`);
  assert.ok(!expr.includes("10m"));
  return { ...rule, alert: alertName, expr, for: "0s" };
}

async function reloadPrometheus(): Promise<void> {
  const response = await fetch(`${prometheus.url}/-/reload`, { method: "POST" });
  assert.equal(response.status, 200, await response.text());
}

async function promQuery(expr: string): Promise<{ metric: Record<string, string>; value: [number, string] }[]> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } };
  assert.equal(body.status, "success", expr);
  return body.data.result;
}

async function duckIds(): Promise<number[] | null> {
  const response = await fetch(`${daemon.url}/sinks/local/query`, { method: "POST", body: `SELECT id FROM "${schema}_orders" ORDER BY id`, signal: AbortSignal.timeout(10_000) });
  if (response.status !== 200) return null;
  return ((await response.json()) as { rows: { id: unknown }[] }).rows.map((r) => Number(r.id));
}

before(async () => {
  client = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".orders (id int PRIMARY KEY, email text, code text, amount numeric(10,2))`);
});

after(async () => {
  rmSync(targetsFile, { force: true });
  rmSync(rulesFile, { force: true });
  await reloadPrometheus().catch(() => undefined);
  await killAllDaemons();
  await dropPostgres(client, names).catch(() => undefined);
  await client.end();
  removeDir(dir);
});

test("data checks: warn publishes and counts, dead-letter diverts, halt halts the table; metrics in /metrics and Prometheus, alert fires, sluice status lists them", { timeout: 300_000 }, async (t) => {
  const began = Date.now();
  const phases: string[] = [];
  const phase = (what: string) => phases.push(`${what} ${((Date.now() - began) / 1000).toFixed(1)} s`);
  daemon = await startReady(dir, config, "run");
  phase("ready");
  writeFileSync(targetsFile, JSON.stringify([{ targets: [`127.0.0.1:${daemon.port}`], labels: { deploy_test: "governance-checks", __scrape_interval__: SCRAPE_INTERVAL, __scrape_timeout__: SCRAPE_INTERVAL } }]));
  writeFileSync(rulesFile, stringify({ groups: [{ name: `governance-checks-${source}`, interval: "1s", rules: [scaledRule()] }] }));
  await reloadPrometheus();
  // The rule counts a new failure series only once Prometheus has watched the daemon for its window.
  await waitFor(
    "Prometheus to have scraped the daemon for longer than the rule's window",
    async () => (await promQuery(`up{instance="127.0.0.1:${daemon.port}"} offset ${WINDOW_SECONDS + 1}s`)).length > 0 || undefined,
    { daemon, timeoutMs: 120_000, intervalMs: 1_000 },
  );
  phase("watched for the window");

  const insert = (id: number, email: string | null, code: string, amount: string) => client.query(`INSERT INTO "${schema}".orders VALUES ($1, $2, $3, $4)`, [id, email, code, amount]);
  await insert(1, "a@example.com", "OK", "10.00"); // passes
  await insert(2, null, "OK", "20.00"); // warn: published
  await insert(3, "c@example.com", SECRET_VALUES[0]!, "30.00"); // dead-letter
  await insert(4, "d@example.com", "OK", SECRET_VALUES[1]!); // halt
  await insert(5, "e@example.com", "OK", "50.00"); // parked behind the halt
  // Watched from now on: a new failure series fires the rule only for its window after Prometheus first scrapes it.
  const alertFiring = waitFor(
    `alert ${alertName} firing`,
    async () => {
      const body = (await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
      return body.data.alerts.some((a) => a.labels["alertname"] === alertName && a.labels["check"] === "regex" && a.state === "firing") || undefined;
    },
    { daemon, timeoutMs: 90_000, intervalMs: 500 },
  );
  alertFiring.catch(() => undefined); // awaited below, after the checks that come first

  const halted = await waitFor(
    "orders halted by the range check",
    async () => ((await daemon.status()).sources as SourceStatus[])[0]?.halted.find((h) => h.table === `${schema}.orders`) as (SourceStatus["halted"][number] & { column?: string }) | undefined,
    { daemon, timeoutMs: 60_000 },
  );
  assert.equal(halted.code, "DATA_CHECK_FAILED");
  assert.equal(halted.column, "amount");
  assert.match(halted.error, /key \{"id":4\} fails data check range of column amount/);
  await waitFor("rows 1 and 2 in DuckDB (3 dead-lettered, 4 and 5 parked)", async () => JSON.stringify(await duckIds()) === "[1,2]", { daemon, timeoutMs: 60_000 });

  // Counters on /metrics.
  const at = { source, table: `${schema}.orders` };
  assert.equal(await daemon.metric("sluice_data_check_failures_total", { ...at, check: "not_null" }), 1);
  assert.equal(await daemon.metric("sluice_data_check_failures_total", { ...at, check: "regex" }), 1);
  assert.equal(await daemon.metric("sluice_data_check_failures_total", { ...at, check: "range" }), 1);
  assert.equal(await daemon.metric("sluice_data_check_rows_total", at), 4, "rows 1-4 checked (5 is parked behind the halt, unchecked)");
  assert.equal(await daemon.metric("sluice_capture_table_halts_total", { ...at, code: "DATA_CHECK_FAILED" }), 1);

  // Scraped by the real Prometheus; the alert fires.
  const instance = `127.0.0.1:${daemon.port}`;
  await waitFor(
    "Prometheus to scrape the data-check failures",
    async () => (await promQuery(`sluice_data_check_failures_total{instance="${instance}", source="${source}"}`)).length === 3 || undefined,
    { daemon, timeoutMs: 90_000, intervalMs: 1_000 },
  );
  const rows = await promQuery(`sum(sluice_data_check_rows_total{instance="${instance}", source="${source}"})`);
  assert.equal(Number(rows[0]?.value[1]), 4);
  phase("failures scraped");
  await alertFiring;
  phase("alert fired");

  // sluice status lists the failures; its JSON too.
  const statusText = await runSluice(["status", "-c", daemon.configFile]);
  assert.equal(statusText.code, 0, statusText.stderr);
  assert.match(statusText.stdout, /DATA CHECKS OF/);
  assert.match(statusText.stdout, new RegExp(`${source}\\s+${schema}\\.orders\\s+regex\\s+code\\s+dead-letter\\s+1\\s+\\{"id":3\\}`));
  const sourceStatus = ((await daemon.status()).sources as (SourceStatus & { dataChecks: { check: string; failures: number }[] })[])[0]!;
  assert.deepEqual(sourceStatus.dataChecks.map((c) => `${c.check}:${c.failures}`).sort(), ["not_null:1", "range:1", "regex:1"]);

  // skip the halting row: 5 is published, 4 stays in the parking topic.
  const skip = await runSluice(["halted", "skip", "-c", daemon.configFile, "--source", source, "--table", `${schema}.orders`, "--execute"]);
  assert.equal(skip.code, 0, skip.stderr + skip.stdout);
  await waitFor("row 5 in DuckDB after the skip", async () => JSON.stringify(await duckIds()) === "[1,2,5]", { daemon, timeoutMs: 60_000 });
  await daemon.stop();
  phase("stopped");
  t.diagnostic(`phases: ${phases.join(", ")}`);

  // The dead-lettered change is in <deployment>.dlq.<source>, with the check named.
  const dead = await readEmbeddedTopics(join(dir, "log.db"), [`${deployment}.dlq.${source}`], { decode: false });
  assert.equal(dead.length, 1);
  assert.equal(dead[0]!.headers["sluice.check"], "regex");
  assert.equal(dead[0]!.headers["sluice.column"], "code");
  assert.match(dead[0]!.value!.toString(), /"id":3/);

  // Logs name table, key, column and check; never the value.
  const log = readFileSync(daemon.logFile, "utf8");
  assert.match(log, /"msg":"data check regex failed: table [^"]*orders, key \{\\"id\\":3\}, column code \(dead-letter\)"/);
  for (const value of SECRET_VALUES) assert.ok(!log.includes(value), `the checked value ${value} was logged`);
});
