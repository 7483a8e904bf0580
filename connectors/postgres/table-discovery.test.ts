import assert from "node:assert/strict";
import { mock, test } from "node:test";
import pino from "pino";
import type { TableRef } from "./catalog.ts";
import { SeenPartitions, TableDiscovery } from "./table-discovery.ts";

const relids = new Map<string, number>();
const table = (name: string, relid = relids.get(name) ?? relids.set(name, relids.size + 1).get(name)!): TableRef => ({ relid, schema: "app", table: name, kind: "r", estimatedRows: -1 });

test("a new table is handed on once; one whose take-up failed or was left is offered again at the next look", async () => {
  let listed = [table("orders")];
  const handed: string[][] = [];
  const recreatedSeen: ReadonlySet<number>[] = [];
  let failNext = false;
  const discovery = new TableDiscovery({
    intervalMs: 0,
    list: async () => listed,
    known: [table("orders")],
    add: async (tables, recreated) => {
      recreatedSeen.push(recreated);
      if (failNext) {
        failNext = false;
        throw new Error("publication busy");
      }
      handed.push(tables.map((t) => t.table));
      return tables.filter((t) => t.table !== "pending");
    },
    logger: pino({ level: "silent" }),
  });
  await discovery.look();
  assert.deepEqual(handed, [], "known tables are not handed on");
  listed = [table("orders"), table("refunds")];
  failNext = true;
  await discovery.look();
  assert.deepEqual(handed, []);
  await discovery.look();
  assert.deepEqual(handed, [["refunds"]]);
  await discovery.look();
  assert.deepEqual(handed, [["refunds"]], "handed on once");
  listed = [...listed, table("pending")];
  await discovery.look();
  await discovery.look();
  assert.deepEqual(handed, [["refunds"], ["pending"], ["pending"]], "a table not taken up is offered again");
  listed = [table("orders", 100), table("refunds")];
  await discovery.look();
  assert.deepEqual(handed.at(-1), ["orders"], "a table dropped and created again under a known name is new");
  assert.deepEqual([...recreatedSeen.at(-1)!], [100], "and said to be created again");
  assert.deepEqual([...recreatedSeen[1]!], [], "a table of a new name is not");
});

test("looks do not overlap", async () => {
  let lists = 0;
  let release = (): void => undefined;
  const discovery = new TableDiscovery({
    intervalMs: 0,
    list: async () => {
      lists++;
      await new Promise<void>((resolve) => {
        release = resolve;
      });
      return [];
    },
    known: [],
    add: async () => [],
    logger: pino({ level: "silent" }),
  });
  const first = discovery.look();
  const second = discovery.look();
  release();
  await Promise.all([first, second]);
  assert.equal(lists, 1);
});

test("a known table gone whose name no listed table has is told vacated once, with the name it was last listed under; a swap's is not", async () => {
  const ref = (name: string, relid: number): TableRef => ({ relid, schema: "app", table: name, kind: "r", estimatedRows: -1 });
  let listed = [ref("orders", 1), ref("orders_new", 2), ref("refunds", 3)];
  const vacated: [number, string][] = [];
  const discovery = new TableDiscovery({
    intervalMs: 0,
    list: async () => listed,
    known: listed,
    add: async (tables) => tables,
    vacated: (relid, name) => vacated.push([relid, name]),
    logger: pino({ level: "silent" }),
  });
  // A swap: the original renamed away, the copy renamed onto its name, then the original dropped.
  listed = [ref("orders_old", 1), ref("orders", 2), ref("refunds", 3)];
  await discovery.look();
  listed = [ref("orders", 2), ref("refunds", 3)];
  await discovery.look();
  assert.deepEqual(vacated, [[1, "app.orders_old"]], "gone under the name it was last listed with, which is free");
  // Dropped: its name free until another table is renamed onto it.
  listed = [ref("orders", 2)];
  await discovery.look();
  await discovery.look();
  listed = [ref("orders", 2), ref("refunds", 4)];
  await discovery.look();
  assert.deepEqual(vacated, [[1, "app.orders_old"], [3, "app.refunds"]], "told once");
  // Dropped and created again before a look: the name is not free, but the new table replaces it.
  listed = [ref("orders", 5), ref("refunds", 4)];
  await discovery.look();
  assert.deepEqual(vacated.at(-1), [2, "app.orders"]);
});

test("a partitioned table whose attached partitions fail to be told neither stops the others nor makes them told again", async () => {
  const root = (name: string, relid: number): TableRef => ({ relid, schema: "app", table: name, kind: "p", estimatedRows: -1 });
  const tables = [root("events", 1), root("metrics", 2), root("orders", 3)];
  let leaves = new Map([[1, [{ relid: 11, filenode: 11, attachment: 1 }]], [2, [{ relid: 21, filenode: 21, attachment: 1 }]], [3, [{ relid: 31, filenode: 31, attachment: 1 }]]]);
  const told: string[] = [];
  let failing = true;
  const discovery = new TableDiscovery({
    intervalMs: 0,
    list: async () => tables,
    known: tables,
    add: async () => [],
    partitions: {
      seen: new SeenPartitions(),
      list: async () => leaves,
      attached: async (table, partitions) => {
        if (table.table === "metrics" && failing) throw new Error("permission denied for table metrics_b");
        told.push(`${table.table} ${partitions.join(",")}`);
      },
      rewritten: async () => undefined,
    },
    logger: pino({ level: "silent" }),
  });
  await discovery.look();
  leaves = new Map([
    [1, [{ relid: 11, filenode: 11, attachment: 1 }, { relid: 12, filenode: 12, attachment: 1 }]],
    [2, [{ relid: 21, filenode: 21, attachment: 1 }, { relid: 22, filenode: 22, attachment: 1 }]],
    [3, [{ relid: 31, filenode: 31, attachment: 1 }, { relid: 32, filenode: 32, attachment: 1 }]],
  ]);
  await discovery.look();
  assert.deepEqual(told, ["events 12", "orders 32"], "the tables after the failing one are told too");
  await discovery.look();
  assert.deepEqual(told, ["events 12", "orders 32"], "those told are not told again while another fails");
  failing = false;
  await discovery.look();
  assert.deepEqual(told, ["events 12", "orders 32", "metrics 22"], "the failing one is told once it works");
  await discovery.look();
  assert.equal(told.length, 3);
});

