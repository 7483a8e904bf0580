/**
 * `sluice replay --abandon-rebuild` with no daemon running: it opens the DuckDB sink itself under
 * the sink's lease, lists what a rebuild stopped before its swap left (a dry run changes nothing),
 * and with --execute drops it, the live table untouched. The daemon path is in
 * test/e2e/rebuild-interrupted.int.test.ts.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import type { DuckDbSink } from "../connectors/duckdb/duckdb-sink.ts";
import { Events, tableSchema } from "../connectors/sinks/test-events.ts";
import { createLogger } from "../runtime/logger.ts";
import { clickhouse } from "../test/services/ports.ts";
import { randomBytes } from "node:crypto";
import { createSink } from "./components.ts";
import { runAbandonRebuildCommand } from "./rebuild-command.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-abandon-"));
after(() => rmSync(dir, { recursive: true, force: true }));
const logger = createLogger("silent");

const configIn = (at: string) =>
  loadConfigText(
    join(at, "c.yaml"),
    `name: dep
http: { listen: "127.0.0.1:1" }
sources:
  - { name: pg, kind: postgres, database: app, user: u, tables: [app.*] }
topics: { kind: embedded, path: ${join(at, "data", "log.db")} }
sinks:
  - { kind: duckdb, name: local, path: ${join(at, "data", "w.duckdb")} }
`,
    { env: {} },
  );
const config = configIn(dir);
const digest = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

const output = () => {
  const io = { out: "", err: "", stdout: (t: string) => void (io.out += t), stderr: (t: string) => void (io.err += t) };
  return io;
};

async function withSink<T>(use: (sink: DuckDbSink) => Promise<T>): Promise<T> {
  const sink = (await createSink(config.sinks[0]!, logger)) as DuckDbSink;
  await sink.open(AbortSignal.timeout(30_000));
  try {
    return await use(sink);
  } finally {
    await sink.close();
  }
}

test("abandoning an interrupted rebuild without a daemon: a dry run lists its half-built table and changes nothing, --execute drops it and keeps the live table", { timeout: 60_000 }, async () => {
  const orders = new Events(tableSchema("orders", [["id", "integer"], ["note", "text"]], ["id"], { source: "pg", database: "app", schema: "app" }));
  const signal = () => AbortSignal.timeout(30_000);
  await withSink(async (sink) => {
    await sink.write([orders.insert(1n, { id: 1, note: "a" }), orders.insert(2n, { id: 2, note: "b" })], signal());
    // What a rebuild killed after its prepare leaves: the shadow is durable, nothing swaps it in.
    await sink.prepareRebuild(orders.schema, signal());
    await sink.writeRebuild([orders.insert(1n, { id: 1, note: "a" })], signal());
  });

  const before = digest(join(dir, "data", "w.duckdb"));
  const dry = output();
  assert.equal(await runAbandonRebuildCommand(config, "local", [], false, dry, logger), 0, dry.err);
  assert.match(dry.out, /Abandoning the interrupted rebuild of sink "local" drops the half-built app\.orders \(app_orders__v2\); the live tables are left as they are\.\nDry run: nothing changed/);
  assert.equal(digest(join(dir, "data", "w.duckdb")), before, "the dry run left the DuckDB file as it was");
  assert.equal(existsSync(join(dir, "data", "log.db")), false, "the dry run made no topic log");
  assert.equal((await withSink((sink) => sink.rebuildShadows(signal()))).length, 1, "the dry run dropped nothing");

  const unknown = output();
  assert.equal(await runAbandonRebuildCommand(config, "local", ["app.customers"], true, unknown, logger), 1);
  assert.match(unknown.out, /No interrupted rebuild of app\.customers in sink "local"/);
  assert.equal((await withSink((sink) => sink.rebuildShadows(signal()))).length, 1, "a table without one drops nothing");

  const run = output();
  assert.equal(await runAbandonRebuildCommand(config, "local", ["app.orders"], true, run, logger), 0, run.err);
  assert.match(run.out, /Done: dropped the half-built app\.orders \(app_orders__v2\) of sink "local"; the live tables serve unchanged\./);
  await withSink(async (sink) => {
    assert.deepEqual(await sink.rebuildShadows(signal()), []);
    const rows = await sink.rebuildRowCounts(orders.schema, signal());
    assert.equal(rows.live, 2, "the live table keeps its rows");
    await assert.rejects(() => sink.swap(orders.schema, signal()), /no rebuild in progress/);
  });
  const again = output();
  assert.equal(await runAbandonRebuildCommand(config, "local", [], true, again, logger), 0);
  assert.match(again.out, /Sink "local" has no interrupted rebuild: nothing to abandon\./);
});

test("abandoning where nothing was ever captured makes neither the topic log nor the DuckDB file, dry run or --execute", { timeout: 30_000 }, async () => {
  const fresh = join(dir, "fresh");
  mkdirSync(join(fresh, "data"), { recursive: true });
  const freshConfig = configIn(fresh);
  for (const execute of [false, true]) {
    const io = output();
    assert.equal(await runAbandonRebuildCommand(freshConfig, "local", [], execute, io, logger), 0, io.err);
    assert.match(io.out, /Sink "local" has no interrupted rebuild: nothing to abandon\./);
    assert.deepEqual(readdirSync(join(fresh, "data")), [], `${execute ? "--execute" : "the dry run"} made files`);
  }
});

test("a dry run for a ClickHouse sink where nothing was captured makes no embedded topic log", { timeout: 30_000 }, async () => {
  const at = join(dir, "clickhouse");
  mkdirSync(join(at, "data"), { recursive: true });
  const database = `abandon_${randomBytes(4).toString("hex")}`;
  const chConfig = loadConfigText(
    join(at, "c.yaml"),
    `name: dep
http: { listen: "127.0.0.1:1" }
sources:
  - { name: pg, kind: postgres, database: app, user: u, tables: [app.*] }
topics: { kind: embedded, path: ${join(at, "data", "log.db")} }
sinks:
  - { kind: clickhouse, name: ch, url: "${clickhouse.url}", database: ${database}, user: ${clickhouse.username}, password: ${clickhouse.password} }
`,
    { env: {} },
  );
  try {
    const io = output();
    assert.equal(await runAbandonRebuildCommand(chConfig, "ch", [], false, io, logger), 0, io.err);
    assert.match(io.out, /Sink "ch" has no interrupted rebuild: nothing to abandon\./);
    // Before: the topic log was made (opened for writing, the sink's lease taken and given back).
    assert.deepEqual(readdirSync(join(at, "data")), [], "the dry run made files");
  } finally {
    const dropped = await fetch(`${clickhouse.url}/`, {
      method: "POST",
      headers: { "X-ClickHouse-User": clickhouse.username, "X-ClickHouse-Key": clickhouse.password },
      body: `DROP DATABASE IF EXISTS \`${database}\``,
      signal: AbortSignal.timeout(30_000),
    });
    assert.ok(dropped.ok, await dropped.text());
  }
});
