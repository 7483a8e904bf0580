/**
 * Apache Flink's `debezium-avro-confluent` format as a third-party reader of Sluice's topics
 * (FlinkDebeziumMaterialise.java): the jars come from Maven Central (pom.xml here) and the class is
 * compiled once into the services' download cache, then each run is one JVM with a local mini-cluster.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { buildJavaProgram, javaTool } from "../java-program.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
/** The services' download cache (test/services/env.sh): Maven's repository `m2` (shared with Kafka's jars) and the built program. */
const CACHE_ROOT = process.env["SLUICE_SERVICES_CACHE"] || join(homedir(), ".cache", "sluice-services");

/** One captured table as Flink declares it. */
export interface FlinkTable {
  /** Flink's table name (also names its consumer group). */
  readonly name: string;
  readonly topic: string;
  /** Flink DDL column list, e.g. "`id` INT NOT NULL, `body` STRING". */
  readonly columns: string;
  readonly key: readonly string[];
  /** Flink's format: `debezium-avro-confluent` (default), or `avro-confluent` for a plain Avro topic (each record an insert). */
  readonly format?: "debezium-avro-confluent" | "avro-confluent";
  /** The Confluent-compatible registry of this table's schemas (default: the run's). */
  readonly registry?: string;
}

export interface FlinkRun {
  readonly brokers: string;
  /** The Confluent-compatible registry's base URL, for the tables that name none. */
  readonly registry?: string;
  readonly tables: readonly FlinkTable[];
  /** Flink stops once every table's job has read its topic through (up to its last record when the run began), or failed, or at this limit. */
  readonly timeoutSeconds?: number;
}

/** Per table: the rows Flink materialised (every value as text, arrays as arrays), the changes it read, its job's error if it failed. */
export type FlinkState = Record<string, { changes: number; rows: Record<string, unknown>[]; error?: string }>;

/** Fetches the jars and compiles the program, unless the cache holds this pom and source already; returns its class path. */
export function buildFlink(): Promise<string> {
  return buildJavaProgram({ dir: HERE, source: "FlinkDebeziumMaterialise.java", cache: join(CACHE_ROOT, "flink"), repository: join(CACHE_ROOT, "m2") });
}

/** Runs the program on `spec` (specFile is where the spec is written) and returns what Flink materialised. */
export async function materialiseWithFlink(spec: FlinkRun, specFile: string): Promise<FlinkState> {
  const classPath = await buildFlink();
  writeFileSync(specFile, JSON.stringify(spec));
  // Flink unpacks its planner and RPC jars (~66 MB) into java.io.tmpdir at every start and the program ends by halting,
  // which skips their removal: beside the spec, they go with the test's directory.
  const tmp = join(dirname(specFile), "flink-tmp");
  mkdirSync(tmp, { recursive: true });
  const child = spawn(
    javaTool("java"),
    [
      "-Xmx512m",
      "-XX:+UseSerialGC",
      "-XX:TieredStopAtLevel=1",
      `-Djava.io.tmpdir=${tmp}`,
      "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
      "-cp",
      classPath,
      "FlinkDebeziumMaterialise",
      specFile,
    ],
    { stdio: ["ignore", "pipe", "pipe"] },
  );
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-20_000)));
  const limit = ((spec.timeoutSeconds ?? 240) + 120) * 1000;
  const timer = setTimeout(() => child.kill("SIGKILL"), limit);
  const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
  clearTimeout(timer);
  const line = stdout.split("\n").find((l) => l.startsWith("{"));
  if (line === undefined) throw new Error(`Flink printed no state (exit ${String(code)})\n--- stderr tail ---\n${stderr}`);
  return JSON.parse(line) as FlinkState;
}
