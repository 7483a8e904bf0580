// Source lag of an idle MariaDB source against a real Prometheus scraping a real daemon: once the
// source has caught up and nothing is written, the server's binlog heartbeats keep
// sluice_source_lag_seconds near zero, so deploy/prometheus/rules.yml's SluiceNoProgress (with its
// thresholds scaled from minutes to seconds) stays silent. Bounds derive from heartbeat_interval.
// Prometheus scrapes this daemon every second (its target's __scrape_interval__ label), so the
// rule's windows scale to a few seconds and the idle period need only outlast them.
import assert from "node:assert/strict";
import { randomBytes, randomInt } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import mysql from "mysql2/promise";
import type { Connection } from "mysql2/promise";
import { stringify } from "yaml";
import { mariadb, prometheus } from "../services/ports.ts";
import { DaemonProcess, freePort } from "./daemon-process.ts";
import { readYaml, repoPath } from "./support.ts";

const HEARTBEAT_MS = 1_000;
/** A caught-up source is at most one heartbeat from the server plus one batcher interval behind; one more interval of slack. */
const LAG_BOUND_SECONDS = (3 * HEARTBEAT_MS) / 1000;
/** Prometheus's scrape interval for this daemon's target (the shared Prometheus's default is 5 s). */
const SCRAPE_INTERVAL = "1s";
/** The rule's 5m deriv and 10m increase windows, scaled: several scrapes each. */
const DERIV_WINDOW = "5s";
const INCREASE_WINDOW_SECONDS = 8;
/** Idle this long: many heartbeat intervals and scrapes, and well past the rule's increase window, so its "no change captured" half holds for the last several seconds. */
const IDLE_MS = 15 * HEARTBEAT_MS;

const suffix = randomBytes(4).toString("hex");
const database = `idle_lag_${suffix}`;
const sourceName = `idle_${suffix}`;
const alertName = `SluiceNoProgressTest_${suffix}`;
const rulesFile = join(prometheus.rulesDir, `idle-lag-${suffix}.yml`);
const targetsFile = join(prometheus.targetsDir, `idle-lag-${suffix}.json`);
let admin: Connection;
let daemon: DaemonProcess | undefined;
let httpPort = 0;
let dir = "";

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

/** SluiceNoProgress with 5 minutes of lag as 3 heartbeat intervals, the 5m/10m windows as DERIV_WINDOW/INCREASE_WINDOW_SECONDS, on this daemon only. */
function scaledNoProgressRule(): Rule {
  const rules = readYaml<{ groups: { rules: Rule[] }[] }>(repoPath("deploy/prometheus/rules.yml"));
  const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === "SluiceNoProgress");
  assert.ok(rule, "deploy/prometheus/rules.yml has SluiceNoProgress");
  const selector = `{instance="127.0.0.1:${httpPort}", source="${sourceName}"}`;
  const expr = rule.expr
    .replace("sluice_source_lag_seconds > 300", `sluice_source_lag_seconds${selector} > ${LAG_BOUND_SECONDS}`)
    .replace("deriv(sluice_source_lag_seconds[5m])", `deriv(sluice_source_lag_seconds${selector}[${DERIV_WINDOW}])`)
    .replace("increase(sluice_changes_captured_total[10m])", `increase(sluice_changes_captured_total${selector}[${INCREASE_WINDOW_SECONDS}s])`);
  assert.notEqual(expr, rule.expr, "the rule's expression was scaled");
  assert.ok(!/\[(5|10)m\]|> 300/.test(expr), `every threshold scaled: ${expr}`);
  return { ...rule, alert: alertName, expr, for: "0s" };
}

async function reloadPrometheus(): Promise<void> {
  const response = await fetch(`${prometheus.url}/-/reload`, { method: "POST" });
  assert.equal(response.status, 200, await response.text());
}

async function alertState(): Promise<string | null> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
  return body.data.alerts.find((a) => a.labels["alertname"] === alertName)?.state ?? null;
}

async function promQuery(expr: string): Promise<number | null> {
  const response = await fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(expr)}`);
  const body = (await response.json()) as { status: string; data: { result: { value: [number, string] }[] } };
  assert.equal(body.status, "success", expr);
  const first = body.data.result[0];
  return first === undefined ? null : Number(first.value[1]);
}

/** A series of this daemon's /metrics, or null when absent. */
async function scrape(metric: string): Promise<number | null> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const values = text
    .split("\n")
    .filter((line) => line.startsWith(`${metric}{`) && line.includes(`source="${sourceName}"`))
    .map((line) => Number(line.slice(line.lastIndexOf(" ") + 1)));
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0);
}

async function waitFor<T>(what: string, probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (accept(last)) return last;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}\n${daemon?.raw.slice(-20).join("\n") ?? ""}`);
}

