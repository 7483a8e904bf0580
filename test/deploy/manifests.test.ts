// deploy/compose.yaml, deploy/k8s/ and deploy/Dockerfile, read by a parser: structure, references
// between their parts, files they refer to, and the Sluice configs they carry pass `sluice validate`.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parse as parseYaml } from "yaml";
import { prometheusRuleFile, renderPrometheusRule } from "../../deploy/k8s/prometheusrule.ts";
import {
  asArray,
  asRecord,
  deployDir,
  fileExists,
  isRecord,
  readText,
  readYaml,
  readYamlDocuments,
  repoPath,
  repoRoot,
  requiredEnvVars,
  sluiceCli,
} from "./support.ts";

// --- compose -----------------------------------------------------------------------------------

const composeFile = join(deployDir, "compose.yaml");
const compose = asRecord(readYaml(composeFile), "compose.yaml");
const services = asRecord(compose["services"], "services");
const serviceNames = Object.keys(services);
const service = (name: string) => asRecord(services[name], `services.${name}`);

/** compose's `${VAR:-default}` → default (or `value` when given), as `docker compose config` would with an empty environment. */
function composeInterpolate(text: string, env: Record<string, string> = {}): string {
  return text.replace(/\$\{(\w+)(?::?-([^}]*))?\}/g, (_m, name: string, fallback: string | undefined) => env[name] ?? fallback ?? "");
}

function environmentOf(svc: Record<string, unknown>): Record<string, string> {
  const env = svc["environment"];
  if (env === undefined) return {};
  if (Array.isArray(env)) {
    return Object.fromEntries(env.map((e) => {
      const [k, ...v] = String(e).split("=");
      return [k!, v.join("=")];
    }));
  }
  return Object.fromEntries(Object.entries(asRecord(env, "environment")).map(([k, v]) => [k, composeInterpolate(String(v))]));
}

interface Mount {
  source: string;
  target: string;
  bind: boolean;
}

function mountsOf(svc: Record<string, unknown>, what: string): Mount[] {
  return asArray(svc["volumes"] ?? [], `${what}.volumes`).map((v) => {
    if (isRecord(v)) {
      const source = String(v["source"] ?? "");
      return { source, target: String(v["target"]), bind: v["type"] === "bind" };
    }
    const [source, target] = String(v).split(":");
    assert.ok(source && target, `${what}: volume "${String(v)}" is SOURCE:TARGET[:MODE]`);
    return { source, target, bind: source.startsWith(".") || source.startsWith("/") };
  });
}

test("compose: every service has an image or a build, and a build's context and Dockerfile exist", () => {
  assert.ok(serviceNames.length >= 8);
  for (const name of serviceNames) {
    const svc = service(name);
    assert.ok(svc["image"] || svc["build"], `${name}: image or build`);
    if (svc["image"]) assert.match(String(svc["image"]), /^[\w./-]+(:[\w.-]+)$/, `${name}: image with an explicit tag`);
    if (svc["build"]) {
      const build = isRecord(svc["build"]) ? svc["build"] : { context: svc["build"] };
      const context = resolve(deployDir, String(build["context"] ?? "."));
      assert.ok(fileExists(context), `${name}: build context ${context}`);
      const dockerfile = resolve(context, String(build["dockerfile"] ?? "Dockerfile"));
      assert.ok(fileExists(dockerfile), `${name}: Dockerfile ${dockerfile}`);
    }
  }
  for (const wanted of ["postgres", "mysql", "kafka", "elasticsearch", "clickhouse", "prometheus", "grafana", "sluice"]) {
    assert.ok(serviceNames.includes(wanted), `service ${wanted}`);
  }
});

