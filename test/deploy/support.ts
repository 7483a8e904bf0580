// Shared helpers of the deploy/ tests: paths, YAML documents, the dashboard's PromQL, the metric
// catalogue of daemon/metrics.ts, and running the sluice CLI.
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { SluiceMetrics } from "../../daemon/metrics.ts";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "../..");
export const deployDir = join(repoRoot, "deploy");

export function repoPath(...parts: string[]): string {
  return join(repoRoot, ...parts);
}

export function readText(path: string): string {
  return readFileSync(path, "utf8");
}

export function readYaml<T = unknown>(path: string): T {
  return parseYaml(readText(path)) as T;
}

/** Every document of a (possibly multi-document) YAML file; throws on a syntax error. */
export function readYamlDocuments(path: string): unknown[] {
  return parseAllDocuments(readText(path)).map((doc) => {
    if (doc.errors.length > 0) throw new Error(`${path}: ${doc.errors.map((e) => e.message).join("; ")}`);
    return doc.toJS() as unknown;
  });
}

export function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function asRecord(value: unknown, what: string): Record<string, unknown> {
  if (!isRecord(value)) throw new Error(`${what}: expected a mapping, got ${JSON.stringify(value)}`);
  return value;
}

export function asArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) throw new Error(`${what}: expected a list, got ${JSON.stringify(value)}`);
  return value;
}

export function fileExists(path: string): boolean {
  return existsSync(path);
}

// --- metrics ----------------------------------------------------------------------------------

export interface MetricInfo {
  name: string;
  type: string;
  labels: string[];
}

/** Every metric family daemon/metrics.ts registers (including prom-client's default metrics). */
export function metricCatalogue(): Map<string, MetricInfo> {
  const metrics = new SluiceMetrics();
  const catalogue = new Map<string, MetricInfo>();
  for (const metric of metrics.registry.getMetricsAsArray()) {
    const labelNames = (metric as unknown as { labelNames?: readonly string[] }).labelNames ?? [];
    catalogue.set(metric.name, { name: metric.name, type: String(metric.type), labels: [...labelNames] });
  }
  return catalogue;
}

/** Labels every scraped series has, besides the metric's own. */
export const TARGET_LABELS = ["job", "instance"];

/** Names of the series a metric family exposes (histograms: _bucket, _sum, _count). */
export function seriesNames(info: MetricInfo): string[] {
  return info.type === "histogram" ? [`${info.name}_bucket`, `${info.name}_sum`, `${info.name}_count`] : [info.name];
}

/** series name (e.g. x_bucket) → its family and the labels the series can carry. */
export function seriesCatalogue(): Map<string, { family: MetricInfo; labels: Set<string> }> {
  const out = new Map<string, { family: MetricInfo; labels: Set<string> }>();
  for (const info of metricCatalogue().values()) {
    for (const name of seriesNames(info)) {
      const labels = new Set([...info.labels, ...TARGET_LABELS]);
      if (name.endsWith("_bucket")) labels.add("le");
      out.set(name, { family: info, labels });
    }
  }
  out.set("up", { family: { name: "up", type: "gauge", labels: [] }, labels: new Set(TARGET_LABELS) });
  return out;
}

// --- PromQL (a light reading, enough to check names and labels) --------------------------------

const PROMQL_KEYWORDS = new Set([
  "sum", "min", "max", "avg", "count", "stddev", "stdvar", "topk", "bottomk", "quantile", "count_values", "group",
  "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool",
  "rate", "irate", "increase", "delta", "idelta", "deriv", "predict_linear", "histogram_quantile", "absent",
  "absent_over_time", "changes", "resets", "vector", "scalar", "time", "timestamp", "label_replace", "label_join",
  "clamp_min", "clamp_max", "clamp", "abs", "ceil", "floor", "round", "sqrt", "exp", "ln", "log2", "log10",
  "avg_over_time", "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
  "quantile_over_time", "stddev_over_time", "present_over_time", "sort", "sort_desc", "inf", "nan",
]);

/** Metric names a PromQL expression selects (identifiers that are not functions or keywords). */
export function promqlMetricNames(expr: string): string[] {
  const withoutStrings = expr.replace(/"(?:[^"\\]|\\.)*"/g, '""');
  const withoutMatchers = withoutStrings.replace(/\{[^}]*\}/g, "{}");
  const withoutGroupings = withoutMatchers.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, "$1()");
  const withoutRanges = withoutGroupings.replace(/\[[^\]]*\]/g, "[]");
  const names = new Set<string>();
  for (const match of withoutRanges.matchAll(/(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w(])/g)) {
    const name = match[1]!;
    const after = withoutRanges.slice(match.index + name.length).trimStart();
    if (after.startsWith("(")) continue; // a function call
    if (PROMQL_KEYWORDS.has(name.toLowerCase())) continue;
    if (/^\d/.test(name)) continue;
    names.add(name);
  }
  return [...names];
}

