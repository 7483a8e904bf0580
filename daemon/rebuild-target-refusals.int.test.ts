/**
 * A rebuild whose target refuses one step for a while: one item of an Elasticsearch bulk reply
 * answered 429 (es_rejected_execution_exception) round after round, and the swap's request cut
 * (before it reaches the server, or after the server applied it and before its reply). The
 * rebuild waits each out with the sink's backoff, as it waits out a target that cannot be reached,
 * and ends with every row swapped in once. The real servers, each behind an HTTP proxy of this
 * test (test/e2e/http-fault-proxy.ts): the shared servers are not touched.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import type { SinkChange } from "../connectors/contracts.ts";
import { ClickHouseSink } from "../connectors/clickhouse/clickhouse-sink.ts";
import { ElasticsearchSink } from "../connectors/elasticsearch/elasticsearch-sink.ts";
import { EmbeddedTopicLog } from "../connectors/embedded/embedded-log.ts";
import type { RebuildableSink } from "../connectors/sinks/contract.ts";
import { testLogger, testSinkConfig } from "../connectors/sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../connectors/sinks/test-events.ts";
import { clickhouseQuery, dropClickHouseDatabase, esRequest, deleteElasticIndices } from "../test/e2e/helpers.ts";
import { HttpFaultProxy } from "../test/e2e/http-fault-proxy.ts";
import type { FaultDecision, ProxiedRequest } from "../test/e2e/http-fault-proxy.ts";
import { clickhouse, elasticsearch } from "../test/services/ports.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { rebuildSink } from "./rebuild.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";

const ROWS = 1_000;
const database = randomTableName("rebuild_refusals");
const prefix = randomTableName("rebuild_refusals");

after(async () => {
  await dropClickHouseDatabase(database);
  await deleteElasticIndices(`${prefix}_`);
});

type OpenSink = RebuildableSink & { open(signal: AbortSignal): Promise<void>; close(): Promise<void> };

const elasticSink = (url: string): OpenSink =>
  new ElasticsearchSink(testSinkConfig("elasticsearch", { name: "search", nodes: [url], bulk_bytes: 5 * 2 ** 20, target: `${prefix}_{schema}_{table}` }), { logger: testLogger() });

const clickhouseSink = (url: string): OpenSink =>
  new ClickHouseSink(testSinkConfig("clickhouse", { name: "wh", url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: "{schema}_{table}" }), {
    logger: testLogger(),
  });

async function elasticRows(target: string): Promise<Map<number, string>> {
  await esRequest("POST", `/${prefix}_${target}/_refresh`);
  const found = await esRequest("POST", `/${prefix}_${target}/_search`, { size: 10_000, query: { match_all: {} } });
  const hits = (found.json as { hits: { hits: { _source: { id: number; name: string } }[] } }).hits.hits;
  return new Map(hits.map((h) => [Number(h._source.id), h._source.name]));
}

async function clickhouseRows(target: string): Promise<Map<number, string>> {
  const text = (await clickhouseQuery(`SELECT id, name FROM \`${database}\`.\`${target}\` FORMAT TabSeparated`)).toString("utf8");
  return new Map(text.split("\n").filter(Boolean).map((line) => [Number(line.split("\t")[0]), line.split("\t")[1]!]));
}

/**
 * Fills a topic with ROWS rows (row 1 updated, row 2 deleted), writes one stale row to the live
 * target, rebuilds the sink through `proxy` and checks what users see after: every row of the
 * topic once, none of the stale one.
 */
