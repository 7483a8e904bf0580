import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, realpathSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { test } from "node:test";

const cli = new URL("./sluice.js", import.meta.url).pathname;
const examples = new URL("../config/examples/", import.meta.url).pathname;

function sluice(...args: string[]) {
  const result = spawnSync(process.execPath, [cli, ...args], { encoding: "utf8", env: { ...process.env, SLUICE_CONFIG: "" } });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

function configWithListen(listen: string): string {
  const dir = mkdtempSync(join(tmpdir(), "sluice-cli-"));
  const file = join(dir, "sluice.yaml");
  // The source points at a closed port: the daemon serves HTTP while capture keeps retrying.
  writeFileSync(
    file,
    `name: t\nsources:\n  - {name: pg, kind: postgres, port: 9, database: app, user: u, tables: [public.t]}\ntopics: {kind: embedded, path: "${join(dir, "log.db")}"}\nhttp:\n  listen: "${listen}"\n`,
  );
  return file;
}

test("version prints the package version and exits 0", () => {
  const r = sluice("version");
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^sluice 0\.\d+\.\d+ \(node v24\./);
});

test("--help lists the commands; each command has its own --help", () => {
  const top = sluice("--help");
  assert.equal(top.code, 0);
  for (const command of ["run", "validate", "version"]) assert.match(top.stdout, new RegExp(`\\n  ${command} `));
  const validate = sluice("validate", "--help");
  assert.equal(validate.code, 0);
  assert.match(validate.stdout, /Usage: sluice validate -c FILE/);
});

test("validate prints ok for each example config", () => {
  for (const example of ["minimal.yaml", "full.yaml"]) {
    const r = sluice("validate", "-c", join(examples, example));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^ok: /);
  }
});

test("validate reports a broken config with file:line:column and exits 2", () => {
  const r = sluice("validate", "-c", new URL("../config/testdata/bad/06-misspelt-source-key.yaml", import.meta.url).pathname);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /06-misspelt-source-key\.yaml:7:5: sources\[0\]\.pasword: unknown key "pasword"; did you mean "password"\?/);
});

// Found on a live deployment: validate said ok while the daemon could not start on the master key file (not readable
// from the daemon's working directory; a relative path is now read from the config file's folder).
test("validate reads personal_data's key files as the daemon's start does, naming the key and the resolved path", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-cli-keys-"));
  mkdirSync(join(dir, "keys"));
  writeFileSync(join(dir, "keys", "master.key"), `${"ab".repeat(32)}\n`);
  writeFileSync(join(dir, "keys", "short.key"), "abcd\n");
  const write = (keys: string) => {
    const file = join(dir, "sluice.yaml");
    writeFileSync(file, `name: t\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t]}\ntopics: {kind: embedded, path: "${join(dir, "log.db")}"}\npersonal_data:\n  ${keys}\n`);
    return file;
  };
  // Run from another directory: the relative path is read from the config file's folder.
  const validate = (file: string) => {
    const result = spawnSync(process.execPath, [cli, "validate", "-c", file], { encoding: "utf8", cwd: tmpdir(), env: { ...process.env, SLUICE_CONFIG: "" } });
    return { code: result.status, stdout: result.stdout, stderr: result.stderr };
  };
  const ok = validate(write("master_key_file: keys/master.key"));
  assert.equal(ok.code, 0, ok.stderr);
  const missing = validate(write("master_key_file: keys/missing.key"));
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, new RegExp(`sluice\\.yaml:6:20: personal_data\\.master_key_file: cannot read the master key file ${join(dir, "keys", "missing.key")}: ENOENT`));
  const short = validate(write("master_key_file: keys/master.key\n  previous_master_key_files: [keys/short.key]"));
  assert.equal(short.code, 2);
  assert.match(short.stderr, new RegExp(`personal_data\\.previous_master_key_files\\[0\\]: the master key file ${join(dir, "keys", "short.key")} must hold 32 bytes`));
});

