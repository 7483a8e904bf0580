import assert from "node:assert/strict";
import { Readable } from "node:stream";
import { describe, test } from "node:test";
import type { Client } from "@elastic/elasticsearch";
import { testLogger } from "../sinks/test-config.ts";
import { packBodies, planBodies, runBulk } from "./bulk.ts";
import { aliasFilter } from "./indices.ts";
import { decodeJson, encodeJson, RawJson } from "./json.ts";
import { documentValue, fieldMapping, fieldNameProblem, sameMapping } from "./mapping.ts";
import { NdjsonOperations } from "./ndjson-operations.ts";

describe("Elasticsearch mappings and document values", () => {
  test("widening integers, floats, decimals and strings never changes a mapping", () => {
    assert.ok(sameMapping(fieldMapping({ kind: "integer", bits: 32, unsigned: false }), fieldMapping({ kind: "integer", bits: 64, unsigned: false })));
    assert.ok(sameMapping(fieldMapping({ kind: "float", bits: 32 }), fieldMapping({ kind: "float", bits: 64 })));
    assert.ok(sameMapping(fieldMapping({ kind: "decimal", precision: 10, scale: 2 }), fieldMapping({ kind: "decimal", precision: null, scale: null })));
    assert.ok(!sameMapping(fieldMapping({ kind: "uuid" }), fieldMapping({ kind: "string" })));
  });

  test("exact document values", () => {
    assert.equal(documentValue({ kind: "decimal", precision: 10, scale: 2 }, "3"), "3.00");
    // NaN and ±Infinity of a numeric with a declared scale stay in _source as words (the double field leaves them out).
    assert.equal(documentValue({ kind: "decimal", precision: 10, scale: 2 }, "NaN"), "NaN");
    assert.equal(documentValue({ kind: "decimal", precision: 10, scale: 2 }, "-Infinity"), "-Infinity");
    assert.equal(documentValue({ kind: "integer", bits: 64, unsigned: false }, 9_007_199_254_740_993n), 9_007_199_254_740_993n);
    assert.equal(documentValue({ kind: "integer", bits: 64, unsigned: true }, 18_446_744_073_709_551_615n), "18446744073709551615");
    assert.equal(documentValue({ kind: "float", bits: 64 }, Number.POSITIVE_INFINITY), "Infinity");
    assert.equal(documentValue({ kind: "timestamp", tz: true }, 0n), "1970-01-01T00:00:00.000000Z");
    assert.equal(documentValue({ kind: "timestamp", tz: false }, 0n), "1970-01-01T00:00:00.000000");
    assert.deepEqual(documentValue({ kind: "json" }, '{"a":\n1}'), new RawJson('{"a": 1}'));
    assert.deepEqual(documentValue({ kind: "json" }, '"text"'), new RawJson('{"_value":"text"}'));
    assert.equal(documentValue({ kind: "bytes" }, new Uint8Array([0, 255])), "AP8=");
  });

  test("multi-dimensional arrays stay nested in the document (Elasticsearch indexes their elements as a flat array's)", () => {
    const type = { kind: "array", element: { kind: "integer", bits: 64, unsigned: true } } as const;
    assert.deepEqual(documentValue(type, [[1n, 2n], [null, 18_446_744_073_709_551_615n]]), [["1", "2"], [null, "18446744073709551615"]]);
    assert.deepEqual(documentValue(type, [[[1n]], [[2n]]]), [[["1"]], [["2"]]]);
  });

  test("field names Elasticsearch cannot take", () => {
    assert.match(fieldNameProblem("a.b") ?? "", /dots/);
    assert.match(fieldNameProblem("_id") ?? "", /metadata/);
    assert.equal(fieldNameProblem("_private"), null);
  });

  test("the alias filter hides tombstones and, after a truncate, everything at or below its version", () => {
    assert.deepEqual(aliasFilter(0n), { bool: { must_not: [{ term: { _sluice_deleted: true } }], filter: [] } });
    assert.deepEqual(aliasFilter(42n).bool, { must_not: [{ term: { _sluice_deleted: true } }], filter: [{ range: { _sluice_version: { gt: "42" } } }] });
  });
});