async function rebuildThrough(open: (url: string) => OpenSink, proxy: HttpFaultProxy, visible: (target: string) => Promise<Map<number, string>>): Promise<RebuildProgress[]> {
  const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-refusals-"));
  const logger = testLogger();
  const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
  const sink = open(proxy.url);
  try {
    const table = randomTableName("items");
    const events = new Events(tableSchema(table, [["id", "integer"], ["name", "text"]]));
    await log.createTopic({ name: events.topic, partitions: 1, retentionMs: null, retentionBytes: null, compacted: false });
    const history: SinkChange[] = [];
    for (let id = 1; id <= ROWS; id++) history.push(events.insert(BigInt(id), { id, name: `row ${id}` }));
    history.push(events.update(BigInt(ROWS + 1), { id: 1, name: "uno" }), events.delete(BigInt(ROWS + 2), { id: 2 }));
    await log.produce(history.map(({ event }) => ({ topic: events.topic, key: Buffer.from(String(event.key["id"])), value: Buffer.from(serializeEvent(event)), timestamp: 0 })));
    const signal = new AbortController().signal;
    await sink.open(signal);
    await sink.write([events.insert(1n, { id: ROWS + 7, name: "stale" })], signal);
    const progress: RebuildProgress[] = [];
    const report = await rebuildSink({
      sink,
      log,
      decoder: { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) },
      topics: [events.topic],
      group: "rebuild-refusals.rebuild",
      logger,
      signal,
      batchRecords: 300,
      retry: { initialMs: 100, maxMs: 400 },
      onProgress: (p) => progress.push(p),
    });
    assert.deepEqual(report.tables, [`public.${table}`]);
    assert.equal(report.records, ROWS + 2);
    assert.equal(progress.at(-1)!.state, "done");
    const rows = await visible(`public_${table}`);
    assert.equal(rows.size, ROWS - 1, "every row of the topic once, none of the stale one");
    assert.equal(rows.get(1), "uno");
    assert.equal(rows.has(2), false);
    for (let id = 3; id <= ROWS; id++) assert.equal(rows.get(id), `row ${id}`);
    return progress;
  } finally {
    await sink.close().catch(() => undefined);
    await log.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const FORWARD: FaultDecision = { kind: "forward" };
const REJECTED_ITEM = { index: { status: 429, error: { type: "es_rejected_execution_exception", reason: "rejected execution of coordinating operation [test]" } } };

/**
 * The rebuild's bulk requests with the operation of `name` taken out and answered 429 in its
 * place, `times` times (more than the sink's own rounds of item retries in one write).
 */
function refuseItem(name: string, times: number): { decide: (request: ProxiedRequest) => FaultDecision; refused: () => number; operations: () => number[] } {
  let refused = 0;
  /** The number of operations of each rebuild bulk request that holds the item. */
  const operations: number[] = [];
  const decide = (request: ProxiedRequest): FaultDecision => {
    if (request.method !== "POST" || !/__rebuild\/_bulk/.test(request.url)) return FORWARD;
    const lines = request.body.toString("utf8").split("\n").filter((line) => line !== "");
    if (lines.some((line, i) => i % 2 === 1 && (JSON.parse(line) as { name?: unknown }).name === name)) operations.push(lines.length / 2);
    if (refused >= times) return FORWARD;
    const kept: string[] = [];
    let at = -1;
    for (let i = 0; i + 1 < lines.length; i += 2) {
      if (at < 0 && (JSON.parse(lines[i + 1]!) as { name?: unknown }).name === name) at = i / 2;
      else kept.push(lines[i]!, lines[i + 1]!);
    }
    if (at < 0) return FORWARD;
    refused++;
    if (kept.length === 0) return { kind: "answer", status: 200, headers: { "x-elastic-product": "Elasticsearch" }, body: Buffer.from(JSON.stringify({ errors: true, items: [REJECTED_ITEM] })) };
    return {
      kind: "rewrite",
      body: Buffer.from(`${kept.join("\n")}\n`),
      reply: (status, body) => {
        if (status !== 200) return body;
        const reply = JSON.parse(body.toString("utf8")) as { errors: boolean; items: unknown[] };
        reply.errors = true;
        reply.items.splice(at, 0, REJECTED_ITEM);
        return Buffer.from(JSON.stringify(reply));
      },
    };
  };
  return { decide, refused: () => refused, operations: () => [...operations] };
}

test("elasticsearch: one bulk item answered 429 beyond the sink's own item retries is written again, alone, until taken; the rebuild ends with it once", { timeout: 90_000 }, async () => {
  const refusal = refuseItem("row 700", 7);
  const proxy = await HttpFaultProxy.start(elasticsearch.url, refusal.decide);
  try {
    const progress = await rebuildThrough(elasticSink, proxy, elasticRows);
    assert.equal(refusal.refused(), 7, "the item was refused round after round");
    const [first, ...again] = refusal.operations();
    assert.ok(first! > 1, `the item came first in a batch of several: ${first}`);
    assert.deepEqual(again, again.map(() => 1), "the item was written again alone, the rest of its batch not twice");
    assert.equal(again.length, 7);
    const waiting = progress.find((p) => p.waiting);
    assert.ok(waiting, "the progress says the rebuild waits for its target");
    assert.match(waiting.waiting!, /refused 1 item as temporary .*429 es_rejected_execution_exception/);
  } finally {
    await proxy.close();
  }
});

/** The request's SQL or JSON as text: ClickHouse takes a statement in the body or in the URL's query. */
const textOf = (request: ProxiedRequest) => `${decodeURIComponent(request.url)}\n${request.body.toString("utf8")}`;

interface SwapFault {
  readonly what: string;
  /** The swap's request the proxy cuts, and how often: more often than the sink tries one request by itself. */
  readonly match: (request: ProxiedRequest) => boolean;
  readonly times: number;
  /** Before the request reaches the server (not made), or after the server applied it (its reply lost). */
  readonly cut: "cut-before" | "cut-after";
  /** The sink finds the swap done by itself, with no try again by the rebuild (its connection resent the request). */
  readonly doneBySink?: boolean;
}

interface SwapCase {
  readonly kind: "clickhouse" | "elasticsearch";
  readonly server: string;
  readonly open: (url: string) => OpenSink;
  readonly visible: (target: string) => Promise<Map<number, string>>;
  readonly faults: readonly SwapFault[];
  /** The tables or indexes of the sink's targets. */
  readonly generations: () => Promise<string[]>;
}

const aliasMove = (r: ProxiedRequest) => r.method === "POST" && r.url.startsWith("/_aliases") && r.body.includes("__rebuild");

const swapCases: SwapCase[] = [
  {
    kind: "elasticsearch",
    server: elasticsearch.url,
    open: elasticSink,
    visible: elasticRows,
    faults: [
      { what: "its alias move not reaching the server", match: aliasMove, times: 3, cut: "cut-before" },
      { what: "its alias move applied, the reply lost", match: aliasMove, times: 1, cut: "cut-after" },
      // After the alias move: the old generation's delete applied, its reply lost.
      { what: "the old index's delete applied, the reply lost", match: (r) => r.method === "DELETE" && /__v1(\?|$)/.test(r.url), times: 1, cut: "cut-after" },
    ],
    generations: async () => Object.keys((await esRequest("GET", `/${prefix}_public_*__v*?expand_wildcards=all`)).json as object),
  },
  {
    kind: "clickhouse",
    server: clickhouse.url,
    open: clickhouseSink,
    visible: clickhouseRows,
    faults: [
      // The view switch (the live view replaced, not the first one made); the connection tries a statement 4 times.
      { what: "its view switch not reaching the server", match: (r) => /^RENAME TABLE .*__view_old_/m.test(textOf(r)), times: 5, cut: "cut-before" },
      // Applied, its reply lost: the connection's own resend fails 57 (`old` exists) and the sink finds the view reading the new table.
      { what: "its view switch applied, the reply lost", match: (r) => /^RENAME TABLE .*__view_old_/m.test(textOf(r)), times: 1, cut: "cut-after", doneBySink: true },
      // The new generation's `next` view made, its reply lost: the connection's own resend fails 57 (`next` exists), which is this process's own view.
      { what: "its next view made, the reply lost", match: (r) => /^CREATE VIEW .*__view_next_/m.test(textOf(r)) && textOf(r).includes("__v2`"), times: 1, cut: "cut-after", doneBySink: true },
      // After the view switch and the catalog save: the old table's drop applied, its reply lost.
      { what: "the old table's drop applied, the reply lost", match: (r) => /DROP TABLE IF EXISTS \S+__v1`/.test(textOf(r)), times: 5, cut: "cut-after" },
    ],
    generations: async () =>
      (await clickhouseQuery(`SELECT name FROM system.tables WHERE database = '${database}' AND match(name, '__v[0-9]+$') FORMAT TabSeparated`)).toString("utf8").split("\n").filter(Boolean),
  },
];

for (const c of swapCases) {
  for (const fault of c.faults) {
    test(`${c.kind}: a swap cut (${fault.what}) is tried again with the rebuild's backoff, found done or done once, never failed`, { timeout: 90_000 }, async () => {
      let cut = 0;
      const proxy = await HttpFaultProxy.start(c.server, (request) => {
        if (!fault.match(request) || cut >= fault.times) return FORWARD;
        cut++;
        return { kind: fault.cut };
      });
      try {
        const before = new Set(await c.generations());
        const progress = await rebuildThrough(c.open, proxy, c.visible);
        assert.equal(cut, fault.times, "the swap's request was cut");
        if (fault.doneBySink !== true) assert.match(progress.find((p) => p.waiting)?.waiting ?? "", /trying the swap again/, "the progress says the rebuild waits for its target");
        const made = (await c.generations()).filter((name) => !before.has(name));
        assert.equal(made.length, 1, `one generation of the table left: ${made.join(", ")}`);
      } finally {
        await proxy.close();
      }
    });
  }
}

test("clickhouse: a table's first view made on the live path, the reply lost: the connection's resend (error 57, its own scratch view) is taken as made and the write goes through", { timeout: 60_000 }, async () => {
  let cut = 0;
  const proxy = await HttpFaultProxy.start(clickhouse.url, (request) => {
    if (cut >= 1 || !/^CREATE VIEW .*__view_next_/m.test(textOf(request))) return FORWARD;
    cut++;
    return { kind: "cut-after" };
  });
  const sink = clickhouseSink(proxy.url);
  const signal = new AbortController().signal;
  try {
    const table = randomTableName("first_view");
    const events = new Events(tableSchema(table, [["id", "integer"], ["name", "text"]]));
    await sink.open(signal);
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, name: "one" })], signal)).failures, []);
    assert.equal(cut, 1, "the first view's CREATE was cut after the server made it");
    assert.deepEqual([...(await clickhouseRows(`public_${table}`))], [[1, "one"]]);
  } finally {
    await sink.close();
    await proxy.close();
  }
});
