import assert from "node:assert/strict";
import { test } from "node:test";
import { formatStatus } from "./status-table.ts";

const status = (position: Record<string, string> | null) => ({
  deployment: "shop",
  version: "1.0.0",
  ready: true,
  topics: { kind: "kafka", ready: true },
  sources: [{ name: "pg", kind: "postgres", ready: true, position, lagSeconds: 0.4, halted: [] }],
  sinks: [],
});

test("sluice status shows a source's position as the source writes it", () => {
  const text = formatStatus(status({ commit: "483846128", change: "483846128", text: "0/1CD6E7F0" }));
  assert.match(text, /pg\s+postgres\s+capturing\s+0\/1CD6E7F0\s+0\.4s/);
  assert.doesNotMatch(text, /483846128/);
});

test("sluice status says what each component that is not ready waits for", () => {
  const text = formatStatus({
    ...status({ commit: "10", change: "9" }),
    ready: false,
    topics: { kind: "kafka", ready: false, waiting: "Kafka k:9092 unavailable during produce: Connection error" },
    sinks: [{ name: "warehouse", ready: false, waiting: "Kafka k:9092 unavailable during list topics: Connection error", lagRecords: null, freshnessSeconds: 1, halted: [] }],
  });
  assert.match(text, /NOT READY\s+WAITING FOR\ntopic log\s+Kafka k:9092 unavailable during produce: Connection error\nsink warehouse\s+Kafka k:9092 unavailable during list topics/);
  assert.doesNotMatch(formatStatus(status(null)), /WAITING FOR/);
});

