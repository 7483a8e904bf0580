import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { UNCHANGED } from "../contracts.ts";
import { planColumns } from "./columns.ts";
import { SCHEMA_UNSUPPORTED } from "./errors.ts";
import { isolateRejected } from "./isolate.ts";
import { convertsTo, integerRange, joinTypes, logicalType } from "./logical-type.ts";
import type { LogicalType } from "./logical-type.ts";
import { renderTarget, tableFilter } from "./naming.ts";
import { formatUnscaled } from "../../schema-registry/decimal.ts";
import { tableSchema } from "./test-events.ts";
import { checkedInteger, decimalText, formatDate, formatDuration, formatTime, formatTimestamp, generalScaledDecimal, parseExactDecimal, scaledDecimal, uuidText } from "./values.ts";

describe("logicalType: PostgreSQL format_type() and MySQL column types", () => {
  const cases: [string, "postgres" | "mysql", LogicalType][] = [
    ["integer", "postgres", { kind: "integer", bits: 32, unsigned: false }],
    ["bigint", "postgres", { kind: "integer", bits: 64, unsigned: false }],
    ["numeric(10,2)", "postgres", { kind: "decimal", precision: 10, scale: 2 }],
    ["numeric", "postgres", { kind: "decimal", precision: null, scale: null }],
    ["character varying(20)", "postgres", { kind: "string" }],
    ["timestamp(3) with time zone", "postgres", { kind: "timestamp", tz: true }],
    ["timestamp without time zone", "postgres", { kind: "timestamp", tz: false }],
    ["integer[]", "postgres", { kind: "array", element: { kind: "integer", bits: 32, unsigned: false } }],
    ["_text", "postgres", { kind: "array", element: { kind: "string" } }],
    ["jsonb", "postgres", { kind: "json" }],
    ["bytea", "postgres", { kind: "bytes" }],
    ["uuid", "postgres", { kind: "uuid" }],
    ["date", "postgres", { kind: "date" }],
    ["interval", "postgres", { kind: "string" }],
    ["public.mood", "postgres", { kind: "string" }],
    ["int unsigned", "mysql", { kind: "integer", bits: 32, unsigned: true }],
    ["int(10) unsigned zerofill", "mysql", { kind: "integer", bits: 32, unsigned: true }],
    ["bigint unsigned", "mysql", { kind: "integer", bits: 64, unsigned: true }],
    ["tinyint(1)", "mysql", { kind: "integer", bits: 8, unsigned: false }],
    ["varchar(20)", "mysql", { kind: "string" }],
    ["decimal(12,4)", "mysql", { kind: "decimal", precision: 12, scale: 4 }],
    ["datetime(6)", "mysql", { kind: "timestamp", tz: false }],
    ["timestamp(6)", "mysql", { kind: "timestamp", tz: true }],
    ["time(3)", "mysql", { kind: "duration" }],
    ["bit(1)", "mysql", { kind: "boolean" }],
    ["bit(12)", "mysql", { kind: "bytes" }],
    ["enum('a','b,c')", "mysql", { kind: "string" }],
    ["longblob", "mysql", { kind: "bytes" }],
    ["json", "mysql", { kind: "json" }],
  ];
  for (const [dbType, kind, expected] of cases) {
    test(`${kind} ${dbType}`, () => assert.deepEqual(logicalType(dbType, kind), expected));
  }
});

describe("joinTypes: the narrowest type holding both", () => {
  const t = (dbType: string, kind: "postgres" | "mysql" = "postgres") => logicalType(dbType, kind);
  test("integers widen, never narrow", () => {
    assert.deepEqual(joinTypes(t("integer"), t("bigint")), t("bigint"));
    assert.deepEqual(joinTypes(t("bigint"), t("integer")), t("bigint"));
    assert.deepEqual(joinTypes(t("int unsigned", "mysql"), t("int", "mysql")), t("bigint", "mysql"));
    assert.deepEqual(joinTypes(t("bigint unsigned", "mysql"), t("bigint", "mysql")), { kind: "decimal", precision: 20, scale: 0 });
  });
  test("decimals keep integer digits and scale of both", () => {
    assert.deepEqual(joinTypes(t("numeric(10,2)"), t("numeric(10,4)")), { kind: "decimal", precision: 12, scale: 4 });
    assert.deepEqual(joinTypes(t("integer"), t("numeric(5,2)")), { kind: "decimal", precision: 12, scale: 2 });
    assert.deepEqual(joinTypes(t("numeric(5,2)"), t("numeric")), { kind: "decimal", precision: null, scale: null });
  });
  test("strings: varchar lengths do not matter; uuid and json join to string", () => {
    assert.deepEqual(joinTypes(t("character varying(20)"), t("character varying(50)")), { kind: "string" });
    assert.deepEqual(joinTypes(t("uuid"), t("text")), { kind: "string" });
  });
  test("no join across unrelated kinds", () => {
    assert.equal(joinTypes(t("integer"), t("bytea")), null);
    assert.equal(joinTypes(t("date"), t("timestamp without time zone")), null);
    assert.equal(joinTypes(t("bigint"), t("real")), null);
    assert.equal(joinTypes(t("timestamp with time zone"), t("timestamp without time zone")), null);
  });
});

