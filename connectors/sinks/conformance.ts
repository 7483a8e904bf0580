/**
 * The conformance suite every sink passes against its real target: applied state equals the
 * source after inserts, updates, deletes, key changes, NULLs, unchanged-TOAST updates and
 * truncates; redelivery and replay never move visible state backwards (sampled after every
 * write); schema evolution; poison rows; offsets stored with the data; rebuild and swap.
 * Each sink's `*.int.test.ts` calls `sinkConformanceSuite` with a harness for its target.
 */
import assert from "node:assert/strict";
import { after, before, describe, test } from "node:test";
import type { SinkChange, TableSchema, TopicPartitionOffset } from "../contracts.ts";
import { UNCHANGED } from "../contracts.ts";
import { SluiceError } from "../errors.ts";
import type { VersionedSink } from "./contract.ts";
import { ROW_REJECTED, SCHEMA_UNSUPPORTED } from "./errors.ts";
import { renderTarget } from "./naming.ts";
import { Events, randomTableName, tableSchema } from "./test-events.ts";

/** A row as users see it: every column as text, null for NULL. */
export type VisibleRow = Record<string, string | null>;

export interface SinkHarness {
  readonly kind: string;
  /** A new, unopened sink over the suite's storage. Same `name`: same consumer group (offsets). Template: TARGET_TEMPLATE. */
  createSink(name: string, onError?: "halt" | "dead-letter"): VersionedSink;
  /** Whether, under `on_error: halt`, the sink applies nothing of a table after its first failing change in a write. */
  readonly haltsAtFirstFailure: boolean;
  /** The rows users see under the natural name `target`, each value as text ("12.50", "true"), in any order. */
  visibleRows(target: string, schema: TableSchema): Promise<VisibleRow[]>;
  /** Removes targets the suite created (tables, views, indexes, offsets). */
  cleanup(targets: readonly string[]): Promise<void>;
}

export const TARGET_TEMPLATE = "{schema}_{table}";

const BASE_COLUMNS = [
  ["id", "integer"],
  ["name", "text"],
  ["amount", "numeric(10,2)"],
  ["note", "text"],
  ["flag", "boolean"],
] as const;

const signal = () => AbortSignal.timeout(60_000);

function sortRows(rows: VisibleRow[]): VisibleRow[] {
  return [...rows].sort((a, b) => Number(a["id"]) - Number(b["id"]));
}

/** Compares rows by id; only the columns each expected row lists are compared (a listed null must be NULL). */
function expectRows(actual: VisibleRow[], expected: VisibleRow[], message?: string): void {
  const want = sortRows(expected);
  const got = sortRows(actual).map((row, i) => {
    const columns = Object.keys(want[i] ?? row);
    return Object.fromEntries(columns.map((c) => [c, row[c] ?? null]));
  });
  assert.deepEqual(got, want, message);
}

