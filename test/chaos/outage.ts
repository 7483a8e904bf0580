/**
 * The outage run of the chaos program: PRIVATE instances of PostgreSQL, Kafka, ClickHouse and
 * Elasticsearch (own services directory, own ports, started with test/services/up), the
 * PostgreSQL → Kafka → ClickHouse + Elasticsearch pipeline running a random workload, and then
 * Kafka, ClickHouse and Elasticsearch each stopped for `outageSeconds` and PostgreSQL restarted,
 * one after the other. The daemon must never exit (nor stop a component), and afterwards both
 * sinks must equal PostgreSQL with nothing lost, doubled or stale, and no row ever going backwards.
 *
 * The shared services are never touched: the run re-executes itself with the private settings in
 * the environment (ports.ts reads them when first imported), refuses to stop anything outside its
 * own services directory, and stops only the processes named by that directory's pid files.
 * The private instances are stopped at the end (their data stays in the directory for a re-run).
 */
import { execFile, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { failures, summary } from "./chaos.ts";
import type { OutageStep } from "./run.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = join(HERE, "../..");
const DEFAULT_DIR = "/var/tmp/sluice-services";

/**
 * Private settings: own directory, and ports below the kernel's ephemeral range (32768–60999 here),
 * so a client connection's local port never blocks a restart's listen (EADDRINUSE).
 */
export const PRIVATE_ENV: Record<string, string> = {
  SLUICE_SERVICES_DIR: "/var/tmp/sluice-chaos-services",
  SLUICE_PG_PORT: "25432",
  SLUICE_KAFKA_PORT: "29092",
  SLUICE_KAFKA_CONTROLLER_PORT: "29093",
  SLUICE_ES_PORT: "29200",
  SLUICE_ES_TRANSPORT_PORT: "29300",
  SLUICE_CLICKHOUSE_HTTP_PORT: "28123",
  SLUICE_CLICKHOUSE_TCP_PORT: "29000",
};

const SERVICES = ["postgres", "kafka", "clickhouse", "elasticsearch"] as const;

export interface OutageOptions {
  readonly seed: number;
  readonly outageSeconds: number;
  readonly log: (line: string) => void;
}

function servicesDir(): string {
  return process.env["SLUICE_SERVICES_DIR"] ?? "";
}

function isPrivate(): boolean {
  return Object.entries(PRIVATE_ENV).every(([k, v]) => process.env[k] === v) && servicesDir() !== DEFAULT_DIR;
}

function up(services: readonly string[], log: (line: string) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("bash", [join(REPO, "test/services/up"), ...services], { env: process.env, maxBuffer: 16 * 2 ** 20 }, (error, stdout, stderr) => {
      log(`services up ${services.join(" ")}:\n${(stdout + stderr).trim()}`);
      if (error) reject(new Error(`test/services/up ${services.join(" ")} failed (private dir ${servicesDir()})`));
      else resolve();
    });
  });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Stops one private service by the pid in its pid file (after checking the process belongs to the private directory). */
async function stopPrivate(service: string, log: (line: string) => void): Promise<void> {
  const dir = servicesDir();
  if (!isPrivate()) throw new Error(`refusing to stop ${service}: not running with the private services settings`);
  for (const file of [`${service}.pid`, `${service}.launcher.pid`]) {
    let pid: number;
    try {
      pid = Number(readFileSync(join(dir, "run", file), "utf8").trim());
    } catch {
      continue;
    }
    if (!Number.isInteger(pid) || pid <= 1 || !alive(pid)) continue;
    let cmdline: string;
    try {
      cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").replace(/\0/g, " ");
    } catch {
      continue; // gone meanwhile
    }
    if (cmdline.trim() === "") continue; // exiting (a launcher whose server just stopped)
    const port = { postgres: PRIVATE_ENV["SLUICE_PG_PORT"] }[service as "postgres"];
    if (!cmdline.includes(dir) && !(port && cmdline.includes(port))) throw new Error(`refusing to stop pid ${pid} (${cmdline.slice(0, 200)}): not a process of ${dir}`);
    // PostgreSQL: SIGINT is its fast shutdown (SIGTERM would wait for every client to leave); its
    // walsenders still wait for the replication client to confirm the WAL sent, so it may take a
    // while; then SIGQUIT (immediate shutdown: the postmaster takes its children down, unlike SIGKILL).
    const started = Date.now();
    process.kill(pid, service === "postgres" ? "SIGINT" : "SIGTERM");
    const waitGone = async (ms: number) => {
      for (const deadline = Date.now() + ms; alive(pid) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 200));
      return !alive(pid);
    };
    let how = "cleanly";
    if (!(await waitGone(180_000))) {
      how = service === "postgres" ? "by an immediate shutdown after 180 s" : "by SIGKILL after 180 s";
      process.kill(pid, service === "postgres" ? "SIGQUIT" : "SIGKILL");
      if (!(await waitGone(30_000)) && service === "postgres") process.kill(pid, "SIGKILL");
    }
    log(`stopped private ${service} (pid ${pid}) ${how} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  }
}

/** In the private environment: start the services, run the outages, stop the services. */
async function runPrivate(options: OutageOptions): Promise<{ summary: string; failures: string[] }> {
  const { runKills } = await import("./run.ts");
  await up(SERVICES, options.log);
  const step = (service: string, seconds: number): OutageStep => ({
    service,
    seconds,
    isPostgres: service === "postgres",
    stop: () => stopPrivate(service, options.log),
    start: () => up([service], options.log),
  });
  try {
    const figures = await runKills({
      configuration: "kafka-clickhouse-es",
      kills: 0,
      seed: options.seed,
      preloadItems: 10_000,
      maxBigRows: 10_000,
      snapshotKills: 0,
      outages: [step("kafka", options.outageSeconds), step("clickhouse", options.outageSeconds), step("elasticsearch", options.outageSeconds), step("postgres", 0)],
      log: options.log,
    });
    return { summary: summary(figures), failures: failures(figures) };
  } finally {
    for (const service of SERVICES) await stopPrivate(service, options.log).catch((error: unknown) => options.log(String(error)));
  }
}

/** Re-executes the program with the private settings (ports.ts reads them at import), or runs in them. */
export async function runOutage(options: OutageOptions): Promise<{ summary: string; failures: string[] }> {
  if (isPrivate()) return runPrivate(options);
  const child = spawn(process.execPath, [join(HERE, "chaos.ts"), "--outage", "--seed", String(options.seed), "--outage-seconds", String(options.outageSeconds)], {
    env: { ...process.env, ...PRIVATE_ENV },
    stdio: "inherit",
  });
  const code = await new Promise<number>((resolve) => child.once("exit", (c) => resolve(c ?? 1)));
  return { summary: `outage run exited with ${code}`, failures: code === 0 ? [] : [`exit code ${code}`] };
}
