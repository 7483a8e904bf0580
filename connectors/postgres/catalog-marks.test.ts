import assert from "node:assert/strict";
import { test } from "node:test";
import { compareMemberships, decodeCatalogMarks, encodeCatalogMarks, markedOut, NO_MARKS, OUT_OF_PUBLICATION } from "./catalog-marks.ts";

test("catalog marks round-trip; unknown parts stay unknown, and nothing at all encodes as nothing", () => {
  const marks = {
    publication: { publication: 16400, members: new Map([[16384, 16401], [16390, 16402]]) },
    partitions: new Map([[16500, new Map([[16501, 16501], [16502, 17000]])], [16600, new Map<number, number>()]]),
    attachments: new Map([[16500, new Map([[16501, 4_294_967_295 + 812], [16502, 912]])], [16600, new Map<number, number>()]]),
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

test("marks stored before the partitions' attachments were kept read with them unknown, and marks without them encode as before", () => {
  const before = JSON.stringify({ publication: [1, [2, 3]], partitions: [[5, [6, 7]]], labels: [[8, "a"]] });
  const read = decodeCatalogMarks(before);
  assert.equal(read.attachments, null);
  assert.deepEqual(read.partitions, new Map([[5, new Map([[6, 7]])]]));
  assert.equal(encodeCatalogMarks(read), before, "the same text: no new entry written for them");
});

test("the same marks listed in another order make the same text (nothing new is written for them)", () => {
  const one = encodeCatalogMarks({ publication: { publication: 1, members: new Map([[3, 4], [1, 2]]) }, partitions: new Map([[9, new Map([[11, 1], [10, 2]])], [5, new Map()]]), attachments: null, labels: new Map([[8, "b"], [7, "a"]]) });
  const other = encodeCatalogMarks({ publication: { publication: 1, members: new Map([[1, 2], [3, 4]]) }, partitions: new Map([[5, new Map()], [9, new Map([[10, 2], [11, 1]])]]), attachments: null, labels: new Map([[7, "a"], [8, "b"]]) });
  assert.equal(one, other);
});

const rows = (entries: [number, number][]) => ({ publication: 16400, members: new Map(entries) });

test("a captured table a look finds out of the publication stays marked out, and is re-added when a later look finds it back (put back by hand while Sluice's own put-back waited on a lock)", () => {
  // Look 1: X (16384) in. Look 2: a tool took X out (Sluice's put-back then fails on a lock). Look 3: the tool put it back.
  const first = compareMemberships(null, rows([[16384, 16401], [16390, 16402]]), [16384, 16390]);
  const out = compareMemberships(first.seen, rows([[16390, 16402]]), [16384, 16390]);
  assert.deepEqual(out.readded, []);
  assert.equal(out.seen?.members.get(16384), OUT_OF_PUBLICATION, "marked out, not forgotten");
  // Stored with the checkpoints as such (a restart in between compares with it too).
  const stored = decodeCatalogMarks(encodeCatalogMarks({ publication: out.seen, partitions: null, attachments: null, labels: null })).publication;
  assert.equal(stored?.members.get(16384), OUT_OF_PUBLICATION);
  const stillOut = compareMemberships(stored, rows([[16390, 16402]]), [16384, 16390]);
  assert.deepEqual(stillOut.readded, []);
  const back = compareMemberships(stillOut.seen, rows([[16384, 16410], [16390, 16402]]), [16384, 16390]);
  assert.deepEqual(back.readded, [{ relid: 16384, member: 16410, was: OUT_OF_PUBLICATION }]);
  assert.equal(back.seen?.members.get(16384), 16410);
  // Compared once: the next look finds nothing new.
  assert.deepEqual(compareMemberships(back.seen, rows([[16384, 16410], [16390, 16402]]), [16384, 16390]).readded, []);
});

test("only captured tables the last look saw are marked out or re-added; a publication created again compares nothing", () => {
  const look = compareMemberships(rows([[16384, 16401], [16500, 16501]]), rows([]), [16384, 16600]);
  assert.deepEqual([...(look.seen?.members ?? [])], [[16384, OUT_OF_PUBLICATION]], "not captured (16500) or never seen (16600): not marked");
  assert.deepEqual(compareMemberships(look.seen, { publication: 16999, members: new Map([[16384, 17000]]) }, [16384]).readded, []);
  assert.deepEqual(compareMemberships(rows([[16384, 16401]]), null, [16384]), { seen: null, readded: [] });
});

test("tables a start could not put back (a lock) are marked out, whatever row was stored for them", () => {
  const marks = markedOut(rows([[16384, 16401], [16390, 16402]]), [16384, 16395]);
  assert.deepEqual(marks.members, new Map([[16384, OUT_OF_PUBLICATION], [16390, 16402], [16395, OUT_OF_PUBLICATION]]));
  assert.deepEqual(compareMemberships(marks, rows([[16384, 16420], [16390, 16402], [16395, 16421]]), [16384, 16390, 16395]).readded, [
    { relid: 16384, member: 16420, was: OUT_OF_PUBLICATION },
    { relid: 16395, member: 16421, was: OUT_OF_PUBLICATION },
  ]);
});
