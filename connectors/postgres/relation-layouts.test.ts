import { test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { joinCheckpoints } from "../contracts.ts";
import type { Checkpoint, Position } from "../contracts.ts";
import { decodeResume, encodeResume } from "../common/incremental-snapshot-state.ts";
import type { SnapshotTask } from "../common/incremental-snapshot-state.ts";
import { keepEntries } from "../topics/checkpoint-codec.ts";
import { CHUNK_BYTES, marksPieces, relationLayoutsOf, RelationLayouts } from "./relation-layouts.ts";
import type { RelationLayout } from "./relation-layouts.ts";
import { SNAPSHOT_INCOMPLETE } from "./positions.ts";

const logger = pino({ level: "silent" });
const at = (change: number, commit = change): Position => ({ commit: BigInt(commit), change: BigInt(change) });
const layout = (table: string, column = "note"): RelationLayout => ({
  schema: "public",
  table,
  columns: [
    { number: 1, name: "id", typeOid: 23, typeModifier: -1 },
    { number: 3, name: column, typeOid: 25, typeModifier: -1 },
  ],
});
/** What a topic log keeps per RelationLayouts: its last checkpoint with the entries written beside it so far. */
const logs = new WeakMap<RelationLayouts, Checkpoint>();
/** The checkpoint a source hands on at `position`, as PostgresSource.batch builds it, with its entries as written. */
const built = (layouts: RelationLayouts, position: Position, tasks: readonly SnapshotTask[] = []) => {
  const resume = encodeResume(layouts.rebase(decodeResume(position.resume).base, position), tasks);
  const { entries, written } = layouts.entries();
  const checkpoint: Checkpoint = { source: "pg", position: resume === undefined ? position : { ...position, resume }, ...(entries === undefined ? {} : { entries }) };
  return { checkpoint, written };
};
/** Stores the checkpoint in the log, then acknowledges it: what readCheckpoint returns from then on. */
const store = (layouts: RelationLayouts, made: ReturnType<typeof built>): Checkpoint => {
  const kept = keepEntries(logs.get(layouts) ?? null, made.checkpoint);
  logs.set(layouts, kept);
  layouts.durable(made.written);
  return kept;
};
const checkpoint = (layouts: RelationLayouts, position: Position, tasks: readonly SnapshotTask[] = []): Checkpoint => store(layouts, built(layouts, position, tasks));

test("the layouts published through a checkpoint's position round-trip through it; later ones wait for a later checkpoint", () => {
  const layouts = new RelationLayouts(logger);
  assert.equal(layouts.restore(null), null, "no checkpoint: unknown");
  assert.equal(checkpoint(layouts, at(5)).position.resume, undefined, "nothing published: the checkpoint is as before");
  layouts.note(16384, layout("orders"), null);
  layouts.note(16385, layout("items"), at(20, 30));
  const first = checkpoint(layouts, at(10));
  assert.deepEqual(relationLayoutsOf(first), new Map([[16384, layout("orders")]]));
  // Within the transaction, before the change the Relation message precedes: not yet.
  assert.deepEqual([...relationLayoutsOf(checkpoint(layouts, at(19, 30)))!.keys()], [16384]);
  const second = checkpoint(layouts, at(30));
  assert.deepEqual(relationLayoutsOf(second), new Map([[16384, layout("orders")], [16385, layout("items")]]));
  // A resume from the older checkpoint compares with what was published through it.
  assert.deepEqual(layouts.restore(first), new Map([[16384, layout("orders")]]));
});

test("a layout counts only once what it set off is done, and later layouts wait behind it", async () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore({ source: "pg", position: checkpoint(new RelationLayouts(logger), at(1)).position });
  layouts.note(1, layout("orders"), at(5));
  layouts.note(1, layout("moved"), at(10), new Promise<void>((resolve) => setTimeout(resolve, 10)));
  layouts.note(2, layout("items"), at(12));
  const before = relationLayoutsOf(checkpoint(layouts, at(20)));
  assert.deepEqual(before, new Map([[1, layout("orders")]]), "the rename's read not yet asked for: a crash resumes with the old name and tells it again");
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(21))), new Map([[1, layout("moved")], [2, layout("items")]]));
  layouts.note(1, null, at(25));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(25))), new Map([[2, layout("items")]]), "no longer captured: forgotten");
});

