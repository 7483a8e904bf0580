// The dashboard and the alert rules against the real Prometheus of test/services, scraping a real
// daemon: `sluice run` captures a table of the real PostgreSQL (with a small live workload) into
// the embedded topic log and a DuckDB sink; Prometheus picks it up through a file_sd target file
// (job "sluice"); then every dashboard query, every variable query and every rule expression
// is sent to Prometheus's HTTP API.
//
// Required now: every expression is valid PromQL that Prometheus evaluates (status "success"),
// and the expressions over the process metrics (which any running daemon exports) return data.
// Which of the others return data is reported (t.diagnostic); SLUICE_DASHBOARD_REQUIRE_DATA=1
// requires data from every dashboard query except the ones in MAY_BE_EMPTY below.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { postgres, prometheus } from "../services/ports.ts";
import { recordTestName } from "../services/test-names.ts";
import { DaemonProcess, freePort } from "./daemon-process.ts";
import {
  asArray,
  asRecord,
  dashboardQueries,
  parseLabelValues,
  promqlMetricNames,
  readDashboard,
  readYaml,
  repoPath,
  substituteVariables,
  variableQuery,
} from "./support.ts";

const REQUIRE_ALL_DATA = process.env["SLUICE_DASHBOARD_REQUIRE_DATA"] === "1";
/** Panels that stay empty in a healthy run: nothing is halted, dead-lettered or rejected. */
// A rebuild's gauges exist only once a rebuild ran.
const MAY_BE_EMPTY = new Set(["Halted tables", "Dead letters / s", "Sink retries / s", "Schema changes rejected", "Rebuild progress", "Rebuild records read / s"]);

const suffix = randomBytes(4).toString("hex");
const sourceName = recordTestName(`dash_${suffix}`);
const schema = `deploy_dash_${suffix}`;
const slot = `sluice_${sourceName}`; // the source's defaults
const publication = `sluice_${sourceName}`;
const targetsFile = join(prometheus.targetsDir, `deploy-dashboard-${suffix}.json`);

let dir: string;
let daemon: DaemonProcess | undefined;
let instance: string;
let admin: pg.Client;
let workload: { stop: () => Promise<number> } | undefined;

interface PromResponse {
  status: string;
  error?: string;
  data?: { resultType?: string; result?: unknown[] } | string[];
}

async function promGet(path: string): Promise<{ http: number; body: PromResponse }> {
  const res = await fetch(`${prometheus.url}${path}`, { signal: AbortSignal.timeout(15_000) });
  return { http: res.status, body: (await res.json()) as PromResponse };
}

async function query(expr: string): Promise<{ http: number; body: PromResponse }> {
  return promGet(`/api/v1/query?query=${encodeURIComponent(expr)}`);
}

function resultCount(body: PromResponse): number {
  const data = body.data;
  if (Array.isArray(data)) return data.length;
  const result = data?.result;
  if (!Array.isArray(result)) return 0;
  return data?.resultType === "scalar" || data?.resultType === "string" ? 1 : result.length;
}

async function waitFor(what: string, timeoutMs: number, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function startWorkload(client: pg.Client): { stop: () => Promise<number> } {
  let running = true;
  let statements = 0;
  const loop = (async () => {
    let id = 1000;
    while (running) {
      id += 1;
      await client.query(`INSERT INTO ${schema}.items (id, name, qty) VALUES ($1, $2, $3)`, [id, `item ${id}`, id % 7]);
      await client.query(`UPDATE ${schema}.items SET qty = qty + 1 WHERE id = $1`, [id - 1]);
      if (id % 3 === 0) await client.query(`DELETE FROM ${schema}.items WHERE id = $1`, [id - 2]);
      statements += 3;
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return statements;
    },
  };
}

async function dropReplicationObjects(): Promise<void> {
  await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot]).catch(() => undefined);
  await admin.query(`DROP PUBLICATION IF EXISTS ${publication}`).catch(() => undefined);
}

before(async () => {
  const up = await query("up");
  assert.equal(up.body.status, "success", "the Prometheus of test/services answers (bash test/services/up)");

  admin = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database: postgres.database });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`CREATE TABLE ${schema}.items (id int PRIMARY KEY, name text NOT NULL, qty int NOT NULL)`);
  await admin.query(`INSERT INTO ${schema}.items SELECT g, 'item ' || g, g % 5 FROM generate_series(1, 500) g`);
  await admin.query(`ANALYZE ${schema}.items`);

  dir = mkdtempSync(join(tmpdir(), "sluice-dashboard-"));
  const port = await freePort();
  instance = `127.0.0.1:${port}`;
  const configFile = join(dir, "sluice.yaml");
  writeFileSync(
    configFile,
    `name: deploydash
sources:
  - name: ${sourceName}
    kind: postgres
    host: ${postgres.host}
    port: ${postgres.port}
    database: ${postgres.database}
    user: ${postgres.user}
    password: \${DASH_PG_PASSWORD}
    tables: ["${schema}.*"]
    heartbeat_interval: 1s
topics:
  kind: embedded
  path: ${join(dir, "sluice.db")}
sinks:
  - name: warehouse
    kind: duckdb
    path: ${join(dir, "warehouse.duckdb")}
    batch: {max_wait: 100ms}
http:
  listen: ${instance}
logging:
  level: info
`,
  );
  daemon = new DaemonProcess(configFile, { DASH_PG_PASSWORD: postgres.password });
  await daemon.waitForLine((l) => l.msg === "sluice started", 30_000);
  workload = startWorkload(admin);
  // Prometheus reads file_sd files when they change (and every 5 s, test/services/lib/prometheus.sh) and scrapes every
  // 5 s; this target every second (its __scrape_interval__ label), so the samples below come in seconds.
  writeFileSync(targetsFile, JSON.stringify([{ targets: [instance], labels: { deploy_test: "dashboard", __scrape_interval__: "1s", __scrape_timeout__: "1s" } }]));
  await waitFor(`up{job="sluice", instance="${instance}"} == 1`, 60_000, async () => {
    const r = await query(`up{job="sluice", instance="${instance}"} == 1`);
    return resultCount(r.body) > 0;
  });
  // rate() over 1m needs two samples of each series: a few more scrapes while the workload runs
  await waitFor("two scrapes with captured changes", 60_000, async () => {
    const r = await query(`count_over_time(sluice_process_start_time_seconds{instance="${instance}"}[1m]) >= 3`);
    return resultCount(r.body) > 0;
  });
});

