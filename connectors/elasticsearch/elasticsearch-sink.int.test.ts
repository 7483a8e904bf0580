/**
 * The Elasticsearch sink against the real server from test/services/: the shared conformance
 * suite, then Elasticsearch specifics (deleted documents stay deleted after index.gc_deletes,
 * truncates, exact values in _source, item-level rejections, bulk requests split by bytes).
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, before, describe, test } from "node:test";
import { Client } from "@elastic/elasticsearch";
import { HttpFaultProxy } from "../../test/e2e/http-fault-proxy.ts";
import type { FaultDecision, ProxiedRequest } from "../../test/e2e/http-fault-proxy.ts";
import { elasticsearch } from "../../test/services/ports.ts";
import type { ChangeEvent, TableSchema } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import { sinkConformanceSuite, TARGET_TEMPLATE } from "../sinks/conformance.ts";
import type { VisibleRow } from "../sinks/conformance.ts";
import { liftsByItself } from "../sinks/errors.ts";
import { renderTarget } from "../sinks/naming.ts";
import { testLogger, testSinkConfig } from "../sinks/test-config.ts";
import { Events, randomTableName, tableSchema } from "../sinks/test-events.ts";
import { OFFSETS_INDEX } from "./config.ts";
import { ElasticsearchSink } from "./elasticsearch-sink.ts";
import { aliasFilter, rebuildAlias } from "./indices.ts";
import { ExactSerializer } from "./json.ts";

const prefix = `sluice_test_${randomBytes(3).toString("hex")}`;
const template = `${prefix}_${TARGET_TEMPLATE}`;
const admin = new Client({ node: elasticsearch.url, Serializer: ExactSerializer });

const createSink = (name: string, bulkBytes = 5 * 2 ** 20, onError: "halt" | "dead-letter" = "halt") =>
  new ElasticsearchSink(testSinkConfig("elasticsearch", { name, nodes: [elasticsearch.url], bulk_bytes: bulkBytes, target: template, on_error: onError }), {
    logger: testLogger(),
    refresh: true,
  });

const text = (value: unknown): string | null =>
  value === null || value === undefined ? null : typeof value === "object" ? JSON.stringify(value, (_, v: unknown) => (typeof v === "bigint" ? v.toString() : v)) : String(value);

async function search(alias: string, query: Record<string, unknown> = { match_all: {} }): Promise<Record<string, unknown>[]> {
  await admin.indices.refresh({ index: alias, ignore_unavailable: true });
  const response = await admin.search<Record<string, unknown>>({ index: alias, size: 10_000, query });
  return response.hits.hits.map((hit) => hit._source ?? {});
}

async function visibleRows(target: string, _schema: TableSchema): Promise<VisibleRow[]> {
  return (await search(target))
    .map((source) => Object.fromEntries(Object.entries(source).filter(([k]) => !k.startsWith("_sluice_")).map(([k, v]) => [k, text(v)])))
    .sort((a, b) => Number(a["id"]) - Number(b["id"]));
}

const targetOf = (schema: TableSchema) => renderTarget(template, schema).toLowerCase();

after(async () => {
  await admin.indices.delete({ index: `${prefix}_*`, ignore_unavailable: true, expand_wildcards: "all" });
  // offsets documents of this run's sinks (no delete-by-query in the test distribution)
  await admin.indices.refresh({ index: OFFSETS_INDEX });
  const stale = await admin.search({ index: OFFSETS_INDEX, size: 10_000, query: { bool: { should: [{ prefix: { sink: "conf_" } }, { prefix: { sink: "es_" } }] } } });
  if (stale.hits.hits.length > 0) await admin.bulk({ operations: stale.hits.hits.map((hit) => ({ delete: { _index: OFFSETS_INDEX, _id: hit._id } })) });
  await admin.close();
});

sinkConformanceSuite({
  kind: "elasticsearch",
  createSink: (name, onError) => createSink(name, undefined, onError),
  haltsAtFirstFailure: false,
  // the suite names targets by TARGET_TEMPLATE; here every index also carries this run's prefix
  visibleRows: (target, schema) => visibleRows(`${prefix}_${target}`.toLowerCase(), schema),
  cleanup: async () => undefined,
});

describe("Elasticsearch sink specifics", () => {
  const signal = () => AbortSignal.timeout(60_000);
  let sink: ElasticsearchSink;
  before(async () => {
    sink = createSink(`es_${randomTableName("s")}`);
    await sink.open(signal());
  });
  after(() => sink.close());

  test("a table whose target is no index name (quotes, spaces) or the same lower-cased as another's is refused naming it; the others keep flowing", async () => {
    const base = randomTableName();
    const quoted = new Events(tableSchema(`${base}_q"u\`o'te;--x`, [["id", "integer"], ["v", "text"]]));
    const upper = new Events(tableSchema(`${base}_Up`, [["id", "integer"], ["v", "text"]]));
    const lower = new Events(tableSchema(`${base}_up`, [["id", "integer"], ["v", "text"]]));
    const refused = (events: Events, pattern: RegExp) => (error: unknown) => {
      assert.ok(error instanceof SluiceError && error.code === "SINK_SCHEMA_UNSUPPORTED", String(error));
      assert.equal(error.context["table"], `src.public.${events.schema.table}`);
      assert.match(error.message, pattern);
      return true;
    };
    await assert.rejects(() => sink.write([quoted.insert(1n, { id: 1, v: "q" })], signal()), refused(quoted, /cannot hold "\\""/));
    await sink.write([upper.insert(2n, { id: 2, v: "up" })], signal());
    await assert.rejects(() => sink.write([lower.insert(3n, { id: 3, v: "down" })], signal()), refused(lower, /is the target of table src\.public\.t_[0-9a-f]+_Up;/));
    assert.deepEqual(await visibleRows(targetOf(upper.schema), upper.schema), [{ id: "2", v: "up" }]);
  });

  test("after a restart (claims start empty), a table whose alias or index name is another table's index or alias is refused naming it", async () => {
    const base = randomTableName();
    const plain = new Events(tableSchema(base, [["id", "integer"], ["v", "text"]]));
    const generationLike = new Events(tableSchema(`${base}__v1`, [["id", "integer"], ["v", "text"]]));
    const other = randomTableName();
    const otherGeneration = new Events(tableSchema(`${other}__v1`, [["id", "integer"], ["v", "text"]]));
    const otherPlain = new Events(tableSchema(other, [["id", "integer"], ["v", "text"]]));
    const refused = (events: Events) => (error: unknown) => {
      assert.ok(error instanceof SluiceError && error.code === "SINK_SCHEMA_UNSUPPORTED", String(error));
      assert.equal(error.context["table"], `src.public.${events.schema.table}`);
      assert.match(error.message, /Elasticsearch has an index or alias of that name which is not this table's/);
      return true;
    };
    const name = `es_${randomTableName("r")}`;
    const before = createSink(name);
    await before.open(signal());
    try {
      await before.write([plain.insert(1n, { id: 1, v: "plain" }), otherGeneration.insert(2n, { id: 2, v: "generation-like" })], signal());
    } finally {
      await before.close();
    }
    const after = createSink(name);
    await after.open(signal());
    try {
      // Its alias would be the index of the first table's generation 1.
      await assert.rejects(() => after.write([generationLike.insert(3n, { id: 3, v: "x" })], signal()), refused(generationLike));
      // Its generation 1 index would be the other table's alias.
      await assert.rejects(() => after.write([otherPlain.insert(4n, { id: 4, v: "y" })], signal()), refused(otherPlain));
      assert.deepEqual(await visibleRows(targetOf(plain.schema), plain.schema), [{ id: "1", v: "plain" }]);
      assert.deepEqual(await visibleRows(targetOf(otherGeneration.schema), otherGeneration.schema), [{ id: "2", v: "generation-like" }]);
    } finally {
      await after.close();
    }
  });

  test("a target is its first table's after a restart too (recorded in its index's _meta): another table rendered to it, writing first then, is refused", async () => {
    const base = randomTableName();
    const first = new Events(tableSchema(`${base}_x`, [["id", "integer"], ["v", "text"]]));
    const second = new Events(tableSchema("x", [["id", "integer"], ["v", "text"]], ["id"], { schema: `public_${base}` }));
    assert.equal(targetOf(first.schema), targetOf(second.schema));
    const name = `es_${randomTableName("o")}`;
    const before = createSink(name);
    await before.open(signal());
    try {
      await before.write([first.insert(1n, { id: 1, v: "first" })], signal());
    } finally {
      await before.close();
    }
    const after = createSink(name);
    await after.open(signal());
    try {
      await assert.rejects(
        () => after.write([second.insert(2n, { id: 1, v: "second" })], signal()),
        (error: unknown) => error instanceof SluiceError && error.code === "SINK_SCHEMA_UNSUPPORTED" && error.message.includes(`is the target of table src.public.${base}_x`),
      );
      await after.write([first.insert(3n, { id: 2, v: "first again" })], signal());
      assert.deepEqual(await visibleRows(targetOf(first.schema), first.schema), [{ id: "1", v: "first" }, { id: "2", v: "first again" }]);
    } finally {
      await after.close();
    }
  });

  test("a deleted document does not come back after index.gc_deletes has forgotten the delete", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    await sink.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" })], signal());
    await sink.write([events.delete(3n, { id: 1 })], signal());
    // make Elasticsearch forget deletes at once, then let the forgetting happen
    await admin.indices.putSettings({ index: `${target}__v1`, settings: { index: { gc_deletes: "0s" } } });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await admin.indices.refresh({ index: `${target}__v1` });
    const replay = await sink.write([events.insert(1n, { id: 1, v: "a" })], signal());
    assert.deepEqual(replay.failures, []);
    assert.deepEqual(await visibleRows(target, events.schema), [{ id: "2", v: "b" }]);
    // the tombstone is what keeps the version: it is still there, hidden by the alias filter
    const tombstone = await admin.get<Record<string, unknown>>({ index: `${target}__v1`, id: "1" });
    assert.equal(tombstone._version, 3);
    assert.equal(tombstone._source?.["_sluice_deleted"], true);

    // Control: with a real delete, the same replay would resurrect the row once gc_deletes passed.
    const scratch = `${prefix}_scratch_${randomBytes(3).toString("hex")}`;
    await admin.indices.create({ index: scratch, settings: { index: { gc_deletes: "0s" } } });
    await admin.index({ index: scratch, id: "1", version: 1, version_type: "external", document: { v: "a" } });
    await admin.delete({ index: scratch, id: "1", version: 3, version_type: "external" });
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await admin.indices.refresh({ index: scratch });
    await admin.index({ index: scratch, id: "1", version: 1, version_type: "external", document: { v: "a" }, refresh: true });
    assert.equal((await search(scratch)).length, 1, "a real delete is forgotten: this is why the sink keeps tombstones");
  });

  test("a truncate hides older documents through the alias filter and deletes them; replays after gc_deletes stay hidden", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const physical = `${target}__v1`;
    await sink.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "b" })], signal());
    await admin.indices.putSettings({ index: physical, settings: { index: { gc_deletes: "0s" } } });
    await sink.write([events.truncate(10n), events.insert(11n, { id: 3, v: "c" })], signal());
    assert.deepEqual(await visibleRows(target, events.schema), [{ id: "3", v: "c" }]);
    // the older documents are gone from the index itself
    assert.deepEqual((await search(physical)).map((s) => s["id"]), [3]);
    const aliases = await admin.indices.getAlias({ index: physical, name: target });
    assert.match(JSON.stringify(aliases), /"gt":"10"/);
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    await sink.write([events.insert(2n, { id: 2, v: "b" })], signal());
    // the replayed row is back in the index (the delete was forgotten) but the alias hides it
    assert.deepEqual(await visibleRows(target, events.schema), [{ id: "3", v: "c" }]);
  });

  test("a snapshot's reset after its rows (one batch) leaves those rows searchable through the alias at once, without waiting for a refresh", async (t) => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    // A sink as the daemon runs it: bulk requests do not refresh.
    const daemonLike = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `es_${randomTableName("r")}`, nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: template }), { logger: testLogger() });
    await daemonLike.open(signal());
    t.after(() => daemonLike.close());
    await daemonLike.write([events.insert(1n, { id: 1, v: "old" }), events.insert(2n, { id: 2, v: "ghost" })], signal());
    await admin.indices.putSettings({ index: `${target}__v1`, settings: { index: { refresh_interval: "-1" } } });
    await admin.indices.refresh({ index: `${target}__v1` });
    // The restarted snapshot read id 1 again (id 2 is gone from the source); its reset follows, one version below.
    await daemonLike.write([events.insert(11n, { id: 1, v: "new" }), events.truncate(10n)], signal());
    const unrefreshed = await admin.search<Record<string, unknown>>({ index: target, size: 100, query: { match_all: {} } });
    assert.deepEqual(unrefreshed.hits.hits.map((hit) => [hit._source?.["id"], hit._source?.["v"]]), [[1, "new"]]);
  });

  test("_source keeps exact values: decimals, 64-bit integers, timestamps with microseconds, dates, JSON; mappings are explicit and strict", async () => {
    const schema = tableSchema(randomTableName(), [
      ["id", "bigint"],
      ["price", "numeric(12,2)"],
      ["n", "numeric"],
      ["at", "timestamp with time zone"],
      ["local", "timestamp without time zone"],
      ["day", "date"],
      ["doc", "jsonb"],
      ["list", "jsonb"],
      ["raw", "bytea"],
      ["tags", "text[]"],
      ["name", "character varying(40)"],
    ]);
    const events = new Events(schema);
    const target = targetOf(schema);
    await sink.write(
      [
        events.insert(1n, {
          id: 9_007_199_254_740_993n,
          price: "12.5",
          n: "123456789012345678901234567890.123456789",
          at: 1_700_000_000_123_456n,
          local: -1n,
          day: -1,
          doc: '{"a": {"b": 9007199254740993}, "c": [1, "x"]}',
          list: "[1, 2, 3]",
          raw: new Uint8Array([0, 255]),
          tags: ["x", null],
          name: "Zoë",
        }),
      ],
      signal(),
    );
    const [source] = await search(target);
    assert.deepEqual(source, {
      id: 9_007_199_254_740_993n,
      price: "12.50",
      n: "123456789012345678901234567890.123456789",
      at: "2023-11-14T22:13:20.123456Z",
      local: "1969-12-31T23:59:59.999999",
      day: "1969-12-31",
      doc: { a: { b: 9_007_199_254_740_993n }, c: [1, "x"] },
      list: { _value: [1, 2, 3] },
      raw: "AP8=",
      tags: ["x", null],
      name: "Zoë",
      _sluice_version: 1,
      _sluice_deleted: false,
    });
    // range queries work on the numeric and date views of the exact values
    assert.equal((await search(target, { range: { price: { gte: 12.4, lte: 12.6 } } })).length, 1);
    assert.equal((await search(target, { term: { "price.exact": "12.50" } })).length, 1);
    assert.equal((await search(target, { range: { at: { gte: "2023-11-14T22:13:20.123Z" } } })).length, 1);
    assert.equal((await search(target, { term: { "doc.a.b": "9007199254740993" } })).length, 1);
    const mapping = await admin.indices.getMapping({ index: `${target}__v1` });
    const mappings = Object.values(mapping)[0]!.mappings;
    assert.equal(mappings.dynamic, "strict");
    assert.deepEqual(mappings.properties?.["name"], { type: "text", fields: { keyword: { type: "keyword", ignore_above: 256 } } });
    assert.equal(mappings.properties?.["doc"]?.type, "flattened");
  });

  test("an item Elasticsearch rejects is a per-item failure; the rest of the bulk applies; unchanged-TOAST reads the stored document", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["doc", "json"], ["note", "text"]]));
    const target = targetOf(events.schema);
    // deeper than the flattened field's depth_limit (50): Elasticsearch rejects the document
    const deep = `${'{"a":'.repeat(60)}1${"}".repeat(60)}`;
    const result = await sink.write(
      [
        events.insert(1n, { id: 1, doc: '{"ok": true}', note: "kept" }),
        events.insert(2n, { id: 2, doc: deep, note: null }),
        events.insert(3n, { id: 3, doc: null, note: null }),
      ],
      signal(),
    );
    assert.deepEqual(result.failures.map((f) => [f.index, f.retriable]), [[1, false]]);
    assert.match(result.failures[0]!.error.message, /400/);
    await sink.write([events.update(4n, { id: 1, doc: '{"ok": false}', note: UNCHANGED })], signal());
    assert.deepEqual(await visibleRows(target, events.schema), [
      { id: "1", doc: '{"ok":false}', note: "kept" },
      { id: "3", doc: null, note: null },
    ]);
  });

  test("a key Elasticsearch cannot take as a document id (empty, over 512 bytes) is a per-item failure; the other rows apply", async () => {
    for (const type of ["text", "bytea"]) {
      const events = new Events(tableSchema(randomTableName(), [["id", type], ["v", "integer"]]));
      const key = (text: string) => (type === "text" ? text : new TextEncoder().encode(text));
      const result = await sink.write([events.insert(1n, { id: key(""), v: 1 }), events.insert(2n, { id: key("k".repeat(600)), v: 2 }), events.insert(3n, { id: key("k"), v: 3 })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable]), [[0, false], [1, false]], type);
      assert.match(result.failures[0]!.error.message, /must not be empty/, type);
      assert.match(result.failures[1]!.error.message, /512-byte document id limit/, type);
      assert.deepEqual((await visibleRows(targetOf(events.schema), events.schema)).map((row) => row["v"]), ["3"], type);
    }
  });

  test("refresh_interval: set on created indexes, rebuild generations and, after a restart, existing ones; absent leaves them alone", async () => {
    const name = `es_${randomTableName("r")}`;
    const withRefresh = (refresh: string | undefined) =>
      new ElasticsearchSink(testSinkConfig("elasticsearch", { name, nodes: [elasticsearch.url], bulk_bytes: 5 * 2 ** 20, target: template, ...(refresh === undefined ? {} : { refresh_interval: refresh }) }), { logger: testLogger(), refresh: true });
    const setting = async (index: string) => {
      const settings = await admin.indices.getSettings({ index });
      return (settings[index]?.settings?.index as { refresh_interval?: string } | undefined)?.refresh_interval ?? null;
    };
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);

    const first = withRefresh("250ms");
    await first.open(signal());
    await first.write([events.insert(1n, { id: 1, v: "a" })], signal());
    assert.equal(await setting(`${target}__v1`), "250ms");
    await first.prepareRebuild(events.schema, signal());
    assert.equal(await setting(`${target}__v2`), "250ms", "the rebuild generation gets it too");
    await first.close();

    const second = withRefresh("1s");
    await second.open(signal());
    await second.write([events.insert(2n, { id: 2, v: "b" })], signal());
    assert.equal(await setting(`${target}__v1`), "1s", "a restart with another value updates the live index");
    assert.equal(await setting(`${target}__v2`), "1s", "and the shadow");
    await second.close();

    const third = withRefresh(undefined);
    await third.open(signal());
    const other = new Events(tableSchema(randomTableName(), [["id", "integer"]]));
    await third.write([events.insert(3n, { id: 3, v: "c" }), other.insert(4n, { id: 1 })], signal());
    await third.close();
    assert.equal(await setting(`${target}__v1`), "1s", "without the key an existing index keeps its setting");
    assert.equal(await setting(`${targetOf(other.schema)}__v1`), null, "without the key a new index has Elasticsearch's default");

    const fourth = withRefresh("-1");
    await fourth.open(signal());
    await fourth.write([other.insert(5n, { id: 2 })], signal());
    await fourth.close();
    assert.equal(await setting(`${targetOf(other.schema)}__v1`), "-1");
  });

  test("a new column's default: every document written before it gets it (pages beyond the first, values exists cannot see), a fill cut short ends when the index is next loaded, newer writes still apply", async () => {
    const name = `es_${randomTableName("d")}`;
    const first = createSink(name);
    await first.open(signal());
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const ROWS = 1100; // more than a page of the fill
    const ids = Array.from({ length: ROWS }, (_, i) => i + 1);
    await first.write(ids.map((id) => events.insert(BigInt(id), { id, v: `r${id}` })), signal());
    // note text DEFAULT 'hi'; attrs jsonb DEFAULT '{}' (an empty object: no query can tell a document with it from one without)
    const wider: TableSchema = {
      ...events.schema,
      columns: [...events.schema.columns, { name: "note", dbType: "text", nullable: true, defaultValue: "hi" }, { name: "attrs", dbType: "jsonb", nullable: true, defaultValue: "{}" }],
    };
    const newer = new Events(wider);
    await first.write([newer.insert(5000n, { id: 5000, v: "new", note: null, attrs: null })], signal());
    await first.close();
    const documents = async () => {
      await admin.indices.refresh({ index: target });
      const response = await admin.search<Record<string, unknown>>({ index: target, size: ROWS + 10, version: true, query: { match_all: {} } });
      return response.hits.hits.sort((a, b) => Number(a._source?.["id"]) - Number(b._source?.["id"]));
    };
    const shown = (hit: { _source?: Record<string, unknown>; _version?: number | bigint }) => [hit._source?.["note"] ?? null, JSON.stringify(hit._source?.["attrs"] ?? null), Number(hit._version)];
    const all = await documents();
    assert.equal(all.length, ROWS + 1);
    assert.deepEqual(all.slice(0, ROWS).filter((hit) => shown(hit)[0] !== "hi" || shown(hit)[1] !== "{}"), [], "every document written before the columns holds their defaults");
    assert.deepEqual(all.slice(0, ROWS).filter((hit) => Number(hit._version) !== Number(hit._source?.["id"])), [], "each at its own version");
    assert.deepEqual(shown(all[ROWS]!), [null, "null", 5000]);
    // As if the process died before the fill reached documents 1 and 2: their fields gone, the columns still marked in _meta.
    const unfilled = all.slice(0, 2);
    await admin.bulk({
      refresh: true,
      operations: unfilled.flatMap((hit) => {
        const { note: _note, attrs: _attrs, ...source } = hit._source ?? {};
        return [{ index: { _index: hit._index, _id: hit._id, version: hit._version, version_type: "external_gte" as const } }, source];
      }),
    });
    const physical = all[0]!._index;
    const mapping = (await admin.indices.getMapping({ index: physical }))[physical]!.mappings;
    const meta = mapping._meta as { sluice: { columns: { name: string }[] } };
    const marked = { sluice: { ...meta.sluice, columns: meta.sluice.columns.map((c) => (c.name === "note" || c.name === "attrs" ? { ...c, filling: true } : c)) } };
    await admin.indices.putMapping({ index: physical, _meta: marked });
    assert.deepEqual((await documents()).slice(0, 3).map(shown), [[null, "null", 1], [null, "null", 2], ["hi", "{}", 3]]);
    const second = createSink(name);
    await second.open(signal());
    try {
      await second.write([newer.update(5001n, { id: 3, v: "r3", note: "x", attrs: null })], signal());
      assert.deepEqual((await documents()).slice(0, 4).map(shown), [["hi", "{}", 1], ["hi", "{}", 2], ["x", "null", 5001], ["hi", "{}", 4]]);
      const after = (await admin.indices.getMapping({ index: physical }))[physical]!.mappings._meta as { sluice: { columns: { filling?: boolean }[] } };
      assert.ok(after.sluice.columns.every((c) => c.filling === undefined), "the marks are gone once the fill is done");
      const result = await second.write([newer.update(5002n, { id: 1, v: "r1", note: "y", attrs: null }), events.update(2n, { id: 2, v: "replayed" })], signal());
      assert.deepEqual(result.failures, []);
      assert.deepEqual(
        (await documents()).slice(0, 2).map((hit) => [hit._source?.["v"], ...shown(hit)]),
        [["r1", "y", "null", 5002], ["r2", "hi", "{}", 2]],
      );
    } finally {
      await second.close();
    }
  });

  test("an index that refuses writes (index.blocks.write 403, flood-stage read_only_allow_delete) fails its rows as the target's block, halting the table under dead-letter too, not as poison rows", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    const index = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
    for (const block of ["index.blocks.write", "index.blocks.read_only_allow_delete"]) {
      await admin.indices.putSettings({ index, settings: { [block]: true } });
      try {
        const result = await sink.write([events.insert(2n, { id: 2, v: "b" }), events.update(3n, { id: 1, v: "c" })], signal());
        assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [
          [0, false, "SINK_TARGET_BLOCKED"],
          [1, false, "SINK_TARGET_BLOCKED"],
        ], block);
        assert.match(result.failures[0]!.error.message, /cluster_block_exception/);
        assert.ok(result.failures[0]!.error.message.includes(events.schema.table), "names the table");
        assert.ok((result.failures[0]!.error as SluiceError).context["position"], "and the position");
      } finally {
        await admin.indices.putSettings({ index, settings: { [block]: null } });
      }
    }
    assert.deepEqual((await sink.write([events.insert(2n, { id: 2, v: "b" }), events.update(3n, { id: 1, v: "c" })], signal())).failures, []);
    assert.deepEqual(await visibleRows(target, events.schema), [
      { id: "1", v: "c" },
      { id: "2", v: "b" },
    ]);
  });

  test("a stored document the index refuses to read (index.blocks.read) halts a change with unchanged-TOAST values, read again by itself, instead of writing it without them", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"], ["note", "text"]]));
    const target = targetOf(events.schema);
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a", note: "kept" })], signal())).failures, []);
    const index = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
    await admin.indices.putSettings({ index, settings: { "index.blocks.read": true } });
    try {
      const result = await sink.write([events.update(2n, { id: 1, v: "b", note: UNCHANGED }), events.insert(3n, { id: 2, v: "c", note: "new" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [
        [0, false, "SINK_TARGET_BLOCKED"],
        [1, false, "SINK_TARGET_BLOCKED"],
      ]);
      assert.match(result.failures[0]!.error.message, /reading the stored document .*cluster_block_exception/);
      assert.ok(result.failures[0]!.error.message.includes(events.schema.table), "names the table");
      assert.equal(liftsByItself(result.failures[0]!.error), true, "read again by itself once the block is lifted");
    } finally {
      await admin.indices.putSettings({ index, settings: { "index.blocks.read": null } });
    }
    assert.deepEqual(await visibleRows(target, events.schema), [{ id: "1", v: "a", note: "kept" }]);
    assert.deepEqual((await sink.write([events.update(2n, { id: 1, v: "b", note: UNCHANGED }), events.insert(3n, { id: 2, v: "c", note: "new" })], signal())).failures, []);
    assert.deepEqual(await visibleRows(target, events.schema), [
      { id: "1", v: "b", note: "kept" },
      { id: "2", v: "c", note: "new" },
    ]);
  });

  test("an alias an operator pointed at a second index (no write index) halts the table as the target's refusal, under dead-letter too, read again by itself: not poison rows", async () => {
    const deadLetter = createSink(`es_${randomTableName("s")}`, undefined, "dead-letter");
    await deadLetter.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      const target = targetOf(events.schema);
      assert.deepEqual((await deadLetter.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      const other = `${prefix}_other_${randomBytes(3).toString("hex")}`;
      await admin.indices.create({ index: other });
      await admin.indices.updateAliases({ actions: [{ add: { index: other, alias: target } }] });
      const result = await deadLetter.write([events.insert(2n, { id: 2, v: "b" }), events.update(3n, { id: 1, v: "c" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [
        [0, false, "SINK_TARGET_BLOCKED"],
        [1, false, "SINK_TARGET_BLOCKED"],
      ]);
      assert.match(result.failures[0]!.error.message, /no write index is defined for alias.*added to the table's alias by hand.*remove the other index from the alias/);
      assert.ok(result.failures[0]!.error.message.includes(events.schema.table), "names the table");
      assert.equal(liftsByItself(result.failures[0]!.error), true, "read again by itself once the alias is put right");
      await admin.indices.updateAliases({ actions: [{ remove: { index: other, alias: target } }] });
      assert.deepEqual((await deadLetter.write([events.insert(2n, { id: 2, v: "b" }), events.update(3n, { id: 1, v: "c" })], signal())).failures, []);
      assert.deepEqual(await visibleRows(target, events.schema), [
        { id: "1", v: "c" },
        { id: "2", v: "b" },
      ]);
    } finally {
      await deadLetter.close();
    }
  });

  test("an index an operator closed (POST _close) halts the table as the target's refusal, under dead-letter too, read again by itself: not poison rows", async () => {
    const deadLetter = createSink(`es_${randomTableName("s")}`, undefined, "dead-letter");
    await deadLetter.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      const target = targetOf(events.schema);
      assert.deepEqual((await deadLetter.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      const index = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
      await admin.indices.close({ index });
      const result = await deadLetter.write([events.insert(2n, { id: 2, v: "b" }), events.update(3n, { id: 1, v: "c" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [
        [0, false, "SINK_TARGET_BLOCKED"],
        [1, false, "SINK_TARGET_BLOCKED"],
      ]);
      assert.match(result.failures[0]!.error.message, /index_closed_exception.*closed by hand.*POST <index>\/_open/);
      assert.ok(result.failures[0]!.error.message.includes(events.schema.table), "names the table");
      assert.equal(liftsByItself(result.failures[0]!.error), true, "read again by itself once the index is open");
      // An unchanged-TOAST value is read from the closed index first: the same refusal, not a failed request.
      const toast = await deadLetter.write([events.update(4n, { id: 1, v: UNCHANGED })], signal());
      assert.deepEqual(toast.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]]);
      await admin.indices.open({ index });
      assert.deepEqual((await deadLetter.write([events.insert(2n, { id: 2, v: "b" }), events.update(3n, { id: 1, v: "c" })], signal())).failures, []);
      assert.deepEqual(await visibleRows(target, events.schema), [
        { id: "1", v: "c" },
        { id: "2", v: "b" },
      ]);
    } finally {
      await deadLetter.close();
    }
  });

  test("a field an operator mapped by hand that a new column cannot take halts the table naming the field and the rebuild to run (--table schema.table)", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    const index = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
    await admin.indices.putMapping({ index, properties: { w: { type: "long" } } });
    const wider = new Events(tableSchema(events.schema.table, [["id", "integer"], ["v", "text"], ["w", "text"]]));
    await assert.rejects(sink.write([wider.insert(2n, { id: 2, v: "b", w: "x" })], signal()), (error: SluiceError) => {
      assert.equal(error.code, "SINK_SCHEMA_UNSUPPORTED");
      assert.match(error.message, /refused the mapping change \(adding "w"\).*mapper \[w\] cannot be changed from type \[long\]/s);
      assert.ok(error.message.includes(`--rebuild --table ${events.schema.schema}.${events.schema.table} --execute), then sluice halted retry`), error.message);
      return true;
    });
  });

  test("another index an operator made the write index of the table's alias (found at open) halts the table, read again at each retry, instead of taking its writes silently", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    const other = `${prefix}_other_${randomBytes(3).toString("hex")}`;
    await admin.indices.create({ index: other });
    await admin.indices.updateAliases({ actions: [{ add: { index: other, alias: target, is_write_index: true } }] });
    const reopened = createSink(`es_${randomTableName("s")}`);
    await reopened.open(signal());
    try {
      assert.equal(await reopened.stagedWrite(signal())!.stage(events.insert(2n, { id: 2, v: "b" }).event), false, "not staged: left to the write, which halts");
      for (let retry = 0; retry < 2; retry++) {
        const result = await reopened.write([events.insert(2n, { id: 2, v: "b" })], signal());
        assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]]);
        assert.match(result.failures[0]!.error.message, new RegExp(`the alias "${target}" makes "${other}" its write index .*take that index out of the alias`));
        assert.equal(liftsByItself(result.failures[0]!.error), true, "read again by itself once the alias is put right");
      }
      await admin.indices.refresh({ index: other });
      assert.equal((await admin.count({ index: other })).count, 0, "nothing written to the operator's index");
      await admin.indices.updateAliases({ actions: [{ remove: { index: other, alias: target } }] });
      assert.deepEqual((await reopened.write([events.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    } finally {
      await reopened.close();
    }
    assert.deepEqual(await visibleRows(target, events.schema), [
      { id: "1", v: "a" },
      { id: "2", v: "b" },
    ]);
  });

  test("an alias an operator moved to another index while the sink ran halts the table at the first write that lands there, and the batch is written again once the alias is put back", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    const live = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
    const other = `${prefix}_moved_${randomBytes(3).toString("hex")}`;
    await admin.indices.create({ index: other });
    await admin.indices.updateAliases({ actions: [{ remove: { index: live, alias: target } }, { add: { index: other, alias: target } }] });
    // Before: applied (into the operator's index, which the alias now shows), and the batch's offsets stored.
    const result = await sink.write([events.insert(2n, { id: 2, v: "b" })], signal());
    assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]]);
    assert.match(result.failures[0]!.error.message, new RegExp(`the target's alias sent writes to another index .*alias "${target}" was written to index "${other}", not "${live}" \\(the alias was moved by hand while the sink ran\\).*put the alias back.*not take over an index of your own.*sluice replay --rebuild`));
    assert.equal(liftsByItself(result.failures[0]!.error), true, "read again by itself once the alias is put right");
    // Put back as an operator would, with a plain add: without the sink's filter, deleted rows would show in searches.
    await admin.indices.updateAliases({ actions: [{ remove: { index: other, alias: target } }, { add: { index: live, alias: target } }] });
    assert.deepEqual((await sink.write([events.insert(2n, { id: 2, v: "b" }), events.insert(3n, { id: 9, v: "gone" }), events.delete(4n, { id: 9 })], signal())).failures, []);
    assert.deepEqual((await admin.indices.getAlias({ name: target }))[live]?.aliases[target]?.filter, aliasFilter(0n), "the sink's filter set again");
    assert.deepEqual(await visibleRows(target, events.schema), [
      { id: "1", v: "a" },
      { id: "2", v: "b" },
    ], "the deleted row stays hidden through the alias");
    // Another index made the alias's write index while the sink runs (not only found at open): the same.
    await admin.indices.updateAliases({ actions: [{ add: { index: other, alias: target, is_write_index: true } }] });
    const written = await sink.write([events.insert(5n, { id: 3, v: "c" })], signal());
    assert.deepEqual(written.failures.map((f) => [f.index, (f.error as SluiceError).code]), [[0, "SINK_TARGET_BLOCKED"]]);
    assert.match(written.failures[0]!.error.message, new RegExp(`written to index "${other}"`));
    await admin.indices.updateAliases({ actions: [{ remove: { index: other, alias: target } }] });
    assert.deepEqual((await sink.write([events.insert(5n, { id: 3, v: "c" })], signal())).failures, []);
    assert.deepEqual(await visibleRows(target, events.schema), [
      { id: "1", v: "a" },
      { id: "2", v: "b" },
      { id: "3", v: "c" },
    ]);
    await admin.indices.delete({ index: other });
  });

  test("an alias whose filter was dropped while the sink was stopped gets the sink's filter again at the next start: deleted rows stay hidden", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const name = `es_${randomTableName("f")}`;
    const before = createSink(name);
    await before.open(signal());
    try {
      assert.deepEqual((await before.write([events.insert(1n, { id: 1, v: "a" }), events.insert(2n, { id: 2, v: "gone" }), events.delete(3n, { id: 2 })], signal())).failures, []);
    } finally {
      await before.close();
    }
    const live = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
    // Put back with a plain add (as an operator would after moving it): no filter.
    await admin.indices.updateAliases({ actions: [{ remove: { index: live, alias: target } }, { add: { index: live, alias: target } }] });
    const after = createSink(name);
    await after.open(signal());
    try {
      assert.deepEqual((await after.write([events.insert(4n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual(await visibleRows(target, events.schema), [
        { id: "1", v: "a" },
        { id: "3", v: "c" },
      ]);
    } finally {
      await after.close();
    }
  });

  test("an index or alias an operator deleted while the sink ran halts the table naming it, instead of an index Elasticsearch creates again without mapping or alias", async () => {
    for (const deleted of ["index", "alias"] as const) {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      const target = targetOf(events.schema);
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      const index = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
      if (deleted === "index") await admin.indices.delete({ index });
      else await admin.indices.deleteAlias({ index, name: target });
      const result = await sink.write([events.insert(2n, { id: 2, v: "b" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]], deleted);
      assert.match(result.failures[0]!.error.message, /index_not_found_exception.*deleted while the sink ran/);
      if (deleted === "index") assert.equal((await admin.indices.exists({ index })).valueOf(), false, "no index made again without mapping");
      else assert.equal(await admin.count({ index }).then((r) => r.count), 1, "nothing written into the index without its alias");
    }
    // A write that reads the index first (an unchanged-TOAST value) or changes its mapping meets the deleted index before its bulk request.
    for (const read of [true, false]) {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      await admin.indices.delete({ index: Object.keys(await admin.indices.getAlias({ name: targetOf(events.schema) }))[0]! });
      const wider = new Events(tableSchema(events.schema.table, [["id", "integer"], ["v", "text"], ["w", "text"]]));
      const result = await sink.write([read ? events.update(2n, { id: 1, v: UNCHANGED }) : wider.insert(3n, { id: 3, v: "c", w: "x" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, (f.error as SluiceError).code]), [[0, "SINK_TARGET_BLOCKED"]], read ? "read" : "mapping");
      assert.match(result.failures[0]!.error.message, /index_not_found_exception.*deleted while the sink ran/);
    }
  });

  test("an index or alias deleted while the sink was stopped: the table halts as a catalog mismatch saying to rebuild it (write and staged write), not made again empty; other and new tables apply; a rebuild brings it back", async () => {
    const schema = () => tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]);
    const [indexGone, aliasGone, other, fresh] = [new Events(schema()), new Events(schema()), new Events(schema()), new Events(schema())];
    const name = `es_${randomTableName("s")}`;
    const first = createSink(name);
    await first.open(signal());
    assert.deepEqual((await first.write([indexGone.insert(1n, { id: 1, v: "a" }), other.insert(2n, { id: 1, v: "a" })], signal())).failures, []);
    const staged = first.stagedWrite(signal())!;
    assert.equal(await staged.stage(aliasGone.insert(3n, { id: 1, v: "a" }).event), true, "a first batch staged creates its index");
    assert.equal(await staged.write(signal()), false);
    await first.close();
    const indexOf = async (events: Events) => Object.keys(await admin.indices.getAlias({ name: targetOf(events.schema) }))[0]!;
    await admin.indices.delete({ index: await indexOf(indexGone) });
    const kept = await indexOf(aliasGone);
    await admin.indices.deleteAlias({ index: kept, name: targetOf(aliasGone.schema) });
    const reopened = createSink(name);
    await reopened.open(signal());
    try {
      const second = reopened.stagedWrite(signal())!;
      assert.equal(await second.stage(aliasGone.insert(4n, { id: 2, v: "b" }).event), false, "not staged: the write reports it");
      const result = await reopened.write(
        [indexGone.insert(5n, { id: 2, v: "b" }), other.insert(6n, { id: 2, v: "b" }), aliasGone.insert(4n, { id: 2, v: "b" }), fresh.insert(7n, { id: 1, v: "a" })],
        signal(),
      );
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_CATALOG_MISMATCH"], [2, false, "SINK_CATALOG_MISMATCH"]]);
      for (const [i, events] of [[0, indexGone], [1, aliasGone]] as const) {
        const message = result.failures[i]!.error.message;
        assert.ok(message.includes(events.schema.table) && message.includes(targetOf(events.schema)), "names the table and its alias");
        assert.match(message, /deleted since it last looked/);
        assert.match(message, /sluice replay --sink NAME --from-beginning --rebuild --table T --execute\), then sluice halted retry/);
      }
      assert.equal((await admin.indices.existsAlias({ name: targetOf(indexGone.schema) })).valueOf(), false, "not made again empty");
      assert.equal(await admin.count({ index: kept }).then((r) => r.count), 1, "nothing written into the index without its alias");
      assert.deepEqual((await visibleRows(targetOf(other.schema), other.schema)).map((r) => r["id"]), ["1", "2"], "the other table applies");
      assert.deepEqual((await visibleRows(targetOf(fresh.schema), fresh.schema)).map((r) => r["id"]), ["1"], "a table never written gets its index");
      // Halted until rebuilt: a retry alone halts again.
      assert.deepEqual((await reopened.write([indexGone.insert(5n, { id: 2, v: "b" })], signal())).failures.map((f) => (f.error as SluiceError).code), ["SINK_CATALOG_MISMATCH"]);
      await reopened.prepareRebuild(indexGone.schema, signal());
      assert.deepEqual((await reopened.writeRebuild([indexGone.insert(1n, { id: 1, v: "a" }), indexGone.insert(5n, { id: 2, v: "b" })], signal())).failures, []);
      await reopened.swap(indexGone.schema, signal());
      assert.deepEqual((await reopened.write([indexGone.insert(8n, { id: 3, v: "c" })], signal())).failures, []);
      assert.deepEqual((await visibleRows(targetOf(indexGone.schema), indexGone.schema)).map((r) => r["id"]), ["1", "2", "3"]);
    } finally {
      await reopened.close();
    }
  });

  test("an alias moved while the sink was stopped onto an operator's index only: the table halts naming the alias and that index, writes nothing there, and goes on once the alias is back", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const name = `es_${randomTableName("s")}`;
    const first = createSink(name);
    await first.open(signal());
    assert.deepEqual((await first.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    await first.close();
    const own = Object.keys(await admin.indices.getAlias({ name: target }))[0]!;
    const other = `${prefix}_ops_${randomBytes(3).toString("hex")}`;
    await admin.indices.create({ index: other });
    await admin.indices.updateAliases({ actions: [{ remove: { index: own, alias: target } }, { add: { index: other, alias: target } }] });
    const reopened = createSink(name);
    await reopened.open(signal());
    try {
      const result = await reopened.write([events.insert(2n, { id: 2, v: "b" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]]);
      assert.match(result.failures[0]!.error.message, new RegExp(`the alias "${target}" is on "${other}" only, not on any of the table's own indexes`));
      assert.equal(liftsByItself(result.failures[0]!.error), true);
      await admin.indices.refresh({ index: other });
      assert.equal((await admin.count({ index: other })).count, 0, "nothing written to the operator's index");
      await admin.indices.updateAliases({ actions: [{ remove: { index: other, alias: target } }, { add: { index: own, alias: target, filter: aliasFilter(0n) as never } }] });
      assert.deepEqual((await reopened.write([events.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    } finally {
      await reopened.close();
    }
    assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["id"]), ["1", "2"]);
  });

  test("an index that runs an ingest pipeline (an operator's index template sets index.default_pipeline) halts the table naming the index and the pipeline, writes nothing, and goes on once it is taken off", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const pipeline = `${prefix}_pl_${randomBytes(3).toString("hex")}`;
    // The only processor the test distribution has; it fails here (no security), where a real cluster's "remove" would drop a field silently.
    await admin.ingest.putPipeline({ id: pipeline, processors: [{ set_security_user: { field: "u" } }] });
    await admin.indices.putIndexTemplate({ name: pipeline, index_patterns: [`${target}__v*`], priority: 900, template: { settings: { "index.default_pipeline": pipeline } } });
    try {
      const result = await sink.write([events.insert(1n, { id: 1, v: "a" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]]);
      assert.match(result.failures[0]!.error.message, new RegExp(`the index "${target}__v1" runs index\\.default_pipeline "${pipeline}" on every write`));
      assert.equal(liftsByItself(result.failures[0]!.error), true);
      await admin.indices.refresh({ index: `${target}__v1` });
      assert.equal((await admin.count({ index: `${target}__v1` })).count, 0);
      await admin.indices.putSettings({ index: `${target}__v1`, settings: { "index.default_pipeline": null } });
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    } finally {
      await admin.indices.deleteIndexTemplate({ name: pipeline });
      await admin.indices.putSettings({ index: `${target}__v1`, settings: { "index.default_pipeline": null } }).catch(() => undefined);
      await admin.ingest.deletePipeline({ id: pipeline });
    }
    assert.deepEqual(await visibleRows(target, events.schema), [{ id: "1", v: "a" }]);
  });

  test("an index an operator's template gives a _source filter (excludes) halts the table naming it, writes nothing; a rebuild after the template is fixed brings the values", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const templateName = `${prefix}_src_${randomBytes(3).toString("hex")}`;
    await admin.indices.putIndexTemplate({ name: templateName, index_patterns: [`${target}__v*`], priority: 900, template: { mappings: { _source: { excludes: ["v"] } } } });
    try {
      const result = await sink.write([events.insert(1n, { id: 1, v: "a" })], signal());
      assert.deepEqual(result.failures.map((f) => [f.index, f.retriable, (f.error as SluiceError).code]), [[0, false, "SINK_TARGET_BLOCKED"]]);
      assert.match(result.failures[0]!.error.message, new RegExp(`the index "${target}__v1" has _source\\.excludes \\["v"\\]`));
      await admin.indices.refresh({ index: `${target}__v1` });
      assert.equal((await admin.count({ index: `${target}__v1` })).count, 0);
    } finally {
      await admin.indices.deleteIndexTemplate({ name: templateName });
    }
    await sink.prepareRebuild(events.schema, signal());
    assert.deepEqual((await sink.writeRebuild([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    await sink.swap(events.schema, signal());
    assert.deepEqual((await sink.write([events.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
    assert.deepEqual(await visibleRows(target, events.schema), [{ id: "1", v: "a" }, { id: "2", v: "b" }]);
  });

  test("a rebuild's swap stopped (kill -9) after its alias moved, before the old index was deleted: the old index is deleted when the target is next loaded", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const name = `es_${randomTableName("s")}`;
    const first = createSink(name);
    await first.open(signal());
    assert.deepEqual((await first.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    await first.prepareRebuild(events.schema, signal());
    assert.deepEqual((await first.writeRebuild([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
    // The swap's one request (Indices.swap), then the process dies.
    await admin.indices.updateAliases({
      actions: [
        { add: { index: `${target}__v2`, alias: target, filter: aliasFilter(0n) as never } },
        { remove: { index: `${target}__v2`, alias: rebuildAlias(target) } },
        { remove: { index: `${target}__v1`, alias: target } },
      ],
    });
    await first.close();
    const restarted = createSink(name);
    await restarted.open(signal());
    try {
      assert.deepEqual((await restarted.write([events.insert(2n, { id: 2, v: "b" })], signal())).failures, []);
      assert.equal((await admin.indices.exists({ index: `${target}__v1` })).valueOf(), false, "the old generation is deleted");
      assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["id"]), ["1", "2"]);
    } finally {
      await restarted.close();
    }
  });

  test("a staged batch leaves what the write leaves: each key's newest change (versions out of order, ties in batch order), tombstones, versions, offsets", async () => {
    const columns = [["id", "integer"], ["v", "text"], ["n", "numeric(12,2)"], ["at", "timestamptz"]] as const;
    const staged = new Events(tableSchema(randomTableName(), columns));
    const written = new Events(tableSchema(randomTableName(), columns));
    const batch = (events: Events) => [
      events.insert(2n, { id: 2, v: "b", n: "2.00", at: 1_700_000_000_000_000n }),
      events.update(5n, { id: 1, v: "a5", n: "-0.05", at: null }),
      events.update(3n, { id: 1, v: "a3", n: "3.00", at: null }),
      events.delete(6n, { id: 2 }),
      events.insert(7n, { id: 3, v: "c", n: null, at: -1n }),
      events.insert(7n, { id: 3, v: "c again", n: null, at: -2n }),
      events.insert(7n, { id: 4, v: "d", n: "4.00", at: 0n }),
      events.update(8n, { id: 4, v: "d8", n: "4.08", at: 8n }),
      events.update(1n, { id: 5, v: "older than its index's document", n: null, at: null }),
    ];
    for (const events of [staged, written]) {
      assert.deepEqual((await sink.write([events.insert(1n, { id: 1, v: "a", n: "1.00", at: 1n }), events.insert(4n, { id: 5, v: "e", n: null, at: null })], signal())).failures, []);
    }
    const write = sink.stagedWrite(signal());
    assert.ok(write);
    for (const { event } of batch(staged)) assert.equal(await write.stage(event), true);
    const offsets = [{ topic: staged.topic, partition: 0, offset: 9n }];
    assert.equal(await write.write(signal(), offsets), true);
    assert.deepEqual((await sink.write(batch(written), signal())).failures, []);
    const contents = async (events: Events) => {
      const index = `${targetOf(events.schema)}__v1`;
      await admin.indices.refresh({ index });
      const response = await admin.search<Record<string, unknown>>({ index, size: 100, version: true, sort: [{ id: "asc" }] });
      return response.hits.hits.map((hit) => ({ id: hit._id, version: hit._version, source: hit._source }));
    };
    const expected = await contents(written);
    assert.deepEqual((await visibleRows(targetOf(written.schema), written.schema)).map((r) => r["v"]), ["a5", "c again", "d8", "e"]);
    assert.deepEqual(await contents(staged), expected, "the same documents, tombstones and versions");
    assert.ok((await sink.committedOffsets(signal())).some((o) => o.topic === staged.topic && o.offset === 9n), "the offsets stored after the documents");
  });

  test("a staged write takes the plain case, loading the index first and creating it unless a column has a default, and leaves the rest to the sink's write; an index changed since its operations were staged fails the staged write", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"], ["small", "smallint"]]));
    const added = new Events({ ...events.schema, columns: [...events.schema.columns, { name: "extra", dbType: "text", nullable: true }] });
    const target = targetOf(events.schema);
    /** One change staged by a staged write of its own. */
    const stage = async (change: { event: ChangeEvent }, by: ElasticsearchSink = sink) => by.stagedWrite(signal())!.stage(change.event);
    const defaulted = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const withDefault = new Events({ ...defaulted.schema, columns: [...defaulted.schema.columns, { name: "d", dbType: "text", nullable: true, defaultValue: "dflt" }] });
    assert.equal(await stage(withDefault.insert(1n, { id: 1, v: "a", d: "x" })), false, "an index for a schema with a column default is the write's to create");
    assert.equal((await admin.indices.exists({ index: targetOf(defaulted.schema) })), false);
    const created = sink.stagedWrite(signal())!;
    assert.equal(await created.stage(events.insert(1n, { id: 1, v: "a", small: 1 }).event), true, "an index not created yet is created for it");
    assert.equal(await created.write(signal()), false, "no offsets given, none stored");
    assert.equal(await stage(events.insert(2n, { id: 2, v: "b", small: 2 })), true);
    assert.equal(await stage(events.delete(2n, { id: 1 })), true);
    assert.equal(await stage(events.truncate(3n)), false, "a truncate");
    assert.equal(await stage(events.update(3n, { id: 1, v: UNCHANGED, small: 1 })), false, "an unchanged-TOAST value");
    assert.equal(await stage(events.update(3n, { id: 5, v: "moved", small: 1 }, { id: 1, v: "a", small: 1 })), false, "an update that moves the key");
    assert.equal(await stage(events.insert(3n, { id: 3, v: "c", small: 70_000 })), false, "a value the field cannot hold");
    assert.equal(await stage(added.insert(3n, { id: 3, v: "c", small: 3, extra: "x" })), false, "a schema the mapping must change for");
    const fresh = createSink(`es_${randomTableName("s")}`);
    await fresh.open(signal());
    try {
      assert.equal(await stage(events.insert(2n, { id: 2, v: "b", small: 2 }), fresh), true, "after a restart: the index loaded first");
    } finally {
      await fresh.close();
    }
    // The mapping changes between staging and writing (another write): the operations were written for its old columns.
    const stale = sink.stagedWrite(signal())!;
    assert.equal(await stale.stage(events.insert(4n, { id: 4, v: "d", small: 4 }).event), true);
    assert.deepEqual((await sink.write([added.insert(5n, { id: 5, v: "e", small: 5, extra: "y" })], signal())).failures, []);
    await assert.rejects(stale.write(signal()), /changed while a batch was staged/);
    assert.equal(await stage(added.insert(6n, { id: 6, v: "f", small: 6, extra: "z" })), true, "the evolved mapping holds the schema");
    // A rebuild's shadow: the write writes both indexes.
    await sink.prepareRebuild(events.schema, signal());
    try {
      assert.equal(await stage(added.insert(7n, { id: 7, v: "g", small: 7, extra: null })), false, "an index with a rebuild's shadow");
    } finally {
      await sink.abortRebuild(events.schema, signal());
    }
    assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["id"]), ["1", "5"]);
  });

  test("a rebuild's index made by the server whose reply was lost (connection cut): the prepare tried again leaves one index under the rebuild alias, and the swap leaves one generation", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    // Forwards every request to Elasticsearch; the first that creates the rebuild's index is applied, then its reply dropped.
    let cut = false;
    const proxy = await HttpFaultProxy.start(elasticsearch.url, (request) => {
      if (cut || request.method !== "PUT" || !request.url.startsWith(`/${target}__v2`)) return { kind: "forward" };
      cut = true;
      return { kind: "cut-after" };
    });
    const cutSink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `es_${randomTableName("c")}`, nodes: [proxy.url], bulk_bytes: 5 * 2 ** 20, target: template }), { logger: testLogger(), refresh: true });
    await cutSink.open(signal());
    try {
      assert.deepEqual((await cutSink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      await assert.rejects(cutSink.prepareRebuild(events.schema, signal()), (error: SluiceError) => error.retriable);
      assert.ok(cut, "the create's reply was dropped");
      assert.equal((await admin.indices.exists({ index: `${target}__v2` })).valueOf(), true, "the server made it");
      // As the rebuild's retry does.
      await cutSink.prepareRebuild(events.schema, signal());
      const marked = Object.keys(await admin.indices.getAlias({ name: rebuildAlias(target), expand_wildcards: "all" }));
      assert.equal(marked.length, 1, `one index under the rebuild alias: ${marked.join(", ")}`);
      assert.deepEqual((await cutSink.writeRebuild([events.insert(2n, { id: 1, v: "b" })], signal())).failures, []);
      await cutSink.swap(events.schema, signal());
      const generations = Object.keys(await admin.indices.get({ index: `${target}__v*`, expand_wildcards: "all" }));
      assert.deepEqual(generations, marked, "only the rebuilt generation is left");
      assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["v"]), ["b"]);
    } finally {
      await cutSink.close();
      await proxy.close();
    }
  });

  /**
   * The target's list of indexes answered without the rebuild's index once (the server made it, and the list does not show it
   * yet): the prepare tried again makes the same generation's index and meets resource_already_exists_exception.
   */
  const listedWithout = (target: string, index: string) => {
    let hidden = false;
    return (request: ProxiedRequest): FaultDecision | null => {
      if (hidden || request.method !== "GET" || !/__v(\*|%2A)/i.test(request.url) || !request.url.startsWith(`/${target}`)) return null;
      hidden = true;
      return {
        kind: "rewrite",
        body: request.body,
        reply: (status, body) => {
          if (status !== 200) return body;
          const indexes = JSON.parse(body.toString("utf8")) as Record<string, unknown>;
          delete indexes[index];
          return Buffer.from(JSON.stringify(indexes));
        },
      };
    };
  };

  test("a rebuild's index made by a prepare whose reply was lost and not yet listed when the prepare is tried again is recognised as its own and taken as the shadow", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    let cut = false;
    const hide = listedWithout(target, `${target}__v2`);
    const proxy = await HttpFaultProxy.start(elasticsearch.url, (request) => {
      if (!cut && request.method === "PUT" && request.url.startsWith(`/${target}__v2`)) {
        cut = true;
        return { kind: "cut-after" };
      }
      // Only once the create was cut: the try again reads the target's indexes first.
      return (cut ? hide(request) : null) ?? { kind: "forward" };
    });
    const cutSink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `es_${randomTableName("c")}`, nodes: [proxy.url], bulk_bytes: 5 * 2 ** 20, target: template }), { logger: testLogger(), refresh: true });
    await cutSink.open(signal());
    try {
      assert.deepEqual((await cutSink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      await assert.rejects(cutSink.prepareRebuild(events.schema, signal()), (error: SluiceError) => error.retriable);
      assert.equal((await admin.indices.exists({ index: `${target}__v2` })).valueOf(), true, "the server made it");
      // As the rebuild's retry does; the list it reads first does not show __v2.
      await cutSink.prepareRebuild(events.schema, signal());
      const marked = Object.keys(await admin.indices.getAlias({ name: rebuildAlias(target), expand_wildcards: "all" }));
      assert.deepEqual(marked, [`${target}__v2`], "its own index, taken as the shadow");
      assert.deepEqual((await cutSink.writeRebuild([events.insert(2n, { id: 1, v: "b" })], signal())).failures, []);
      await cutSink.swap(events.schema, signal());
      assert.deepEqual(Object.keys(await admin.indices.get({ index: `${target}__v*`, expand_wildcards: "all" })), [`${target}__v2`], "only the rebuilt generation is left");
      assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["v"]), ["b"]);
    } finally {
      await cutSink.close();
      await proxy.close();
    }
  });

  test("an index of a rebuild's name that the sink did not make (not yet listed when it prepares) is refused, and left as it is", async () => {
    const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
    const target = targetOf(events.schema);
    const hide = listedWithout(target, `${target}__v2`);
    let armed = false;
    const proxy = await HttpFaultProxy.start(elasticsearch.url, (request) => (armed ? hide(request) : null) ?? { kind: "forward" });
    const esSink = new ElasticsearchSink(testSinkConfig("elasticsearch", { name: `es_${randomTableName("f")}`, nodes: [proxy.url], bulk_bytes: 5 * 2 ** 20, target: template }), { logger: testLogger(), refresh: true });
    await esSink.open(signal());
    try {
      assert.deepEqual((await esSink.write([events.insert(1n, { id: 1, v: "a" })], signal())).failures, []);
      // Another process's rebuild index of the same name (its own mark), under the rebuild alias, holding one document.
      await admin.indices.create({ index: `${target}__v2`, aliases: { [rebuildAlias(target)]: {} }, mappings: { _meta: { sluice: { target, generation: 2, truncateVersion: "0", columns: [], maker: "another process" } } } });
      await admin.index({ index: `${target}__v2`, id: "x", document: { note: "theirs" }, refresh: true });
      armed = true;
      await assert.rejects(esSink.prepareRebuild(events.schema, signal()), (error: SluiceError) => {
        assert.equal(error.retriable, false);
        assert.match(error.message, new RegExp(`index "${target}__v2" cannot be made: Elasticsearch has an index of that name that this rebuild did not make`));
        return true;
      });
      assert.equal((await admin.count({ index: `${target}__v2` })).count, 1, "the other index is left as it is");
      assert.deepEqual((await visibleRows(target, events.schema)).map((r) => r["v"]), ["a"], "the live index serves unchanged");
    } finally {
      await esSink.close();
      await proxy.close();
    }
  });

  test("bulk requests are split by bulk_bytes", async () => {
    const small = createSink(`es_${randomTableName("b")}`, 2_000);
    await small.open(signal());
    try {
      const events = new Events(tableSchema(randomTableName(), [["id", "integer"], ["v", "text"]]));
      const changes = Array.from({ length: 40 }, (_, i) => events.insert(BigInt(i + 1), { id: i, v: "x".repeat(200) }));
      const result = await small.write(changes, signal());
      assert.deepEqual(result.failures, []);
      assert.equal((await visibleRows(targetOf(events.schema), events.schema)).length, 40);
    } finally {
      await small.close();
    }
  });
});