test("a checkpoint of the exported initial snapshot keeps its own resume text; snapshot tasks ride after the layouts", () => {
  const layouts = new RelationLayouts(logger);
  layouts.note(7, layout("orders"), null);
  assert.equal(layouts.rebase(SNAPSHOT_INCOMPLETE, at(3)), SNAPSHOT_INCOMPLETE);
  const task: SnapshotTask = { id: "t1", table: "public.orders", where: null, lastKey: null, rowsDone: 0, rowsEstimated: null, resetVersion: null, requestedAtMs: 1, startedAtMs: null, origin: "cli" };
  const stored = checkpoint(layouts, at(3), [task]);
  assert.deepEqual(decodeResume(stored.position.resume).tasks, [task]);
  assert.deepEqual(relationLayoutsOf(stored), new Map([[7, layout("orders")]]));
});

test("a checkpoint without layouts, or with unreadable ones, is unknown; pruned relations are left out", () => {
  assert.equal(relationLayoutsOf({ source: "pg", position: at(1) }), null);
  assert.equal(relationLayoutsOf({ source: "pg", position: { ...at(1), resume: "relations:{not json" } }), null);
  assert.equal(relationLayoutsOf({ source: "pg", position: { ...at(1), resume: 'relations:[[1,"public","t",[["x"]]]]' } }), null);
  assert.equal(relationLayoutsOf({ source: "pg", position: { ...at(1), resume: "relations:@3.2" }, entries: { "relation-layouts/3/0": "[]" } }), null, "a chunk missing");
  const layouts = new RelationLayouts(logger);
  layouts.note(1, layout("a"), null);
  layouts.note(2, layout("b"), null);
  const stored = checkpoint(layouts, at(2));
  layouts.restore(stored);
  layouts.prune((relid) => relid === 2);
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(3))), new Map([[2, layout("b")]]));
});

test("a table the record lacks (quiet since an upgrade, snapshot.mode never) is seeded from the catalog and counts from where the catalog was read, between changes by position", async () => {
  const layouts = new RelationLayouts(logger);
  // A checkpoint from before the record was kept: nothing known.
  assert.equal(layouts.restore({ source: "pg", position: at(1) }), null);
  assert.deepEqual(layouts.missing([1, 2]), [1, 2]);
  layouts.seed(new Map([[1, layout("orders_v2")], [2, layout("quiet")]]), at(50));
  // The stream from the checkpoint: relation 1 still under its old name at 10 (renamed later, before the catalog read).
  layouts.note(1, layout("orders"), at(10));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(20))), new Map([[1, layout("orders")]]), "below the catalog read: the name the stream published there, no seed");
  const seeded = checkpoint(layouts, at(60));
  assert.deepEqual(relationLayoutsOf(seeded), new Map([[1, layout("orders_v2")], [2, layout("quiet")]]), "from the catalog read on: the quiet table too");
  // A change after the catalog read wins over the seed.
  layouts.note(2, layout("quiet_renamed"), at(70));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(70)))!.get(2), layout("quiet_renamed"));
  // Restarting from the seeded checkpoint: the quiet table renamed while stopped is compared with its seeded name.
  assert.deepEqual(layouts.restore(seeded)!.get(2), layout("quiet"));
  assert.deepEqual(layouts.missing([1, 2, 3]), [3]);
});

test("a seed waits behind a change whose read is not yet asked for, when the change is below it", async () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.seed(new Map([[2, layout("quiet")]]), at(50));
  layouts.note(1, layout("moved"), at(10), new Promise<void>((resolve) => setTimeout(resolve, 10)));
  assert.equal(relationLayoutsOf(checkpoint(layouts, at(60))), null);
  await new Promise((resolve) => setTimeout(resolve, 20));
  assert.deepEqual(relationLayoutsOf(checkpoint(layouts, at(60))), new Map([[1, layout("moved")], [2, layout("quiet")]]));
});

/** `count` relations of 6 columns with long names: ~0.35 KiB each in the record. */
const many = (count: number, prefix = "table"): Map<number, RelationLayout> =>
  new Map(
    Array.from({ length: count }, (_, i): [number, RelationLayout] => [
      100_000 + i,
      { schema: "warehouse_schema", table: `${prefix}_${i}_with_a_long_name`, columns: Array.from({ length: 6 }, (_, c) => ({ number: c + 1, name: `column_${c}_with_a_rather_long_name_ö`, typeOid: 1043, typeModifier: 259 })) },
    ]),
  );