test("a failing publication check neither stops the look at partitions nor is warned at every look", async () => {
  const root: TableRef = { relid: 1, schema: "app", table: "events", kind: "p", estimatedRows: -1 };
  let leaves = new Map([[1, [{ relid: 11, filenode: 11, attachment: 1 }]]]);
  const told: string[] = [];
  const lines: Record<string, unknown>[] = [];
  let failing = true;
  let checks = 0;
  const discovery = new TableDiscovery({
    intervalMs: 0,
    list: async () => [root],
    known: [root],
    add: async () => [],
    republish: async () => {
      checks++;
      if (failing) throw new Error("canceling statement due to lock timeout");
    },
    partitions: {
      seen: new SeenPartitions(),
      list: async () => leaves,
      attached: async (table, partitions) => void told.push(`${table.table} ${partitions.join(",")}`),
      rewritten: async () => undefined,
    },
    logger: pino({ level: "info" }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) }),
  });
  await discovery.look();
  leaves = new Map([[1, [{ relid: 11, filenode: 11, attachment: 1 }, { relid: 12, filenode: 12, attachment: 1 }]]]);
  await discovery.look();
  assert.deepEqual(told, ["events 12"], "partitions attached are told while the publication check fails");
  assert.equal(checks, 2, "the check is tried again at the next look");
  const warned = lines.filter((l) => l["level"] === 40);
  assert.equal(warned.length, 1, "warned once for the run of failures");
  assert.match(String(warned[0]!["msg"]), /could not check that the captured tables are still in the publication/);
  assert.equal(warned[0]!["err"], "canceling statement due to lock timeout");
  assert.equal(lines.filter((l) => String(l["msg"]).includes("could not look for new tables")).length, 0, "not a failed look");
  failing = false;
  await discovery.look();
  assert.equal(lines.filter((l) => String(l["msg"]).includes("works again")).length, 1);
});

test("the first look comes a second after the start, then every interval; each look, failed or not, is told to looked()", async () => {
  mock.timers.enable({ apis: ["setTimeout", "setInterval"] });
  // setImmediate is not mocked: the look's promises settle before it runs.
  const settle = () => new Promise((resolve) => setImmediate(resolve));
  try {
    let lists = 0;
    let looked = 0;
    const discovery = new TableDiscovery({
      intervalMs: 10_000,
      list: async () => {
        if (++lists === 2) throw new Error("connection lost");
        return [];
      },
      known: [],
      add: async () => [],
      looked: () => void looked++,
      logger: pino({ level: "silent" }),
    });
    discovery.start();
    mock.timers.tick(999);
    await settle();
    assert.equal(lists, 0, "none before a second");
    mock.timers.tick(1);
    await settle();
    assert.equal(lists, 1, "the first look a second after the start");
    mock.timers.tick(8_999);
    await settle();
    assert.equal(lists, 1, "not again before the interval");
    mock.timers.tick(1);
    await settle();
    assert.equal(lists, 2, "then every interval");
    assert.equal(looked, 2, "both looks told, the failed one too");
    await discovery.stop();
  } finally {
    mock.timers.reset();
  }
});

test("a partition detached and attached again (a new pg_inherits row, same relid and relfilenode) is told as reattached; one gone as gone; unknown attachments are not compared", async () => {
  const root: TableRef = { relid: 1, schema: "app", table: "events", kind: "p", estimatedRows: -1 };
  let leaves = new Map([[1, [{ relid: 11, filenode: 11, attachment: 500 }, { relid: 12, filenode: 12, attachment: 501 }]]]);
  const told: string[] = [];
  const seen = new SeenPartitions();
  // Marks stored before attachments were kept: leaves known, attachments not.
  seen.leaves = new Map([[1, new Map([[11, 11], [12, 12]])]]);
  const discovery = new TableDiscovery({
    intervalMs: 0,
    list: async () => [root],
    known: [root],
    add: async () => [],
    partitions: {
      seen,
      list: async () => leaves,
      attached: async (table, partitions) => void told.push(`attached ${partitions.join(",")}`),
      rewritten: async (table, partitions, gone, reattached) => void told.push(`rewritten ${partitions.join(",")} gone ${gone.join(",")} reattached ${reattached.join(",")}`),
    },
    logger: pino({ level: "silent" }),
  });
  await discovery.look();
  assert.deepEqual(told, [], "nothing to compare the attachments with: recorded");
  leaves = new Map([[1, [{ relid: 11, filenode: 11, attachment: 500 }, { relid: 12, filenode: 12, attachment: 733 }]]]);
  await discovery.look();
  assert.deepEqual(told, ["rewritten  gone  reattached 12"]);
  await discovery.look();
  assert.equal(told.length, 1, "told once");
  leaves = new Map([[1, [{ relid: 12, filenode: 12, attachment: 733 }]]]);
  await discovery.look();
  assert.deepEqual(told.at(-1), "rewritten  gone 11 reattached ");
});