describe("exact JSON", () => {
  test("64-bit integers survive both ways; raw JSON is embedded", () => {
    assert.equal(encodeJson({ a: 9_223_372_036_854_775_807n, b: [1, "x", null], c: new RawJson('{"k":1}') }), '{"a":9223372036854775807,"b":[1,"x",null],"c":{"k":1}}');
    assert.deepEqual(decodeJson('{"a":9223372036854775807,"b":1.5,"c":12}'), { a: 9_223_372_036_854_775_807n, b: 1.5, c: 12 });
  });
});

/** What the client's transport answers a bulk request taken as a stream (meta: true, asStream: true). */
function bulkReply(body: unknown, statusCode = 200, text = JSON.stringify(body)) {
  const meta = { connection: null, attempts: 0, request: { params: { method: "POST", path: "/_bulk", headers: {} }, options: {}, id: 1 } };
  return { statusCode, headers: { "content-type": "application/json" }, meta, warnings: null, body: Readable.from([Buffer.from(text)]) };
}

/** The reply to a bulk of items with these statuses, as Elasticsearch writes it (`errors` first). */
function itemsReply(statuses: readonly number[]) {
  return bulkReply({ errors: statuses.some((status) => status >= 300), items: statuses.map((status) => ({ index: status >= 300 ? { status, error: { type: "t", reason: "r" } } : { status } })) });
}

const bulkOptions = { maxBytes: 1 << 20, refresh: false, retry: { initial: 1, max: 2 }, signal: AbortSignal.timeout(5_000), logger: testLogger(), sink: "s" };

