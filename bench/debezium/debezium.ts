/**
 * Debezium's embedded engine with a Kafka producer (DebeziumDrain.java) as a reader of
 * bench/capture-drain.ts: fetched from Maven Central (io.debezium 3.6.1.Final, pom.xml here) and
 * compiled once into a cache directory, then run on a slot of the benchmark's backlog.
 */
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { buildJavaProgram, javaTool } from "../../test/java-program.ts";
import { kafka, postgres } from "../../test/services/ports.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const CACHE = process.env["SLUICE_BENCH_DEBEZIUM_CACHE"] ?? "/var/tmp/sluice-bench-debezium";

export interface DebeziumDrain {
  readonly seconds: number;
  readonly cpuSeconds: number;
  readonly firstRecordSeconds: number;
  readonly peakRssMiB: number;
}

/** Fetches the jars and compiles DebeziumDrain.java, unless the cache already holds this version of both; returns its class path. */
export function buildDebezium(): Promise<string> {
  return buildJavaProgram({ dir: HERE, source: "DebeziumDrain.java", cache: CACHE, repository: `${CACHE}-m2` });
}

/** Creates `topic` (the broker does not create topics on first use), one partition. */
async function createTopic(topic: string): Promise<void> {
  const { Kafka, logLevel } = await import("kafkajs");
  const admin = new Kafka({ clientId: "sluice-bench-debezium", brokers: [...kafka.brokers], logLevel: logLevel.NOTHING }).admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }], waitForLeaders: true });
  } finally {
    await admin.disconnect();
  }
}

/** Drains `slot` (pgoutput, `publication`) of `changes` changes of `table` ("schema.table") into Kafka topics named after `topicPrefix`. */
export async function drainWithDebezium(options: { slot: string; publication: string; table: string; changes: number; topicPrefix: string }): Promise<DebeziumDrain> {
  const classPath = await buildDebezium();
  await createTopic(`${options.topicPrefix}.${options.table}`);
  const args = {
    host: postgres.host,
    port: String(postgres.port),
    user: postgres.user,
    password: postgres.password,
    database: postgres.database,
    slot: options.slot,
    publication: options.publication,
    table: options.table,
    brokers: kafka.brokers.join(","),
    topicPrefix: options.topicPrefix,
    changes: String(options.changes),
  };
  const child = spawn(javaTool("java"), ["-cp", classPath, "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn", "DebeziumDrain", ...Object.entries(args).map(([k, v]) => `${k}=${v}`)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-20_000)));
  try {
    const line = await new Promise<string>((resolve, reject) => {
      let out = "";
      const timer = setTimeout(() => reject(new Error(`Debezium did not drain within 30 min\n${stderr}`)), 30 * 60_000);
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString("utf8");
        const found = out.split("\n").find((l) => l.startsWith("{"));
        if (found !== undefined) {
          clearTimeout(timer);
          resolve(found);
        }
      });
      child.on("exit", (code) => {
        clearTimeout(timer);
        reject(new Error(`Debezium exited with ${code}\n${stderr}`));
      });
    });
    const figures = JSON.parse(line) as { changes: number; seconds: number; cpuSeconds: number; firstRecordSeconds: number };
    const rss = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, "utf8"))?.[1];
    return { seconds: figures.seconds, cpuSeconds: (figures.cpuSeconds * 100_000) / figures.changes, firstRecordSeconds: figures.firstRecordSeconds, peakRssMiB: Number(rss) / 1024 };
  } finally {
    child.kill("SIGKILL");
  }
}
