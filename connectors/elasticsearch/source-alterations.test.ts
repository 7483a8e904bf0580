import assert from "node:assert/strict";
import { test } from "node:test";
import { sourceAlterations } from "./indices.ts";

test("an index's _source is taken as altered by a filter, a synthetic or disabled mode under either setting name, or an index mode whose default is synthetic", () => {
  assert.deepEqual(sourceAlterations({ _source: { includes: ["*"] } }, undefined), [], "includes * keeps every field");
  assert.deepEqual(sourceAlterations({ _source: { includes: ["id", "v"] } }, undefined), ['_source.includes ["id","v"]']);
  assert.deepEqual(sourceAlterations({ _source: { excludes: ["v"] } }, undefined), ['_source.excludes ["v"]']);
  assert.deepEqual(sourceAlterations(undefined, { index: { source: { mode: "synthetic" } } }), ['index.source.mode "synthetic"']);
  assert.deepEqual(sourceAlterations(undefined, { index: { mapping: { source: { mode: "disabled" } } } }), ['index.mapping.source.mode "disabled"']);
  assert.deepEqual(sourceAlterations(undefined, { index: { mode: "logsdb" } }), ['index.mode "logsdb" (a synthetic _source by default)']);
  assert.deepEqual(sourceAlterations(undefined, { index: { mode: "time_series" } }), ['index.mode "time_series" (a synthetic _source by default)']);
  assert.deepEqual(sourceAlterations(undefined, { index: { mode: "logsdb", source: { mode: "stored" } } }), [], "logsdb with a stored _source keeps it");
  assert.deepEqual(sourceAlterations(undefined, { index: { mode: "standard" } }), []);
  assert.deepEqual(sourceAlterations({ _source: { enabled: true } }, { index: { source: { mode: "stored" } } }), []);
});