const names = (entries: Checkpoint["entries"]): string[] => Object.keys(entries ?? {}).sort();
const chunksOf = (entries: Checkpoint["entries"]): [string, string | null][] => Object.entries(entries ?? {}).filter(([name]) => name.startsWith("relation-layouts/c/"));

test("the record holds any number of tables: 5,000 relations (1.7 MB, over the 256 KiB a checkpoint carried) round-trip in chunks of at most 64 KiB beside the checkpoint, whose own text stays small; a rename writes one chunk", () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  const tables = many(5_000);
  for (const [relid, l] of tables) layouts.note(relid, l, at(10));
  const made = built(layouts, at(20));
  const chunks = chunksOf(made.checkpoint.entries);
  const bytes = chunks.reduce((sum, [, text]) => sum + Buffer.byteLength(text!), 0);
  assert.ok(bytes > 1024 * 1024 && chunks.length > 1, `${chunks.length} chunks, ${bytes} bytes`);
  for (const [name, text] of chunks) assert.ok(Buffer.byteLength(text!) <= CHUNK_BYTES, `${name}: ${Buffer.byteLength(text!)} bytes`);
  assert.ok(made.checkpoint.position.resume!.length < 50, made.checkpoint.position.resume);
  const stored = store(layouts, made);
  assert.deepEqual(relationLayoutsOf(stored), tables);
  // A rename: the chunk holding the table and a new manifest, not the whole record.
  layouts.note(100_002, layout("renamed"), at(30));
  const renamed = built(layouts, at(31)).checkpoint.entries;
  assert.equal(chunksOf(renamed).length, 1);
  assert.equal(names(renamed).length, 2, "one chunk and the manifest");
  // A resume from it (a restart): every table compared with its stored layout, and a change after it writes one chunk too.
  const restarted = new RelationLayouts(logger);
  assert.deepEqual(restarted.restore(stored), tables);
  assert.deepEqual(restarted.missing([...tables.keys()]), []);
  restarted.note(102_500, layout("renamed_too"), at(30));
  assert.equal(chunksOf(built(restarted, at(31)).checkpoint.entries).length, 1);
});

test("the record is written beside a checkpoint only when it changes, until a checkpoint carrying it is acknowledged; entries of the version it replaces are deleted after that", () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.note(1, layout("orders"), at(5));
  // Two checkpoints before either is acknowledged (batches in flight, or a run of slices): both carry it.
  const first = built(layouts, at(10));
  const second = built(layouts, at(11));
  assert.equal(names(first.checkpoint.entries).length, 2, "a chunk and the manifest");
  assert.deepEqual(second.checkpoint.entries, first.checkpoint.entries);
  const stored = store(layouts, second);
  layouts.durable(first.written);
  const quiet = built(layouts, at(12));
  assert.equal(quiet.checkpoint.entries, undefined, "no change: the checkpoint only names the version");
  assert.equal(quiet.checkpoint.position.resume, stored.position.resume);
  store(layouts, quiet);
  layouts.note(1, layout("moved"), at(15));
  const renamed = store(layouts, built(layouts, at(20)));
  assert.notEqual(renamed.position.resume, stored.position.resume);
  assert.equal(names(renamed.entries).length, 4, "the old version's entries are kept until a checkpoint naming the new one is acknowledged");
  const next = built(layouts, at(21));
  assert.deepEqual(next.checkpoint.entries, Object.fromEntries(names(stored.entries).map((name) => [name, null])));
  const cleaned = store(layouts, next);
  assert.equal(names(cleaned.entries).length, 2);
  assert.deepEqual(relationLayoutsOf(cleaned), new Map([[1, layout("moved")]]));
  assert.equal(built(layouts, at(22)).checkpoint.entries, undefined);
});