// Found while checking validate against wrong configs: a TLS file that does not exist passed validate, and the daemon
// then failed at start (TLS_FILE_UNREADABLE).
test("validate reports a file Sluice reads that it cannot, at its key with the resolved path; not for a part the process does not run", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-cli-files-"));
  const file = join(dir, "sluice.yaml");
  writeFileSync(
    file,
    `name: t\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t], tls: {mode: verify-full, ca_file: certs/pg-ca.pem}}\n` +
      `topics: {kind: kafka, brokers: ["k:9092"], tls: {ca_file: certs/kafka-ca.pem}}\nsinks:\n  - {name: es, kind: elasticsearch, sources: [pg], nodes: ["http://es:9200"]}\n`,
  );
  const validate = (...args: string[]) => spawnSync(process.execPath, [cli, "validate", "-c", file, ...args], { encoding: "utf8", cwd: tmpdir(), env: { ...process.env, SLUICE_CONFIG: "" } });
  const all = validate();
  assert.equal(all.status, 2);
  assert.match(all.stderr, new RegExp(`sluice\\.yaml:3:\\d+: sources\\[0\\]\\.tls\\.ca_file: cannot read ${join(dir, "certs", "pg-ca.pem")}: no such file \\(ENOENT\\)`));
  assert.match(all.stderr, new RegExp(`sluice\\.yaml:4:\\d+: topics\\.tls\\.ca_file: cannot read ${join(dir, "certs", "kafka-ca.pem")}: no such file \\(ENOENT\\)`));
  const sinksOnly = validate("--role", "sinks");
  assert.equal(sinksOnly.status, 2);
  assert.doesNotMatch(sinksOnly.stderr, /sources\[0\]/);
  assert.match(sinksOnly.stderr, /topics\.tls\.ca_file/);
});

test("validate shows the data paths resolved from the working directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-cli-data-"));
  const file = join(dir, "sluice.yaml");
  writeFileSync(file, `name: t\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t]}\nsinks:\n  - {name: wh, kind: duckdb, sources: [pg], path: wh.duckdb}\n`);
  const result = spawnSync(process.execPath, [cli, "validate", "-c", file], { encoding: "utf8", cwd: tmpdir(), env: { ...process.env, SLUICE_CONFIG: "" } });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, new RegExp(`\\n  topics\\.path: ${join(realpathSync(tmpdir()), "data", "sluice.db")} \\("\\./data/sluice\\.db" from this working directory; the daemon reads it from its own\\)\\n`));
  assert.match(result.stdout, new RegExp(`\\n  sinks\\[0\\]\\.path \\(sink "wh"\\): ${join(realpathSync(tmpdir()), "wh.duckdb")} \\("wh\\.duckdb" from this working directory; the daemon reads it from its own\\)\\n`));
});

test("validate reports a YAML alias problem as a config error (file:line:column, exit 2), never a stack trace", () => {
  for (const [fixture, message] of [
    ["53-yaml-alias-unresolved.yaml", /53-yaml-alias-unresolved\.yaml:8:15: sources\[0\]\.snapshot: alias \*snapshot_defaults has no anchor/],
    ["54-yaml-alias-bomb.yaml", /54-yaml-alias-bomb\.yaml:5:10: x-b\[0\]: YAML: Excessive alias count/],
  ] as const) {
    const r = sluice("validate", "-c", new URL(`../config/testdata/bad/${fixture}`, import.meta.url).pathname);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.doesNotMatch(r.stderr, /\n\s+at /, "no stack trace");
  }
});