test("compose: bind mounts refer to files in the repository, named volumes are declared (and used)", () => {
  const declared = new Set(Object.keys(asRecord(compose["volumes"] ?? {}, "volumes")));
  const used = new Set<string>();
  for (const name of serviceNames) {
    for (const m of mountsOf(service(name), name)) {
      assert.ok(m.target.startsWith("/"), `${name}: mount target ${m.target} is absolute`);
      if (m.bind) {
        assert.ok(!m.source.startsWith("/"), `${name}: ${m.source}: bind mounts from the repository only (relative paths)`);
        const path = resolve(deployDir, m.source);
        assert.ok(path.startsWith(repoRoot), `${name}: ${m.source} stays inside the repository`);
        assert.ok(fileExists(path), `${name}: ${m.source} does not exist (${path})`);
      } else {
        assert.ok(declared.has(m.source), `${name}: named volume "${m.source}" is not declared under volumes:`);
        used.add(m.source);
      }
    }
  }
  for (const v of declared) assert.ok(used.has(v), `volume "${v}" is declared but no service uses it`);
});

test("compose: ports are HOST:CONTAINER numbers, unique on the host", () => {
  const hostPorts = new Map<number, string>();
  for (const name of serviceNames) {
    for (const p of asArray(service(name)["ports"] ?? [], `${name}.ports`)) {
      const m = /^(?:([\d.]+):)?(\d+):(\d+)(?:\/(tcp|udp))?$/.exec(String(p));
      assert.ok(m, `${name}: port "${String(p)}" is "HOST:CONTAINER"`);
      const host = Number(m[2]);
      assert.ok(host > 0 && host < 65536 && Number(m[3]) > 0 && Number(m[3]) < 65536, `${name}: ${String(p)}`);
      assert.ok(!hostPorts.has(host), `${name}: host port ${host} also used by ${hostPorts.get(host)}`);
      hostPorts.set(host, name);
    }
  }
});