test("a run of slices stored in one write (capture: the last checkpoint, with every slice's entries) and each slice acknowledged: a version made between the acks, back to a layout of the run, names only stored entries", () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.note(1, layout("orders", "note"), at(1));
  checkpoint(layouts, at(2));
  // A run of two slices: a column renamed (the first slice's version, its entries only in the first slice's checkpoint), then back.
  layouts.note(1, layout("orders", "renamed"), at(3));
  const first = built(layouts, at(4));
  layouts.note(1, layout("orders", "note"), at(5));
  const second = built(layouts, at(6));
  assert.equal(second.checkpoint.entries, undefined, "back to the stored version's entries: nothing to write");
  logs.set(layouts, keepEntries(logs.get(layouts)!, joinCheckpoints(first.checkpoint, second.checkpoint)));
  layouts.durable(first.written);
  // Read on meanwhile: renamed again (the first slice's layout), its checkpoint made between the two acknowledgements.
  layouts.note(1, layout("orders", "renamed"), at(7));
  const next = built(layouts, at(8));
  layouts.durable(second.written);
  const stored = store(layouts, next);
  assert.deepEqual(relationLayoutsOf(stored), new Map([[1, layout("orders", "renamed")]]), "the stored checkpoint's record is there (only the last slice's entries stored: unreadable)");
  const restarted = new RelationLayouts(logger);
  assert.deepEqual(restarted.restore(stored), new Map([[1, layout("orders", "renamed")]]));
});

test("kill -9 between the record's entries and the checkpoint naming them (at-least-once Kafka): the stored checkpoint's version is still there", () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.note(1, layout("orders"), at(5));
  layouts.note(2, layout("items"), at(5));
  const before = store(layouts, built(layouts, at(10)));
  layouts.note(1, layout("moved"), at(15));
  const lost = built(layouts, at(20));
  // The entries were written, the checkpoint was not: what readCheckpoint returns after the restart.
  const afterCrash = keepEntries(before, { source: "pg", position: before.position, entries: lost.checkpoint.entries! });
  const restarted = new RelationLayouts(logger);
  assert.deepEqual(restarted.restore(afterCrash), new Map([[1, layout("orders")], [2, layout("items")]]), "the old name: the stream from there tells the rename again");
  // Told again, the rename makes the same entries; once its checkpoint is acknowledged, the old version's are deleted.
  restarted.note(1, layout("moved"), at(15));
  const made = built(restarted, at(20));
  assert.deepEqual(made.checkpoint.position.resume, lost.checkpoint.position.resume);
  const stored = store(restarted, made);
  restarted.durable(made.written);
  const next = built(restarted, at(21)).checkpoint.entries;
  assert.deepEqual(next, Object.fromEntries(names(before.entries).map((name) => [name, null])));
  assert.deepEqual(relationLayoutsOf(stored), new Map([[1, layout("moved")], [2, layout("items")]]));
});

test("checkpoints of older Sluice versions are read (the record inline, or in numbered entries), and the next checkpoint moves the record to this form", () => {
  const inline = 'relations:[[16384,"public","orders",[[1,"id",23,-1],[3,"note",25,-1]]]]';
  const task: SnapshotTask = { id: "t1", table: "public.items", where: null, lastKey: null, rowsDone: 0, rowsEstimated: null, resetVersion: null, requestedAtMs: 1, startedAtMs: null, origin: "cli" };
  const old: Checkpoint = { source: "pg", position: { ...at(40), resume: encodeResume(inline, [task])! } };
  const layouts = new RelationLayouts(logger);
  assert.deepEqual(layouts.restore(old), new Map([[16384, layout("orders")]]));
  const next = checkpoint(layouts, at(41), [task]);
  assert.match(decodeResume(next.position.resume).base!, /^relations:@[0-9a-f]{32}$/);
  assert.deepEqual(decodeResume(next.position.resume).tasks, [task]);
  assert.deepEqual(relationLayoutsOf(next), new Map([[16384, layout("orders")]]));

  const numbered: Checkpoint = { source: "pg", position: { ...at(50), resume: "relations:@3.1" }, entries: { "relation-layouts/3/0": inline.slice("relations:".length) } };
  const again = new RelationLayouts(logger);
  assert.deepEqual(again.restore(numbered), new Map([[16384, layout("orders")]]));
  logs.set(again, numbered);
  const moved = checkpoint(again, at(51));
  assert.deepEqual(relationLayoutsOf(moved), new Map([[16384, layout("orders")]]));
  assert.deepEqual(built(again, at(52)).checkpoint.entries, { "relation-layouts/3/0": null }, "the numbered entry is deleted once the new form is stored");
});