before(async () => {
  admin = await mysql.createConnection({ host: mariadb.host, port: mariadb.port, user: mariadb.user, password: mariadb.password });
  await admin.query(`CREATE DATABASE \`${database}\``);
  await admin.query(`CREATE TABLE \`${database}\`.items (id INT PRIMARY KEY, v VARCHAR(20))`);
  httpPort = await freePort();
  dir = mkdtempSync(join(tmpdir(), "sluice-idle-lag-"));
  const configFile = join(dir, "sluice.yaml");
  writeFileSync(
    configFile,
    stringify({
      name: `idle_${suffix}`,
      sources: [
        {
          name: sourceName,
          kind: "mysql",
          host: mariadb.host,
          port: mariadb.port,
          user: mariadb.user,
          password: mariadb.password,
          server_id: randomInt(10_000, 2 ** 31),
          tables: [`${database}.*`],
          heartbeat_interval: `${HEARTBEAT_MS}ms`,
        },
      ],
      topics: { kind: "embedded", path: join(dir, "log.db") },
      http: { listen: `127.0.0.1:${httpPort}` },
    }),
  );
  daemon = new DaemonProcess(configFile);
  await daemon.waitForLine((l) => l.msg === "sluice started", 60_000);
  writeFileSync(targetsFile, JSON.stringify([{ targets: [`127.0.0.1:${httpPort}`], labels: { deploy_test: "idle-lag", __scrape_interval__: SCRAPE_INTERVAL, __scrape_timeout__: SCRAPE_INTERVAL } }]));
  writeFileSync(rulesFile, stringify({ groups: [{ name: `idle-lag-test-${suffix}`, interval: "1s", rules: [scaledNoProgressRule()] }] }));
  await reloadPrometheus();
});

after(async () => {
  rmSync(targetsFile, { force: true });
  rmSync(rulesFile, { force: true });
  await reloadPrometheus().catch(() => undefined);
  await daemon?.stop();
  await admin?.query(`DROP DATABASE IF EXISTS \`${database}\``).catch(() => undefined);
  await admin?.end();
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

test("an idle MariaDB source that has caught up reports lag near zero, and SluiceNoProgress stays silent", { timeout: 180_000 }, async (t) => {
  await admin.query(`INSERT INTO \`${database}\`.items VALUES (1, 'one'), (2, 'two')`);
  await waitFor("the daemon to capture the rows", () => scrape("sluice_changes_captured_total"), (n) => n !== null && n >= 2, 60_000);
  const promSelector = `{instance="127.0.0.1:${httpPort}", source="${sourceName}"}`;
  await waitFor("Prometheus to scrape the daemon", () => promQuery(`sluice_source_lag_seconds${promSelector}`), (v) => v !== null, 60_000);

  // From here nothing is written: the source is caught up and idle.
  const idleFrom = Date.now();
  let maxLag = 0;
  const states = new Set<string>();
  while (Date.now() - idleFrom < IDLE_MS) {
    const lag = await scrape("sluice_source_lag_seconds");
    assert.notEqual(lag, null, "the daemon exports the source's lag");
    maxLag = Math.max(maxLag, lag!);
    const state = await alertState();
    if (state !== null) states.add(state);
    await new Promise((r) => setTimeout(r, 250));
  }
  t.diagnostic(`largest lag read from /metrics while idle: ${maxLag} s (heartbeat_interval ${HEARTBEAT_MS} ms)`);
  assert.ok(maxLag < LAG_BOUND_SECONDS, `idle for ${IDLE_MS / 1000} s with heartbeat_interval ${HEARTBEAT_MS} ms, the lag stays below ${LAG_BOUND_SECONDS} s; it reached ${maxLag} s`);

  const window = `${Math.floor((Date.now() - idleFrom) / 1000) - 3}s`;
  const scrapedMax = await promQuery(`max_over_time(sluice_source_lag_seconds${promSelector}[${window}])`);
  assert.notEqual(scrapedMax, null, "Prometheus has the lag of the idle period");
  assert.ok(scrapedMax! < LAG_BOUND_SECONDS, `the lag Prometheus scraped while idle stays below ${LAG_BOUND_SECONDS} s; it reached ${scrapedMax} s`);
  // The scaled windows hold several samples each (the target's scrape interval took effect), so the rule's silence is not for want of data.
  const samples = await promQuery(`count_over_time(sluice_source_lag_seconds${promSelector}[${DERIV_WINDOW}])`);
  assert.ok(samples !== null && samples >= 3, `Prometheus scraped the daemon every ${SCRAPE_INTERVAL}: ${samples} samples in the rule's ${DERIV_WINDOW} deriv window`);
  assert.deepEqual([...states], [], "SluiceNoProgress (scaled) neither pending nor firing while the source is idle");
  assert.equal(await promQuery(`sum(increase(sluice_changes_captured_total${promSelector}[${window}]))`), 0, "nothing was captured while idle: the lag stayed low without changes");
});
