// deploy/grafana: the dashboard is well-formed, covers what an operator needs, queries only
// metrics and labels daemon/metrics.ts exports, and is wired to the provisioning files and the
// compose mounts. (That every query runs on a real Prometheus: dashboard.int.test.ts.)
import { test } from "node:test";
import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  asArray,
  asRecord,
  dashboardPanels,
  dashboardQueries,
  parseLabelValues,
  promqlGroupingLabels,
  promqlMetricNames,
  promqlSelectorLabels,
  readDashboard,
  readYaml,
  repoPath,
  seriesCatalogue,
  variableQuery,
} from "./support.ts";

const dashboard = readDashboard();

test("dashboard: uid, title, unique panel ids, panels inside the 24-column grid without overlaps", () => {
  assert.equal(dashboard.uid, "sluice-overview");
  assert.ok(dashboard.title);
  assert.ok(dashboard.schemaVersion >= 36, "a schemaVersion current Grafana reads without migration surprises");
  const panels = dashboardPanels(dashboard);
  const ids = panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length, "panel ids are unique");
  const cells = new Map<string, string>();
  for (const p of panels) {
    const { x, y, w, h } = p.gridPos;
    assert.ok(x >= 0 && w > 0 && x + w <= 24, `${p.title}: inside 24 columns`);
    assert.ok(y >= 0 && h > 0, `${p.title}: gridPos`);
    for (let i = x; i < x + w; i++) {
      for (let j = y; j < y + h; j++) {
        const key = `${i},${j}`;
        assert.ok(!cells.has(key), `"${p.title}" overlaps "${cells.get(key)}"`);
        cells.set(key, p.title);
      }
    }
  }
});

test("dashboard: every query panel uses the datasource variable and has PromQL", () => {
  for (const p of dashboardPanels(dashboard)) {
    if (p.type === "row") continue;
    assert.ok(p.targets && p.targets.length > 0, `${p.title}: no query`);
    assert.equal(p.datasource?.uid, "${datasource}", `${p.title}: panel datasource`);
    for (const t of p.targets) {
      assert.equal(t.datasource?.uid, "${datasource}", `${p.title} ${t.refId}: target datasource`);
      assert.ok(t.expr.trim(), `${p.title} ${t.refId}: empty expr`);
    }
    const refIds = p.targets.map((t) => t.refId);
    assert.equal(new Set(refIds).size, refIds.length, `${p.title}: refIds unique`);
  }
});

test("dashboard: template variables for source, table and sink (label_values), plus instance and datasource", () => {
  const vars = new Map(dashboard.templating.list.map((v) => [v.name, v]));
  const ds = vars.get("datasource");
  assert.equal(ds?.type, "datasource");
  assert.equal(ds?.query, "prometheus");
  for (const name of ["instance", "source", "table", "sink"]) {
    const v = vars.get(name);
    assert.ok(v, `variable ${name}`);
    assert.equal(v.type, "query");
    const parsed = parseLabelValues(variableQuery(v));
    assert.ok(parsed, `${name}: a label_values(...) query, got ${variableQuery(v)}`);
    assert.equal(parsed.label, name);
    assert.equal(v.includeAll, true, `${name}: "All" option`);
    assert.equal(v.allValue, ".*", `${name}: All means every value, including series without the label`);
    const used = dashboardQueries(dashboard).some(({ target }) => target.expr.includes(`$${name}`));
    assert.ok(used, `variable $${name} is used by some panel`);
  }
});

test("dashboard: queries only metrics and labels of daemon/metrics.ts", () => {
  const catalogue = seriesCatalogue();
  const queries = dashboardQueries(dashboard).map(({ panel, target }) => ({ where: `${panel.title} ${target.refId}`, expr: target.expr }));
  for (const v of dashboard.templating.list) {
    const selector = parseLabelValues(variableQuery(v))?.selector;
    if (selector) queries.push({ where: `variable ${v.name}`, expr: selector });
  }
  for (const { where, expr } of queries) {
    const names = promqlMetricNames(expr);
    for (const metric of names) assert.ok(catalogue.has(metric), `${where}: unknown metric "${metric}"`);
    for (const { metric, label } of promqlSelectorLabels(expr)) {
      if (metric === "") continue;
      assert.ok(catalogue.get(metric)?.labels.has(label), `${where}: ${metric} has no label "${label}"`);
    }
    const labels = new Set(names.flatMap((m) => [...catalogue.get(m)!.labels]));
    for (const label of promqlGroupingLabels(expr)) assert.ok(labels.has(label), `${where}: groups by "${label}", which none of its metrics has`);
    if (names.length === 0) {
      // a bare selector such as {__name__=~"sluice_.+", source=~"$source"}: labels must exist somewhere
      const all = new Set([...catalogue.values()].flatMap((s) => [...s.labels]));
      for (const m of expr.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) {
        if (m[1] !== "__name__") assert.ok(all.has(m[1]!), `${where}: no metric has label "${m[1]}"`);
      }
    }
  }
});

