/**
 * Issue 12, item 1: every `sluice` command run against a live Kafka deployment while it captures
 * leaves the daemon alone. Before, `sluice schema list` and a `sluice replay` dry run opened the
 * topic log with the daemon's own transactional id, fencing its producer (the daemon exited with
 * KAFKA_PRODUCER_FENCED). Here the real daemon captures PostgreSQL continuously into Kafka and a
 * DuckDB sink while every command runs; afterwards it still runs, still captures (rows inserted
 * after the commands arrive) and every source row is in the sink. Item 10: neither the daemon nor
 * a command prints kafkajs's TimeoutNegativeWarning under Node 24. The same commands against an
 * embedded-log deployment take no lock or lease its daemon needs.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import type pg from "pg";
import { formatLsn } from "../../connectors/postgres/lsn.ts";
import { kafka } from "../services/ports.ts";
import type { SluiceDaemon } from "./helpers.ts";
import { deleteKafkaDeployment, dropPostgres, killAllDaemons, pgClient, pgSourceConfig, randomName, removeDir, runSluice, sleep, startReady, tempDir, waitFor, waitSourcesPast } from "./helpers.ts";

const schema = randomName("e2e_cli");
const source = randomName("src");
const deployment = randomName("dep");
const names = { slot: `sluice_${source}`, publication: `sluice_${source}`, schema };
const dir = tempDir("cli");
const config = {
  name: deployment,
  sources: [pgSourceConfig(source, [`${schema}.*`])],
  topics: { kind: "kafka", brokers: [...kafka.brokers], partitions: 2, transactions: true, linger: "5ms", retention: { max_age: 0 } },
  sinks: [{ kind: "duckdb", name: "local", path: join(dir, "local.duckdb"), batch: { max_wait: "100ms" } }],
};
const subject = `${deployment}.${source}.${schema}.items-value`;
// The same table captured a second time into the embedded log (its own source, slot and deployment).
const embeddedSource = randomName("src");
const embeddedDeployment = randomName("dep");
const embeddedConfig = {
  name: embeddedDeployment,
  sources: [pgSourceConfig(embeddedSource, [`${schema}.*`])],
  topics: { kind: "embedded", path: join(dir, "embedded", "sluice.db"), partitions: 2, retention: { max_age: 0 } },
  sinks: [{ kind: "duckdb", name: "local", path: join(dir, "embedded.duckdb"), batch: { max_wait: "100ms" } }],
};

let client: pg.Client;
let writerClient: pg.Client;
let daemon: SluiceDaemon | null = null;
let nextId = 1;

/** Inserts one row every few milliseconds until `stop` resolves, so the daemon produces the whole time. */
async function insertContinuously(stop: { done: boolean }): Promise<void> {
  while (!stop.done) {
    await writerClient.query(`INSERT INTO "${schema}".items (id, note) VALUES ($1, $2)`, [nextId, `row ${nextId}`]);
    nextId++;
    await sleep(15);
  }
}

async function sinkIds(): Promise<number[]> {
  const response = await fetch(`${daemon!.url}/sinks/local/query`, { method: "POST", body: `SELECT id FROM main."${schema}_items" ORDER BY id`, signal: AbortSignal.timeout(10_000) });
  const body = (await response.json()) as { rows?: { id: unknown }[]; error?: string };
  if (!response.ok) throw new Error(body.error ?? response.statusText);
  return (body.rows ?? []).map((r) => Number(r.id));
}

async function sourceIds(): Promise<number[]> {
  return (await client.query<{ id: string }>(`SELECT id FROM "${schema}".items ORDER BY id`)).rows.map((r) => Number(r.id));
}

/**
 * After a command: capture makes a change written after it durable in the topic log (a producer
 * the command fenced, or a lock it kept on the log, would stop that), and nothing stopped or was fenced.
 */
async function assertDaemonWorksOn(after: string): Promise<void> {
  // Asked every 100 ms: capture commits every few milliseconds here, and this wait follows each of the many commands.
  await waitSourcesPast(daemon!, client, 60_000, 100);
  assertDaemonUndisturbed(after);
}

function assertDaemonUndisturbed(after: string): void {
  assert.equal(daemon!.exitStatus, null, `the daemon exited after ${after}\n--- daemon log tail ---\n${daemon!.logTail()}`);
  assert.equal(daemon!.fatalLine, null, `a daemon component stopped after ${after}: ${daemon!.fatalLine}`);
  assert.doesNotMatch(daemon!.logTail(400), /FENCED|fenced/, `the daemon's producer was fenced after ${after}`);
}

