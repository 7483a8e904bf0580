/**
 * Checks across sections for two parts of one deployment that would fight over one thing: two
 * sinks writing one DuckDB file (or the topic log's file), two sources reading one replication
 * slot or sharing one MySQL replica id, and HTTP paths that hide each other. They run on the raw
 * document (defaults filled in here), like the other cross-checks.
 */
import { resolve } from "node:path";
import type { CrossCheckIssue } from "./schema.ts";

/** The daemon's own HTTP paths besides metrics and the registry (daemon/daemon.ts): exact routes, and /sinks and /sources as prefixes. */
export const DAEMON_HTTP_PATHS = ["/healthz", "/readyz", "/status", "/sinks", "/sources"] as const;

const DEFAULTS = {
  duckdbPath: "./data/warehouse.duckdb",
  embeddedPath: "./data/sluice.db",
  host: "127.0.0.1",
  postgresPort: 5432,
  mysqlPort: 3306,
  registryPath: "/registry",
  metricsPath: "/metrics",
} as const;

type Raw = Record<string, unknown>;

function items(value: unknown): (Raw | null)[] {
  return Array.isArray(value) ? value.map((item) => (item === undefined ? null : section(item))) : [];
}

/** A mapping section, {} when absent (its defaults apply), null when it is not a mapping. */
function section(value: unknown): Raw | null {
  if (value === undefined) return {};
  return value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Raw) : null;
}

function text(value: unknown, fallback: string): string | undefined {
  if (value === undefined) return fallback;
  return typeof value === "string" ? value : undefined;
}

function number(value: unknown, fallback: number): number | undefined {
  if (value === undefined) return fallback;
  return typeof value === "number" ? value : undefined;
}

/** One server seen the same way whatever it is called locally. */
function serverKey(host: string, port: number): string {
  const lower = host.toLowerCase();
  const local = lower === "localhost" || lower === "::1" || lower === "[::1]" || lower === "127.0.0.1";
  return `${local ? "127.0.0.1" : lower}:${port}`;
}

/** Reports each later holder of a key taken by an earlier one. */
class Claims {
  private readonly first = new Map<string, string>();
  readonly issues: CrossCheckIssue[] = [];

  claim(key: string, holder: string, path: PropertyKey[], message: (firstHolder: string) => string): void {
    const first = this.first.get(key);
    if (first === undefined) this.first.set(key, holder);
    else this.issues.push({ path, message: message(first) });
  }
}

export function sharedResourceClashes(raw: Raw): CrossCheckIssue[] {
  const claims = new Claims();
  const topics = section(raw["topics"]);
  if (topics !== null && (topics["kind"] === undefined || topics["kind"] === "embedded")) {
    const path = text(topics["path"], DEFAULTS.embeddedPath);
    if (path !== undefined) claims.claim(`file:${resolve(path)}`, "topics.path (the embedded topic log)", ["topics", "path"], () => "");
  }
  items(raw["sinks"]).forEach((sink, index) => {
    if (sink === null || sink["kind"] !== "duckdb") return;
    const path = text(sink["path"], DEFAULTS.duckdbPath);
    if (path === undefined || path === ":memory:") return;
    claims.claim(`file:${resolve(path)}`, `sinks[${index}]`, ["sinks", index, "path"], (first) =>
      `DuckDB file "${path}"${sink["path"] === undefined ? " (the default)" : ""} is also used by ${first}; one file takes one writer: give each DuckDB sink its own path`,
    );
  });
  const names = new Set<unknown>();
  items(raw["sources"]).forEach((source, index) => {
    if (source === null) return;
    // Two sources of one name share their default slot: the duplicate name is reported already.
    const duplicateName = names.has(source["name"]);
    names.add(source["name"]);
    const host = text(source["host"], DEFAULTS.host);
    if (source["kind"] === "postgres") {
      const port = number(source["port"], DEFAULTS.postgresPort);
      const database = source["database"];
      const slot = source["slot"] ?? (typeof source["name"] === "string" ? `sluice_${source["name"]}` : undefined);
      if (host === undefined || port === undefined || typeof database !== "string" || typeof slot !== "string" || (duplicateName && source["slot"] === undefined)) return;
      claims.claim(`slot:${serverKey(host, port)}/${database}/${slot}`, `sources[${index}]`, ["sources", index, "slot"], (first) =>
        `replication slot "${slot}"${source["slot"] === undefined ? " (the default)" : ""} of ${host}:${port}/${database} is also used by ${first}; two sources on one slot take each other's changes: give each its own slot`,
      );
    } else if (source["kind"] === "mysql") {
      const port = number(source["port"], DEFAULTS.mysqlPort);
      const serverId = source["server_id"];
      if (host === undefined || port === undefined || typeof serverId !== "number") return;
      claims.claim(`replica:${serverKey(host, port)}/${serverId}`, `sources[${index}]`, ["sources", index, "server_id"], (first) =>
        `server_id ${serverId} on ${host}:${port} is also used by ${first}; the server drops one of two replicas with the same id: give each source its own server_id`,
      );
    }
  });
  return claims.issues;
}

/** Whether two URL paths overlap: the same, or one under the other. */
function overlaps(a: string, b: string): boolean {
  return a === b || a.startsWith(`${b}/`) || b.startsWith(`${a}/`);
}

export function httpPathClashes(raw: Raw): CrossCheckIssue[] {
  const issues: CrossCheckIssue[] = [];
  const metrics = section(raw["metrics"]);
  const metricsPath = metrics !== null && metrics["enabled"] !== false ? text(metrics["path"], DEFAULTS.metricsPath) : undefined;
  const registry = section(raw["schema_registry"]);
  const registryPath = registry !== null && (registry["kind"] === undefined || registry["kind"] === "builtin") ? text(registry["path"], DEFAULTS.registryPath) : undefined;
  if (metricsPath !== undefined) {
    const taken = DAEMON_HTTP_PATHS.find((path) => overlaps(metricsPath, path));
    if (taken !== undefined) issues.push({ path: ["metrics", "path"], message: `"${metricsPath}" clashes with the daemon's ${taken}: choose another path, e.g. "/metrics"` });
  }
  if (registryPath !== undefined) {
    const others: string[] = [...DAEMON_HTTP_PATHS, ...(metricsPath === undefined ? [] : [metricsPath])];
    const taken = others.find((path) => overlaps(registryPath, path));
    if (taken !== undefined) {
      const what = taken === metricsPath ? `the metrics path ${taken}` : `the daemon's ${taken}`;
      issues.push({ path: ["schema_registry", "path"], message: `"${registryPath}" clashes with ${what}: the registry needs a path of its own, e.g. "/registry"` });
    }
  }
  return issues;
}