describe("convertsTo: older values written into a column that became text", () => {
  const t = (dbType: string, kind: "postgres" | "mysql" = "postgres") => logicalType(dbType, kind);
  test("numbers become text, as the databases cast them", () => {
    assert.equal(convertsTo(t("numeric(12,2)"), t("text")), true);
    assert.equal(convertsTo(t("numeric"), t("character varying(20)")), true);
    assert.equal(convertsTo(t("bigint"), t("text")), true);
    assert.equal(convertsTo(t("int unsigned", "mysql"), t("varchar(20)", "mysql")), true);
    assert.equal(convertsTo(t("integer[]"), t("text[]")), true);
    assert.equal(convertsTo(t("integer[]"), t("bigint[]")), true);
  });
  test("nothing else: text never becomes a number, floats and other kinds have no exact text", () => {
    assert.equal(convertsTo(t("text"), t("numeric(12,2)")), false);
    assert.equal(convertsTo(t("text"), t("integer")), false);
    assert.equal(convertsTo(t("double precision"), t("text")), false);
    assert.equal(convertsTo(t("boolean"), t("text")), false);
    assert.equal(convertsTo(t("date"), t("text")), false);
    assert.equal(convertsTo(t("bytea"), t("text")), false);
    assert.equal(convertsTo(t("integer[]"), t("text")), false);
    assert.equal(convertsTo(t("numeric(12,2)"), t("integer")), false);
  });
});

describe("planColumns", () => {
  const ctx = { sink: "s", table: "src.public.t" };
  const v1 = tableSchema("t", [["id", "integer"], ["a", "integer"]]);
  const current = planColumns(null, v1, ctx).columns;
  test("adds new columns and widens; an older narrower schema changes nothing", () => {
    const v2 = tableSchema("t", [["id", "integer"], ["a", "bigint"], ["b", "text"]]);
    const plan = planColumns(current, v2, ctx);
    assert.deepEqual(plan.added.map((c) => c.name), ["b"]);
    assert.deepEqual(plan.changed.map((c) => [c.name, c.to]), [["a", { kind: "integer", bits: 64, unsigned: false }]]);
    const back = planColumns(plan.columns, v1, ctx);
    assert.equal(back.added.length + back.changed.length, 0);
  });
  test("a target whose column is text takes changes written when it was a number; the other way round is refused, naming both types", () => {
    const numeric = tableSchema("t", [["id", "integer"], ["amount", "numeric(12,2)"]]);
    const text = tableSchema("t", [["id", "integer"], ["amount", "text"]]);
    const newest = planColumns(null, text, ctx).columns;
    const older = planColumns(newest, numeric, ctx);
    assert.equal(older.added.length + older.changed.length, 0);
    assert.deepEqual(older.columns, newest);
    assert.throws(
      () => planColumns(planColumns(null, numeric, ctx).columns, text, ctx),
      (e: { code?: string; message?: string }) => e.code === SCHEMA_UNSUPPORTED && /column "amount": cannot change type from decimal\(12,2\) to string \(text\)/.test(e.message ?? ""),
    );
    // A key column: as text in a key of one column (its key text is the same); in a key of several, integers are bare in
    // the key's text and strings quoted (the Elasticsearch document id would change), decimals are text already.
    const single = planColumns(null, tableSchema("t", [["id", "text"]]), ctx).columns;
    assert.equal(planColumns(single, tableSchema("t", [["id", "integer"]]), ctx).changed.length, 0);
    const pair = planColumns(null, tableSchema("t", [["id", "text"], ["n", "text"]], ["id", "n"]), ctx).columns;
    assert.equal(planColumns(pair, tableSchema("t", [["id", "text"], ["n", "numeric(5,1)"]], ["id", "n"]), ctx).changed.length, 0);
    assert.throws(() => planColumns(pair, tableSchema("t", [["id", "text"], ["n", "integer"]], ["id", "n"]), ctx), /column "n": cannot change type from string to int32/);
  });
  test("unsupported changes name the column", () => {
    const bad = tableSchema("t", [["id", "integer"], ["a", "bytea"]]);
    assert.throws(() => planColumns(current, bad, ctx), (e: { code?: string; context?: Record<string, unknown> }) => e.code === SCHEMA_UNSUPPORTED && e.context?.["column"] === "a");
    assert.throws(() => planColumns(current, tableSchema("t", [["id", "integer"], ["a", "integer"]], ["a"]), ctx), /key changed/);
    assert.throws(() => planColumns(null, tableSchema("t", [["id", "integer"], ["_sluice_version", "integer"]]), ctx), /reserved/);
    assert.throws(() => planColumns(null, tableSchema("t", [["id", "integer"]], []), ctx), /no primary key/);
  });
  test("a keyless table is refused, also when its whole row stands in for the key (PostgreSQL without a primary key)", () => {
    const wholeRow = { ...tableSchema("t", [["a", "integer"], ["b", "text"]], ["a", "b"]), keyIsWholeRow: true };
    assert.throws(
      () => planColumns(null, wholeRow, ctx),
      (e: { code?: string; message?: string }) => e.code === SCHEMA_UNSUPPORTED && /no primary key.*identical rows.*add a primary key/.test(e.message ?? ""),
    );
    // A real primary key over every column is a key.
    assert.deepEqual(planColumns(null, tableSchema("t", [["a", "integer"], ["b", "text"]], ["a", "b"]), ctx).columns.map((c) => c.key), [true, true]);
  });
});