export function sinkConformanceSuite(harness: SinkHarness): void {
  describe(`sink conformance: ${harness.kind}`, () => {
    const targets: string[] = [];
    const sinks: VersionedSink[] = [];
    const sinkName = `conf_${randomTableName("s")}`;

    const newTable = (columns: readonly (readonly [string, string])[] = BASE_COLUMNS, key: readonly string[] = ["id"]) => {
      const schema = tableSchema(randomTableName(), columns, key);
      targets.push(renderTarget(TARGET_TEMPLATE, schema));
      return { schema, events: new Events(schema), target: renderTarget(TARGET_TEMPLATE, schema) };
    };
    const open = async (name = sinkName, onError: "halt" | "dead-letter" = "halt") => {
      const sink = harness.createSink(name, onError);
      await sink.open(signal());
      sinks.push(sink);
      return sink;
    };
    const write = async (sink: VersionedSink, changes: SinkChange[], offsets?: TopicPartitionOffset[]) => {
      const result = await sink.write(changes, signal(), offsets);
      assert.deepEqual(result.failures.map((f) => `${f.index}: ${f.error.message}`), [], "no item failures");
      return result;
    };

    let sink: VersionedSink;
    before(async () => {
      sink = await open();
    });
    after(async () => {
      for (const s of sinks) await s.close().catch(() => undefined);
      await harness.cleanup(targets);
    });

    test("applies inserts, updates, deletes, key changes, NULLs, unchanged-TOAST updates and truncates like the source", async () => {
      const { schema, events, target } = newTable();
      await write(sink, [
        events.insert(10n, { id: 1, name: "a", amount: "1.50", note: "long note one", flag: true }),
        events.insert(11n, { id: 2, name: "b", amount: null, note: "n2", flag: false }),
        events.insert(12n, { id: 3, name: "c", amount: "-3.00", note: "n3", flag: null }),
      ]);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", name: "a", amount: "1.50", note: "long note one", flag: "true" },
        { id: "2", name: "b", amount: null, note: "n2", flag: "false" },
        { id: "3", name: "c", amount: "-3.00", note: "n3", flag: null },
      ]);

      await write(sink, [
        // unchanged-TOAST: note keeps its stored value
        events.update(20n, { id: 1, name: "a2", amount: "1.50", note: UNCHANGED, flag: true }),
        events.delete(21n, { id: 2 }),
        // primary-key change: delete of the old key, create of the new one
        events.delete(22n, { id: 3 }),
        events.insert(23n, { id: 30, name: "c", amount: "-3.00", note: "n3", flag: null }),
        events.insert(24n, { id: 4, name: null, amount: null, note: null, flag: null }),
        // within one batch: a later unchanged-TOAST update keeps the earlier update's value
        events.insert(25n, { id: 5, name: "e", amount: "5.00", note: "first", flag: true }),
        events.update(26n, { id: 5, name: "e", amount: "5.00", note: "second", flag: true }),
        events.update(27n, { id: 5, name: "e2", amount: "5.00", note: UNCHANGED, flag: true }),
      ]);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", name: "a2", amount: "1.50", note: "long note one", flag: "true" },
        { id: "4", name: null, amount: null, note: null, flag: null },
        { id: "5", name: "e2", amount: "5.00", note: "second", flag: "true" },
        { id: "30", name: "c", amount: "-3.00", note: "n3", flag: null },
      ]);

      // an update of the key inside one event (before has the old key) moves the row too
      await write(sink, [events.update(28n, { id: 40, name: "moved", amount: null, note: "x", flag: null }, { id: 30 })]);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", name: "a2" },
        { id: "4", name: null },
        { id: "5", name: "e2" },
        { id: "40", name: "moved" },
      ]);

      // truncate, then rows after it in the same batch; rows older than the truncate in the batch do not show
      await write(sink, [
        events.insert(29n, { id: 6, name: "before truncate", amount: null, note: null, flag: null }),
        events.truncate(30n),
        events.insert(31n, { id: 7, name: "after truncate", amount: "7.00", note: "n7", flag: false }),
        // a key that existed before the truncate, inserted again after it in the same batch
        events.insert(32n, { id: 1, name: "again", amount: null, note: null, flag: null }),
      ]);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", name: "again", amount: null, note: null, flag: null },
        { id: "7", name: "after truncate", amount: "7.00", note: "n7", flag: "false" },
      ]);
      await write(sink, [events.insert(33n, { id: 8, name: "h", amount: "8.00", note: "n8", flag: true })]);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", name: "again" },
        { id: "7", name: "after truncate" },
        { id: "8", name: "h" },
      ]);
    });

    test("a redelivered batch leaves the same state", async () => {
      const { schema, events, target } = newTable();
      const first = [
        events.insert(1n, { id: 1, name: "a", amount: "1.00", note: "n", flag: true }),
        events.insert(2n, { id: 2, name: "b", amount: "2.00", note: "n", flag: true }),
      ];
      const second = [
        events.update(3n, { id: 1, name: "a2", amount: "1.10", note: UNCHANGED, flag: false }),
        events.delete(4n, { id: 2 }),
        events.insert(5n, { id: 3, name: "c", amount: null, note: null, flag: null }),
      ];
      await write(sink, first);
      await write(sink, second);
      const expected = await harness.visibleRows(target, schema);
      expectRows(expected, [
        { id: "1", name: "a2", amount: "1.10", note: "n", flag: "false" },
        { id: "3", name: "c", amount: null, note: null, flag: null },
      ]);
      await write(sink, second);
      expectRows(await harness.visibleRows(target, schema), expected);
      await write(sink, [...first, ...second]);
      expectRows(await harness.visibleRows(target, schema), expected);
    });

    test("replaying older events after newer ones never moves visible state backwards (sampled after every write)", async () => {
      const { schema, events, target } = newTable();
      const history = [
        events.insert(100n, { id: 1, name: "v1", amount: "1.00", note: "n1", flag: true }),
        events.insert(101n, { id: 2, name: "v1", amount: "2.00", note: "n2", flag: true }),
        events.insert(102n, { id: 3, name: "v1", amount: "3.00", note: "n3", flag: true }),
        events.update(110n, { id: 1, name: "v2", amount: "1.50", note: UNCHANGED, flag: false }),
        events.delete(111n, { id: 2 }),
        events.update(112n, { id: 3, name: "v2", amount: "3.50", note: "n3b", flag: false }),
        events.delete(120n, { id: 3 }),
        events.insert(121n, { id: 3, name: "v3", amount: "3.75", note: "n3c", flag: true }),
        events.insert(122n, { id: 4, name: "v1", amount: null, note: null, flag: null }),
        events.delete(123n, { id: 4 }),
      ];
      for (const change of history) await write(sink, [change]);
      const final = await harness.visibleRows(target, schema);
      expectRows(final, [
        { id: "1", name: "v2", amount: "1.50", note: "n1", flag: "false" },
        { id: "3", name: "v3", amount: "3.75", note: "n3c", flag: "true" },
      ]);
      // every older event alone, oldest first: inserts of deleted rows (2, 4) must not come back
      for (const change of history) {
        await write(sink, [change]);
        expectRows(await harness.visibleRows(target, schema), final, `after replaying version ${change.event.source.position.change}`);
      }
      // newest first, in small batches
      const reversed = [...history].reverse();
      for (let i = 0; i < reversed.length; i += 3) {
        await write(sink, reversed.slice(i, i + 3));
        expectRows(await harness.visibleRows(target, schema), final, `after replaying batch ${i / 3}`);
      }
      // the whole range again as one batch
      await write(sink, history);
      expectRows(await harness.visibleRows(target, schema), final);
    });

    test("a replay of events older than a truncate does not bring rows back", async () => {
      const { schema, events, target } = newTable();
      const old = [
        events.insert(1n, { id: 1, name: "old", amount: null, note: null, flag: null }),
        events.insert(2n, { id: 2, name: "old", amount: null, note: null, flag: null }),
      ];
      await write(sink, old);
      await write(sink, [events.truncate(5n)]);
      await write(sink, [events.insert(6n, { id: 3, name: "new", amount: null, note: null, flag: null })]);
      const expected = [{ id: "3", name: "new" }];
      expectRows(await harness.visibleRows(target, schema), expected);
      for (const change of old) {
        await write(sink, [change]);
        expectRows(await harness.visibleRows(target, schema), expected);
      }
      // replaying the truncate itself does not remove newer rows
      await write(sink, [events.truncate(5n)]);
      expectRows(await harness.visibleRows(target, schema), expected);
    });

    test("a truncate that arrives after newer rows (a snapshot's reset follows its rows) removes only rows at or below its version", async () => {
      const row = (id: number, name: string) => ({ id, name, amount: null, note: null, flag: null });
      const text = (r: { id: number; name: string }): VisibleRow => ({ id: String(r.id), name: r.name });
      for (const sameBatch of [false, true]) {
        const { schema, events, target } = newTable();
        // An interrupted earlier attempt, up to the truncate's own version.
        const earlier = [events.insert(1n, row(1, "ghost"), "r"), events.insert(2n, row(2, "old"), "r"), events.insert(3n, row(3, "old"), "r"), events.insert(4n, row(9, "at the truncate"))];
        await write(sink, earlier);
        // The new snapshot's rows (v5) and streamed changes after them, then its reset at v4.
        const snapshot = [events.insert(5n, row(2, "new"), "r"), events.insert(5n, row(3, "new"), "r"), events.insert(5n, row(4, "new"), "r")];
        const streamed = [events.update(7n, row(4, "streamed")), events.insert(8n, row(5, "streamed"))];
        const reset = events.truncate(4n);
        if (sameBatch) await write(sink, [...snapshot, ...streamed, reset]);
        else {
          await write(sink, snapshot);
          await write(sink, streamed);
          expectRows(await harness.visibleRows(target, schema), [row(1, "ghost"), row(2, "new"), row(3, "new"), row(4, "streamed"), row(5, "streamed"), row(9, "at the truncate")].map(text), "before the reset");
          await write(sink, [reset]);
        }
        const expected = [row(2, "new"), row(3, "new"), row(4, "streamed"), row(5, "streamed")].map(text);
        expectRows(await harness.visibleRows(target, schema), expected, `after the reset (same batch: ${sameBatch})`);
        // Older rows replayed afterwards stay out; a newer row still applies.
        for (const change of earlier) await write(sink, [change]);
        expectRows(await harness.visibleRows(target, schema), expected, `after replaying the earlier attempt (same batch: ${sameBatch})`);
        await write(sink, [events.insert(9n, row(6, "later"))]);
        expectRows(await harness.visibleRows(target, schema), [...expected, text(row(6, "later"))], `a row newer than the reset applies (same batch: ${sameBatch})`);
      }
    });

    test("a new column reaches the target", async () => {
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["name", "text"],
      ]);
      await write(sink, [events.insert(1n, { id: 1, name: "a" })]);
      const wider = tableSchema(schema.table, [
        ["id", "integer"],
        ["name", "text"],
        ["extra", "character varying(10)"],
        ["qty", "integer"],
      ]);
      const newer = new Events(wider);
      await write(sink, [
        newer.insert(2n, { id: 2, name: "b", extra: "x", qty: 7 }),
        newer.update(3n, { id: 1, name: "a", extra: "y", qty: null }),
      ]);
      // an event still carrying the older schema (e.g. a replay) applies too
      await write(sink, [events.insert(4n, { id: 3, name: "c" })]);
      expectRows(await harness.visibleRows(target, wider), [
        { id: "1", name: "a", extra: "y", qty: null },
        { id: "2", name: "b", extra: "x", qty: "7" },
        { id: "3", name: "c", extra: null, qty: null },
      ]);
    });

    test("a column added with a literal default: rows written before it, and older changes applied after it, hold the default; an explicit NULL stays NULL", async () => {
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["name", "text"],
      ]);
      await write(sink, [
        events.insert(10n, { id: 1, name: "a" }),
        events.insert(11n, { id: 2, name: "b" }),
        events.insert(12n, { id: 3, name: "c" }),
        events.insert(13n, { id: 9, name: "gone" }),
        events.delete(14n, { id: 9 }),
        events.insert(8n, { id: 6, name: "untouched" }),
      ]);
      // ALTER TABLE ADD note text DEFAULT 'hi', qty bigint NOT NULL DEFAULT 7, at timestamptz DEFAULT now() (an expression: no default known)
      const wider: TableSchema = {
        ...schema,
        columns: [
          ...schema.columns,
          { name: "note", dbType: "text", nullable: true, defaultValue: "hi" },
          { name: "qty", dbType: "bigint", nullable: false, defaultValue: 7n },
          { name: "at", dbType: "timestamp with time zone", nullable: true },
        ],
      };
      const newer = new Events(wider);
      await write(sink, [
        newer.insert(20n, { id: 10, name: "new", note: "added", qty: 1n, at: null }),
        newer.update(21n, { id: 2, name: "b", note: null, qty: 2n, at: null }),
      ]);
      // Older changes applied after the column was added (another partition lagging, a replay): as Avro reads them with the newer schema.
      await write(sink, [events.insert(5n, { id: 4, name: "d" }), events.update(15n, { id: 3, name: "c2" }), events.update(9n, { id: 10, name: "stale" })]);
      // After a restart the target still knows the default and from which version on the column exists.
      const reopened = await open();
      await write(reopened, [events.update(16n, { id: 1, name: "a2" })]);
      // A change without the column after it was dropped at the source: NULL, as for any dropped column.
      await write(reopened, [events.insert(30n, { id: 5, name: "e" })]);
      expectRows(await harness.visibleRows(target, wider), [
        { id: "1", name: "a2", note: "hi", qty: "7", at: null },
        { id: "2", name: "b", note: null, qty: "2", at: null },
        { id: "3", name: "c2", note: "hi", qty: "7", at: null },
        { id: "4", name: "d", note: "hi", qty: "7", at: null },
        { id: "5", name: "e", note: null, qty: null, at: null },
        { id: "6", name: "untouched", note: "hi", qty: "7", at: null },
        { id: "10", name: "new", note: "added", qty: "1", at: null },
      ]);
    });

    test("a column added with a default and another widened in the same write: both apply, the older rows get the default", async () => {
      // Found on a live MariaDB deployment: ADD COLUMN ... NOT NULL DEFAULT 'dflt', then MODIFY amount DECIMAL(16,3), read in one
      // batch after a restart; DuckDB refused the commit (an UPDATE then an ALTER of one table in a transaction) and the daemon stopped.
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["v", "integer"],
      ]);
      await write(sink, [events.insert(1n, { id: 1, v: 1 }), events.insert(2n, { id: 2, v: 2 })]);
      const added: TableSchema = { ...schema, columns: [...schema.columns, { name: "note", dbType: "text", nullable: false, defaultValue: "dflt" }] };
      const widened: TableSchema = { ...added, columns: added.columns.map((c) => (c.name === "v" ? { ...c, dbType: "bigint" } : c)) };
      await write(sink, [new Events(added).insert(10n, { id: 3, v: 3, note: "x" }), new Events(widened).insert(20n, { id: 4, v: 4n, note: "y" })]);
      expectRows(await harness.visibleRows(target, widened), [
        { id: "1", v: "1", note: "dflt" },
        { id: "2", v: "2", note: "dflt" },
        { id: "3", v: "3", note: "x" },
        { id: "4", v: "4", note: "y" },
      ]);
    });

    test("rows written before a column with a default keep it when the column's type is widened later", async () => {
      const { schema, events, target } = newTable([["id", "integer"]]);
      await write(sink, [events.insert(1n, { id: 1 }), events.insert(2n, { id: 2 })]);
      const withColumn = (dbType: string): TableSchema => ({ ...schema, columns: [...schema.columns, { name: "n", dbType, nullable: true, defaultValue: 5 }] });
      await write(sink, [new Events(withColumn("integer")).insert(10n, { id: 3, n: 1 })]);
      const widened = withColumn("bigint");
      await write(sink, [new Events({ ...widened, columns: widened.columns.map((c) => (c.name === "n" ? { ...c, defaultValue: 5n } : c)) }).insert(20n, { id: 4, n: 2n })]);
      expectRows(await harness.visibleRows(target, widened), [
        { id: "1", n: "5" },
        { id: "2", n: "5" },
        { id: "3", n: "1" },
        { id: "4", n: "2" },
      ]);
    });

    test("a widened type is widened", async () => {
      const { events, target } = newTable([
        ["id", "integer"],
        ["qty", "integer"],
        ["label", "character varying(20)"],
      ]);
      await write(sink, [events.insert(1n, { id: 1, qty: 5, label: "short" })]);
      const wider = tableSchema(events.schema.table, [
        ["id", "integer"],
        ["qty", "bigint"],
        ["label", "character varying(50)"],
      ]);
      const newer = new Events(wider);
      const long = "a label longer than twenty characters, ok";
      await write(sink, [newer.insert(2n, { id: 2, qty: 1_099_511_627_776n, label: long })]);
      // an event under the older, narrower schema still applies
      await write(sink, [events.insert(3n, { id: 3, qty: 9, label: "narrow" })]);
      expectRows(await harness.visibleRows(target, wider), [
        { id: "1", qty: "5", label: "short" },
        { id: "2", qty: "1099511627776", label: long },
        { id: "3", qty: "9", label: "narrow" },
      ]);
    });

    test("two tables rendered to one target (a_b.c and a.b_c), or to a generation's name: the second is refused naming the first, also after a restart; the first keeps its rows", async () => {
      const base = randomTableName();
      const columns = [["id", "integer"], ["v", "text"]] as const;
      const first = new Events(tableSchema(`${base}_x`, columns));
      const second = new Events(tableSchema("x", columns, ["id"], { schema: `public_${base}` }));
      const generation = new Events(tableSchema(`${base}_x__v1`, columns));
      const target = renderTarget(TARGET_TEMPLATE, first.schema);
      assert.equal(renderTarget(TARGET_TEMPLATE, second.schema), target);
      targets.push(target, renderTarget(TARGET_TEMPLATE, generation.schema));
      const refused = (events: Events, mentions: string) => (error: unknown) => {
        assert.ok(error instanceof SluiceError && error.code === SCHEMA_UNSUPPORTED, String(error));
        assert.equal(error.context["table"], `src.${events.schema.schema}.${events.schema.table}`);
        assert.ok(error.message.includes(mentions), error.message);
        return true;
      };
      const name = `conf_${randomTableName("claims")}`;
      const own = await open(name);
      await write(own, [first.insert(1n, { id: 1, v: "first" })]);
      await assert.rejects(() => own.write([second.insert(2n, { id: 1, v: "second" })], signal()), refused(second, `src.public.${base}_x`));
      await assert.rejects(() => own.write([generation.insert(3n, { id: 1, v: "generation" })], signal()), refused(generation, `${target}", the target of table src.public.${base}_x`));
      await own.close();
      const reopened = await open(name);
      await assert.rejects(() => reopened.write([second.insert(4n, { id: 1, v: "second" })], signal()), refused(second, `src.public.${base}_x`));
      expectRows(await harness.visibleRows(target, first.schema), [{ id: "1", v: "first" }]);
    });

    test("a change the target cannot take raises SINK_SCHEMA_UNSUPPORTED naming sink, table and column", async () => {
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["qty", "integer"],
      ]);
      await write(sink, [events.insert(1n, { id: 1, qty: 5 })]);
      const changed = new Events(
        tableSchema(schema.table, [
          ["id", "integer"],
          ["qty", "bytea"],
        ]),
      );
      await assert.rejects(
        () => sink.write([changed.insert(2n, { id: 2, qty: new Uint8Array([1, 2]) })], signal()),
        (error: unknown) => {
          assert.ok(error instanceof SluiceError, `expected a SluiceError, got ${String(error)}`);
          assert.equal(error.code, SCHEMA_UNSUPPORTED);
          assert.equal(error.context["sink"], sinkName);
          assert.match(String(error.context["table"]), new RegExp(schema.table));
          assert.equal(error.context["column"], "qty");
          return true;
        },
      );
      // nothing of the rejected write shows; the table keeps working with its schema
      expectRows(await harness.visibleRows(target, schema), [{ id: "1", qty: "5" }]);
      await write(sink, [events.insert(3n, { id: 3, qty: 6 })]);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", qty: "5" },
        { id: "3", qty: "6" },
      ]);
    });

    test("dead-letter: a poison row is a per-item failure while the others apply, and offsets are then not stored", async () => {
      const name = `conf_${randomTableName("p")}`;
      const own = await open(name, "dead-letter");
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["big", "bigint"],
      ]);
      const offsets = [{ topic: events.topic, partition: 0, offset: 3n }];
      const result = await own.write(
        [events.insert(1n, { id: 1, big: 1n }), events.insert(2n, { id: 2, big: "not a number" }), events.insert(3n, { id: 3, big: 3n })],
        signal(),
        offsets,
      );
      assert.equal(result.failures.length, 1);
      const failure = result.failures[0]!;
      assert.equal(failure.index, 1);
      assert.equal(failure.retriable, false);
      assert.ok(failure.error instanceof SluiceError);
      assert.equal(failure.error.code, ROW_REJECTED);
      assert.match(failure.error.message, /big/);
      assert.equal(result.offsetsStored, false);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", big: "1" },
        { id: "3", big: "3" },
      ]);
      assert.deepEqual(await own.committedOffsets(signal()), []);
      await own.storeOffsets(offsets, signal());
      assert.deepEqual(await own.committedOffsets(signal()), offsets.map((o) => ({ ...o, topicId: null })), "no topic identity given: stored as none");
    });

    test("a timestamptz in PostgreSQL's last years (past 294247 AD, beyond 2^63 µs from 1970) is a per-item failure or stored, never a failed write", async () => {
      const own = await open(`conf_${randomTableName("y")}`, "dead-letter");
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["at", "timestamp with time zone"],
      ]);
      // 294276-12-31 23:59:59.999999+00, as a ZonedTimestamp's text decodes; Avro's timestamp-micros cannot carry it, its text can.
      const last = 9_224_318_015_999_999_999n;
      const result = await own.write([events.insert(1n, { id: 1, at: 0n }), events.insert(2n, { id: 2, at: last }), events.insert(3n, { id: 3, at: 1_000n })], signal());
      const failed = result.failures.map((f) => f.index);
      for (const failure of result.failures) assert.equal((failure.error as SluiceError).code, ROW_REJECTED);
      const rows = await harness.visibleRows(target, schema);
      assert.deepEqual(rows.map((r) => Number(r["id"])).sort(), [1, 2, 3].filter((id) => !failed.includes(id - 1)));
    });

    // Elasticsearch applies each bulk item on its own, so it cannot hold back what follows a poison row.
    if (harness.haltsAtFirstFailure) test("halt: a poison row is a per-item failure and nothing after it of its table shows", async () => {
      const own = await open(`conf_${randomTableName("h")}`, "halt");
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["big", "bigint"],
      ]);
      const result = await own.write(
        [events.insert(1n, { id: 1, big: 1n }), events.insert(2n, { id: 2, big: "not a number" }), events.insert(3n, { id: 3, big: 3n })],
        signal(),
        [{ topic: events.topic, partition: 0, offset: 3n }],
      );
      assert.deepEqual(result.failures.map((f) => f.index), [1]);
      assert.equal(result.offsetsStored, false);
      expectRows(await harness.visibleRows(target, schema), [{ id: "1", big: "1" }]);

      // Changes of one version (an initial snapshot's rows, one multi-row statement's): those before the poison row
      // show, as the runner reads on from the poison (or, skipped, the record after it) and would never apply them.
      const same = newTable([
        ["id", "integer"],
        ["big", "bigint"],
      ]);
      const shared = await own.write(
        [same.events.insert(7n, { id: 1, big: 1n }, "r"), same.events.insert(7n, { id: 2, big: 2n }, "r"), same.events.insert(7n, { id: 3, big: "not a number" }, "r"), same.events.insert(7n, { id: 4, big: 4n }, "r")],
        signal(),
        [{ topic: same.events.topic, partition: 0, offset: 4n }],
      );
      assert.deepEqual(shared.failures.map((f) => f.index), [2]);
      expectRows(await harness.visibleRows(same.target, same.schema), [
        { id: "1", big: "1" },
        { id: "2", big: "2" },
      ]);
    });

    test("offsets are stored with the data and their topic's identity, and read back after reopening", async () => {
      const name = `conf_${randomTableName("o")}`;
      const first = await open(name);
      const { schema, events, target } = newTable();
      const offsets = [
        { topic: events.topic, partition: 0, offset: 2n },
        { topic: events.topic, partition: 1, offset: 7n },
      ];
      first.useTopicIds(new Map([[events.topic, "log-a/1"]]));
      const result = await write(first, [events.insert(1n, { id: 1, name: "a", amount: null, note: null, flag: null })], offsets);
      assert.equal(result.offsetsStored, true);
      await first.close();
      const second = await open(name);
      const read = (list: TopicPartitionOffset[]) => [...list].sort((a, b) => a.partition - b.partition);
      assert.deepEqual(read(await second.committedOffsets(signal())), offsets.map((o) => ({ ...o, topicId: "log-a/1" })));
      second.useTopicIds(new Map([[events.topic, "log-b/2"]]));
      await write(second, [events.insert(2n, { id: 2, name: "b", amount: null, note: null, flag: null })], [{ topic: events.topic, partition: 0, offset: 3n }]);
      assert.deepEqual(read(await second.committedOffsets(signal())), [
        { ...offsets[0]!, offset: 3n, topicId: "log-b/2" },
        { ...offsets[1]!, topicId: "log-a/1" },
      ]);
      expectRows(await harness.visibleRows(target, schema), [{ id: "1" }, { id: "2" }]);
      // another sink (consumer group) has its own offsets
      const other = await open(`${name}_other`);
      assert.deepEqual(await other.committedOffsets(signal()), []);
    });

    test("a rebuild writes into a new generation while the old serves, then swaps", async () => {
      const { schema, events, target } = newTable();
      const history = [
        events.insert(1n, { id: 1, name: "a", amount: "1.00", note: "toasted", flag: true }),
        events.insert(2n, { id: 2, name: "b", amount: "2.00", note: "n2", flag: true }),
        events.delete(3n, { id: 2 }),
        events.insert(4n, { id: 3, name: "c", amount: "3.00", note: "n3", flag: false }),
      ];
      await write(sink, history);
      const before = await harness.visibleRows(target, schema);
      await sink.prepareRebuild(schema, signal());
      // live writes during the rebuild reach both; the old generation keeps serving
      await write(sink, [
        events.update(5n, { id: 1, name: "a2", amount: "1.00", note: UNCHANGED, flag: true }),
        events.insert(6n, { id: 4, name: "d", amount: null, note: null, flag: null }),
      ]);
      expectRows(await harness.visibleRows(target, schema), [
        { id: "1", name: "a2", note: "toasted" },
        { id: "3", name: "c" },
        { id: "4", name: "d" },
      ]);
      assert.equal(before.length, 2);
      // current rows of each generation, for the rebuild's row-count check: the shadow has the mirrored live writes so far
      assert.ok(sink.rebuildRowCounts, "the sink counts the rows of its live and shadow generations");
      assert.deepEqual(await sink.rebuildRowCounts(schema, signal()), { live: 3, shadow: 2 });
      // the replay of the topic (up to the offsets taken after prepareRebuild), into the shadow only
      const replayed = await sink.writeRebuild([...history], signal());
      assert.deepEqual(replayed.failures, []);
      expectRows(await harness.visibleRows(target, schema), [{ id: "1", name: "a2" }, { id: "3" }, { id: "4" }]);
      assert.deepEqual(await sink.rebuildRowCounts(schema, signal()), { live: 3, shadow: 3 });
      await sink.swap(schema, signal());
      const expected = [
        { id: "1", name: "a2", amount: "1.00", note: "toasted", flag: "true" },
        { id: "3", name: "c", amount: "3.00", note: "n3", flag: "false" },
        { id: "4", name: "d", amount: null, note: null, flag: null },
      ];
      expectRows(await harness.visibleRows(target, schema), expected);
      // the swapped-in generation keeps applying by version: replays of old events change nothing
      await write(sink, history);
      await write(sink, [events.insert(7n, { id: 5, name: "e", amount: null, note: null, flag: null })]);
      expectRows(await harness.visibleRows(target, schema), [...expected, { id: "5", name: "e", amount: null, note: null, flag: null }]);
      // writes to the shadow without a rebuild in progress fail per item
      const orphan = await sink.writeRebuild([events.insert(8n, { id: 6, name: "x", amount: null, note: null, flag: null })], signal());
      assert.equal(orphan.failures.length, 1);
    });

    test("an aborted rebuild leaves the live generation serving", async () => {
      const { schema, events, target } = newTable();
      await write(sink, [events.insert(1n, { id: 1, name: "a", amount: null, note: null, flag: null })]);
      await sink.prepareRebuild(schema, signal());
      await sink.writeRebuild([events.insert(1n, { id: 1, name: "a", amount: null, note: null, flag: null })], signal());
      await sink.abortRebuild(schema, signal());
      await write(sink, [events.insert(2n, { id: 2, name: "b", amount: null, note: null, flag: null })]);
      expectRows(await harness.visibleRows(target, schema), [{ id: "1" }, { id: "2" }]);
      await assert.rejects(() => sink.swap(schema, signal()), /no rebuild in progress/);
    });

    test("a rebuild stopped before its swap leaves its shadow: a restarted sink lists it and mirrors live writes into it; a rebuild run again replaces it and swaps in the right rows; abandoning one drops it", async () => {
      const { schema, events, target } = newTable();
      const table = { source: schema.source, database: schema.database, schema: schema.schema, table: schema.table };
      const history = [
        events.insert(1n, { id: 1, name: "a", amount: "1.00", note: "toasted", flag: true }),
        events.insert(2n, { id: 2, name: "b", amount: "2.00", note: "n2", flag: true }),
        events.delete(3n, { id: 2 }),
      ];
      const name = `${sinkName}_int`;
      const first = await open(name);
      await write(first, history);
      const preparing = Date.now();
      await first.prepareRebuild(schema, signal());
      assert.deepEqual((await first.writeRebuild(history.slice(0, 1), signal())).failures, []);
      // Stopped (or killed: prepareRebuild has made the shadow durable) before the replay ended and the swap.
      await first.close();
      const restarted = await open(name);
      const shadowsOf = async (s: VersionedSink) => ((await s.rebuildShadows?.(signal())) ?? []).filter((shadow) => shadow.table?.schema === table.schema && shadow.table.table === table.table);
      const found = await shadowsOf(restarted);
      assert.equal(found.length, 1, "the restarted sink finds the shadow");
      assert.deepEqual(found[0]!.table, table);
      assert.match(found[0]!.physical, /__v2$/);
      const prepared = found[0]!.preparedAtMs;
      assert.ok(prepared === null || (prepared >= preparing - 60_000 && prepared <= Date.now() + 60_000), `prepared at ${prepared}`);
      // The shadow keeps receiving the live writes (a rebuild may run in another process of the sink); the live table serves unchanged.
      const live = [events.update(4n, { id: 1, name: "a2", amount: "1.00", note: UNCHANGED, flag: true }), events.insert(5n, { id: 3, name: "c", amount: null, note: null, flag: null })];
      await write(restarted, live);
      assert.deepEqual(await restarted.rebuildRowCounts?.(schema, signal()), { live: 2, shadow: 2 });
      expectRows(await harness.visibleRows(target, schema), [{ id: "1", name: "a2", note: "toasted" }, { id: "3", name: "c" }]);
      // Run again, the rebuild starts over in a new shadow, replays the whole topic (the live writes too) and swaps in the rows it gives.
      await restarted.prepareRebuild(schema, signal());
      assert.deepEqual((await restarted.writeRebuild([...history, ...live], signal())).failures, []);
      await restarted.swap(schema, signal());
      assert.deepEqual(await shadowsOf(restarted), []);
      const expected = [
        { id: "1", name: "a2", amount: "1.00", note: "toasted", flag: "true" },
        { id: "3", name: "c", amount: null, note: null, flag: null },
      ];
      expectRows(await harness.visibleRows(target, schema), expected);
      // Another one stopped before its swap, then abandoned after a restart: its shadow is dropped, the live table serves and takes writes.
      await restarted.prepareRebuild(schema, signal());
      await restarted.close();
      const again = await open(name);
      const left = await shadowsOf(again);
      assert.equal(left.length, 1);
      await again.abortRebuild(left[0]!.table!, signal());
      assert.deepEqual(await shadowsOf(again), []);
      await write(again, [events.insert(6n, { id: 4, name: "d", amount: null, note: null, flag: null })]);
      expectRows(await harness.visibleRows(target, schema), [...expected, { id: "4", name: "d", amount: null, note: null, flag: null }]);
      assert.deepEqual(await shadowsOf(await open(name)), [], "dropped for good: a restart finds none");
    });

    test("a rebuild takes the table's newest shape: a number column that became text, which the live target refuses, holds the older numbers as their text", async () => {
      const { schema, events, target } = newTable([
        ["id", "integer"],
        ["amount", "numeric(12,2)"],
      ]);
      const history = [events.insert(1n, { id: 1, amount: "1.23" }), events.insert(2n, { id: 2, amount: "20.00" }), events.update(3n, { id: 1, amount: "-0.50" })];
      await write(sink, history);
      const newer = tableSchema(schema.table, [
        ["id", "integer"],
        ["amount", "text"],
      ]);
      const changed = new Events(newer);
      const later = [changed.insert(4n, { id: 3, amount: "n/a" })];
      await assert.rejects(
        () => sink.write(later, signal()),
        (error: unknown) => error instanceof SluiceError && error.code === SCHEMA_UNSUPPORTED && error.context["column"] === "amount",
      );
      await sink.prepareRebuild(schema, signal(), newer);
      assert.deepEqual((await sink.writeRebuild([...history, ...later], signal())).failures, []);
      await sink.swap(schema, signal());
      const expected = [
        { id: "1", amount: "-0.50" },
        { id: "2", amount: "20.00" },
        { id: "3", amount: "n/a" },
      ];
      expectRows(await harness.visibleRows(target, newer), expected);
      // the swapped-in generation takes the newer schema's changes, and the older ones again as their text
      await write(sink, [...history, changed.insert(5n, { id: 4, amount: "text only" })]);
      expectRows(await harness.visibleRows(target, newer), [...expected, { id: "4", amount: "text only" }]);
    });
  });
}

