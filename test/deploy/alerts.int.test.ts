// The sink-freshness alert against a real Prometheus scraping a real daemon: the Elasticsearch
// sink's server becomes unreachable (a proxy in front of it closes) while changes keep coming, the
// alert fires; the server comes back, the sink catches up, the alert clears. The rule under test is
// deploy/prometheus/rules.yml's SluiceSinkStale with its thresholds scaled from minutes to seconds.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect } from "node:net";
import type { Server, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import pg from "pg";
import { stringify } from "yaml";
import { elasticsearch, postgres, prometheus } from "../services/ports.ts";
import { recordTestName } from "../services/test-names.ts";
import { deleteElasticIndices, deleteElasticOffsets } from "../e2e/helpers.ts";
import { DaemonProcess, freePort } from "./daemon-process.ts";
import { readYaml, repoPath } from "./support.ts";

const suffix = randomBytes(4).toString("hex");
const schema = `alert_${suffix}`;
const source = recordTestName(`alert_${suffix}`);
const alertName = `SluiceSinkStaleTest_${suffix}`;
const failingAlertName = `SluiceSinkFailingTest_${suffix}`;
const rulesFile = join(prometheus.rulesDir, `alerts-${suffix}.yml`);
const targetsFile = join(prometheus.targetsDir, `alerts-${suffix}.json`);
const deployment = recordTestName(`alerts_${suffix}`);
/** The sink's indices and aliases: `${suffix}_{table}`. */
const targetPrefix = `${suffix}_`;
const dir = mkdtempSync(join(tmpdir(), "sluice-alerts-"));
const db = new pg.Client(postgres);
let daemon: DaemonProcess | undefined;
let httpPort = 0;

/** A TCP proxy that can be switched off (connections cut, port closed) and on again. */
class SwitchableProxy {
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();
  readonly port: number;
  private readonly upstream: number;
  constructor(port: number, upstream: number) {
    this.port = port;
    this.upstream = upstream;
  }
  async on(): Promise<void> {
    this.server = createServer((client) => {
      const server = connect(this.upstream, "127.0.0.1");
      for (const socket of [client, server]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => undefined);
      }
      client.pipe(server).pipe(client);
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, "127.0.0.1", resolve));
  }
  async off(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = null;
  }
}
let proxy: SwitchableProxy;

interface Rule {
  alert?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function scaledStaleRule(): Rule {
  const rules = readYaml<{ groups: { rules: Rule[] }[] }>(repoPath("deploy/prometheus/rules.yml"));
  const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === "SluiceSinkStale");
  assert.ok(rule, "deploy/prometheus/rules.yml has SluiceSinkStale");
  assert.match(rule.expr, /sluice_sink_freshness_seconds > 300/);
  // Same expression; 5 minutes become 3 seconds, and the rule looks at this test's daemon only.
  const expr = rule.expr.replace("sluice_sink_freshness_seconds > 300", `sluice_sink_freshness_seconds{sink="search", instance="127.0.0.1:${httpPort}"} > 3`);
  return { ...rule, alert: alertName, expr, for: "0s" };
}

function scaledFailingRule(): Rule {
  const rules = readYaml<{ groups: { rules: Rule[] }[] }>(repoPath("deploy/prometheus/rules.yml"));
  const rule = rules.groups.flatMap((g) => g.rules).find((r) => r.alert === "SluiceSinkFailing");
  assert.ok(rule, "deploy/prometheus/rules.yml has SluiceSinkFailing");
  assert.match(rule.expr, /\(sluice_sink_failing_seconds\) > 240/);
  // Same expression; 4 minutes become 3 seconds, and the rule looks at this test's daemon only.
  const only = `{sink="search", instance="127.0.0.1:${httpPort}"}`;
  const expr = rule.expr.replace("(sluice_sink_failing_seconds) > 240", `(sluice_sink_failing_seconds${only}) > 3`).replace("(sluice_sink_auth_refused)", `(sluice_sink_auth_refused${only})`);
  return { ...rule, alert: failingAlertName, expr, for: "0s" };
}

async function reloadPrometheus(): Promise<void> {
  const response = await fetch(`${prometheus.url}/-/reload`, { method: "POST" });
  assert.equal(response.status, 200, await response.text());
}