test("sluice status shows a sink whose server refuses its credentials, and for how long, besides what it waits for", () => {
  const text = formatStatus({
    ...status({ commit: "10", change: "9" }),
    ready: false,
    sinks: [
      {
        name: "warehouse",
        ready: false,
        waiting: 'its target does not accept writes: ClickHouse http://ch:8123 refused the sink\'s login as user "sluice" (error 193)',
        credentialsRefused: { since: "2026-12-07T17:00:00.000Z", seconds: 754 },
        lagRecords: 12,
        freshnessSeconds: 800,
        halted: [],
      },
    ],
  });
  assert.match(text, /warehouse\s+CREDENTIALS REFUSED for 12m34s\s+12/);
  assert.match(text, /sink warehouse\s+its target does not accept writes: ClickHouse .* refused the sink's login as user "sluice"/);
});

test("sluice status still shows the numbers of a daemon that sends no text, and a dash before the first checkpoint", () => {
  assert.match(formatStatus(status({ commit: "10", change: "9" })), /capturing\s+10\/9\s/);
  assert.match(formatStatus(status(null)), /capturing\s+-\s/);
});

test("sluice status lists the snapshots in progress with rows, rate and time left", () => {
  const text = formatStatus({
    deployment: "d",
    version: "1",
    ready: true,
    topics: { kind: "embedded", ready: true },
    sources: [
      {
        name: "pg",
        kind: "postgres",
        ready: true,
        position: null,
        lagSeconds: 0,
        halted: [],
        snapshots: [{ table: "public.orders", state: "running", rowsDone: 5000, rowsEstimated: 20000, rowsPerSecond: 1000, etaSeconds: 15, startedAt: null, finishedAt: null }],
      },
    ],
    sinks: [],
  });
  assert.match(text, /SNAPSHOT OF\s+TABLE\s+STATE\s+ROWS\s+RATE\s+ETA\npg\s+public\.orders\s+running\s+5000 \/ ~20000\s+1000\/s\s+15s/);
});

test("sluice status lists a running rebuild with records, rate and time left", () => {
  const rebuild = { state: "reading", tables: ["public.orders"], recordsDone: 25_000, recordsTotal: 100_000, recordsPerSecond: 5_000, etaSeconds: 15, startedAt: "2026-01-01T00:00:00.000Z", finishedAt: null, error: null };
  const text = formatStatus({
    deployment: "d",
    version: "1",
    ready: true,
    topics: { kind: "embedded", ready: true },
    sources: [],
    sinks: [{ name: "wh", ready: true, lagRecords: 0, freshnessSeconds: 0, halted: [], rebuild }],
  });
  assert.match(text, /REBUILD OF\s+STATE\s+RECORDS\s+RATE\s+ETA\s+TABLES\s+ERROR\nwh\s+reading\s+25000 \/ 100000\s+5000\/s\s+15s\s+public\.orders/);
  const leftOut = formatStatus({
    deployment: "d",
    version: "1",
    ready: true,
    topics: { kind: "embedded", ready: true },
    sources: [],
    sinks: [{ name: "wh", ready: true, lagRecords: 0, freshnessSeconds: 0, halted: [], rebuild: { ...rebuild, recordsLeftOut: 1 } }],
  });
  assert.match(leftOut, /\nwh\s+reading\s+25000 \/ 100000 \(1 undecodable left out\)\s+5000\/s/);
});

test("sluice status shows a table name's control characters and line breaks as escapes: a name cannot drive the terminal or add rows", () => {
  const name = "public.esc\u001b[31mred\u001b]0;title\u0007\u009b2J\nSINK  fake";
  const text = formatStatus({
    ...status({ commit: "10", change: "9" }),
    sources: [{ name: "pg", kind: "postgres", ready: true, position: null, lagSeconds: 0.4, halted: [{ table: name, error: `table ${name} halted` }] }],
  });
  assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
  assert.match(text, /pg\s+public\.esc\\u001b\[31mred\\u001b\]0;title\\u0007\\u009b2J\\u000aSINK  fake\s+table public\.esc\\u001b/);
});

test("sluice status shows a sink's last lag read, with its age, when the daemon could not read one for the answer", () => {
  const sink = { name: "warehouse", ready: true, freshnessSeconds: 1, halted: [] };
  const text = formatStatus({ ...status(null), sinks: [{ ...sink, lagRecords: null, lastLag: { records: 1200, ageSeconds: 3.4 } }] });
  assert.match(text, /warehouse\s+applying\s+~1200 \(3s ago\)/);
  assert.match(formatStatus({ ...status(null), sinks: [{ ...sink, lagRecords: null, lastLag: null }] }), /warehouse\s+applying\s+-\s/);
  assert.match(formatStatus({ ...status(null), sinks: [{ ...sink, lagRecords: 5, lastLag: null }] }), /warehouse\s+applying\s+5\s/);
});

test("sluice status shows a source's warnings, e.g. a publication that leaves out changes", () => {
  const base = status({ commit: "10", change: "9" });
  const text = formatStatus({ ...base, sources: [{ ...base.sources[0]!, warnings: [{ code: "PG_PUBLICATION_INCOMPLETE", message: 'publication "p" does not publish delete' }] }] });
  assert.match(text, /WARNING OF\s+CODE\s+MESSAGE\npg\s+PG_PUBLICATION_INCOMPLETE\s+publication "p" does not publish delete/);
  assert.doesNotMatch(formatStatus(base), /WARNING OF/);
});

test("sluice status marks another process's source or sink that is not ready, as /status's instances say (the readiness at the top is this process's)", () => {
  const instance = (id: string, self: boolean, ready: boolean) => ({
    id,
    self,
    roles: ["capture", "sinks"],
    ageSeconds: 1,
    sources: [{ name: "pg", state: "leader", ready, lagSeconds: 0.3 }],
    sinks: [{ name: "analytics", ready, partitions: ready ? ["t:0"] : [], lagRecords: 0 }],
  });
  const text = formatStatus({ ...status({ commit: "10", change: "9" }), instances: [instance("vm:1", true, true), instance("vm:2", false, false)] });
  assert.match(text, /vm:1 \(this\)\s+capture,sinks\s+pg:leader 0\.3s\s+analytics:1p lag 0\s+now/);
  assert.match(text, /vm:2\s+capture,sinks\s+pg:leader 0\.3s NOT READY\s+analytics:0p lag 0 NOT READY\s+1\.0s ago/);
});
