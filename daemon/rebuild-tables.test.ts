import assert from "node:assert/strict";
import { test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import type { SluiceError } from "../connectors/errors.ts";
import { REBUILD_UNKNOWN_TABLE, rebuildTopics } from "./rebuild-tables.ts";

const config = loadConfigText(
  "c.yaml",
  `name: dep
sources: [{kind: postgres, name: pg, user: u, database: d, tables: ["public.*", "sales.*"]}]
topics: {kind: embedded, path: /tmp/unused-rebuild-tables.db}
sinks: [{kind: duckdb, name: wh, path: /tmp/unused-rebuild-tables.duckdb, tables: ["public.*"]}]
`,
);
const sink = config.sinks[0]!;
const topics = ["dep.pg.public.customers", "dep.pg.public.orders", "dep.pg.sales.orders", "dep.sluice.control", "dep.dlq.wh"];

test("a rebuild of some tables reads their data topics (named as schema.table or by topic) and the control topic; none given, every table", () => {
  const control = topics.find((t) => t.endsWith(".control"))!;
  assert.deepEqual(rebuildTopics(config, sink, topics), ["dep.pg.public.customers", "dep.pg.public.orders", control]);
  assert.deepEqual(rebuildTopics(config, sink, topics, ["public.orders"]), ["dep.pg.public.orders", control]);
  assert.deepEqual(rebuildTopics(config, sink, topics, ["dep.pg.public.customers", "public.orders"]), ["dep.pg.public.customers", "dep.pg.public.orders", control]);
});

test("a table the sink does not write is refused, naming the tables it does", () => {
  for (const table of ["sales.orders", "public.nope", "orders"]) {
    assert.throws(() => rebuildTopics(config, sink, topics, ["public.orders", table]), (error: SluiceError) => {
      assert.equal(error.code, REBUILD_UNKNOWN_TABLE);
      assert.equal(error.message, `sink "wh" writes no table "${table}" (give schema.table or its topic; its tables: public.customers, public.orders). Nothing changed.`);
      return true;
    });
  }
});

test("a sink's tables pattern matching a schema whose name holds a dot takes that schema's topics", () => {
  const dotted = loadConfigText(
    "c.yaml",
    `name: dep
sources: [{kind: postgres, name: pg, user: u, database: d, tables: ["*.*"]}]
topics: {kind: embedded, path: /tmp/unused-rebuild-tables.db}
sinks: [{kind: duckdb, name: wh, path: /tmp/unused-rebuild-tables.duckdb, tables: ["sales?eu.*"]}]
`,
  );
  // Found live: the topic's name was read at its first dot (schema "sales", table "eu.orders"), which the pattern does not match.
  const names = ["dep.pg.sales.eu.orders", "dep.pg.sales.orders", "dep.sluice.control"];
  assert.deepEqual(rebuildTopics(dotted, dotted.sinks[0]!, names), ["dep.pg.sales.eu.orders", "dep.sluice.control"]);
  assert.deepEqual(rebuildTopics(dotted, dotted.sinks[0]!, names, ["sales.eu.orders"]), ["dep.pg.sales.eu.orders", "dep.sluice.control"]);
});