async function alertState(name = alertName): Promise<string | null> {
  const body = (await (await fetch(`${prometheus.url}/api/v1/alerts`)).json()) as { data: { alerts: { labels: Record<string, string>; state: string }[] } };
  return body.data.alerts.find((a) => a.labels["alertname"] === name)?.state ?? null;
}

async function waitFor<T>(what: string, probe: () => Promise<T>, accept: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await probe();
    if (accept(last)) return last;
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(last)}\n${daemon?.raw.slice(-20).join("\n") ?? ""}`);
}

/** The sink's lag in records, or null until it has applied a change (before that, no topic may exist yet and the lag reads 0). */
async function sinkLag(): Promise<number | null> {
  const status = (await (await fetch(`http://127.0.0.1:${httpPort}/status`)).json()) as { sinks: { name: string; lagRecords: number | null; freshnessSeconds: number | null }[] };
  const sink = status.sinks.find((s) => s.name === "search");
  return sink && sink.freshnessSeconds !== null ? sink.lagRecords : null;
}

before(async () => {
  await db.connect();
  await db.query(`CREATE SCHEMA ${schema}; CREATE TABLE ${schema}.items (id serial PRIMARY KEY, v text)`);
  httpPort = await freePort();
  proxy = new SwitchableProxy(await freePort(), elasticsearch.port);
  await proxy.on();
  const configFile = join(dir, "sluice.yaml");
  writeFileSync(
    configFile,
    stringify({
      name: deployment,
      sources: [{ name: source, kind: "postgres", host: postgres.host, port: postgres.port, database: postgres.database, user: postgres.user, password: postgres.password, tables: [`${schema}.*`], heartbeat_interval: "1s" }],
      topics: { kind: "embedded", path: join(dir, "log.db") },
      sinks: [{ name: "search", kind: "elasticsearch", nodes: [`http://127.0.0.1:${proxy.port}`], target: `${targetPrefix}{table}`, retry: { initial: "100ms", max: "1s" }, batch: { max_wait: "100ms" } }],
      http: { listen: `127.0.0.1:${httpPort}` },
    }),
  );
  daemon = new DaemonProcess(configFile);
  await daemon.waitForLine((l) => l.msg === "sluice started", 60_000);
  writeFileSync(targetsFile, JSON.stringify([{ targets: [`127.0.0.1:${httpPort}`], labels: { deploy_test: "alerts" } }]));
  writeFileSync(rulesFile, stringify({ groups: [{ name: `alerts-test-${suffix}`, interval: "2s", rules: [scaledStaleRule(), scaledFailingRule()] }] }));
  await reloadPrometheus();
});

after(async () => {
  rmSync(targetsFile, { force: true });
  rmSync(rulesFile, { force: true });
  await reloadPrometheus().catch(() => undefined);
  await daemon?.stop();
  await proxy?.off();
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
  await db.query(`SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1`, [`sluice_${source}`]).catch(() => undefined);
  await db.query(`DROP PUBLICATION IF EXISTS sluice_${source}`).catch(() => undefined);
  await db.end();
  await deleteElasticIndices(targetPrefix);
  await deleteElasticOffsets(["search"], { deployment, targetPrefix });
  rmSync(dir, { recursive: true, force: true });
});

test("the sink-freshness and sink-failing alerts fire while the sink's server is down and clear once it catches up", { timeout: 240_000 }, async () => {
  await db.query(`INSERT INTO ${schema}.items (v) SELECT 'row ' || g FROM generate_series(1, 20) g`);
  await waitFor("the sink to apply the first rows", sinkLag, (lag) => lag === 0, 60_000);
  assert.equal(await alertState(), null, "nothing fires while the sink keeps up");
  assert.equal(await alertState(failingAlertName), null, "nothing fails while the sink keeps up");

  await proxy.off();
  const writer = setInterval(() => void db.query(`INSERT INTO ${schema}.items (v) VALUES ('while down')`).catch(() => undefined), 300);
  try {
    await waitFor("the alert to fire", alertState, (state) => state === "firing", 90_000);
    await waitFor("the sink-failing alert to fire", () => alertState(failingAlertName), (state) => state === "firing", 90_000);
  } finally {
    clearInterval(writer);
  }

  await proxy.on();
  await waitFor("the sink to catch up", sinkLag, (lag) => lag === 0, 90_000);
  await waitFor("the alert to clear", alertState, (state) => state === null, 90_000);
  await waitFor("the sink-failing alert to clear", () => alertState(failingAlertName), (state) => state === null, 90_000);
});
