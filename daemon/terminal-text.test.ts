import assert from "node:assert/strict";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, test } from "node:test";
import { createLogger } from "../runtime/logger.ts";
import { crashText, main } from "./cli.ts";
import { progressLine } from "./progress-display.ts";
import { rebuildLine } from "./rebuild-progress.ts";
import { describeAbandon } from "./rebuild-abandon.ts";
import type { AbandonReport } from "./rebuild-abandon.ts";
import { formatList } from "./snapshot-command.ts";
import type { FailedSnapshot, SnapshotTask } from "../connectors/common/incremental-snapshot-state.ts";
import { oneLine } from "./terminal-text.ts";

const dir = mkdtempSync(join(tmpdir(), "sluice-terminal-"));
after(() => rmSync(dir, { recursive: true, force: true }));

test("what a command prints reaches the terminal with control characters escaped, tabs and line breaks kept", async () => {
  // A name from the source (here the config's own path) with an escape sequence that would set the terminal's title.
  const file = join(dir, "shop\u001b]0;owned\u0007.yaml");
  copyFileSync(new URL("../config/examples/minimal.yaml", import.meta.url), file);
  let out = "";
  const code = await main(["validate", "-c", file], { stdout: (text) => void (out += text), stderr: (text) => void (out += text) });
  assert.equal(code, 0, out);
  assert.ok(out.includes("shop\\u001b]0;owned\\u0007.yaml"), out);
  assert.ok(out.endsWith("\n"));
  assert.doesNotMatch(out, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
});

test("a snapshot progress line (redrawn in place on standard error) shows a table name on one line, escaped", () => {
  const line = progressLine("pg", { table: "public.a\u001b[2K\nb", state: "running", rowsDone: 1, rowsEstimated: 2, rowsPerSecond: 0, startedAtMs: 0, finishedAtMs: null });
  assert.ok(line.includes("public.a\\u001b[2K\\u000ab"), line);
});

test("a cell on one line shows the bidi embedding, override and isolate characters escaped, other text as it is", () => {
  assert.equal(oneLine("a\u202ab\u202ec\u2066d\u2069e\u200ff é"), "a\\u202ab\\u202ec\\u2066d\\u2069e\u200ff é");
});

/** A stand-in daemon of deployment "shop" whose /status names a sink `name`, and which refuses every other call with `error`. */
async function withStandIn(name: string, error: string, run: (configFile: string) => Promise<void>): Promise<void> {
  const server = createServer((req, res) => {
    res.writeHead(req.url === "/status" ? 200 : 409, { "content-type": "application/json" });
    const status = { deployment: "shop", version: "1", ready: true, topics: { kind: "embedded", ready: true }, sources: [], sinks: [{ name, ready: true, lagRecords: 0, freshnessSeconds: 0, halted: [{ table: name, error: name }] }] };
    res.end(JSON.stringify(req.url === "/status" ? status : { error }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const file = join(dir, `standin-${(server.address() as AddressInfo).port}.yaml`);
  writeFileSync(
    file,
    [
      "name: shop",
      "sources: [{name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['public.*']}]",
      "topics: {kind: embedded, path: /nonexistent/log.db}",
      "sinks: [{name: wh, kind: duckdb, path: /nonexistent/wh.duckdb}]",
      `http: {listen: 127.0.0.1:${(server.address() as AddressInfo).port}}`,
    ].join("\n"),
  );
  try {
    await run(file);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
}

const TERMINAL_UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/;

test("--json output from the daemon reaches the terminal with C1 and bidi controls escaped, and is still the same JSON", async () => {
  // A sink or table name with an OSC (ESC), a one-character CSI (U+009B) and a right-to-left override (U+202E).
  const name = "wh\u001b]0;owned\u0007\u009b2J\u202egnp.";
  await withStandIn(name, "x", async (file) => {
    let out = "";
    const code = await main(["status", "-c", file, "--json"], { stdout: (text) => void (out += text), stderr: (text) => void (out += text) });
    assert.equal(code, 0, out);
    // Before: U+202E reached the terminal (JSON.stringify escapes only C0; terminalText left bidi controls).
    assert.doesNotMatch(out, TERMINAL_UNSAFE);
    assert.equal((JSON.parse(out) as { sinks: { name: string }[] }).sinks[0]!.name, name);
    let text = "";
    await main(["status", "-c", file], { stdout: (t) => void (text += t), stderr: (t) => void (text += t) });
    assert.doesNotMatch(text, TERMINAL_UNSAFE);
  });
});

test("a daemon's error quoting a name with a line break is printed on one line: it cannot add a line of its own", async () => {
  await withStandIn("wh", 'sink wh has no halted table "public.a\nDone: released"', async (file) => {
    let err = "";
    const code = await main(["halted", "-c", file, "retry", "--sink", "wh", "--table", "public.a"], { stdout: (text) => void (err += text), stderr: (text) => void (err += text) });
    assert.equal(code, 1, err);
    // Before: "...table "public.a" then a line "Done: released"".
    assert.doesNotMatch(err, /\nDone: released/);
    assert.match(err, /public\.a\\u000aDone: released/);
  });
});

test("a log line (sluice run's log, a command's warnings) has DEL, C1 and bidi controls escaped, and parses to the same text", () => {
  const lines: string[] = [];
  const logger = createLogger("info", { write: (line: string) => void lines.push(line) });
  const table = "public.t\u007f\u009b2J\u202eabc\u001b[31m";
  logger.warn({ table }, `table ${table} halted`);
  assert.equal(lines.length, 1);
  // Before: DEL, U+009B and U+202E were written as they are (JSON escapes C0 only).
  assert.doesNotMatch(lines[0]!, TERMINAL_UNSAFE);
  const parsed = JSON.parse(lines[0]!) as { table: string; msg: string };
  assert.equal(parsed.table, table);
  assert.equal(parsed.msg, `table ${table} halted`);
});

test("an unexpected failure and a rebuild's progress line show a name's control characters escaped", () => {
  const text = crashText(new Error('no table "a\u001b]0;owned\u0007\u009b2J"'));
  assert.match(text, /^sluice: unexpected failure: Error: no table "a\\u001b\]0;owned\\u0007\\u009b2J"/);
  assert.doesNotMatch(text, TERMINAL_UNSAFE);
  const line = rebuildLine({ sink: "wh\u001b[2K\nx", state: "reading", recordsDone: 1, recordsTotal: 2, recordsPerSecond: 0, etaSeconds: null });
  assert.ok(line.startsWith("rebuild wh\\u001b[2K\\u000ax ["), line);
});

test("a snapshot list and an abandoned rebuild's report show names, conditions and errors from the daemon on one line each", () => {
  const evil = "public.a\nDone: queued\u001b[2K";
  const list = formatList({
    source: "pg",
    waiting: "PostgreSQL away\nok",
    tasks: [{ id: "t1", table: evil, where: "x = 1\nqueued  public.b", origin: "command", rowsDone: 1, rowsEstimated: null, startedAtMs: 1 } as unknown as SnapshotTask],
    failed: [{ table: evil, atMs: 0, code: "X", error: "refused\nfailed   public.c" } as unknown as FailedSnapshot],
  });
  // Before: each line break in a name, a condition or an error began a line of its own.
  assert.equal(list.split("\n").length, 4, list);
  assert.ok(list.includes("public.a\\u000aDone: queued\\u001b[2K"), list);
  const abandon = describeAbandon("wh", { shadows: [{ table: evil, physical: "p\nq" }], notFound: [evil], unowned: [] } as unknown as AbandonReport, false);
  assert.equal(abandon.split("\n").length, 4, abandon);
});

test("a rebuild done by the daemon is reported with its tables and left-out records on one line", async () => {
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    if (req.url === "/status") res.end(JSON.stringify({ deployment: "shop", ready: true }));
    else res.end(JSON.stringify({ tables: ["public.a\nDone: nothing"], records: 3, leftOut: 1, leftOutRecords: [{ topic: "t\u001b[2K", partition: 0, offset: "1", reason: "bad\nrecord" }] }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const file = join(dir, "rebuild-standin.yaml");
  writeFileSync(
    file,
    [
      "name: shop",
      "sources: [{name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['public.*']}]",
      "topics: {kind: embedded, path: /nonexistent/log.db}",
      "sinks: [{name: wh, kind: duckdb, path: /nonexistent/wh.duckdb}]",
      `http: {listen: 127.0.0.1:${(server.address() as AddressInfo).port}}`,
    ].join("\n"),
  );
  try {
    let out = "";
    const code = await main(["replay", "-c", file, "--sink", "wh", "--from-beginning", "--rebuild", "--execute"], { stdout: (t) => void (out += t), stderr: (t) => void (out += t) });
    assert.equal(code, 0, out);
    // Before: "Done (by the running daemon): rebuilt 1 table (public.a" and a line "Done: nothing) from 3 records ...".
    assert.equal(out.split("\n").length, 2, out);
    assert.match(out, /^Done \(by the running daemon\): rebuilt 1 table \(public\.a\\u000aDone: nothing\) from 3 records.*t\\u001b\[2K.*\(bad\\u000arecord\)\.\n$/);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("sluice halted retry and skip print the daemon's table, error and description on one line each", async () => {
  const server = createServer((req, res) => {
    res.writeHead(200, { "content-type": "application/json" });
    if (req.url === "/status") res.end(JSON.stringify({ deployment: "shop", ready: true }));
    else if (req.url!.startsWith("/sinks/")) res.end(JSON.stringify({ sink: "wh", table: "public.a\nDone: released", topic: "t", partition: 0, offset: "1", error: "e\nDone: x", description: "read it again\nDone: y", executed: false }));
    else res.end(JSON.stringify({ source: "pg", table: "public.a\nDone: released", code: "X", parked: 1, parkingTopic: "p", error: "e\nDone: x", description: "re-publish\nDone: y", executed: false }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const file = join(dir, "halted-standin.yaml");
  writeFileSync(
    file,
    [
      "name: shop",
      "sources: [{name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['public.*']}]",
      "topics: {kind: embedded, path: /nonexistent/log.db}",
      "sinks: [{name: wh, kind: duckdb, path: /nonexistent/wh.duckdb}]",
      `http: {listen: 127.0.0.1:${(server.address() as AddressInfo).port}}`,
    ].join("\n"),
  );
  try {
    for (const who of [["--sink", "wh"], ["--source", "pg"]]) {
      let out = "";
      const code = await main(["halted", "-c", file, "retry", ...who, "--table", "public.a"], { stdout: (t) => void (out += t), stderr: (t) => void (out += t) });
      assert.equal(code, 0, out);
      // Before: "Done: released", "Done: x" and "Done: y" each began a line.
      assert.doesNotMatch(out, /\nDone:/, out);
      assert.equal(out.split("\n").length, 5, out);
    }
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});