describe("exact values", () => {
  test("decimals scale without rounding", () => {
    assert.equal(decimalText("12.5", 10, 2), "12.50");
    assert.equal(decimalText("-0.10", 10, 2), "-0.10");
    assert.equal(decimalText("1e3", 10, 2), "1000.00");
    assert.equal(decimalText(42n, 10, 0), "42");
    assert.equal(scaledDecimal("-3", 5, 2), -300n);
    assert.throws(() => decimalText("1.234", 10, 2), /more than 2 digits/);
    assert.throws(() => decimalText("123456789.1", 10, 2), /does not fit/);
    assert.throws(() => decimalText("NaN", 10, 2));
    assert.deepEqual(parseExactDecimal("-000.0100"), { negative: true, integer: "", fraction: "01" });
  });
  test("integer ranges of every width, signed and unsigned, whatever was asked before", () => {
    for (const bits of [8, 16, 24, 32, 64] as const) {
      for (const unsigned of [true, false, true]) {
        const range = integerRange({ bits, unsigned });
        const width = BigInt(bits);
        assert.deepEqual({ ...range }, unsigned ? { min: 0n, max: (1n << width) - 1n } : { min: -(1n << (width - 1n)), max: (1n << (width - 1n)) - 1n }, `${unsigned ? "u" : ""}int${bits}`);
      }
      assert.equal(checkedInteger(-(1n << BigInt(bits - 1)), { bits, unsigned: false }), -(1n << BigInt(bits - 1)));
      assert.throws(() => checkedInteger(-1n, { bits, unsigned: true }), /out of range/);
      assert.throws(() => checkedInteger(1n << BigInt(bits - 1), { bits, unsigned: false }), /out of range/);
    }
  });
  test("plain decimal text is read and kept as the general reading would, or refused the same way", () => {
    const outcome = (read: () => unknown) => {
      try {
        return read();
      } catch (error) {
        return `refused: ${(error as Error).message}`;
      }
    };
    const texts = ["", "-", ".", "0", "-0", "00", "0.", ".5", "-.5", "5.", "-0.00", "0.00", "0.50", "-0.50", "00.50", "05.00", "1e3", "+1.5", " 1.5", "1.5 ", "NaN", "1.2300", "1.234", "1.-2"];
    const pick = (chars: string, length: number) => Array.from({ length }, () => chars[Math.floor(Math.random() * chars.length)]).join("");
    for (let i = 0; i < 3000; i++) {
      const integer = pick("0000123456789", Math.floor(Math.random() * 18));
      const fraction = pick("00123456789", Math.floor(Math.random() * 6));
      texts.push(`${Math.random() < 0.3 ? "-" : ""}${integer}${Math.random() < 0.7 ? `.${fraction}` : ""}`);
    }
    const shapes: [number, number][] = [
      [10, 2],
      [12, 2],
      [2, 2],
      [5, 0],
      [15, 3],
      [18, 4],
      [38, 10],
      [5, -2],
    ];
    for (const text of texts) {
      for (const [precision, scale] of shapes) {
        const general = outcome(() => generalScaledDecimal(text, precision, scale));
        assert.deepEqual(outcome(() => scaledDecimal(text, precision, scale)), general, `${JSON.stringify(text)} as decimal(${precision},${scale})`);
        const generalText = typeof general === "bigint" ? formatUnscaled(general, scale) : general;
        assert.deepEqual(outcome(() => decimalText(text, precision, scale)), generalText, `text of ${JSON.stringify(text)} as decimal(${precision},${scale})`);
      }
    }
  });
  test("dates, times and timestamps", () => {
    assert.equal(formatDate(0), "1970-01-01");
    assert.equal(formatDate(-1), "1969-12-31");
    assert.equal(formatDate(-719_162), "0001-01-01");
    assert.throws(() => formatDate(-719_163));
    assert.equal(formatTimestamp(-1n), "1969-12-31T23:59:59.999999");
    assert.equal(formatTimestamp(1_700_000_000_123_456n, " "), "2023-11-14 22:13:20.123456");
    assert.equal(formatTime(45_296_000_001), "12:34:56.000001");
    assert.equal(formatDuration(-3_020_399_000_000), "-838:59:59.000000");
    assert.equal(uuidText("6F1C8E366B4E4D2E9E3E0C1C8D8C8C8C"), "6f1c8e36-6b4e-4d2e-9e3e-0c1c8d8c8c8c");
  });
  test("timestamps in and beyond the range read as doubles are the calendar's text, and a repeated day is its own", () => {
    const iso = (micros: bigint, separator: string) => {
      const ms = micros / 1000n - (micros % 1000n < 0n ? 1n : 0n);
      const fraction = ((micros % 1_000_000n) + 1_000_000n) % 1_000_000n;
      return `${new Date(Number(ms)).toISOString().slice(0, 19).replace("T", separator)}.${String(fraction).padStart(6, "0")}`;
    };
    const values = [0n, 1n, -1n, 86_400_000_000n, 86_399_999_999n, -86_400_000_000n, -86_400_000_001n, 2n ** 53n - 1n, -(2n ** 53n) + 1n, 2n ** 53n, -(2n ** 53n), 2n ** 53n + 1n, -(2n ** 53n) - 1n, 253_402_300_799_999_999n, -62_135_596_800_000_000n];
    let seed = 3;
    const random = () => (seed = (seed * 1_103_515_245 + 12_345) % 2 ** 31);
    for (let i = 0; i < 5000; i++) {
      const micros = BigInt(random()) * BigInt(random() % 4_000_000) * (i % 2 === 0 ? 1n : -1n);
      values.push(micros, micros + 1n, micros - (micros % 86_400_000_000n), micros - (micros % 86_400_000_000n) - 1n);
    }
    for (const micros of values) {
      assert.equal(formatTimestamp(micros), iso(micros, "T"), String(micros));
      assert.equal(formatTimestamp(micros, " "), iso(micros, " "), String(micros));
    }
    assert.throws(() => formatTimestamp(-62_135_596_800_000_001n), /outside 0001-01-01/);
    assert.throws(() => formatTimestamp(2n ** 63n - 1n), /infinity/);
  });
  test("UNCHANGED is never a value", () => {
    assert.throws(() => formatDate(UNCHANGED));
  });
});

