/**
 * Private TLS-only Kafka, Elasticsearch and ClickHouse for tests, each with its own temp directory
 * and free ports, run from the software test/services/up installed (never the shared servers).
 * The CA comes from makeCa in tls.ts. `stop()` stops the server and deletes its directory.
 *
 * - Kafka: a KRaft node whose client listener is SASL_SSL with SCRAM-SHA-512 and requires a client
 *   certificate (the broker talks to itself over a plaintext listener of its own).
 * - Elasticsearch: the integ-test distribution with x-pack security on, TLS on HTTP, a superuser
 *   in the file realm; `apiKey()` creates an API key over HTTPS.
 * - ClickHouse 18.16: HTTPS only (no plain HTTP port), a user with a password.
 */
import { execFile, spawn } from "node:child_process";
import { pbkdf2Sync, randomBytes } from "node:crypto";
import type { ChildProcess } from "node:child_process";
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { join } from "node:path";
import { promisify } from "node:util";
import { host, servicesDir } from "./ports.ts";
import { freePort, makeCa } from "./tls.ts";
import type { TestCa } from "./tls.ts";

const run = promisify(execFile);
const SERVICE_USER = process.env["SLUICE_SERVICES_USER"] || "sluice";
const isRoot = process.getuid?.() === 0;
const KAFKA_VERSION = process.env["SLUICE_KAFKA_VERSION"] || "4.3.1";
const KAFKA_JAVA = join(process.env["SLUICE_KAFKA_JAVA_HOME"] || "/usr/lib/jvm/java-17-openjdk-amd64", "bin", "java");
const ES_VERSION = process.env["SLUICE_ES_VERSION"] || "9.4.3";
const ES_JAVA_HOME = process.env["SLUICE_ES_JAVA_HOME"] || "/usr/lib/jvm/temurin-25-jdk-amd64";

export interface SecureServer {
  readonly host: string;
  readonly port: number;
  readonly ca: TestCa;
  /** A user with every right, and its password. */
  readonly user: string;
  readonly password: string;
  readonly dir: string;
  stop(): Promise<void>;
}

/** Runs argv as the service user when we are root (Elasticsearch and ClickHouse data must belong to it). */
function asServiceUser(argv: string[]): [string, string[]] {
  if (!isRoot) return [argv[0]!, argv.slice(1)];
  return ["setpriv", [`--reuid=${SERVICE_USER}`, `--regid=${SERVICE_USER}`, "--init-groups", "env", `HOME=${servicesDir}`, ...argv]];
}

async function giveToServiceUser(dir: string): Promise<void> {
  chmodSync(dir, 0o755);
  if (isRoot) await run("chown", ["-R", `${SERVICE_USER}:`, dir]);
}

function spawnServer(argv: string[], logFile: string, cwd: string, env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const [command, args] = asServiceUser(argv);
  const out = openSync(logFile, "a");
  const child = spawn(command, args, { stdio: ["ignore", out, out], detached: true, env, cwd });
  child.unref();
  return child;
}