test("catalog marks ride in the record: restored from the checkpoint, written beside it only when they change, and the replaced ones deleted once a checkpoint without them is acknowledged", () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.note(1, layout("orders"), null);
  layouts.setMarks('{"labels":[]}');
  const first = checkpoint(layouts, at(10));
  const firstMarks = Object.keys(first.entries ?? {}).filter((name) => name.startsWith("relation-layouts/k/"));
  assert.equal(firstMarks.length, 1, "the marks' entry is written");
  assert.deepEqual(relationLayoutsOf(first), new Map([[1, layout("orders")]]), "the layouts read as before");

  const restarted = new RelationLayouts(logger);
  restarted.restore(first);
  assert.equal(restarted.restoredMarks(), '{"labels":[]}');
  restarted.setMarks('{"labels":[]}');
  const same = built(restarted, at(11));
  assert.equal(same.checkpoint.entries, undefined, "the same marks write nothing");
  restarted.setMarks('{"labels":[[7,"blue"]]}');
  logs.set(restarted, first);
  store(restarted, built(restarted, at(12)));
  // Entries no stored version has are deleted by the checkpoints after the one that made the new version stored.
  const second = checkpoint(restarted, at(13));
  const written = Object.keys(second.entries ?? {}).filter((name) => name.startsWith("relation-layouts/k/"));
  assert.equal(written.length, 1, `the replaced marks are deleted, the new ones kept: ${written.join(", ")}`);
  assert.notEqual(written[0], firstMarks[0]);
  assert.equal(Object.keys(second.entries ?? {}).filter((name) => name.startsWith("relation-layouts/c/")).length, 1, "the layouts' chunk is kept, not written again");
  const again = new RelationLayouts(logger);
  assert.deepEqual(again.restore(second), new Map([[1, layout("orders")]]));
  assert.equal(again.restoredMarks(), '{"labels":[[7,"blue"]]}');
});

test("kill -9 between new marks and the checkpoint naming them: the stored checkpoint still reads its own marks", () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.note(1, layout("orders"), null);
  layouts.setMarks("A");
  const stored = checkpoint(layouts, at(10));
  layouts.setMarks("B");
  // The entries written (at-least-once Kafka: before the checkpoint), the checkpoint not.
  const lost = built(layouts, at(11));
  const afterCrash = keepEntries(stored, { ...stored, entries: lost.checkpoint.entries ?? {} });
  const restarted = new RelationLayouts(logger);
  restarted.restore(afterCrash);
  assert.equal(restarted.restoredMarks(), "A");
});

test("a record whose marks' entry is missing keeps its layouts; the marks are unknown", () => {
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.note(1, layout("orders"), null);
  layouts.setMarks("A");
  const stored = checkpoint(layouts, at(10));
  const entries = Object.fromEntries(Object.entries(stored.entries ?? {}).filter(([name]) => !name.startsWith("relation-layouts/k/")));
  const restarted = new RelationLayouts(logger);
  assert.deepEqual(restarted.restore({ ...stored, entries }), new Map([[1, layout("orders")]]));
  assert.equal(restarted.restoredMarks(), null);
});

test("large catalog marks (thousands of partitions) are kept in entries of at most 48 KiB each, a surrogate pair never split; a change at the end writes the last one", () => {
  for (const piece of [1, 2, 3, 7]) {
    const text = "a😀b😀😀c";
    const pieces = marksPieces(text, piece);
    assert.equal(pieces.join(""), text);
    assert.ok(pieces.every((p) => !/[\uD800-\uDBFF]$/.test(p) && !/^[\uDC00-\uDFFF]/.test(p)), `whole characters in pieces of ${piece}: ${JSON.stringify(pieces)}`);
  }
  const marks = JSON.stringify({ labels: Array.from({ length: 20_000 }, (_, i) => [i, `label 😀 ${i}`]) });
  const layouts = new RelationLayouts(logger);
  layouts.restore(null);
  layouts.note(1, layout("orders"), null);
  layouts.setMarks(marks);
  const first = checkpoint(layouts, at(10));
  const pieces = Object.entries(first.entries ?? {}).filter(([name]) => name.startsWith("relation-layouts/k/"));
  assert.ok(pieces.length > 5, `${pieces.length} entries`);
  assert.ok(pieces.every(([, text]) => Buffer.byteLength(text!) <= 48 * 1024));
  const restarted = new RelationLayouts(logger);
  restarted.restore(first);
  assert.equal(restarted.restoredMarks(), marks);
  logs.set(restarted, first);
  restarted.setMarks(`${marks.slice(0, -2)},[20001,"new"]]}`);
  const written = Object.keys(built(restarted, at(11)).checkpoint.entries ?? {}).filter((name) => name.startsWith("relation-layouts/k/"));
  assert.equal(written.length, 1, "only the last piece is written again");
});