/** Label names used in selectors `metric{label=...}`, per metric name. */
export function promqlSelectorLabels(expr: string): { metric: string; label: string }[] {
  const out: { metric: string; label: string }[] = [];
  for (const m of expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}/g)) {
    for (const l of m[2]!.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)/g)) out.push({ metric: m[1]!, label: l[1]! });
  }
  return out;
}

/** Label names in `by (...)`, `without (...)`, `on (...)`, `ignoring (...)` clauses. */
export function promqlGroupingLabels(expr: string): string[] {
  const out: string[] = [];
  for (const m of expr.matchAll(/\b(?:by|without|on|ignoring)\s*\(([^)]*)\)/g)) {
    for (const label of m[1]!.split(",").map((s) => s.trim()).filter(Boolean)) out.push(label);
  }
  return out;
}

// --- the dashboard ---------------------------------------------------------------------------

export const dashboardFile = repoPath("deploy/grafana/dashboards/sluice-overview.json");

export interface DashboardTarget {
  refId: string;
  expr: string;
  datasource?: { type?: string; uid?: string };
  legendFormat?: string;
  instant?: boolean;
  format?: string;
}

export interface DashboardPanel {
  id: number;
  type: string;
  title: string;
  gridPos: { h: number; w: number; x: number; y: number };
  datasource?: { type?: string; uid?: string };
  targets?: DashboardTarget[];
  panels?: DashboardPanel[];
}

export interface DashboardVariable {
  type: string;
  name: string;
  query?: unknown;
  definition?: string;
  includeAll?: boolean;
  multi?: boolean;
  allValue?: string;
}

export interface Dashboard {
  uid: string;
  title: string;
  schemaVersion: number;
  panels: DashboardPanel[];
  templating: { list: DashboardVariable[] };
}

export function readDashboard(): Dashboard {
  return JSON.parse(readText(dashboardFile)) as Dashboard;
}

export function dashboardPanels(dashboard: Dashboard): DashboardPanel[] {
  return dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
}

export function dashboardQueries(dashboard: Dashboard): { panel: DashboardPanel; target: DashboardTarget }[] {
  return dashboardPanels(dashboard).flatMap((panel) => (panel.targets ?? []).map((target) => ({ panel, target })));
}

/** The PromQL of a variable's query (`label_values(selector, label)` gives its selector and label). */
export function variableQuery(variable: DashboardVariable): string {
  const query = variable.query;
  if (typeof query === "string") return query;
  if (isRecord(query) && typeof query["query"] === "string") return query["query"];
  return variable.definition ?? "";
}

export function parseLabelValues(query: string): { selector: string | undefined; label: string } | undefined {
  const m = /^\s*label_values\(\s*(?:(.*?)\s*,\s*)?([a-zA-Z_][a-zA-Z0-9_]*)\s*\)\s*$/.exec(query);
  return m ? { selector: m[1] || undefined, label: m[2]! } : undefined;
}

/**
 * Grafana's substitutions for a query sent straight to Prometheus: template variables become a
 * regex (".*" unless given), the interval variables fixed durations.
 */
export function substituteVariables(expr: string, values: Record<string, string> = {}): string {
  const builtins: Record<string, string> = {
    __rate_interval: "1m",
    __interval: "1m",
    __range: "1h",
    __range_s: "3600",
    __range_ms: "3600000",
    __interval_ms: "60000",
  };
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (_m, braced: string | undefined, bare: string | undefined) => {
    const name = (braced ?? bare)!;
    return builtins[name] ?? values[name] ?? ".*";
  });
}

// --- the sluice CLI --------------------------------------------------------------------------

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs `node daemon/sluice.js ARGS` with exactly the given extra environment (and PATH/HOME). */
export function sluiceCli(args: string[], env: Record<string, string> = {}, cwd: string = repoRoot): CliResult {
  const result = spawnSync(process.execPath, [repoPath("daemon/sluice.js"), ...args], {
    cwd,
    env: { PATH: process.env["PATH"] ?? "/usr/bin:/bin", HOME: process.env["HOME"] ?? "/root", ...env },
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** `${NAME}` references (without a default) of a Sluice config text. */
export function requiredEnvVars(configText: string): string[] {
  const out = new Set<string>();
  for (const m of configText.matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)(:-[^}]*)?\}/g)) {
    const line = configText.slice(configText.lastIndexOf("\n", m.index) + 1, m.index);
    if (line.trimStart().startsWith("#")) continue;
    if (m[2] === undefined) out.add(m[1]!);
  }
  return [...out];
}
