import assert from "node:assert/strict";
import { test } from "node:test";
import { decodeCatalogMarks, encodeCatalogMarks, NO_MARKS } from "./catalog-marks.ts";

test("catalog marks round-trip; unknown parts stay unknown, and nothing at all encodes as nothing", () => {
  const marks = {
    publication: { publication: 16400, members: new Map([[16384, 16401], [16390, 16402]]) },
    partitions: new Map([[16500, new Map([[16501, 16501], [16502, 17000]])], [16600, new Map<number, number>()]]),
    labels: new Map([[16700, "sad"], [16701, "o'k \"quoted\""]]),
  };
  assert.deepEqual(decodeCatalogMarks(encodeCatalogMarks(marks)), marks);
  assert.deepEqual(decodeCatalogMarks(encodeCatalogMarks({ ...NO_MARKS, labels: new Map() })), { ...NO_MARKS, labels: new Map() });
  assert.equal(encodeCatalogMarks(NO_MARKS), null);
  assert.deepEqual(decodeCatalogMarks(null), NO_MARKS);
});

test("marks that do not read are unknown, part by part", () => {
  assert.deepEqual(decodeCatalogMarks("{not json"), NO_MARKS);
  assert.deepEqual(decodeCatalogMarks("[1,2]"), NO_MARKS);
  const partly = decodeCatalogMarks(JSON.stringify({ publication: [1, [2, 3, 4]], partitions: [[5, [6, 7]]], labels: [[8, 9]] }));
  assert.equal(partly.publication, null, "an odd list of pairs");
  assert.deepEqual(partly.partitions, new Map([[5, new Map([[6, 7]])]]));
  assert.equal(partly.labels, null, "a label that is not text");
});

test("the same marks listed in another order make the same text (nothing new is written for them)", () => {
  const one = encodeCatalogMarks({ publication: { publication: 1, members: new Map([[3, 4], [1, 2]]) }, partitions: new Map([[9, new Map([[11, 1], [10, 2]])], [5, new Map()]]), labels: new Map([[8, "b"], [7, "a"]]) });
  const other = encodeCatalogMarks({ publication: { publication: 1, members: new Map([[1, 2], [3, 4]]) }, partitions: new Map([[5, new Map()], [9, new Map([[10, 2], [11, 1]])]]), labels: new Map([[7, "a"], [8, "b"]]) });
  assert.equal(one, other);
});