describe("naming", () => {
  const table = { source: "pg", database: "db", schema: "public", table: "orders" };
  test("targets from the template", () => {
    assert.equal(renderTarget("{schema}_{table}", table), "public_orders");
    assert.equal(renderTarget("{source}_{table}_x", table), "pg_orders_x");
  });
  test("table filters: globs over schema.table and the sink's sources", () => {
    assert.ok(tableFilter({ tables: ["public.*"] })(table));
    assert.ok(tableFilter({ tables: ["public.order?"] })(table));
    assert.ok(!tableFilter({ tables: ["public.order?"] })({ ...table, table: "order" }));
    assert.ok(!tableFilter({ tables: ["public.orders"] })({ ...table, schema: "sales" }));
    assert.ok(!tableFilter({ tables: ["*.*"], sources: ["other"] })(table));
    assert.ok(tableFilter({ tables: ["a$b-c.*"] })({ ...table, schema: "a$b-c", table: "x" }), "regex characters in names are literal");
  });
});

describe("isolateRejected", () => {
  test("finds the rejected items by bisection; other errors propagate", async () => {
    const attempts: number[][] = [];
    const rejected = await isolateRejected(
      [1, 2, 3, 4, 5, 6, 7],
      async (subset) => {
        attempts.push([...subset]);
        if (subset.includes(3) || subset.includes(6)) throw new Error("bad data");
      },
      () => true,
    );
    assert.deepEqual(rejected.map((r) => r.item), [3, 6]);
    assert.ok(attempts.length < 16);
    await assert.rejects(
      isolateRejected([1, 2], async () => Promise.reject(new Error("down")), () => false),
      /down/,
    );
  });
});
