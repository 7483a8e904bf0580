/**
 * Bulk requests against the real Elasticsearch: what one document can do to a request. A document
 * larger than `http.max_content_length` (100 MB by default) makes Elasticsearch refuse the whole
 * request with 413; it must come back as that item's permanent failure (the sink's on_error), with
 * the other documents of the batch applied, not as an error that stops the sink.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { after, test } from "node:test";
import { Client } from "@elastic/elasticsearch";
import { elasticsearch } from "../../test/services/ports.ts";
import { testLogger } from "../sinks/test-config.ts";
import { runBulk } from "./bulk.ts";
import { NdjsonOperations } from "./ndjson-operations.ts";

const client = new Client({ node: elasticsearch.url });
const index = `sluice_bulk_${randomBytes(5).toString("hex")}`;

after(async () => {
  await client.indices.delete({ index, ignore_unavailable: true });
  await client.close();
});

const operation = (id: string, document: Record<string, unknown>) => [JSON.stringify({ index: { _index: index, _id: id } }), JSON.stringify(document)];

test("a document beyond http.max_content_length fails alone and permanently (413); the rest of the batch applies", { timeout: 60_000 }, async () => {
  await client.indices.create({ index, mappings: { properties: { v: { type: "keyword", index: false, doc_values: false } } } });
  const huge = "x".repeat(101 * 2 ** 20);
  const outcomes = await runBulk(client, NdjsonOperations.ofLines([operation("small-1", { v: "a" }), operation("huge", { v: huge }), operation("small-2", { v: "b" })]), {
    // One body for all three: the 413 refuses the request, so the sink must find the document that caused it.
    maxBytes: 200 * 2 ** 20,
    refresh: true,
    retry: { initial: 10, max: 100 },
    signal: new AbortController().signal,
    logger: testLogger(),
    sink: "bulk-test",
  });
  assert.deepEqual(outcomes[0], { kind: "applied" });
  assert.deepEqual(outcomes[2], { kind: "applied" });
  const failed = outcomes[1]!;
  assert.equal(failed.kind, "failed");
  assert.equal(failed.kind === "failed" && failed.retriable, false, "permanent: retrying cannot shrink the document");
  assert.match(failed.kind === "failed" ? failed.reason : "", /413.*http\.max_content_length/);
  const stored = await client.count({ index });
  assert.equal(stored.count, 2);
});

test("each operation is checked against the index its own alias named: one landing in the other of two expected indexes fails as moved", { timeout: 30_000 }, async () => {
  // A rebuild's mirror writes through two aliases (the live one and the shadow's): the alias of one moved onto the other's index.
  const [first, second] = [`${index}_a`, `${index}_b`];
  await client.indices.create({ index: first, aliases: { [`${first}_alias`]: {} } });
  await client.indices.create({ index: second, aliases: { [`${second}_alias`]: {} } });
  try {
    await client.indices.updateAliases({ actions: [{ remove: { index: first, alias: `${first}_alias` } }, { add: { index: second, alias: `${first}_alias` } }] });
    const through = (alias: string, id: string) => [JSON.stringify({ index: { _index: alias, _id: id } }), JSON.stringify({ v: id })];
    const expected = [first, second];
    const outcomes = await runBulk(client, NdjsonOperations.ofLines([through(`${first}_alias`, "1"), through(`${second}_alias`, "2")]), {
      maxBytes: 2 ** 20,
      refresh: false,
      requireAlias: true,
      expectIndex: (operation) => expected[operation]!,
      retry: { initial: 10, max: 100 },
      signal: new AbortController().signal,
      logger: testLogger(),
      sink: "bulk-test",
    });
    assert.deepEqual(outcomes, [{ kind: "failed", retriable: false, reason: `written to index "${second}", not "${first}"`, target: "moved" }, { kind: "applied" }]);
  } finally {
    await client.indices.delete({ index: [first, second], ignore_unavailable: true });
  }
});