before(async () => {
  client = await pgClient();
  writerClient = await pgClient();
  await client.query(`CREATE SCHEMA "${schema}"`);
  await client.query(`CREATE TABLE "${schema}".items (id integer PRIMARY KEY, note text)`);
  for (let i = 0; i < 20; i++) {
    await client.query(`INSERT INTO "${schema}".items (id, note) VALUES ($1, $2)`, [nextId, `row ${nextId}`]);
    nextId++;
  }
});

after(async () => {
  await killAllDaemons();
  await writerClient.end();
  await dropPostgres(client, { slot: `sluice_${embeddedSource}`, publication: `sluice_${embeddedSource}` });
  await dropPostgres(client, names);
  await client.end();
  await deleteKafkaDeployment(deployment).catch((error: unknown) => console.error("Kafka cleanup failed", error));
  removeDir(dir);
});

describe("sluice commands against a running deployment", { timeout: 480_000 }, () => {
  test("with Kafka: every command leaves the capturing daemon running; nothing is lost", async (t) => {
    daemon = await startReady(dir, config, "run");
    const configFile = daemon.configFile;
    await waitFor("the snapshot rows in DuckDB", async () => (await sinkIds().catch(() => [])).length >= 20, { daemon, timeoutMs: 60_000 });

    const stop = { done: false };
    const writing = insertContinuously(stop);
    try {
      // Each command while rows keep arriving; `expect` checks its exit code and output.
      const run = async (args: string[], expect: (result: { code: number; stdout: string; stderr: string }) => void) => {
        const started = Date.now();
        const result = await runSluice(args, dir);
        const ran = Date.now();
        const shown = `sluice ${args.join(" ")} exited ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`;
        // A fenced producer notices at its next transaction: the daemon produces every few milliseconds.
        await assertDaemonWorksOn(`sluice ${args.join(" ")}`);
        t.diagnostic(`sluice ${args.join(" ")} → exit ${result.code} (${ran - started} ms; capture on ${Date.now() - ran} ms later)`);
        expect(result);
        assert.doesNotMatch(result.stderr, /TimeoutNegativeWarning/, `${shown}\n(kafkajs's negative timeout warning)`);
        return result;
      };
      const ok = (result: { code: number; stdout: string; stderr: string }) => assert.equal(result.code, 0, `exit ${result.code}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);

      await run(["validate", "-c", configFile], ok);
      await run(["version"], ok);
      const status = await run(["status", "-c", configFile], ok);
      // Positions as PostgreSQL writes LSNs (0/1CD6E7F0), not as raw integers.
      assert.match(status.stdout, new RegExp(`${source}\\s+postgres\\s+capturing\\s+[0-9A-F]{1,8}/[0-9A-F]{1,8}\\s`), status.stdout);
      const statusJson = await run(["status", "-c", configFile, "--json"], ok);
      const document = JSON.parse(statusJson.stdout) as { deployment: string; sources: { position: { commit: string; change: string; text: string } }[] };
      assert.equal(document.deployment, deployment);
      const position = document.sources[0]!.position;
      assert.equal(position.text, formatLsn(BigInt(position.commit)), statusJson.stdout);

      const list = await run(["schema", "-c", configFile, "list"], ok);
      assert.match(list.stdout, new RegExp(subject.replaceAll(".", "\\.")), list.stdout);
      const show = await run(["schema", "-c", configFile, "show", subject], ok);
      const schemaFile = join(dir, "items-value.avsc");
      writeFileSync(schemaFile, show.stdout.slice(show.stdout.indexOf("{")));
      const check = await run(["schema", "-c", configFile, "check", subject, schemaFile], ok);
      assert.match(check.stdout, /^compatible/, check.stdout);

      const query = await run(["query", "-c", configFile, "--sink", "local", "--json", `SELECT count(*) AS n FROM main."${schema}_items"`], ok);
      assert.ok(Number((JSON.parse(query.stdout) as { n: unknown }[])[0]!.n) >= 20, query.stdout);

      const dryRun = await run(["replay", "-c", configFile, "--sink", "local", "--from-beginning"], ok);
      assert.match(dryRun.stdout, /Dry run: nothing changed/, dryRun.stdout);
      await run(["replay", "-c", configFile, "--sink", "local", "--from-time", new Date(Date.now() - 60_000).toISOString()], ok);
      await run(["replay", "-c", configFile, "--sink", "local", "--from-beginning", "--execute"], (result) => {
        assert.equal(result.code, 1, `replay --execute while the sink runs must be refused\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
        assert.match(result.stderr, /refused: sink "local" is running/, result.stderr);
      });
      await run(["replay", "-c", configFile, "--sink", "local", "--from-beginning", "--rebuild"], ok);

      const halted = await run(["halted", "-c", configFile, "list"], ok);
      assert.match(halted.stdout, /no halted tables/, halted.stdout);
      await run(["halted", "-c", configFile, "list", "--json"], ok);
      // Nothing is halted: a release dry run says so and changes nothing.
      await run(["halted", "-c", configFile, "retry", "--sink", "local", "--table", `${schema}.items`], (result) => assert.equal(result.code, 1, `${result.stdout}${result.stderr}`));
      await run(["halted", "-c", configFile, "skip", "--sink", "local", "--table", `${schema}.items`], (result) => assert.equal(result.code, 1, `${result.stdout}${result.stderr}`));
    } finally {
      stop.done = true;
      await writing;
    }

    await assertStillCapturing();

    await daemon.stop();
    const output = readFileSync(daemon.logFile, "utf8");
    assert.doesNotMatch(output, /TimeoutNegativeWarning/, "the daemon printed kafkajs's negative timeout warning");
    daemon = null;
  });

  test("with the embedded log: the commands that open it take no lock or lease the daemon needs", async (t) => {
    daemon = await startReady(dir, embeddedConfig, "embedded");
    const configFile = daemon.configFile;
    await waitFor("the rows so far in DuckDB", async () => (await sinkIds().catch(() => [])).length >= 20, { daemon, timeoutMs: 60_000 });
    const stop = { done: false };
    const writing = insertContinuously(stop);
    try {
      const run = async (args: string[], code: number) => {
        const started = Date.now();
        const result = await runSluice(args, dir);
        const ran = Date.now();
        await assertDaemonWorksOn(`sluice ${args.join(" ")}`);
        t.diagnostic(`sluice ${args.join(" ")} → exit ${result.code} (${ran - started} ms; capture on ${Date.now() - ran} ms later)`);
        assert.equal(result.code, code, `sluice ${args.join(" ")}\nstdout: ${result.stdout}\nstderr: ${result.stderr}`);
        return result;
      };
      const embeddedSubject = `${embeddedDeployment}.${embeddedSource}.${schema}.items-value`;
      assert.match((await run(["schema", "-c", configFile, "list"], 0)).stdout, new RegExp(embeddedSubject.replaceAll(".", "\\.")));
      await run(["schema", "-c", configFile, "show", embeddedSubject], 0);
      await run(["replay", "-c", configFile, "--sink", "local", "--from-beginning"], 0);
      const refused = await run(["replay", "-c", configFile, "--sink", "local", "--from-beginning", "--execute"], 1);
      assert.match(refused.stderr, /refused: sink "local" is running/, refused.stderr);
      // A table the deployment does not have is refused, naming those it has (a typo printed "no dead letters of that table").
      const typo = await run(["dead-letters", "-c", configFile, "--sink", "local", "--table", `${schema}.item`], 2);
      assert.equal(typo.stderr, `sluice dead-letters: sink "local" has no table "${schema}.item" (give schema.table or its topic; its tables: ${schema}.items)\n`);
      const status = JSON.parse((await run(["status", "-c", configFile, "--json"], 0)).stdout) as { sinks: { name: string; ready: boolean }[] };
      assert.equal(status.sinks.find((s) => s.name === "local")?.ready, true, "the sink still holds its lease and applies");
    } finally {
      stop.done = true;
      await writing;
    }
    await assertStillCapturing();
    await daemon.stop();
    daemon = null;
  });
});

/** Rows inserted now arrive, and every row of the source table is in the daemon's DuckDB sink. */
async function assertStillCapturing(): Promise<void> {
  for (let i = 0; i < 10; i++) {
    await client.query(`INSERT INTO "${schema}".items (id, note) VALUES ($1, $2)`, [nextId, `after ${nextId}`]);
    nextId++;
  }
  const expected = await sourceIds();
  assert.equal(expected.length, nextId - 1);
  let seen: number[] = [];
  await waitFor("every source row in the DuckDB sink", async () => (seen = await sinkIds()).length === expected.length, {
    daemon: daemon!,
    timeoutMs: 60_000,
    lastSeen: () => ({ inSink: seen.length, inSource: expected.length, missing: expected.filter((id) => !seen.includes(id)).slice(0, 20) }),
  });
  assert.deepEqual(seen, expected);
  assertDaemonUndisturbed("every command");
}