after(async () => {
  rmSync(targetsFile, { force: true });
  const statements = await workload?.stop().catch(() => 0);
  if (daemon) {
    const { code } = await daemon.stop();
    assert.equal(code, 0, `sluice exits 0 on SIGTERM:\n${daemon.raw.slice(-20).join("\n")}`);
    assert.ok(daemon.lines.some((l) => l.msg === "sluice stopped"), "logs \"sluice stopped\"");
  }
  if (admin) {
    await dropReplicationObjects();
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin.end();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  void statements;
});

/** Grafana's substitution for this run: our daemon's instance, every other variable "All". */
function forThisRun(expr: string): string {
  return substituteVariables(expr, { instance: instance.replace(/\./g, "\\\\.") });
}

function isProcessOnly(expr: string): boolean {
  const names = promqlMetricNames(expr);
  return names.length > 0 && names.every((n) => n === "up" || /^sluice_(process|nodejs)_/.test(n));
}

test("every dashboard query is valid PromQL on the real Prometheus; the process metrics return data", async (t) => {
  const withData: string[] = [];
  const empty: string[] = [];
  for (const { panel, target } of dashboardQueries(readDashboard())) {
    const expr = forThisRun(target.expr);
    const where = `${panel.title} [${target.refId}]`;
    const { http, body } = await query(expr);
    assert.equal(http, 200, `${where}: HTTP ${http}: ${body.error ?? ""}\n${expr}`);
    assert.equal(body.status, "success", `${where}: ${body.error ?? ""}\n${expr}`);
    const n = resultCount(body);
    (n > 0 ? withData : empty).push(`${where}: ${target.expr}`);
    if (isProcessOnly(target.expr)) assert.ok(n > 0, `${where}: no data from a running daemon's process metrics\n${expr}`);
    if (REQUIRE_ALL_DATA && !MAY_BE_EMPTY.has(panel.title)) assert.ok(n > 0, `${where}: no data\n${expr}`);
  }
  t.diagnostic(`${withData.length} queries return data, ${empty.length} return none`);
  for (const q of empty) t.diagnostic(`no data: ${q}`);
  for (const q of withData) t.diagnostic(`data: ${q}`);
});

test("every template variable query runs on the real Prometheus; instance lists this daemon", async (t) => {
  for (const variable of readDashboard().templating.list) {
    if (variable.type !== "query") continue;
    const parsed = parseLabelValues(variableQuery(variable));
    assert.ok(parsed, variable.name);
    const params = parsed.selector ? `?match[]=${encodeURIComponent(forThisRun(parsed.selector))}` : "";
    const { http, body } = await promGet(`/api/v1/label/${parsed.label}/values${params}`);
    assert.equal(http, 200, `${variable.name}: ${body.error ?? ""}`);
    assert.equal(body.status, "success", `${variable.name}: ${body.error ?? ""}`);
    const values = (body.data as string[]) ?? [];
    t.diagnostic(`$${variable.name}: ${values.length} values${values.length ? ` (${values.slice(0, 5).join(", ")}${values.length > 5 ? ", ..." : ""})` : ""}`);
    if (variable.name === "instance") assert.ok(values.includes(instance), `$instance offers ${instance}: ${values.join(", ")}`);
  }
});

test("every alert rule expression is valid PromQL on the real Prometheus; nothing fires for this healthy daemon", async () => {
  const doc = asRecord(readYaml(repoPath("deploy/prometheus/rules.yml")), "rules.yml");
  for (const group of asArray(doc["groups"], "groups")) {
    for (const r of asArray(asRecord(group, "group")["rules"], "rules")) {
      const rule = asRecord(r, "rule");
      const expr = String(rule["expr"]);
      const { http, body } = await query(expr);
      assert.equal(http, 200, `${String(rule["alert"])}: ${body.error ?? ""}`);
      assert.equal(body.status, "success", `${String(rule["alert"])}: ${body.error ?? ""}`);
      // Scoped to this daemon: other targets of the shared Prometheus are not ours to judge.
      const mine = await query(`(${expr}) and on (instance) up{instance="${instance}"}`);
      assert.equal(mine.body.status, "success", `${String(rule["alert"])} (scoped): ${mine.body.error ?? ""}`);
      assert.equal(resultCount(mine.body), 0, `${String(rule["alert"])} would fire for the healthy test daemon`);
    }
  }
});