test("dashboard: covers throughput, lag, slot bytes, freshness, errors, logins refused (sinks, Kafka), schema changes, snapshot, halted tables, resources", () => {
  const exprs = dashboardQueries(dashboard).map(({ target }) => target.expr).join("\n");
  const wanted = [
    "rate(sluice_changes_captured_total",
    "rate(sluice_sink_changes_applied_total",
    "sluice_source_lag_seconds",
    "sluice_postgres_slot_lag_bytes",
    "sluice_postgres_slot_retained_wal_bytes",
    "sluice_sink_freshness_seconds",
    "sluice_sink_lag_records",
    "sluice_sink_dead_lettered_total",
    "sluice_sink_retries_total",
    "sluice_sink_auth_refused",
    "sluice_kafka_auth_refused",
    "sluice_schema_versions_registered_total",
    "sluice_schema_changes_rejected_total",
    "sluice_snapshot_rows_done",
    "sluice_snapshot_rows_total",
    "sluice_tables_halted",
    "sluice_topic_publish_duration_seconds_bucket",
    "sluice_sink_batch_apply_duration_seconds_bucket",
    "sluice_process_resident_memory_bytes",
    "sluice_nodejs_heap_size_used_bytes",
    "sluice_nodejs_eventloop_lag_seconds",
  ];
  for (const w of wanted) assert.ok(exprs.includes(w), `no panel queries ${w}`);
});

test("provisioning: the Prometheus data source, the dashboard provider, and the compose mounts agree", () => {
  const datasources = asArray(asRecord(readYaml(repoPath("deploy/grafana/provisioning/datasources/prometheus.yaml")), "datasources")["datasources"], "datasources");
  const prom = asRecord(datasources[0], "datasource");
  assert.equal(prom["type"], "prometheus");
  const dsVar = dashboard.templating.list.find((v) => v.name === "datasource") as unknown as { current?: { value?: string } };
  assert.equal(prom["uid"], dsVar.current?.value, "the dashboard's default data source is the provisioned one");
  const url = new URL(String(prom["url"]));

  const providers = asArray(asRecord(readYaml(repoPath("deploy/grafana/provisioning/dashboards/sluice.yaml")), "providers")["providers"], "providers");
  const provider = asRecord(providers[0], "provider");
  assert.equal(provider["type"], "file");
  const providerPath = String(asRecord(provider["options"], "options")["path"]);

  const compose = asRecord(readYaml(repoPath("deploy/compose.yaml")), "compose");
  const services = asRecord(compose["services"], "services");
  assert.ok(services[url.hostname], `the data source URL's host "${url.hostname}" is a compose service`);
  const grafana = asRecord(services["grafana"], "grafana");
  const mounts = new Map(
    asArray(grafana["volumes"], "grafana volumes").map((v) => {
      const [source, target] = String(v).split(":");
      return [target!, source!];
    }),
  );
  assert.equal(mounts.get(providerPath), "./grafana/dashboards", `compose mounts deploy/grafana/dashboards at the provider's path ${providerPath}`);
  assert.equal(mounts.get("/etc/grafana/provisioning/datasources"), "./grafana/provisioning/datasources");
  assert.equal(mounts.get("/etc/grafana/provisioning/dashboards"), "./grafana/provisioning/dashboards");
  const env = asRecord(grafana["environment"], "grafana environment");
  const home = String(env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"] ?? "");
  if (home) {
    assert.ok(home.startsWith(`${providerPath}/`), "home dashboard path inside the mounted dashboards dir");
    assert.ok(existsSync(join(repoPath("deploy/grafana/dashboards"), home.slice(providerPath.length + 1))), `${home} exists in deploy/grafana/dashboards`);
  }
});
