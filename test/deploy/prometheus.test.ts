// deploy/prometheus: the rules pass `promtool check rules` and their unit tests
// (`promtool test rules`), the scrape config passes `promtool check config`, and every rule uses
// only metrics and labels that daemon/metrics.ts exports. promtool comes with the Debian
// prometheus package that test/services/up installs.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import {
  asArray,
  asRecord,
  promqlGroupingLabels,
  promqlMetricNames,
  promqlSelectorLabels,
  readText,
  metricCatalogue,
  readYaml,
  repoPath,
  seriesCatalogue,
} from "./support.ts";

const PROMTOOL = process.env["PROMTOOL"] ?? "/usr/bin/promtool";
const rulesFile = repoPath("deploy/prometheus/rules.yml");
const rulesTestFile = repoPath("deploy/prometheus/rules.test.yml");
const configFile = repoPath("deploy/prometheus/prometheus.yml");

function promtool(args: string[]): { status: number | null; output: string } {
  assert.ok(existsSync(PROMTOOL), `promtool not found at ${PROMTOOL}: it comes with the Debian package "prometheus" (bash test/services/up installs it)`);
  const result = spawnSync(PROMTOOL, args, { cwd: repoPath("deploy/prometheus"), encoding: "utf8", timeout: 120_000 });
  if (result.error) throw result.error;
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

interface Rule {
  alert?: string;
  record?: string;
  expr: string;
  for?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
}

function rules(): Rule[] {
  const doc = asRecord(readYaml(rulesFile), "rules.yml");
  return asArray(doc["groups"], "groups").flatMap((g) => asArray(asRecord(g, "group")["rules"], "rules") as Rule[]);
}

test("promtool check rules deploy/prometheus/rules.yml", () => {
  const { status, output } = promtool(["check", "rules", rulesFile]);
  assert.equal(status, 0, output);
  assert.match(output, /SUCCESS: \d+ rules found/);
});

test("promtool test rules deploy/prometheus/rules.test.yml", () => {
  const { status, output } = promtool(["test", "rules", rulesTestFile]);
  assert.equal(status, 0, output);
  assert.match(output, /SUCCESS/);
});

test("promtool check config deploy/prometheus/prometheus.yml (with its rule file)", () => {
  const { status, output } = promtool(["check", "config", configFile]);
  assert.equal(status, 0, output);
  assert.match(output, /SUCCESS: 1 rule files found/);
  const config = asRecord(readYaml(configFile), "prometheus.yml");
  const jobs = asArray(config["scrape_configs"], "scrape_configs").map((j) => asRecord(j, "job"));
  const sluice = jobs.find((j) => j["job_name"] === "sluice");
  assert.ok(sluice, 'a scrape job named "sluice" (the rules select job="sluice")');
  assert.equal(sluice["metrics_path"] ?? "/metrics", "/metrics");
});

test("every alert has a severity, a summary, a description and a runbook section in docs/operations.md", () => {
  const docs = readText(repoPath("docs/operations.md"));
  const anchors = new Set(
    [...docs.matchAll(/^#{1,6}\s+(.+)$/gm)].map((m) => m[1]!.trim().toLowerCase().replace(/[^\w\- ]/g, "").replace(/ /g, "-")),
  );
  const alerts = rules().filter((r) => r.alert);
  assert.ok(alerts.length >= 6);
  for (const rule of alerts) {
    assert.match(rule.labels?.["severity"] ?? "", /^(critical|warning|info)$/, `${rule.alert}: severity`);
    assert.ok(rule.annotations?.["summary"], `${rule.alert}: summary`);
    assert.ok(rule.annotations?.["description"], `${rule.alert}: description`);
    const runbook = rule.annotations?.["runbook"] ?? "";
    const m = /^docs\/operations\.md#(.+)$/.exec(runbook);
    assert.ok(m, `${rule.alert}: runbook annotation "docs/operations.md#<section>", got "${runbook}"`);
    assert.ok(anchors.has(m[1]!), `${rule.alert}: docs/operations.md has no heading with anchor #${m[1]}`);
  }
});

test("the alerts the issue asks for exist", () => {
  const byName = new Map(rules().filter((r) => r.alert).map((r) => [r.alert!, r.expr]));
  const wanted: [string, RegExp][] = [
    ["SluiceDown", /up\{job="sluice"\}\s*==\s*0/],
    ["SluiceSlotLagGrowing", /deriv\(sluice_postgres_slot_lag_bytes\[/],
    ["SluiceNoProgress", /increase\(sluice_changes_captured_total\[[\s\S]*|sluice_source_lag_seconds/],
    ["SluiceSinkStale", /sluice_sink_freshness_seconds\s*>/],
    ["SluiceTableHalted", /sluice_tables_halted/],
    ["SluiceDeadLetters", /sluice_sink_dead_lettered_total/],
  ];
  for (const [name, pattern] of wanted) {
    assert.ok(byName.has(name), `alert ${name} missing`);
    assert.match(byName.get(name)!, pattern, name);
  }
  assert.match(byName.get("SluiceNoProgress")!, /sluice_changes_captured_total/);
  assert.match(byName.get("SluiceNoProgress")!, /deriv\(sluice_source_lag_seconds/);
});

test("every rule uses only metrics and labels of daemon/metrics.ts", () => {
  const catalogue = seriesCatalogue();
  for (const rule of rules()) {
    const name = rule.alert ?? rule.record ?? "?";
    assert.ok(promqlMetricNames(rule.expr).length > 0, `${name}: no metric found in ${rule.expr}`);
    for (const metric of promqlMetricNames(rule.expr)) {
      assert.ok(catalogue.has(metric), `${name}: unknown metric "${metric}" (not in daemon/metrics.ts)`);
    }
    const metricsHere = promqlMetricNames(rule.expr).map((m) => catalogue.get(m)!);
    const labelsHere = new Set(metricsHere.flatMap((m) => [...m.labels]));
    for (const { metric, label } of promqlSelectorLabels(rule.expr)) {
      assert.ok(catalogue.get(metric)?.labels.has(label), `${name}: ${metric} has no label "${label}"`);
    }
    for (const label of promqlGroupingLabels(rule.expr)) {
      assert.ok(labelsHere.has(label), `${name}: groups by "${label}", which none of its metrics has`);
    }
    for (const m of `${rule.annotations?.["summary"] ?? ""} ${rule.annotations?.["description"] ?? ""}`.matchAll(/\$labels\.(\w+)/g)) {
      assert.ok(labelsHere.has(m[1]!), `${name}: annotation uses $labels.${m[1]}, which none of its metrics has`);
    }
  }
});

test("the unit tests cover every alert, both firing and not firing", () => {
  const doc = asRecord(readYaml(rulesTestFile), "rules.test.yml");
  const fired = new Set<string>();
  const silent = new Set<string>();
  for (const t of asArray(doc["tests"], "tests")) {
    for (const a of asArray(asRecord(t, "test")["alert_rule_test"] ?? [], "alert_rule_test")) {
      const at = asRecord(a, "alert_rule_test");
      const expected = asArray(at["exp_alerts"] ?? [], "exp_alerts");
      (expected.length > 0 ? fired : silent).add(String(at["alertname"]));
    }
  }
  for (const rule of rules().filter((r) => r.alert)) {
    assert.ok(fired.has(rule.alert!), `rules.test.yml never expects ${rule.alert} to fire`);
    assert.ok(silent.has(rule.alert!), `rules.test.yml never expects ${rule.alert} to stay silent`);
  }
});

test("docs/operations.md lists every metric of daemon/metrics.ts with its labels", () => {
  const docs = readText(repoPath("docs/operations.md"));
  for (const metric of metricCatalogue().values()) {
    if (/^sluice_(process|nodejs)_/.test(metric.name)) continue; // prom-client's defaults: listed by family
    const row = docs.split("\n").find((l) => l.startsWith(`| \`${metric.name}\` |`));
    assert.ok(row, `docs/operations.md has no row for ${metric.name}`);
    assert.ok(row.includes(`| ${metric.type} |`), `${metric.name}: type ${metric.type}`);
    for (const label of metric.labels) assert.ok(row.includes(label), `${metric.name}: label ${label}`);
  }
});
