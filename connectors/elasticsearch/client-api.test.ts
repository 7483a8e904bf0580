import assert from "node:assert/strict";
import { test } from "node:test";
import LazyApi, { apiName } from "./client-api.ts";

const indexUrl = new URL("api/index.js", import.meta.resolve("@elastic/elasticsearch")).href;
const { default: IndexApi } = (await import(indexUrl)) as { default: new () => Record<string, unknown> };

/** An object made as the client makes itself (it extends the API and sets its transport). */
function clientOf<T extends object>(Api: new () => T, transport: object): T & { transport: object } {
  return Object.assign(new Api(), { transport });
}

test("the lazy API has every method and namespace of the client's API index, and nothing else", () => {
  const names = (prototype: object) => Object.getOwnPropertyNames(prototype).filter((name) => name !== "constructor").sort();
  assert.deepEqual(names(LazyApi.prototype), names(IndexApi.prototype));
  assert.ok(names(IndexApi.prototype).length > 80);
});

test("a method is the client's own function; a namespace is the client's class, made once per client with its transport", () => {
  const transport = {};
  const lazy = clientOf(LazyApi, transport) as unknown as Record<string, unknown>;
  const index = clientOf(IndexApi, transport);
  for (const name of Object.getOwnPropertyNames(IndexApi.prototype).filter((n) => n !== "constructor")) {
    const expected = index[name] as { constructor: unknown; transport?: unknown } | ((...args: unknown[]) => unknown);
    const actual = lazy[name] as typeof expected;
    if (typeof expected === "function") {
      assert.equal(actual, expected, name);
    } else {
      assert.equal(actual.constructor, expected.constructor, name);
      assert.equal((actual as { transport: unknown }).transport, transport, name);
      assert.equal(lazy[name], actual, `${name}: the same namespace again`);
    }
  }
  const other = clientOf(LazyApi, {}) as unknown as Record<string, unknown>;
  assert.notEqual(other["indices"], lazy["indices"]);
});

test("API names are the files' names in camel case", () => {
  assert.equal(apiName("delete_by_query.js"), "deleteByQuery");
  assert.equal(apiName("indices.js"), "indices");
  assert.equal(apiName("search_mvt.js"), "searchMvt");
});
