import assert from "node:assert/strict";
import { test } from "node:test";
import { tableReadings } from "./table-label.ts";

test("a label is read at each of its dots, the shortest schema first", () => {
  assert.deepEqual(tableReadings("public.orders"), [{ schema: "public", table: "orders" }]);
  assert.deepEqual(tableReadings("a.b.c"), [
    { schema: "a", table: "b.c" },
    { schema: "a.b", table: "c" },
  ]);
  assert.deepEqual(tableReadings("sales ü.2024.x y"), [
    { schema: "sales ü", table: "2024.x y" },
    { schema: "sales ü.2024", table: "x y" },
  ]);
});

test("a label with no dot between two non-empty parts has no reading", () => {
  assert.deepEqual(tableReadings("orders"), []);
  assert.deepEqual(tableReadings(".orders"), []);
  assert.deepEqual(tableReadings("orders."), []);
  assert.deepEqual(tableReadings("a..b"), [
    { schema: "a", table: ".b" },
    { schema: "a.", table: "b" },
  ]);
});