test("usage errors exit 2: unknown command, unknown flag, missing -c", () => {
  const unknown = sluice("valdate");
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /unknown command "valdate"; did you mean "validate"\?/);
  // A typo in the first two letters was offered nothing (the suggestion took the first command with the same two),
  // and a word sharing only those got a command it is nothing like.
  assert.match(sluice("rplay").stderr, /unknown command "rplay"; did you mean "replay"\?/);
  assert.match(sluice("statistics").stderr, /unknown command "statistics"\nRun/);
  const flag = sluice("validate", "--colour");
  assert.equal(flag.code, 2);
  // It was Node's text, the same for every command, its quote unbalanced: Unknown option '--colour'. To specify ... as in '-- "--colour"
  assert.equal(flag.stderr.split("\n")[0], 'sluice validate: unknown option "--colour" (its options: -c/--config, --role, --source, --sink, -h/--help)');
  const typo = sluice("status", "--jsn");
  assert.equal(typo.code, 2);
  assert.match(typo.stderr, /^sluice status: unknown option "--jsn"; did you mean "--json"\? \(its options: -c\/--config, --json, -h\/--help\)\nUsage: sluice status -c FILE \[--json\]\n$/);
  const query = sluice("query", "-x");
  assert.match(query.stderr, /^sluice query: unknown option "-x" \(its options: .*--json.*; an argument starting with "-" goes after "--"\)\nUsage: sluice query -c FILE \[--sink NAME\] \[--json\] "SELECT \.\.\."\n$/);
  const missing = sluice("validate");
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /missing -c FILE/);
  // It printed the list of commands and exited 0.
  const help = sluice("help", "stauts");
  assert.equal(help.code, 2);
  assert.equal(help.stdout, "");
  assert.match(help.stderr, /sluice help: unknown command "stauts"; did you mean "status"\?/);
  // Names of an object's inherited properties crashed with a TypeError stack (exit 1).
  for (const name of ["constructor", "__proto__", "toString"]) {
    for (const args of [[name], ["help", name]]) {
      const inherited = sluice(...args);
      assert.equal(inherited.code, 2, `sluice ${args.join(" ")}: ${inherited.stderr}`);
      assert.match(inherited.stderr, new RegExp(`unknown command "${name}"`));
    }
  }
});

test("a stray argument is refused, naming it, by the commands that take none (found live: status ignored one and exited 0; validate FILE said only 'missing -c FILE')", () => {
  const asFile = sluice("validate", join(examples, "minimal.yaml"));
  assert.equal(asFile.code, 2);
  assert.match(asFile.stderr, /unexpected argument ".*minimal\.yaml" \(give the config file as -c .*minimal\.yaml\)/);
  const extra = sluice("status", "-c", join(examples, "minimal.yaml"), "extra");
  assert.equal(extra.code, 2);
  assert.match(extra.stderr, /sluice status: unexpected argument "extra"\nUsage: sluice status/);
});

test("a subcommand or action that does not exist is a usage error naming it, found before anything is opened (found checking every command's --help and a wrong flag)", () => {
  const dir = mkdtempSync(join(tmpdir(), "sluice-cli-usage-"));
  const file = join(dir, "sluice.yaml");
  writeFileSync(file, `name: t\nsources:\n  - {name: pg, kind: postgres, port: 9, database: app, user: u, tables: [public.t]}\ntopics: {kind: embedded, path: "${join(dir, "log.db")}"}\nsinks: [{name: wh, kind: duckdb, path: "${join(dir, "wh.duckdb")}"}]\nhttp: {listen: "127.0.0.1:9"}\n`);
  // It opened the topic log first: "no embedded topic log at ...", exit 1.
  const schema = sluice("schema", "-c", file, "lst");
  assert.equal(schema.code, 2, schema.stderr);
  assert.match(schema.stderr, /^sluice schema: unknown schema command "lst"; the commands: list, show, check, check-migration\nUsage: sluice schema/);
  assert.match(sluice("schema", "-c", file).stderr, /^sluice schema: give a schema command: list, show, check or check-migration\n/);
  // It said only "say list, retry or skip".
  const halted = sluice("halted", "-c", file, "lst");
  assert.equal(halted.code, 2);
  assert.match(halted.stderr, /^sluice halted: unknown action "lst": say list, retry or skip\n/);
  // replay's own usage (a bad --from-time) left out the rebuild forms its --help gives.
  const replay = sluice("replay", "-c", file, "--sink", "wh", "--from-time", "soon");
  assert.equal(replay.code, 2);
  assert.ok(replay.stderr.includes("Usage: sluice replay -c FILE --sink NAME (--from-beginning [--rebuild [--table T]...] | --from-time ISO8601 | --from-offset TOPIC:PARTITION:OFFSET | --abandon-rebuild [--table T]...) [--execute]\n"), replay.stderr);
  assert.deepEqual(readdirSync(dir), ["sluice.yaml"], "nothing opened or created");
});

