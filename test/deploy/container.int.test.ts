// The container image, built and run for real with podman (no Docker engine and no image registry
// here): deploy/base-image/build.sh makes a local stand-in for node:24-bookworm-slim (cached),
// `podman build` builds deploy/Dockerfile on it, and the image runs `sluice run` against the real
// PostgreSQL of test/services with the config mounted read-only at /etc/sluice/sluice.yaml, a
// read-only root file system and the data dir on the image's volume. Checks: /healthz answers,
// the image's HEALTHCHECK passes, it runs as its non-root user, and SIGTERM stops it cleanly
// (exit code 0, "sluice stopped"); a SIGTERM before Node has read Sluice's first line is not lost
// (tini is PID 1); under --memory without a memory setting the budget is sized from the limit.
//
// Slow the first time (apt-get of podman/debootstrap if missing, debootstrap, npm install in the
// build); later runs reuse the base image and podman's layer cache.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { postgres } from "../services/ports.ts";
import { recordTestName } from "../services/test-names.ts";
import { freePort } from "./daemon-process.ts";
import { repoPath, repoRoot } from "./support.ts";

const BASE_IMAGE = process.env["SLUICE_BASE_IMAGE"] ?? "localhost/sluice-base:bookworm-node24";
const IMAGE = "localhost/sluice:test";
// runc, not crun (crun cannot set rlimits in some sandboxes); no systemd here for cgroups or events
const PODMAN_GLOBAL = ["--runtime", "runc", "--cgroup-manager", "cgroupfs", "--events-backend", "file"];

const suffix = randomBytes(4).toString("hex");
const containerName = `sluice-deploy-test-${suffix}`;
const earlyName = `sluice-deploy-test-early-${suffix}`;
const memoryName = `sluice-deploy-test-memory-${suffix}`;
const sourceName = recordTestName(`ctr_${suffix}`);
const schema = `deploy_ctr_${suffix}`;
const timings: string[] = [];

let dir: string;
let admin: pg.Client | undefined;
let port: number;
let containerStarted = false;

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

function run(command: string, args: string[], timeoutMs: number, cwd = repoRoot): Run {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", timeout: timeoutMs, maxBuffer: 64 * 2 ** 20 });
  if (result.error) throw new Error(`${command} ${args.join(" ")}: ${result.error.message}`);
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function podman(args: string[], timeoutMs = 120_000): Run {
  return run("podman", [...PODMAN_GLOBAL, ...args], timeoutMs);
}

function timed<T>(what: string, fn: () => T): T {
  const t0 = Date.now();
  try {
    return fn();
  } finally {
    timings.push(`${what}: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  }
}

/** The hard limit of open files this process has: the container may not ask for more (no CAP_SYS_RESOURCE). */
function hardNofile(): number {
  const line = readFileSync("/proc/self/limits", "utf8").split("\n").find((l) => l.startsWith("Max open files"));
  const hard = Number(line?.trim().split(/\s+/)[4]);
  return Number.isFinite(hard) && hard > 0 ? hard : 1024;
}

/** The CA bundle this machine trusts, handed to `npm install` in the build as a build secret. */
function caBundle(): string | undefined {
  for (const candidate of [process.env["NODE_EXTRA_CA_CERTS"], "/etc/ssl/certs/ca-certificates.crt"]) {
    if (candidate && existsSync(candidate)) return candidate;
  }
  return undefined;
}

async function fetchStatus(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(2000) });
    await res.arrayBuffer();
    return res.status;
  } catch {
    return 0;
  }
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), "sluice-container-"));
  admin = new pg.Client({ host: postgres.host, port: postgres.port, user: postgres.user, password: postgres.password, database: postgres.database });
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.query(`CREATE TABLE ${schema}.items (id int PRIMARY KEY, name text NOT NULL)`);
  await admin.query(`INSERT INTO ${schema}.items SELECT g, 'item ' || g FROM generate_series(1, 100) g`);
});

after(async () => {
  if (containerStarted) podman(["rm", "--force", "--volumes", "--time", "0", containerName]);
  for (const name of [earlyName, memoryName]) podman(["rm", "--force", "--volumes", "--time", "0", "--ignore", name]);
  if (admin) {
    const slot = `sluice_${sourceName}`;
    await admin.query("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1 AND NOT active", [slot]).catch(() => undefined);
    await admin.query(`DROP PUBLICATION IF EXISTS ${slot}`).catch(() => undefined);
    await admin.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`).catch(() => undefined);
    await admin.end();
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
  process.stdout.write(`# container test timings: ${timings.join("; ")}\n`);
});

test("the base image: built once by deploy/base-image/build.sh, then reused", { timeout: 15 * 60_000 }, () => {
  const first = timed("base image (build.sh)", () => run("bash", [repoPath("deploy/base-image/build.sh"), BASE_IMAGE], 14 * 60_000));
  assert.equal(first.status, 0, `deploy/base-image/build.sh failed:\n${first.stdout}${first.stderr}`);
  const again = timed("base image again (cached)", () => run("bash", [repoPath("deploy/base-image/build.sh"), BASE_IMAGE], 60_000));
  assert.equal(again.status, 0, again.stderr);
  assert.match(again.stderr, /is up to date/, "a second run reuses the image");
  const version = podman(["run", "--rm", "--network", "none", "--ulimit", `nofile=${hardNofile()}:${hardNofile()}`, "--ulimit", "nproc=4096:4096", BASE_IMAGE, "node", "--version"]);
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout.trim(), /^v24\./);
});