describe("bulk", () => {
  test("bodies stay within bulk_bytes; an oversized operation goes alone", () => {
    const op = (size: number) => ["{}", "x".repeat(size)];
    const bodies = packBodies(NdjsonOperations.ofLines([op(10), op(10), op(100), op(10)]), 40);
    assert.deepEqual(bodies.map((b) => b.members), [[0, 1], [2], [3]]);
    assert.ok(bodies.every((b) => Buffer.byteLength(b.body) <= 40 || b.members.length === 1));
  });

  test("a write goes in as few bodies as bulk_bytes allows, each within it", () => {
    // Bodies side by side on one shard cost Elasticsearch a segment each per refresh (docs/benchmarks.md).
    const large = new NdjsonOperations();
    for (let i = 0; i < 3600; i++) large.add(`${"x".repeat(299)}\n`);
    const all = Array.from({ length: 3600 }, (_, index) => index);
    assert.deepEqual(planBodies(large, 5 * 2 ** 20), [all], "one body, every operation once, in order");
    const bounded = planBodies(large, 200_000);
    assert.equal(bounded.length, Math.ceil((3600 * 300) / 200_000));
    assert.ok(bounded.every((members) => members.length * 300 <= 200_000));
    assert.deepEqual(bounded.flat(), all);
  });

  test("a write within bulk_bytes is one request; a larger one's requests go one at a time, none after a failed one", async () => {
    let open = 0;
    let most = 0;
    let calls = 0;
    const client = {
      transport: {
        request: async (params: { bulkBody: Buffer }) => {
          const call = calls++;
          open++;
          most = Math.max(most, open);
          await new Promise((resolve) => setTimeout(resolve, 20));
          open--;
          if (failing && call === 0) throw Object.assign(new Error("bad request"), { meta: { statusCode: 400 } });
          const lines = params.bulkBody.toString().split("\n").filter((line) => line.startsWith('{"index"'));
          return itemsReply(lines.map((line) => (line.includes('"_id":"s') ? 409 : 201)));
        },
      },
      connectionPool: { connections: [] },
    } as unknown as Client;
    const ids = Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? `s${i}` : `a${i}`));
    const operations = NdjsonOperations.ofLines(ids.map((id) => [`{"index":{"_id":"${id}"}}`, `{"v":"${"x".repeat(200)}"}`]));
    // Bodies of at most 100 kB: the write takes several requests.
    const options = { maxBytes: 100_000, refresh: false, retry: { initial: 1, max: 2 }, signal: AbortSignal.timeout(5_000), logger: testLogger(), sink: "s" };
    let failing = false;
    await runBulk(client, operations, { ...options, maxBytes: 5 * 2 ** 20 });
    assert.equal(calls, 1, "a write within bulk_bytes is one request");
    calls = 0;
    const outcomes = await runBulk(client, operations, options);
    assert.ok(calls > 1);
    assert.equal(most, 1);
    assert.deepEqual(
      outcomes.map((o) => o.kind),
      ids.map((id) => (id.startsWith("s") ? "stale" : "applied")),
    );
    failing = true;
    calls = 0;
    await assert.rejects(runBulk(client, operations, options), /bad request/);
    assert.equal(open, 0, "no request of the failed write still runs");
    assert.equal(calls, 1, "no request started after the failed one");
  });

  test("429 and 5xx items are retried, 409 counts as stale, other errors are poison", async () => {
    const responses = [
      bulkReply({ errors: true, items: [{ index: { status: 201 } }, { index: { status: 429, error: { type: "es_rejected_execution_exception", reason: "queue full" } } }, { index: { status: 409 } }, { index: { status: 400, error: { type: "document_parsing_exception", reason: "bad" } } }, { index: { status: 503 } }] }),
      bulkReply({ errors: true, items: [{ index: { status: 200 } }, { index: { status: 503 } }] }),
      bulkReply({ errors: true, items: [{ index: { status: 503 } }] }),
    ];
    const sent: string[] = [];
    const client = {
      transport: {
        request: async (params: { bulkBody: Buffer }) => {
          sent.push(params.bulkBody.toString());
          return responses.shift();
        },
      },
    } as unknown as Client;
    const operations = NdjsonOperations.ofLines(["a", "b", "c", "d", "e"].map((id) => [`{"index":{"_id":"${id}"}}`, "{}"]));
    const outcomes = await runBulk(client, operations, {
      maxBytes: 1 << 20,
      refresh: false,
      retry: { initial: 1, max: 2 },
      itemAttempts: 3,
      signal: AbortSignal.timeout(5_000),
      logger: testLogger(),
      sink: "s",
    });
    assert.deepEqual(
      outcomes.map((o) => (o.kind === "failed" ? `failed:${o.retriable}` : o.kind)),
      ["applied", "applied", "stale", "failed:false", "failed:true"],
    );
    assert.equal(sent.length, 3);
    assert.match(sent[1]!, /"_id":"b".*\n.*\n.*"_id":"e"/s);
  });

  test("a reply without errors applies every item sent; one that does not answer each of them is read item by item", async () => {
    const operations = NdjsonOperations.ofLines(["a", "b", "c"].map((id) => [`{"index":{"_id":"${id}"}}`, "{}"]));
    const run = async (reply: ReturnType<typeof bulkReply>) => {
      const client = { transport: { request: async () => reply }, connectionPool: { connections: [] } } as unknown as Client;
      return (await runBulk(client, operations, { ...bulkOptions, itemAttempts: 1 })).map((o) => (o.kind === "failed" ? `failed:${o.retriable}:${o.reason}` : o.kind));
    };
    assert.deepEqual(await run(itemsReply([201, 200, 201])), ["applied", "applied", "applied"]);
    // Two items for three operations: the third has no result (retriable), as before.
    assert.deepEqual(await run(bulkReply({ errors: false, items: [{ index: { status: 201 } }, { index: { status: 201 } }] })), ["applied", "applied", "failed:true:no result for this item in the bulk response"]);
    // `errors` after the items (another layout): read item by item.
    assert.deepEqual(await run(bulkReply({ items: [{ index: { status: 201 } }, { index: { status: 409 } }, { index: { status: 201 } }], errors: false })), ["applied", "stale", "applied"]);
    assert.deepEqual(await run(itemsReply([201, 409, 400])), ["applied", "stale", "failed:false:400 t: r"]);
  });

  test("an error status fails the request as the client's own error would", async () => {
    const operations = NdjsonOperations.ofLines([[`{"index":{"_id":"a"}}`, "{}"]]);
    const failing = (reply: ReturnType<typeof bulkReply>) => ({ transport: { request: async () => reply }, connectionPool: { connections: [] } }) as unknown as Client;
    await assert.rejects(runBulk(failing(bulkReply({ error: { type: "security_exception", reason: "missing authentication credentials" }, status: 401 }, 401)), operations, bulkOptions), {
      code: "SINK_AUTH_FAILED",
      message: /refused the sink's credentials \(401\).*security_exception/,
    });
    await assert.rejects(runBulk(failing(bulkReply({ error: { type: "illegal_argument_exception", reason: "bad" }, status: 400 }, 400)), operations, bulkOptions), {
      code: "SINK_REQUEST_FAILED",
      message: /illegal_argument_exception/,
    });
    await assert.rejects(runBulk(failing(bulkReply(null, 400, "no JSON here")), operations, bulkOptions), { code: "SINK_REQUEST_FAILED", message: /no JSON here/ });
  });
});