test("an older Node is refused with one line", () => {
  const r = spawnSync(
    process.execPath,
    ["--input-type=module", "-e", `Object.defineProperty(process.versions, "node", { value: "20.11.0" }); Object.defineProperty(process, "version", { value: "v20.11.0" }); await import(${JSON.stringify(cli)});`],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 2);
  assert.equal(r.stderr.trim().split("\n").length, 1);
  assert.match(r.stderr, /Node\.js 24 or newer is required \(this is v20\.11\.0\)/);
});

test("run serves /healthz, logs JSON, and stops cleanly on SIGTERM", async () => {
  const port = await freePort();
  const config = configWithListen(`127.0.0.1:${port}`);
  const child = spawn(process.execPath, [cli, "run", "-c", config], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    let health: Response | undefined;
    for (let attempt = 0; attempt < 100 && !health; attempt++) {
      health = await fetch(`http://127.0.0.1:${port}/healthz`).catch(() => undefined);
      if (!health) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(health, "daemon never answered /healthz");
    assert.equal(health.status, 200);
    assert.equal(((await health.json()) as { status: string }).status, "ok");
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal(await exited, 0);
  const lines = stdout.trim().split("\n").map((line) => JSON.parse(line) as { msg: string; level: string });
  const lifecycle = lines.map((l) => l.msg).filter((msg) => msg.startsWith("sluice "));
  assert.deepEqual(lifecycle, ["sluice started", "sluice stopping", "sluice stopped"]);
  // The data files it opened, absolute (a relative one is from the working directory).
  const started = lines.find((l) => l.msg === "sluice started") as { data_paths?: unknown } | undefined;
  assert.deepEqual(started?.data_paths, { "topics.path": join(dirname(config), "log.db") });
});

test("run exits 1 with a clear message when its HTTP port is taken", async () => {
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
  const { port } = blocker.address() as { port: number };
  try {
    const r = sluice("run", "-c", configWithListen(`127.0.0.1:${port}`));
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: the address is already in use`));
  } finally {
    blocker.close();
  }
});

test("run serves Prometheus metrics with process metrics under the sluice_ prefix", async () => {
  const port = await freePort();
  const child = spawn(process.execPath, [cli, "run", "-c", configWithListen(`127.0.0.1:${port}`)], { stdio: "ignore" });
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  try {
    let body = "";
    for (let attempt = 0; attempt < 100 && body === ""; attempt++) {
      const response = await fetch(`http://127.0.0.1:${port}/metrics`).catch(() => undefined);
      if (response?.ok) body = await response.text();
      else await new Promise((r) => setTimeout(r, 100));
    }
    assert.match(body, /^# HELP sluice_process_resident_memory_bytes /m);
    assert.match(body, /^# TYPE sluice_changes_captured_total counter$/m);
    const samples = body.split("\n").filter((line) => line !== "" && !line.startsWith("#"));
    assert.ok(samples.length > 10);
    assert.deepEqual(samples.filter((line) => !line.startsWith("sluice_")), [], "every metric is named sluice_*");
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal(await exited, 0);
});

/** A daemon with a client holding a half-sent HTTP request, which the HTTP server waits for when it closes: stopping cannot finish. */
async function stuckDaemon(timeout: string) {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "sluice-stuck-"));
  const file = join(dir, "sluice.yaml");
  writeFileSync(
    file,
    `name: t\nsources:\n  - {name: pg, kind: postgres, port: 9, database: app, user: u, tables: [public.t]}\n` +
      `topics: {kind: embedded, path: "${join(dir, "log.db")}"}\nhttp:\n  listen: "127.0.0.1:${port}"\nshutdown:\n  timeout: ${timeout}\n`,
  );
  const child = spawn(process.execPath, [cli, "run", "-c", file], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  for (let attempt = 0; attempt < 100; attempt++) {
    if (await fetch(`http://127.0.0.1:${port}/healthz`).then(() => true, () => false)) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const { connect } = await import("node:net");
  const client = connect(port, "127.0.0.1");
  await new Promise<void>((resolve) => client.once("connect", () => resolve()));
  client.write("GET /healthz HTTP/1.1\r\nHost: x\r\n");
  return { child, exited, output: () => stdout, close: () => client.destroy() };
}

test("a shutdown that cannot drain abandons what hangs after shutdown.timeout, says what, and exits 0 (nothing is lost)", async () => {
  const daemon = await stuckDaemon("1s");
  try {
    daemon.child.kill("SIGTERM");
    assert.equal(await daemon.exited, 0);
    assert.match(daemon.output(), /"abandoned":\["http server"\].*graceful shutdown timed out after 1000 ms: abandoning http server; nothing is lost/);
  } finally {
    daemon.close();
  }
});

test("a second signal while draining exits at once", async () => {
  const daemon = await stuckDaemon("10m");
  try {
    daemon.child.kill("SIGTERM");
    await new Promise((r) => setTimeout(r, 300));
    daemon.child.kill("SIGTERM");
    assert.equal(await daemon.exited, 1);
    assert.match(daemon.output(), /second signal: exiting at once/);
  } finally {
    daemon.close();
  }
});

test("schema list, show and check read the registry stored in the embedded log", async () => {
  const { EmbeddedTopicLog } = await import("../connectors/embedded/embedded-log.ts");
  const { LocalRegistry, openJournalStore } = await import("../schema-registry/index.ts");
  const { createLogger } = await import("../runtime/logger.ts");
  const dir = mkdtempSync(join(tmpdir(), "sluice-schema-cli-"));
  const logPath = join(dir, "log.db");
  const log = EmbeddedTopicLog.open({ path: logPath, logger: createLogger("silent") });
  const registry = new LocalRegistry(await openJournalStore(log.registryJournal));
  const v1 = { type: "record", name: "Row", fields: [{ name: "id", type: "long" }] };
  await registry.register("t.pg.public.items-value", v1);
  await log.close();
  const file = join(dir, "sluice.yaml");
  writeFileSync(file, `name: t\nsources:\n  - {name: pg, kind: postgres, database: app, user: u, tables: [public.t]}\ntopics: {kind: embedded, path: "${logPath}"}\n`);

  const list = sluice("schema", "-c", file, "list");
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout, "t.pg.public.items-value\n");
  const show = sluice("schema", "-c", file, "show", "t.pg.public.items-value");
  assert.equal(show.code, 0, show.stderr);
  assert.match(show.stdout, /version: 1/);

  const compatible = join(dir, "v2.avsc");
  writeFileSync(compatible, JSON.stringify({ ...v1, fields: [...v1.fields, { name: "note", type: ["null", "string"], default: null }] }));
  assert.equal(sluice("schema", "-c", file, "check", "t.pg.public.items-value", compatible).code, 0);
  const incompatible = join(dir, "v3.avsc");
  writeFileSync(incompatible, JSON.stringify({ ...v1, fields: [{ name: "id", type: "string" }] }));
  const check = sluice("schema", "-c", file, "check", "t.pg.public.items-value", incompatible);
  assert.equal(check.code, 1);
  assert.match(check.stdout + check.stderr, /field `id`: writer type long cannot be read as string \(TYPE_MISMATCH at \/fields\/0\/type/);
});

test("halted: usage errors exit 2; with no daemon at http.listen it says so and exits 1", async () => {
  const file = configWithListen(`127.0.0.1:${await freePort()}`);
  const noAction = sluice("halted", "-c", file);
  assert.equal(noAction.code, 2);
  assert.match(noAction.stderr, /say list, retry or skip/);
  const noTable = sluice("halted", "-c", file, "retry", "--sink", "x");
  assert.equal(noTable.code, 2);
  assert.match(noTable.stderr, /give --sink NAME or --source NAME, and --table T/);
  const unknownSource = sluice("halted", "-c", file, "skip", "--source", "nope", "--table", "public.t");
  assert.equal(unknownSource.code, 2);
  assert.match(unknownSource.stderr, /no source "nope" in the config/);
  const offline = sluice("halted", "-c", file, "list");
  assert.equal(offline.code, 1);
  assert.match(offline.stderr, /no daemon answers at http:\/\/127\.0\.0\.1:\d+\/status .*Halts live in the running daemon/);
  assert.match(sluice("--help").stdout, /\n {2}halted /);
});