test("podman build -f deploy/Dockerfile: production dependencies, non-root user, volume, port, healthcheck", { timeout: 15 * 60_000 }, () => {
  const ca = caBundle();
  const previous = podman(["image", "inspect", "--format", "{{.Id}}", IMAGE]);
  const build = timed("podman build", () =>
    podman(
      [
        "build",
        "--network", "host",
        "--format", "docker", // keeps HEALTHCHECK (the OCI image format has no field for it)
        "--ignorefile", "deploy/Dockerfile.dockerignore",
        ...(ca ? ["--secret", `id=npm_ca,src=${ca}`] : []),
        "--build-arg", `BASE_IMAGE=${BASE_IMAGE}`,
        "-f", "deploy/Dockerfile",
        "-t", IMAGE,
        ".",
      ],
      14 * 60_000,
    ),
  );
  assert.equal(build.status, 0, `podman build failed:\n${build.stdout.slice(-4000)}\n${build.stderr.slice(-4000)}`);
  // the image this tag named before is now untagged: remove it so repeated runs do not pile up images
  const now = podman(["image", "inspect", "--format", "{{.Id}}", IMAGE]).stdout.trim();
  const old = previous.status === 0 ? previous.stdout.trim() : "";
  if (old && old !== now) podman(["rmi", old]);

  const inspect = podman(["image", "inspect", IMAGE]);
  assert.equal(inspect.status, 0, inspect.stderr);
  const [image] = JSON.parse(inspect.stdout) as {
    Config: { User?: string; Env?: string[]; ExposedPorts?: Record<string, unknown>; Volumes?: Record<string, unknown>; Entrypoint?: string[]; Cmd?: string[]; Healthcheck?: { Test?: string[] }; WorkingDir?: string };
    Healthcheck?: { Test?: string[] };
    Size?: number;
  }[];
  const config = image!.Config;
  assert.match(config.User ?? "", /^[1-9]\d*(:[1-9]\d*)?$/, `runs as a numeric non-root user, got "${config.User}"`);
  assert.ok(config.Env?.includes("SLUICE_CONFIG=/etc/sluice/sluice.yaml"), `SLUICE_CONFIG: ${config.Env?.join(" ")}`);
  assert.ok(config.ExposedPorts?.["8080/tcp"] !== undefined, "EXPOSE 8080");
  assert.ok(config.Volumes?.["/var/lib/sluice"] !== undefined, "VOLUME /var/lib/sluice");
  assert.deepEqual(config.Entrypoint, ["/usr/bin/tini", "-s", "--", "node", "/app/daemon/sluice.js"], "tini is PID 1 and hands signals to node");
  assert.deepEqual(config.Cmd, ["run"]);
  const healthcheck = image!.Healthcheck ?? config.Healthcheck; // podman puts it beside Config
  assert.ok(healthcheck?.Test?.join(" ").includes("fetch("), `HEALTHCHECK with node's fetch: ${JSON.stringify(healthcheck)}`);
  timings.push(`image size: ${((image!.Size ?? 0) / 2 ** 20).toFixed(0)} MiB`);

  // only production dependencies, no tests, no dev tools
  const listing = podman(["run", "--rm", "--network", "none", "--ulimit", `nofile=${hardNofile()}:${hardNofile()}`, "--ulimit", "nproc=4096:4096", "--entrypoint", "sh", IMAGE, "-c",
    "ls /app; ls /app/node_modules | tr '\\n' ' '; echo; find /app -path /app/node_modules -prune -o -name '*.test.ts' -print | head -3; node /app/daemon/sluice.js version"]);
  assert.equal(listing.status, 0, listing.stderr);
  assert.doesNotMatch(listing.stdout, /\b(typescript|eslint)\b/, "no dev dependencies");
  assert.doesNotMatch(listing.stdout, /\.test\.ts/, "no test files");
  assert.match(listing.stdout, /@duckdb/);
  assert.match(listing.stdout, /sluice \d+\.\d+\.\d+ \(node v24\./);

  // No example configs or secret files (config/examples/secrets held one): configs and secrets are mounted. The
  // image's /tmp starts empty, so the image's user can keep Node's compile cache at its default path there (a
  // root-owned /tmp/node-compile-cache left by the base image's npm made it fail for that user).
  const contents = podman(["run", "--rm", "--network", "none", "--ulimit", `nofile=${hardNofile()}:${hardNofile()}`, "--ulimit", "nproc=4096:4096", "--entrypoint", "sh", IMAGE, "-c",
    "find /app /etc/sluice -path /app/node_modules -prune -o \\( -name examples -o -name secrets -o -name '*password*' -o -name '*.pem' \\) -print; echo tmp: $(find /tmp /var/tmp -mindepth 1); " +
    "node -e 'const m = require(\"node:module\"); const r = m.enableCompileCache(); console.log(\"compile cache:\", r.directory ?? r.message)'"]);
  assert.equal(contents.status, 0, contents.stderr);
  const lines = contents.stdout.trim().split("\n");
  assert.deepEqual(lines.slice(0, -2), [], "no example configs or secret files in the image");
  assert.equal(lines.at(-2), "tmp:", "the image's /tmp and /var/tmp are empty");
  assert.equal(lines.at(-1), "compile cache: /tmp/node-compile-cache", "the image's user can keep Node's compile cache");
});

test("podman run: /healthz answers, HEALTHCHECK passes, non-root, read-only root; SIGTERM stops it with exit code 0", { timeout: 5 * 60_000 }, async (t) => {
  port = await freePort();
  const configFile = join(dir, "sluice.yaml");
  writeFileSync(
    configFile,
    `name: ctrtest
sources:
  - name: ${sourceName}
    kind: postgres
    host: ${postgres.host}
    port: ${postgres.port}
    database: ${postgres.database}
    user: ${postgres.user}
    password_file: /etc/sluice/pg-password
    tables: ["${schema}.*"]
topics:
  kind: embedded
  path: /var/lib/sluice/sluice.db
sinks:
  - name: warehouse
    kind: duckdb
    path: /var/lib/sluice/warehouse.duckdb
http:
  listen: 127.0.0.1:${port}
shutdown:
  timeout: 20s
`,
  );
  writeFileSync(join(dir, "pg-password"), `${postgres.password}\n`);
  chmodSync(configFile, 0o644); // read by the image's user
  chmodSync(join(dir, "pg-password"), 0o644);

  const nofile = hardNofile();
  const started = timed("podman run", () =>
    podman([
      "run", "--detach", "--name", containerName,
      "--network", "host",
      "--read-only", // as in Kubernetes (readOnlyRootFilesystem); /tmp stays a tmpfs
      "--ulimit", `nofile=${nofile}:${nofile}`, "--ulimit", "nproc=4096:4096",
      "--volume", `${configFile}:/etc/sluice/sluice.yaml:ro`,
      "--volume", `${join(dir, "pg-password")}:/etc/sluice/pg-password:ro`,
      "--env", `SLUICE_HEALTHCHECK_URL=http://127.0.0.1:${port}/healthz`,
      IMAGE,
    ]),
  );
  assert.equal(started.status, 0, `podman run failed:\n${started.stderr}`);
  containerStarted = true;
  const logs = () => {
    const l = podman(["logs", containerName]);
    return `${l.stdout}${l.stderr}`;
  };

  const t0 = Date.now();
  let health = 0;
  while (Date.now() - t0 < 60_000) {
    health = await fetchStatus(`http://127.0.0.1:${port}/healthz`);
    if (health === 200) break;
    const state = podman(["inspect", "--format", "{{.State.Status}}", containerName]).stdout.trim();
    assert.notEqual(state, "exited", `the container exited:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
  timings.push(`container to /healthz 200: ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  assert.equal(health, 200, `/healthz did not answer 200 within 60 s:\n${logs()}`);

  const check = podman(["healthcheck", "run", containerName]);
  assert.equal(check.status, 0, `the image's HEALTHCHECK failed: ${check.stdout}${check.stderr}`);
  const uid = podman(["exec", containerName, "id", "-u"]);
  assert.equal(uid.stdout.trim(), "10001", "runs as the image's user");
  const readOnly = podman(["exec", containerName, "sh", "-c", "touch /app/x 2>/dev/null && echo writable || echo read-only"]);
  assert.equal(readOnly.stdout.trim(), "read-only");
  const dataDir = podman(["exec", containerName, "sh", "-c", "ls /var/lib/sluice"]);
  assert.match(dataDir.stdout, /sluice\.db/, "the embedded topic log is in the data volume");

  // The pipeline inside the image, DuckDB's native binding included (a diagnostic for now: the
  // capture-to-sink path is being integrated). Waits up to 20 s for the snapshot to be applied.
  let applied = 0;
  let ready = 0;
  const t1 = Date.now();
  while (Date.now() - t1 < 20_000) {
    const metrics = await fetch(`http://127.0.0.1:${port}/metrics`).then((r) => r.text());
    assert.match(metrics, /^# TYPE sluice_changes_captured_total counter$/m);
    applied = [...metrics.matchAll(/^sluice_sink_changes_applied_total\{[^}]*\} (\d+)/gm)].reduce((sum, m) => sum + Number(m[1]), 0);
    ready = await fetchStatus(`http://127.0.0.1:${port}/readyz`);
    if (applied >= 100 && ready === 200) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  t.diagnostic(`inside the container after ${((Date.now() - t1) / 1000).toFixed(1)} s: ${applied} changes applied to DuckDB (snapshot: 100 rows); /readyz ${ready}`);

  const stop = timed("SIGTERM to exit", () => podman(["stop", "--time", "40", containerName], 60_000));
  assert.equal(stop.status, 0, stop.stderr);
  const state = JSON.parse(podman(["inspect", "--format", "{{json .State}}", containerName]).stdout) as { ExitCode: number; OOMKilled?: boolean };
  const output = logs();
  assert.equal(state.ExitCode, 0, `exit code after SIGTERM:\n${output}`);
  assert.match(output, /"msg":"sluice stopping".*"reason":"SIGTERM"|"reason":"SIGTERM".*"msg":"sluice stopping"/);
  assert.match(output, /"msg":"sluice stopped"/);
  assert.doesNotMatch(output, /"level":"(error|fatal)".*"msg":"graceful shutdown timed out/);
});

/** `podman run --detach` of the image with the test's limits, the config mounted read-only and a read-only root. */
function runDetached(name: string, configFile: string, extra: string[]): Run {
  const nofile = hardNofile();
  return podman([
    "run", "--detach", "--name", name, "--network", "host", "--read-only",
    "--ulimit", `nofile=${nofile}:${nofile}`, "--ulimit", "nproc=4096:4096",
    "--volume", `${configFile}:/etc/sluice/sluice.yaml:ro`,
    ...extra,
    IMAGE,
  ]);
}

/** A config whose source is never reached (nothing listens on its port): the daemon starts and retries it. */
async function unreachableSourceConfig(file: string): Promise<string> {
  writeFileSync(
    file,
    `name: ctrtest_early
sources:
  - {name: pg, kind: postgres, host: 127.0.0.1, port: ${await freePort()}, database: none, user: none, password: none, tables: ["none.*"]}
topics: {kind: embedded, path: /var/lib/sluice/sluice.db}
http: {listen: "127.0.0.1:${await freePort()}"}
`,
  );
  chmodSync(file, 0o644);
  return file;
}

// Found live: `podman stop` in the container's first tenth of a second waited for the kill timeout (exit 137): node was
// PID 1 and the kernel drops a signal PID 1 has no handler for; node has none until Sluice's first line. The preload
// holds node there (before any handler) long enough for the stop to land in that window every time.
test("podman stop while node starts, before Sluice's first line: the SIGTERM ends it (tini is PID 1), no --init needed", { timeout: 2 * 60_000 }, async () => {
  const configFile = await unreachableSourceConfig(join(dir, "early.yaml"));
  const holdStart = "--import=data:text/javascript,Atomics.wait(new(Int32Array)(new(SharedArrayBuffer)(4)),0,0,10000)";
  const started = runDetached(earlyName, configFile, ["--env", `NODE_OPTIONS=${holdStart}`]);
  assert.equal(started.status, 0, `podman run failed:\n${started.stderr}`);
  const stop = timed("early SIGTERM to exit", () => podman(["stop", "--time", "10", earlyName], 60_000));
  assert.equal(stop.status, 0, stop.stderr);
  const state = JSON.parse(podman(["inspect", "--format", "{{json .State}}", earlyName]).stdout) as { ExitCode: number };
  const logs = podman(["logs", earlyName]);
  assert.notEqual(state.ExitCode, 137, `the SIGTERM was lost: podman killed it at the timeout\n${logs.stdout}`);
  assert.equal(state.ExitCode, 143, "node ended by the SIGTERM before Sluice ran (128 + 15)");
  assert.doesNotMatch(logs.stdout, /"msg":"sluice started"/);
});

// Found live: under --memory 256m Sluice kept its default budget of 256MiB, all of the limit.
test("podman run --memory 256m, no memory in the config: the budget is sized from the container's limit", { timeout: 2 * 60_000 }, async () => {
  const configFile = await unreachableSourceConfig(join(dir, "memory.yaml"));
  const started = runDetached(memoryName, configFile, ["--memory", "256m"]);
  assert.equal(started.status, 0, `podman run failed:\n${started.stderr}`);
  let output = "";
  const t0 = Date.now();
  while (Date.now() - t0 < 60_000 && !/"msg":"sluice started"/.test(output)) {
    await new Promise((r) => setTimeout(r, 250));
    output = podman(["logs", memoryName]).stdout;
  }
  podman(["stop", "--time", "10", memoryName], 60_000);
  const lines = output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l) as { level: string; msg: string; memory?: Record<string, unknown> });
  const summary = lines.find((l) => l.msg === "memory budget")?.memory;
  assert.ok(summary, `no "memory budget" line:\n${output}`);
  assert.deepEqual([summary["budgetFrom"], summary["budgetMiB"], summary["containerLimitMiB"]], ["container", 204, 256], JSON.stringify(summary));
  assert.ok(lines.some((l) => l.level === "info" && l.msg.startsWith("memory budget 204MiB, sized from this container's memory limit (256MiB, /sys/fs/cgroup/")), output);
  // The main thread's heap flags (planned before the re-exec) come from the same sized budget.
  assert.ok(!lines.some((l) => /main thread's heap limit is|above this container's memory limit/.test(l.msg)), output);
});