test("compose: depends_on names existing services; service_healthy only on services with a healthcheck", () => {
  for (const name of serviceNames) {
    const deps = service(name)["depends_on"];
    if (deps === undefined) continue;
    const entries: [string, string | undefined][] = Array.isArray(deps)
      ? deps.map((d) => [String(d), undefined])
      : Object.entries(asRecord(deps, `${name}.depends_on`)).map(([d, spec]) => [d, String(asRecord(spec, "depends_on entry")["condition"] ?? "")]);
    for (const [dep, condition] of entries) {
      assert.ok(serviceNames.includes(dep), `${name}: depends_on unknown service "${dep}"`);
      assert.notEqual(dep, name, `${name} depends on itself`);
      if (condition === "service_healthy") assert.ok(service(dep)["healthcheck"], `${name}: waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
    }
  }
});

test("compose: PostgreSQL logical decoding, MySQL row binlog with GTIDs, single-node Kafka and Elasticsearch without security", () => {
  const pg = asArray(service("postgres")["command"], "postgres.command").map(String).join(" ");
  assert.match(pg, /wal_level=logical/);
  const mysql = asArray(service("mysql")["command"], "mysql.command").map(String).join(" ");
  for (const flag of ["--binlog-format=ROW", "--binlog-row-image=FULL", "--binlog-row-metadata=FULL", "--gtid-mode=ON", "--enforce-gtid-consistency=ON", "--log-bin"]) {
    assert.ok(mysql.includes(flag), `mysql: ${flag}`);
  }
  assert.match(String(service("mysql")["image"]), /^mysql:8(\.|$)/);
  assert.match(String(service("kafka")["image"]), /^apache\/kafka:/);
  const kafkaEnv = environmentOf(service("kafka"));
  assert.match(kafkaEnv["KAFKA_PROCESS_ROLES"] ?? "", /broker,controller/, "KRaft combined mode");
  assert.match(kafkaEnv["KAFKA_ADVERTISED_LISTENERS"] ?? "", /\/\/kafka:9092/, "advertised under its service name");
  assert.equal(kafkaEnv["KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"], "1", "transactions on one broker");
  assert.match(String(service("elasticsearch")["image"]), /elasticsearch:9\./);
  const esEnv = environmentOf(service("elasticsearch"));
  assert.equal(esEnv["discovery.type"], "single-node");
  assert.equal(esEnv["xpack.security.enabled"], "false");
});

test("compose: Kafka and Elasticsearch are the versions test/services runs", () => {
  const env = readText(repoPath("test/services/env.sh"));
  const version = (name: string) => /:=([^}]+)\}/.exec(env.split("\n").find((l) => l.includes(`${name}:=`)) ?? "")?.[1];
  assert.equal(String(service("kafka")["image"]).split(":")[1], version("SLUICE_KAFKA_VERSION"));
  assert.equal(String(service("elasticsearch")["image"]).split(":")[1], version("SLUICE_ES_VERSION"));
});

test("compose: Prometheus gets its config and the rules file it names, and scrapes the sluice service", () => {
  const prom = service("prometheus");
  const mounts = mountsOf(prom, "prometheus");
  const configMount = mounts.find((m) => m.target === "/etc/prometheus/prometheus.yml");
  assert.equal(configMount?.source, "./prometheus/prometheus.yml");
  const config = asRecord(readYaml(resolve(deployDir, configMount.source)), "prometheus.yml");
  for (const rule of asArray(config["rule_files"], "rule_files")) {
    const inContainer = resolve("/etc/prometheus", String(rule));
    const mount = mounts.find((m) => m.target === inContainer);
    assert.ok(mount, `rule file ${String(rule)} (${inContainer}) is mounted`);
    assert.ok(fileExists(resolve(deployDir, mount.source)));
  }
  const job = asArray(config["scrape_configs"], "scrape_configs").map((j) => asRecord(j, "job")).find((j) => j["job_name"] === "sluice");
  assert.ok(job);
  const targets = asArray(asRecord(asArray(job["static_configs"], "static_configs")[0], "static_config")["targets"], "targets").map(String);
  const [host, port] = targets[0]!.split(":");
  assert.equal(host, "sluice", "the scrape target is the compose service");
  const sluiceConfig = asRecord(parseYaml(readText(join(deployDir, "sluice.compose.yaml"))), "sluice.compose.yaml");
  assert.equal(String(asRecord(sluiceConfig["http"], "http")["listen"]).split(":")[1], port, "scrape port = sluice http.listen port");
});

test("compose: the sluice service mounts deploy/sluice.compose.yaml, which `sluice validate` accepts with the environment compose gives it", () => {
  const svc = service("sluice");
  const mounts = mountsOf(svc, "sluice");
  assert.equal(mounts.find((m) => m.target === "/etc/sluice/sluice.yaml")?.source, "./sluice.compose.yaml");
  assert.ok(mounts.some((m) => m.target === "/var/lib/sluice" && !m.bind), "the data dir is a named volume");
  const text = readText(join(deployDir, "sluice.compose.yaml"));
  const env = environmentOf(svc);
  const needed = requiredEnvVars(text);
  assert.ok(needed.length > 0, "the passwords come from the environment");
  for (const v of needed) assert.ok(v in env, `sluice.compose.yaml needs \${${v}}, which the sluice service's environment lacks`);

  const without = sluiceCli(["validate", "-c", "deploy/sluice.compose.yaml"]);
  assert.equal(without.status, 2, "without the environment the config is refused");
  for (const v of needed) assert.match(without.stderr, new RegExp(`environment variable ${v} is not set`));

  const ok = sluiceCli(["validate", "-c", "deploy/sluice.compose.yaml"], env);
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /^ok: deploy\/sluice\.compose\.yaml \(deployment "\w+", 2 sources, 2 sinks, topics: kafka\)/);

  // every host the config names is a compose service
  const config = asRecord(parseYaml(text), "config");
  const hosts: string[] = [];
  for (const s of asArray(config["sources"], "sources")) hosts.push(String(asRecord(s, "source")["host"]));
  for (const b of asArray(asRecord(config["topics"], "topics")["brokers"], "brokers")) hosts.push(String(b).split(":")[0]!);
  for (const s of asArray(config["sinks"], "sinks")) {
    const sink = asRecord(s, "sink");
    if (sink["url"]) hosts.push(new URL(String(sink["url"])).hostname);
    for (const n of asArray(sink["nodes"] ?? [], "nodes")) hosts.push(new URL(String(n)).hostname);
  }
  for (const h of hosts) assert.ok(serviceNames.includes(h), `sluice.compose.yaml names host "${h}", which is not a compose service`);
  const dependsOn = Object.keys(asRecord(svc["depends_on"], "sluice.depends_on"));
  for (const h of new Set(hosts)) assert.ok(dependsOn.includes(h), `sluice should wait for ${h}`);
});

test("compose: the split profile runs capture (leader + standby) and scalable sinks from the same config, each validated with only its role's secrets", () => {
  const text = readText(join(deployDir, "sluice.compose.yaml"));
  for (const [name, role, replicas] of [["sluice-capture", "capture", 2], ["sluice-sinks", "sinks", 2]] as const) {
    const svc = service(name);
    assert.deepEqual(svc["profiles"], ["split"], `${name} runs only with --profile split`);
    assert.deepEqual(svc["command"], ["run", "--role", role]);
    assert.equal(asRecord(svc["deploy"], `${name}.deploy`)["replicas"], replicas);
    assert.equal(svc["ports"], undefined, `${name}: replicas publish no host port`);
    assert.equal(mountsOf(svc, name).find((m) => m.target === "/etc/sluice/sluice.yaml")?.source, "./sluice.compose.yaml");
    const env = environmentOf(svc);
    const ok = sluiceCli(["validate", "-c", "deploy/sluice.compose.yaml", "--role", role], env);
    assert.equal(ok.status, 0, `${name}: ${ok.stderr}`);
    // Only the secrets of its role: without --role the same environment is refused.
    assert.equal(sluiceCli(["validate", "-c", "deploy/sluice.compose.yaml"], env).status, 2, `${name} holds only its role's passwords`);
  }
  assert.ok(requiredEnvVars(text).length > 0);
});

// --- Dockerfile ------------------------------------------------------------------------------

test("Dockerfile: base image argument, non-root, config path, data volume, healthcheck, port; every COPY source exists and passes the ignore file", () => {
  const text = readText(join(deployDir, "Dockerfile"));
  assert.match(text, /^ARG BASE_IMAGE=node:24-bookworm-slim$/m);
  assert.equal([...text.matchAll(/^FROM \$\{BASE_IMAGE\}/gm)].length, 2, "both stages from BASE_IMAGE");
  const code = text.split("\n").filter((l) => !l.trimStart().startsWith("#")).join("\n");
  assert.match(code, /npm install --omit=dev/);
  assert.doesNotMatch(code, /npm ci\b/, "npm ci refuses the lock (see README)");
  assert.match(text, /^USER \S+/m);
  assert.doesNotMatch(text, /^USER (root|0)(:|$)/m);
  assert.match(text, /SLUICE_CONFIG=\/etc\/sluice\/sluice\.yaml/);
  assert.match(text, /^VOLUME \["\/var\/lib\/sluice"\]$/m);
  assert.match(text, /^EXPOSE 8080$/m);
  assert.match(text, /^HEALTHCHECK .*\n?.*fetch\(/m);
  const ignore = readText(join(deployDir, "Dockerfile.dockerignore")).split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
  assert.equal(ignore[0], "*", "the ignore file lets through only what it lists");
  const allowed = ignore.filter((l) => l.startsWith("!")).map((l) => l.slice(1).replace(/\/$/, ""));
  const joined = text.replace(/\\\n/g, " ");
  for (const m of joined.matchAll(/^COPY\s+(?!--from)(.+)$/gm)) {
    const parts = m[1]!.trim().split(/\s+/).filter((p) => !p.startsWith("--"));
    for (const src of parts.slice(0, -1)) {
      assert.ok(fileExists(join(repoRoot, src)), `COPY ${src}: not in the repository`);
      assert.ok(allowed.includes(src.replace(/\/$/, "")), `COPY ${src}: excluded by deploy/Dockerfile.dockerignore`);
    }
  }
});

// --- Kubernetes --------------------------------------------------------------------------------

const k8sDir = join(deployDir, "k8s");
const k8sFiles = readdirSync(k8sDir).filter((f) => /\.ya?ml$/.test(f) && f !== "kustomization.yaml");
const k8sDocs = k8sFiles.flatMap((f) => readYamlDocuments(join(k8sDir, f)).filter((d) => d !== null).map((d) => ({ file: f, doc: asRecord(d, f) })));

function k8s(kind: string, name?: string): Record<string, unknown> {
  const found = k8sDocs.filter(({ doc }) => doc["kind"] === kind && (name === undefined || asRecord(doc["metadata"], "metadata")["name"] === name));
  assert.equal(found.length, 1, `exactly one ${kind}${name ? ` ${name}` : ""}`);
  return found[0]!.doc;
}

function labelsMatch(selector: Record<string, unknown>, labels: Record<string, unknown>): boolean {
  return Object.entries(selector).every(([k, v]) => labels[k] === v);
}

test("k8s: each document has apiVersion, kind and metadata.name; the kustomization lists every file", () => {
  assert.ok(k8sDocs.length >= 7);
  for (const { file, doc } of k8sDocs) {
    assert.match(String(doc["apiVersion"] ?? ""), /^([\w.-]+\/)?v\d+(\w+)?$/, `${file}: apiVersion`);
    assert.ok(doc["kind"], `${file}: kind`);
    assert.match(String(asRecord(doc["metadata"], `${file} metadata`)["name"] ?? ""), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, `${file}: metadata.name`);
  }
  const kustomization = asRecord(readYaml(join(k8sDir, "kustomization.yaml")), "kustomization");
  const resources = asArray(kustomization["resources"], "resources").map(String);
  for (const r of resources) assert.ok(fileExists(join(k8sDir, r)), `kustomization resource ${r} exists`);
  for (const f of k8sFiles) assert.ok(resources.includes(f), `kustomization lists ${f}`);
  const kinds = new Set(k8sDocs.map(({ doc }) => doc["kind"]));
  for (const kind of ["Deployment", "ConfigMap", "Secret", "Service", "ServiceMonitor", "PodDisruptionBudget", "PrometheusRule"]) assert.ok(kinds.has(kind), kind);
  assert.equal(k8s("ServiceMonitor")["apiVersion"], "monitoring.coreos.com/v1");
  assert.equal(k8s("PrometheusRule")["apiVersion"], "monitoring.coreos.com/v1");
});

interface PodOf {
  readonly name: string;
  readonly spec: Record<string, unknown>;
  readonly template: Record<string, unknown>;
  readonly podSpec: Record<string, unknown>;
  readonly container: Record<string, unknown>;
  readonly volumes: Map<string, Record<string, unknown>>;
  readonly volumeMounts: Record<string, unknown>[];
  readonly args: string[];
}

function podOf(name: string): PodOf {
  const deployment = k8s("Deployment", name);
  const spec = asRecord(deployment["spec"], `${name} spec`);
  const template = asRecord(spec["template"], "template");
  const podSpec = asRecord(template["spec"], "pod spec");
  const container = asRecord(asArray(podSpec["containers"], "containers")[0], "container");
  const volumes = new Map(asArray(podSpec["volumes"], "volumes").map((v) => [String(asRecord(v, "volume")["name"]), asRecord(v, "volume")]));
  const volumeMounts = asArray(container["volumeMounts"], "volumeMounts").map((m) => asRecord(m, "volumeMount"));
  return { name, spec, template, podSpec, container, volumes, volumeMounts, args: asArray(container["args"], "args").map(String) };
}

// Issue 17: capture (a leader and a standby) and sinks (scalable) run as separate Deployments.
const capturePods = podOf("sluice-capture");
const sinkPods = podOf("sluice-sinks");
const pods = [capturePods, sinkPods];

test("k8s Deployments: capture with 2 replicas (leader + standby) that never drops below one during a rollout; scalable sinks; each runs its role", () => {
  for (const pod of pods) {
    const selector = asRecord(asRecord(pod.spec["selector"], "selector")["matchLabels"], "matchLabels");
    const labels = asRecord(asRecord(pod.template["metadata"], "template metadata")["labels"], "template labels");
    assert.ok(Object.keys(selector).length > 0);
    assert.ok(labelsMatch(selector, labels), `${pod.name}: spec.selector.matchLabels ⊆ template labels`);
  }
  assert.equal(capturePods.spec["replicas"], 2, "a leader and a standby");
  const rollout = asRecord(capturePods.spec["strategy"], "strategy");
  assert.equal(rollout["type"], "RollingUpdate");
  assert.equal(asRecord(rollout["rollingUpdate"], "rollingUpdate")["maxUnavailable"], 0);
  assert.deepEqual(capturePods.args, ["run", "--role", "capture"]);
  assert.ok(Number(sinkPods.spec["replicas"]) >= 1);
  assert.deepEqual(sinkPods.args, ["run", "--role", "sinks"]);
  // The two Deployments' pods are told apart by their selectors.
  const captureSelector = asRecord(asRecord(capturePods.spec["selector"], "selector")["matchLabels"], "matchLabels");
  const sinkLabels = asRecord(asRecord(sinkPods.template["metadata"], "metadata")["labels"], "labels");
  assert.ok(!labelsMatch(captureSelector, sinkLabels), "the capture Deployment does not select sink pods");
});

test("k8s PodDisruptionBudgets: one per Deployment, selecting its pods; capture keeps a pod, sinks go one at a time", () => {
  for (const [pdbName, pod] of [["sluice-capture", capturePods], ["sluice-sinks", sinkPods]] as const) {
    const pdb = k8s("PodDisruptionBudget", pdbName);
    assert.equal(pdb["apiVersion"], "policy/v1");
    const spec = asRecord(pdb["spec"], "pdb spec");
    const labels = asRecord(asRecord(pod.template["metadata"], "metadata")["labels"], "labels");
    assert.ok(labelsMatch(asRecord(asRecord(spec["selector"], "selector")["matchLabels"], "matchLabels"), labels), `${pdbName} selects ${pod.name}'s pods`);
  }
  const capture = asRecord(k8s("PodDisruptionBudget", "sluice-capture")["spec"], "spec");
  assert.equal(capture["minAvailable"], 1);
  assert.ok(Number(capture["minAvailable"]) < Number(capturePods.spec["replicas"]), "a drain can still evict one capture pod");
  assert.equal(asRecord(k8s("PodDisruptionBudget", "sluice-sinks")["spec"], "spec")["maxUnavailable"], 1);
});

test("k8s Deployments: probes on /healthz and /readyz, resources, non-root read-only security context, volumes", () => {
  for (const { container, podSpec, volumes, volumeMounts } of pods) {
    const port = asArray(container["ports"], "ports").map((p) => asRecord(p, "port")).find((p) => p["name"] === "http");
    assert.equal(port?.["containerPort"], 8080);
    const probe = (name: string) => asRecord(asRecord(container[name], name)["httpGet"], `${name}.httpGet`);
    assert.equal(probe("livenessProbe")["path"], "/healthz");
    // A standby is ready too (/readyz); /readyz/leader tells the leader apart.
    assert.equal(probe("readinessProbe")["path"], "/readyz");
    for (const p of ["livenessProbe", "readinessProbe"]) assert.ok(probe(p)["port"] === "http" || probe(p)["port"] === 8080);
    const resources = asRecord(container["resources"], "resources");
    assert.ok(asRecord(resources["requests"], "requests")["memory"] && asRecord(resources["requests"], "requests")["cpu"]);
    assert.ok(asRecord(resources["limits"], "limits")["memory"]);
    const podSecurity = asRecord(podSpec["securityContext"], "pod securityContext");
    assert.equal(podSecurity["runAsNonRoot"], true);
    assert.ok(Number(podSecurity["runAsUser"]) > 0);
    const security = asRecord(container["securityContext"], "container securityContext");
    assert.equal(security["readOnlyRootFilesystem"], true);
    assert.equal(security["allowPrivilegeEscalation"], false);
    assert.deepEqual(asRecord(security["capabilities"], "capabilities")["drop"], ["ALL"]);
    // the image's user (deploy/Dockerfile) is the one the pod runs as
    const uid = /ARG SLUICE_UID=(\d+)/.exec(readText(join(deployDir, "Dockerfile")))?.[1];
    assert.equal(String(podSecurity["runAsUser"]), uid);
    // every mount has its volume; the data dir is writable (with Kafka nothing of Sluice's is kept there: no shared volume between replicas); /tmp writable despite the read-only root
    for (const m of volumeMounts) assert.ok(volumes.has(String(m["name"])), `volumeMount ${String(m["name"])} has a volume`);
    const dataMount = volumeMounts.find((m) => m["mountPath"] === "/var/lib/sluice");
    assert.ok(dataMount, "data dir mounted");
    assert.ok(isRecord(volumes.get(String(dataMount["name"]))!["emptyDir"]), "the data dir is per pod");
    assert.ok(volumeMounts.some((m) => m["mountPath"] === "/tmp"));
    const grace = Number(podSpec["terminationGracePeriodSeconds"]);
    assert.ok(grace > 30, "longer than the config's shutdown.timeout");
  }
});

test("k8s Service selects the Deployment's pods; the ServiceMonitor's port exists on the Service", () => {
  const svc = k8s("Service", "sluice");
  const spec = asRecord(svc["spec"], "service spec");
  for (const pod of pods) {
    const podLabels = asRecord(asRecord(pod.template["metadata"], "template metadata")["labels"], "labels");
    assert.ok(labelsMatch(asRecord(spec["selector"], "selector"), podLabels), `Service selector ⊆ ${pod.name} pod labels (every pod is scraped)`);
  }
  const ports = asArray(spec["ports"], "service ports").map((p) => asRecord(p, "port"));
  const containerPorts = asArray(capturePods.container["ports"], "ports").map((p) => asRecord(p, "port"));
  for (const p of ports) {
    const target = p["targetPort"];
    assert.ok(containerPorts.some((c) => c["name"] === target || c["containerPort"] === target), `Service port ${String(p["name"])}: targetPort ${String(target)} is a container port`);
  }
  const monitor = asRecord(k8s("ServiceMonitor", "sluice")["spec"], "ServiceMonitor spec");
  const svcLabels = asRecord(asRecord(svc["metadata"], "metadata")["labels"], "service labels");
  assert.ok(labelsMatch(asRecord(asRecord(monitor["selector"], "selector")["matchLabels"], "matchLabels"), svcLabels), "ServiceMonitor selects the Service");
  for (const e of asArray(monitor["endpoints"], "endpoints")) {
    const endpoint = asRecord(e, "endpoint");
    assert.ok(ports.some((p) => p["name"] === endpoint["port"]), `ServiceMonitor port "${String(endpoint["port"])}" is a named port of the Service`);
    assert.equal(endpoint["path"] ?? "/metrics", "/metrics");
  }
  // the job label Prometheus Operator gives the targets is the Service's name: the rules use job="sluice"
  assert.equal(asRecord(svc["metadata"], "metadata")["name"], "sluice");
});

test("k8s: the ConfigMap's sluice.yaml passes `sluice validate` with the Secret's keys mounted where password_file points", () => {
  const configMap = k8s("ConfigMap");
  const configMapName = asRecord(configMap["metadata"], "metadata")["name"];
  const text = String(asRecord(configMap["data"], "data")["sluice.yaml"]);
  assert.ok(text.length > 0);
  assert.deepEqual(requiredEnvVars(text), [], "no ${VAR} the Deployment does not set: secrets come from files");

  const config = asRecord(parseYaml(text), "sluice.yaml");
  const referenced: string[] = [];
  const walk = (node: unknown): void => {
    if (Array.isArray(node)) node.forEach(walk);
    else if (isRecord(node)) {
      for (const [k, v] of Object.entries(node)) {
        if (/_file$/.test(k) && typeof v === "string") referenced.push(v);
        else walk(v);
      }
    }
  };
  walk(config);
  assert.ok(referenced.length >= 3, "passwords come from password_file");
  const mounted = new Set<string>();
  for (const { name, container, volumes, volumeMounts, args } of pods) {
    // where the config and the secret are mounted
    const env = asArray(container["env"] ?? [], "env").map((e) => asRecord(e, "env"));
    const configPath = String(env.find((e) => e["name"] === "SLUICE_CONFIG")?.["value"] ?? "/etc/sluice/sluice.yaml");
    const configMount = volumeMounts.find((m) => m["mountPath"] === configPath || (m["mountPath"] === dirname(configPath) && !m["subPath"]));
    assert.ok(configMount, `a volume is mounted at ${configPath}`);
    const configVolume = volumes.get(String(configMount["name"]))!;
    assert.equal(asRecord(configVolume["configMap"], "configMap volume")["name"], configMapName);

    const secret = k8s("Secret");
    const secretName = asRecord(secret["metadata"], "metadata")["name"];
    const secretKeys = new Set([...Object.keys(asRecord(secret["stringData"] ?? {}, "stringData")), ...Object.keys(asRecord(secret["data"] ?? {}, "data"))]);
    const secretMount = volumeMounts.find((m) => {
      const v = volumes.get(String(m["name"]));
      return v !== undefined && isRecord(v["secret"]) && v["secret"]["secretName"] === secretName;
    });
    assert.ok(secretMount, "the Secret is mounted");
    const secretVolume = asRecord(volumes.get(String(secretMount["name"]))!["secret"], "secret volume");
    const mountDir = String(secretMount["mountPath"]);
    const files = new Map<string, string>(); // path in the pod → key
    const items = secretVolume["items"] === undefined ? [...secretKeys].map((k) => ({ key: k, path: k })) : asArray(secretVolume["items"], "items").map((i) => asRecord(i, "item"));
    for (const item of items) {
      assert.ok(secretKeys.has(String(item["key"])), `secret volume item "${String(item["key"])}" is a key of the Secret`);
      files.set(`${mountDir}/${String(item["path"])}`, String(item["key"]));
    }

    for (const path of files.keys()) mounted.add(path);

    // validate with the secret files in a temp dir in place of the mount
    const dir = mkdtempSync(join(tmpdir(), "sluice-k8s-"));
    try {
      const secretValues = { ...asRecord(secret["stringData"] ?? {}, "stringData") };
      mkdirSync(join(dir, "secrets"));
      for (const [path, key] of files) writeFileSync(join(dir, "secrets", path.slice(mountDir.length + 1)), `${String(secretValues[key] ?? "x")}\n`);
      const localText = text.split(`${mountDir}/`).join(`${join(dir, "secrets")}/`);
      writeFileSync(join(dir, "sluice.yaml"), localText);
      // Each pod holds only the secrets of its role: `sluice validate` with the pod's role (and its environment, e.g. SLUICE_MEMORY) accepts that.
      const podEnv = Object.fromEntries(env.filter((e) => typeof e["value"] === "string" && e["name"] !== "SLUICE_CONFIG").map((e) => [String(e["name"]), String(e["value"])]));
      const result = sluiceCli(["validate", "-c", join(dir, "sluice.yaml"), ...args.slice(1)], podEnv);
      assert.equal(result.status, 0, `${name}: ${result.stderr}`);
      assert.match(result.stdout, /^ok: /);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  for (const path of referenced) assert.ok(mounted.has(path), `${path}: no key of the Secret is mounted there in any pod (mounted: ${[...mounted].join(", ")})`);
  const listen = String(asRecord(config["http"], "http")["listen"]);
  assert.match(listen, /^0\.0\.0\.0:8080$/, "listens on all interfaces, on the container port");
});

test("k8s: prometheusrule.yaml is rules.yml for the Prometheus Operator (regenerate: node deploy/k8s/prometheusrule.ts --write)", () => {
  assert.equal(readText(prometheusRuleFile), renderPrometheusRule(), "deploy/k8s/prometheusrule.yaml is stale: run node deploy/k8s/prometheusrule.ts --write");
});
