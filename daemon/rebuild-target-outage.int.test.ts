/**
 * A rebuild whose target becomes unreachable while it reads (the server restarted, a network cut):
 * the rebuild waits it out with the sink's backoff, shows what it waits for in its progress, and
 * swaps in the whole table once the target is back. The real ClickHouse and Elasticsearch servers,
 * each reached through a TCP proxy of this test that is shut for the outage (the shared servers are
 * not touched). Before, the first failed write ended the rebuild, and its new generation, which
 * could not be dropped on the unreachable target, was left and reported as an interrupted rebuild.
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
import { clickhouseQuery, dropClickHouseDatabase, esRequest, deleteElasticIndices, sleep, TcpProxy } from "../test/e2e/helpers.ts";
import { clickhouse, elasticsearch } from "../test/services/ports.ts";
import { deserializeEvent, serializeEvent } from "./event-json.ts";
import { rebuildSink } from "./rebuild.ts";
import type { RebuildProgress } from "./rebuild-progress.ts";

const ROWS = 1_500;
const database = randomTableName("rb_outage");
const prefix = randomTableName("rbout");

after(async () => {
  await dropClickHouseDatabase(database);
  await deleteElasticIndices(`${prefix}_`);
});

interface Case {
  readonly kind: "clickhouse" | "elasticsearch";
  readonly target: { host: string; port: number };
  readonly sink: (url: string) => RebuildableSink & { open(signal: AbortSignal): Promise<void>; close(): Promise<void> };
  /** id → name of the rows users see in the target's view or alias. */
  readonly visible: (target: string) => Promise<Map<number, string>>;
}

const cases: Case[] = [
  {
    kind: "clickhouse",
    target: { host: "127.0.0.1", port: Number(new URL(clickhouse.url).port) },
    sink: (url) =>
      new ClickHouseSink(testSinkConfig("clickhouse", { name: "wh", url, user: clickhouse.username, password: clickhouse.password, database, native_deletes: false, target: "{schema}_{table}" }), {
        logger: testLogger(),
      }),
    visible: async (target) => {
      const text = (await clickhouseQuery(`SELECT id, name FROM \`${database}\`.\`${target}\` FORMAT TabSeparated`)).toString("utf8");
      return new Map(text.split("\n").filter(Boolean).map((line) => [Number(line.split("\t")[0]), line.split("\t")[1]!]));
    },
  },
  {
    kind: "elasticsearch",
    target: { host: elasticsearch.host, port: elasticsearch.port },
    sink: (url) => new ElasticsearchSink(testSinkConfig("elasticsearch", { name: "search", nodes: [url], bulk_bytes: 5 * 2 ** 20, target: `${prefix}_{schema}_{table}` }), { logger: testLogger() }),
    visible: async (target) => {
      await esRequest("POST", `/${prefix}_${target}/_refresh`);
      const found = await esRequest("POST", `/${prefix}_${target}/_search`, { size: 10_000, query: { match_all: {} } });
      const hits = (found.json as { hits: { hits: { _source: { id: number; name: string } }[] } }).hits.hits;
      return new Map(hits.map((h) => [Number(h._source.id), h._source.name]));
    },
  },
];

for (const c of cases) {
  test(`${c.kind}: a rebuild whose target is unreachable for a while waits it out and swaps in every row`, { timeout: 60_000 }, async () => {
    const dir = mkdtempSync(join(tmpdir(), "sluice-rebuild-outage-"));
    const logger = testLogger();
    const log = EmbeddedTopicLog.open({ path: join(dir, "log.db"), logger });
    const proxy = await TcpProxy.start(c.target);
    const sink = c.sink(proxy.url);
    let outage: Promise<void> | null = null;
    let ended = false;
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
      // The live target holds one stale row: what users see until the swap.
      await sink.write([events.insert(1n, { id: 7, name: "stale" })], signal);

      // Shut just before the rebuild's second batch is written (its first went through), and opened
      // again once that write was refused and the rebuild says it waits.
      const progress: RebuildProgress[] = [];
      const writeRebuild = sink.writeRebuild.bind(sink);
      let writes = 0;
      sink.writeRebuild = async (changes, writeSignal) => {
        if (++writes === 2) {
          await proxy.down();
          outage = (async () => {
            const waited = Date.now();
            while (!ended && !progress.some((seen) => seen.waiting) && Date.now() - waited < 20_000) await sleep(50);
            if (!ended) await sleep(1_000);
            await proxy.up();
          })();
        }
        return writeRebuild(changes, writeSignal);
      };
      const report = await rebuildSink({
        sink,
        log,
        decoder: { decode: async (r) => (r.value ? deserializeEvent(Buffer.from(r.value).toString()) : null) },
        topics: [events.topic],
        group: "wh.rebuild",
        logger,
        signal,
        batchRecords: 300,
        retry: { initialMs: 100, maxMs: 400 },
        onProgress: (p) => progress.push(p),
      });
      await outage;
      assert.ok(outage !== null && writes > 2, "the target was shut while the rebuild wrote, and the write tried again");
      assert.deepEqual(report.tables, [`public.${table}`]);
      assert.equal(report.records, ROWS + 2);
      const waiting = progress.find((p) => p.waiting);
      assert.ok(waiting, "the progress says the rebuild waits for its target");
      assert.match(waiting.waiting!, /its target failed \(.*\); trying the write again in \d+ s/);
      assert.equal(progress.at(-1)!.state, "done");
      assert.equal(progress.at(-1)!.waiting ?? null, null, "no longer waiting once done");

      const rows = await c.visible(`public_${table}`);
      assert.equal(rows.size, ROWS - 1, "every row of the topic, none of the stale one");
      assert.equal(rows.get(1), "uno");
      assert.equal(rows.has(2), false);
      assert.equal(rows.get(ROWS), `row ${ROWS}`);
    } finally {
      ended = true;
      await outage;
      await sink.close().catch(() => undefined);
      await proxy.down();
      await log.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