function waitForPort(port: number, timeoutMs: number, child: ChildProcess, logFile: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      if (child.exitCode !== null) return reject(new Error(`server exited with code ${child.exitCode} before listening on ${port}; log: ${tail(logFile)}`));
      const socket = connect(port, host);
      socket.once("connect", () => {
        socket.destroy();
        resolve();
      });
      socket.once("error", () => {
        socket.destroy();
        if (Date.now() > deadline) reject(new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms; log: ${tail(logFile)}`));
        else setTimeout(attempt, 200);
      });
    };
    attempt();
  });
}

function tail(file: string): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-15).join("\n");
  } catch {
    return "(no log)";
  }
}

/** SIGTERM to the server's process group, SIGKILL after `graceMs`. */
async function stopGroup(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.pid === undefined) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const signal = (name: NodeJS.Signals) => {
    try {
      process.kill(-child.pid!, name);
    } catch {
      // already gone
    }
  };
  signal("SIGTERM");
  const timer = setTimeout(() => signal("SIGKILL"), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Kafka's PEM key store wants a PKCS#8 key followed by the certificate in one file. */
async function pemKeyStore(ca: TestCa, file: string): Promise<void> {
  const { stdout } = await run("openssl", ["pkcs8", "-topk8", "-nocrypt", "-in", ca.serverKey]);
  writeFileSync(file, stdout + readFileSync(ca.serverCert, "utf8"));
}

/** The TLS Kafka: a SecureServer whose SCRAM password can be changed on the broker while it runs. */
export interface SecureKafka extends SecureServer {
  /** Changes the user's SCRAM-SHA-512 password on the broker (kafka-configs --alter over the broker's own listener); connections already authenticated stay. */
  setScramPassword(password: string): Promise<void>;
}

/**
 * A KRaft Kafka node whose client listener is SASL_SSL: SCRAM-SHA-512 user `sluice` (password
 * returned), server certificate from a fresh CA, and a client certificate required
 * (`ca.clientCert(...)` makes one). `reauthMs`: the broker's connections.max.reauth.ms.
 */
export async function startTlsKafka(options: { reauthMs?: number } = {}): Promise<SecureKafka> {
  const dir = mkdtempSync("/var/tmp/sluice-tls-kafka-");
  const [port, controllerPort, internalPort] = [await freePort(), await freePort(), await freePort()];
  const ca = await makeCa(dir);
  const user = "sluice";
  const password = "kafka-scram-secret";
  const keyStore = join(dir, "server-keystore.pem");
  await pemKeyStore(ca, keyStore);
  const properties = join(dir, "server.properties");
  writeFileSync(
    properties,
    [
      "process.roles=broker,controller",
      "node.id=1",
      `controller.quorum.voters=1@${host}:${controllerPort}`,
      `listeners=SASL_SSL://${host}:${port},INTERNAL://${host}:${internalPort},CONTROLLER://${host}:${controllerPort}`,
      `advertised.listeners=SASL_SSL://${host}:${port},INTERNAL://${host}:${internalPort}`,
      "controller.listener.names=CONTROLLER",
      "inter.broker.listener.name=INTERNAL",
      "listener.security.protocol.map=SASL_SSL:SASL_SSL,INTERNAL:PLAINTEXT,CONTROLLER:PLAINTEXT",
      "sasl.enabled.mechanisms=SCRAM-SHA-512",
      "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;",
      "listener.name.sasl_ssl.ssl.keystore.type=PEM",
      `listener.name.sasl_ssl.ssl.keystore.location=${keyStore}`,
      "listener.name.sasl_ssl.ssl.truststore.type=PEM",
      `listener.name.sasl_ssl.ssl.truststore.location=${ca.caFile}`,
      "listener.name.sasl_ssl.ssl.client.auth=required",
      `log.dirs=${join(dir, "log")}`,
      "num.partitions=1",
      "offsets.topic.replication.factor=1",
      "offsets.topic.num.partitions=1",
      "transaction.state.log.replication.factor=1",
      "transaction.state.log.min.isr=1",
      "transaction.state.log.num.partitions=1",
      "share.coordinator.state.topic.replication.factor=1",
      "share.coordinator.state.topic.min.isr=1",
      "group.initial.rebalance.delay.ms=0",
      "auto.create.topics.enable=false",
      "log.cleaner.dedupe.buffer.size=8388608",
      // Clients authenticate again on their open connections within this time (KIP-368): a password changed on the broker then meets every client.
      ...(options.reauthMs ? [`connections.max.reauth.ms=${options.reauthMs}`] : []),
      "",
    ].join("\n"),
  );
  const log4j = join(dir, "log4j2.properties");
  writeFileSync(log4j, "status = warn\nappender.out.type = Console\nappender.out.name = OUT\nappender.out.layout.type = PatternLayout\nappender.out.layout.pattern = [%d] %p %m (%c)%n\nrootLogger.level = WARN\nrootLogger.appenderRef.out.ref = OUT\n");
  const classPath = `${join(servicesDir, "opt", `kafka-${KAFKA_VERSION}`, "jars")}/*`;
  const java = [KAFKA_JAVA, "-Xms256m", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", `-Dlog4j2.configurationFile=${log4j}`, "-cp", classPath];
  const logFile = join(dir, "kafka.log");
  // Never a leading "-": the storage tool would take the id for an option (1 in 64 ids did).
  const clusterId = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64url").replace(/^-/, "A");
  await run(java[0]!, [...java.slice(1), "kafka.tools.StorageTool", "format", "-t", clusterId, "-c", properties, "--add-scram", `SCRAM-SHA-512=[name=${user},password=${password}]`], { timeout: 120_000 });
  const child = spawn(java[0]!, [...java.slice(1), "kafka.Kafka", properties], { stdio: ["ignore", openSync(logFile, "a"), openSync(logFile, "a")], detached: true });
  child.unref();
  try {
    await waitForPort(port, 120_000, child, logFile);
  } catch (error) {
    await stopGroup(child, 5_000);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  return {
    host,
    port,
    ca,
    user,
    password,
    dir,
    async setScramPassword(newPassword: string) {
      const args = ["kafka.admin.ConfigCommand", "--bootstrap-server", `${host}:${internalPort}`, "--alter", "--entity-type", "users", "--entity-name", user, "--add-config", `SCRAM-SHA-512=[iterations=4096,password=${newPassword}]`];
      await run(java[0]!, [...java.slice(1).filter((a) => !a.startsWith("-Xm")), "-Xmx128m", ...args], { timeout: 60_000 });
    },
    async stop() {
      await stopGroup(child, 20_000);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A secure Elasticsearch and the client certificate (signed by its CA) that `request` presents. */
export interface SecureElasticsearch extends SecureServer {
  readonly client: { readonly certFile: string; readonly keyFile: string };
  /** A request over HTTPS as the superuser with the client certificate; the status and parsed body. */
  request(method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }>;
}

/**
 * Elasticsearch with x-pack security: HTTPS only (certificate from a fresh CA), superuser `sluice`
 * in the file realm. With `requireClientCert`, a client without a certificate the CA signed is
 * refused at the handshake.
 *
 * No API keys: they live in the `.security` system index, whose mapping needs the analysis-common
 * module the integ-test distribution lacks ("Unknown filter type [pattern_capture]"); an API key
 * is still refused as it should be (401), which is what tests of a wrong key need.
 */
export async function startTlsElasticsearch(options: { requireClientCert?: boolean } = {}): Promise<SecureElasticsearch> {
  const dir = mkdtempSync("/var/tmp/sluice-tls-es-");
  const [port, transportPort] = [await freePort(), await freePort()];
  const ca = await makeCa(dir);
  const home = join(servicesDir, "opt", `elasticsearch-${ES_VERSION}`);
  const conf = join(dir, "config");
  cpSync(join(home, "config"), conf, { recursive: true });
  for (const [from, to] of [[ca.caFile, "ca.crt"], [ca.serverCert, "http.crt"], [ca.serverKey, "http.key"]] as const) cpSync(from, join(conf, to));
  mkdirSync(join(dir, "data"));
  mkdirSync(join(dir, "logs"));
  mkdirSync(join(dir, "tmp"));
  writeFileSync(
    join(conf, "elasticsearch.yml"),
    [
      "cluster.name: sluice-tls",
      "node.name: sluice-tls-node",
      `path.data: ${join(dir, "data")}`,
      `path.logs: ${join(dir, "logs")}`,
      `network.host: ${host}`,
      `http.port: ${port}`,
      `transport.port: ${transportPort}`,
      "discovery.type: single-node",
      "xpack.security.enabled: true",
      "xpack.security.http.ssl.enabled: true",
      "xpack.security.http.ssl.certificate: http.crt",
      "xpack.security.http.ssl.key: http.key",
      "xpack.security.http.ssl.certificate_authorities: [ca.crt]",
      `xpack.security.http.ssl.client_authentication: ${options.requireClientCert ? "required" : "optional"}`,
      "xpack.security.authc.api_key.enabled: true",
      "cluster.routing.allocation.disk.threshold_enabled: false",
      "action.destructive_requires_name: false",
      "",
    ].join("\n"),
  );
  // The JVM options the shared instance uses, minus its heap (a smaller one for a test's few documents) and tuned for a
  // short life on a busy machine: the start-up is mostly JIT compilation and class loading, so C1 only (no C2 work),
  // the serial collector instead of G1's concurrent threads, and no touching every page of the heap up front.
  const jvmOptions = join(conf, "jvm.options");
  writeFileSync(jvmOptions, readFileSync(jvmOptions, "utf8").replace(/^-XX:\+UseG1GC$/m, "-XX:+UseSerialGC"));
  writeFileSync(join(conf, "jvm.options.d", "heap.options"), "-Xms384m\n-Xmx384m\n-XX:TieredStopAtLevel=1\n-XX:-AlwaysPreTouch\n");
  const user = "sluice";
  const password = "es-basic-secret";
  const env: NodeJS.ProcessEnv = { ...process.env, ES_JAVA_HOME, ES_PATH_CONF: conf, ES_TMPDIR: join(dir, "tmp") };
  delete env["JAVA_HOME"];
  // The file realm's users file with a PBKDF2 hash as elasticsearch-users writes it ({PBKDF2}cost$salt$hash), without its 30 s of JVM start.
  const salt = randomBytes(32);
  const hash = pbkdf2Sync(password, salt, 10_000, 32, "sha512").toString("base64");
  writeFileSync(join(conf, "users"), `${user}:{PBKDF2}10000$${salt.toString("base64")}$${hash}\n`);
  writeFileSync(join(conf, "users_roles"), `superuser:${user}\n`);
  await giveToServiceUser(dir);
  const logFile = join(dir, "server.log");
  const child = spawnServer(["env", "-u", "JAVA_HOME", `ES_JAVA_HOME=${ES_JAVA_HOME}`, `ES_PATH_CONF=${conf}`, `ES_TMPDIR=${join(dir, "tmp")}`, join(home, "bin", "elasticsearch")], logFile, dir, env);
  const url = `https://${host}:${port}`;
  const client = await ca.clientCert("sluice-es-client");
  const tls = { ca: readFileSync(ca.caFile, "utf8"), cert: readFileSync(client.certFile, "utf8"), key: readFileSync(client.keyFile, "utf8") };
  const authorization = `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
  const request = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> => {
    const { request: httpsRequest } = await import("node:https");
    return new Promise((resolve, reject) => {
      const req = httpsRequest(`${url}${path}`, { method, ...tls, headers: { authorization, "content-type": "application/json" }, timeout: 10_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          resolve({ status: res.statusCode ?? 0, json: text ? (JSON.parse(text) as unknown) : null });
        });
      });
      req.on("error", reject);
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.end(body === undefined ? undefined : JSON.stringify(body));
    });
  };
  const stop = async () => {
    await stopGroup(child, 30_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, 180_000, child, logFile);
    const deadline = Date.now() + 120_000;
    for (;;) {
      const health = await request("GET", "/_cluster/health?wait_for_status=yellow&timeout=5s").catch(() => null);
      if (health?.status === 200) break;
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`secure Elasticsearch did not become healthy (last: ${JSON.stringify(health)}); log: ${tail(logFile)}`);
      await new Promise((r) => setTimeout(r, 500));
    }
  } catch (error) {
    await stop();
    throw error;
  }
  return {
    host,
    port,
    ca,
    user,
    password,
    dir,
    stop,
    client,
    request,
  };
}

/**
 * ClickHouse 18.16 serving HTTPS only (certificate from a fresh CA), user `sluice` with a password;
 * with `requireClientCert`, only clients presenting a certificate the CA signed get through.
 */
export async function startTlsClickHouse(options: { requireClientCert?: boolean } = {}): Promise<SecureServer> {
  // Ports found free can be taken before the server binds them (two servers started at once, or any connection's
  // ephemeral port): a start that failed so is made again on new ones (it cleaned up after itself).
  for (let attempt = 1; ; attempt++) {
    try {
      return await startTlsClickHouseOnce(options);
    } catch (error) {
      if (attempt >= 3 || !/Address already in use/.test(error instanceof Error ? error.message : String(error))) throw error;
    }
  }
}

async function startTlsClickHouseOnce(options: { requireClientCert?: boolean }): Promise<SecureServer> {
  const dir = mkdtempSync("/var/tmp/sluice-tls-clickhouse-");
  const [port, tcpPort] = [await freePort(), await freePort()];
  const ca = await makeCa(dir);
  for (const sub of ["db", "tmp", "user_files", "format_schemas"]) mkdirSync(join(dir, sub));
  const user = "sluice";
  const password = "clickhouse-secret";
  const networks = `<networks><ip>::1</ip><ip>127.0.0.1</ip><ip>${host}</ip></networks>`;
  writeFileSync(
    join(dir, "config.xml"),
    `<?xml version="1.0"?>
<yandex>
    <logger><level>warning</level><console>true</console></logger>
    <listen_host>${host}</listen_host>
    <https_port>${port}</https_port>
    <tcp_port>${tcpPort}</tcp_port>
    <openSSL>
        <server>
            <certificateFile>${ca.serverCert}</certificateFile>
            <privateKeyFile>${ca.serverKey}</privateKeyFile>
            <verificationMode>${options.requireClientCert ? "strict" : "none"}</verificationMode>
            <caConfig>${ca.caFile}</caConfig>
            <loadDefaultCAFile>false</loadDefaultCAFile>
            <cacheSessions>true</cacheSessions>
            <disableProtocols>sslv2,sslv3</disableProtocols>
            <preferServerCiphers>true</preferServerCiphers>
        </server>
    </openSSL>
    <max_connections>64</max_connections>
    <keep_alive_timeout>3</keep_alive_timeout>
    <max_concurrent_queries>20</max_concurrent_queries>
    <uncompressed_cache_size>16777216</uncompressed_cache_size>
    <mark_cache_size>16777216</mark_cache_size>
    <path>${dir}/db/</path>
    <tmp_path>${dir}/tmp/</tmp_path>
    <user_files_path>${dir}/user_files/</user_files_path>
    <format_schema_path>${dir}/format_schemas/</format_schema_path>
    <users_config>${dir}/users.xml</users_config>
    <default_profile>default</default_profile>
    <default_database>default</default_database>
    <timezone>UTC</timezone>
    <mlock_executable>false</mlock_executable>
</yandex>
`,
  );
  writeFileSync(
    join(dir, "users.xml"),
    `<?xml version="1.0"?>
<yandex>
    <profiles><default><max_memory_usage>1000000000</max_memory_usage></default></profiles>
    <users>
        <${user}><password>${password}</password>${networks}<profile>default</profile><quota>default</quota></${user}>
    </users>
    <quotas><default><interval><duration>3600</duration><queries>0</queries><errors>0</errors><result_rows>0</result_rows><read_rows>0</read_rows><execution_time>0</execution_time></interval></default></quotas>
</yandex>
`,
  );
  await giveToServiceUser(dir);
  const logFile = join(dir, "server.log");
  const binary = ["/usr/bin/clickhouse-server", "/usr/sbin/clickhouse-server"].find((b) => existsSync(b));
  if (!binary) throw new Error("clickhouse-server not found (run test/services/up clickhouse)");
  const child = spawnServer([binary, `--config-file=${join(dir, "config.xml")}`], logFile, dir);
  const stop = async () => {
    await stopGroup(child, 15_000);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitForPort(port, 60_000, child, logFile);
  } catch (error) {
    await stop();
    throw error;
  }
  return { host, port, ca, user, password, dir, stop };
}
