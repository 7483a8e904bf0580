/** `sluice halted list` against a stand-in for the daemon's /status (the command's own formatting, no daemon). */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import type { SluiceConfig } from "../config/schema.ts";
import { runHaltedCommand } from "./halted-command.ts";

interface Asked {
  readonly method: string;
  readonly url: string;
  /** The request's JSON body, undefined when it has none. */
  readonly body: unknown;
}

/**
 * Runs `use` with the config of a deployment (source pg capturing `tables`, and sink `sink` when named) whose daemon is a
 * stand-in answering each request with `answer`'s JSON (status 200 unless it says).
 */
async function withDaemon(
  answer: (asked: Asked) => { status?: number; body: unknown },
  deployment: { tables: string; sink?: string },
  use: (config: SluiceConfig) => Promise<void>,
): Promise<void> {
  const daemon = createServer((req, res) => {
    let text = "";
    req.on("data", (chunk: Buffer) => (text += chunk.toString()));
    req.on("end", () => {
      const { status = 200, body } = answer({ method: req.method ?? "", url: req.url ?? "", body: text === "" ? undefined : JSON.parse(text) });
      // A daemon's status names its deployment: the command sends a release only to this deployment's daemon.
      const named = req.url === "/status" && status === 200 && typeof body === "object" && body !== null ? { deployment: "d", ...body } : body;
      res.writeHead(status, { "content-type": "application/json" }).end(JSON.stringify(named));
    });
  });
  await new Promise<void>((resolve) => daemon.listen(0, "127.0.0.1", resolve));
  try {
    const { port } = daemon.address() as AddressInfo;
    const sinks = deployment.sink === undefined ? "" : `sinks: [{name: ${deployment.sink}, kind: duckdb, path: /tmp/not-used.duckdb}]\n`;
    await use(loadConfigText("sluice.yaml", `name: d\nsources: [{name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: not-used-here, tables: ["${deployment.tables}"]}]\n${sinks}http: {listen: "127.0.0.1:${port}"}\n`));
  } finally {
    daemon.close();
  }
}

/** A stand-in answering GET /status with `status`, and any other request with 404 HALT_NOT_FOUND naming the table asked of. */
function statusAnd404(status: unknown, sinkPrefix = "") {
  return ({ method, body }: Asked) =>
    method === "GET" ? { body: status } : { status: 404, body: { error: `${sinkPrefix}table ${(body as { table: string }).table} is not halted (halted now: none)`, code: "HALT_NOT_FOUND" } };
}

test("sluice halted list shows a table name's control characters and line breaks as escapes: a name cannot drive the terminal or add rows", async () => {
  // Names a database user chose: a line break that would start a forged row, an escape sequence that sets the terminal's title.
  const forged = "shop.a\npg     shop.payments  2026-01-01T00:00:00Z  released";
  const status = {
    sinks: [{ name: "wh", halted: [{ table: "shop.\u001b]0;pwned\u0007x", topic: "d.pg.shop.x", partition: 0, recordOffset: 7, since: "2026-12-06T10:00:00Z", error: "bad\rrow" }] }],
    sources: [{ name: "pg", halted: [{ table: forged, since: "2026-12-06T10:00:00Z", error: "its name holds a control character" }] }],
  };
  await withDaemon(() => ({ body: status }), { tables: "shop.*" }, async (config) => {
    let stdout = "";
    const code = await runHaltedCommand(config, ["list"], { execute: false, json: false }, { stdout: (text) => (stdout += text), stderr: (text) => assert.fail(text) });
    assert.equal(code, 0);
    assert.doesNotMatch(stdout, /[\u0000-\u0009\u000b-\u001f\u007f]/, "no control character but line breaks reaches the terminal");
    const rows = stdout.split("\n");
    assert.equal(rows.filter((row) => row.startsWith("pg ")).length, 1, `one row for the capture halt:\n${stdout}`);
    assert.ok(rows.some((row) => row.includes("shop.a\\u000apg     shop.payments")), stdout);
    assert.ok(rows.some((row) => row.includes("shop.\\u001b]0;pwned\\u0007x") && row.includes("bad\\u000drow")), stdout);
  });
});

test("sluice halted skip --all-pending / --through asks the daemon for a ranged skip and prints the range; the options are refused where they do not apply", async () => {
  const bodies: unknown[] = [];
  const report = { sink: "wh", table: "shop.x", topic: "d.pg.shop.x", partition: 0, offset: "7", error: "no key", action: "skip", executed: false, deadLetterTopic: "d.dlq.wh", skipThrough: [{ partition: 0, through: "900", records: "894" }], description: "would send ... (at most 894 record(s) ...)" };
  const answer = ({ method, body }: Asked) => {
    if (method === "POST") bodies.push(body);
    return { body: report };
  };
  await withDaemon(answer, { tables: "shop.*", sink: "wh" }, async (config) => {
    let stdout = "";
    let stderr = "";
    const io = { stdout: (text: string) => (stdout += text), stderr: (text: string) => (stderr += text) };
    assert.equal(await runHaltedCommand(config, ["skip"], { sink: "wh", table: "shop.x", allPending: true, execute: false, json: false }, io), 0);
    assert.equal(await runHaltedCommand(config, ["skip"], { sink: "wh", table: "shop.x", through: "900", execute: false, json: false }, io), 0);
    assert.deepEqual(bodies, [{ table: "shop.x", execute: false, through: "pending" }, { table: "shop.x", execute: false, through: "900" }]);
    assert.match(stdout, /at most 894 record/);
    assert.match(stdout, /Dead-lettered records: in d\.dlq\.wh, each with its reason: "sluice dead-letters --sink wh" lists them/);
    assert.equal(await runHaltedCommand(config, ["retry"], { sink: "wh", table: "shop.x", allPending: true, execute: false, json: false }, io), 2);
    assert.equal(await runHaltedCommand(config, ["skip"], { sink: "wh", table: "shop.x", through: "9", allPending: true, execute: false, json: false }, io), 2);
    assert.equal(await runHaltedCommand(config, ["skip"], { sink: "wh", table: "shop.x", through: "-1", execute: false, json: false }, io), 2);
    assert.equal(await runHaltedCommand(config, ["skip"], { sink: "wh", table: "shop.x", through: "99999999999999999999999", execute: false, json: false }, io), 2);
    assert.match(stderr, /at most 20 digits[^\n]*not "99999999999999999999999"/);
    assert.equal(bodies.length, 2, "a refused option asks the daemon nothing");
    assert.match(stderr, /go with "skip" only[\s\S]*not both[\s\S]*takes a record offset/);
  });
});

test("sluice halted skip --source --all-pending / --through asks the daemon for a ranged capture skip and prints the range and the changes in it", async () => {
  const requests: { url: string; body: unknown }[] = [];
  const listed = [{ offset: "12", op: "u", key: '{"id":"7"}', position: "0/16B3F20" }];
  const report = {
    source: "pg",
    table: "shop.x",
    action: "skip",
    executed: false,
    error: "bad value",
    code: "AVRO_VALUE_INVALID",
    parkingTopic: "d.sluice.halted.pg",
    parked: 40,
    skipRange: { from: "12", through: "90", changes: 38, reason: "AVRO_VALUE_INVALID, column price", listed },
    description: "mark the change that halted it ... skipping each of the other 37 parked change(s)",
  };
  const answer = ({ method, url, body }: Asked) => {
    if (method === "POST") requests.push({ url, body });
    return { body: report };
  };
  await withDaemon(answer, { tables: "shop.*" }, async (config) => {
    let stdout = "";
    const io = { stdout: (text: string) => (stdout += text), stderr: (text: string) => assert.fail(text) };
    assert.equal(await runHaltedCommand(config, ["skip"], { source: "pg", table: "shop.x", allPending: true, execute: false, json: false }, io), 0);
    assert.equal(await runHaltedCommand(config, ["skip"], { source: "pg", table: "shop.x", through: "90", execute: false, json: false }, io), 0);
    assert.deepEqual(requests, [
      { url: "/sources/pg/halted/skip", body: { table: "shop.x", execute: false, through: "pending" } },
      { url: "/sources/pg/halted/skip", body: { table: "shop.x", execute: false, through: "90" } },
    ]);
    assert.match(stdout, /Range: d\.sluice\.halted\.pg offsets 12 through 90: 38 parked change\(s\) of shop\.x, skipped when refused for AVRO_VALUE_INVALID, column price \(pin it with --through 90\)/);
    assert.match(stdout, /12 {2}u {2}\{"id":"7"\} {2}0\/16B3F20\n {4}\.\.\. and 37 more/);
  });
});

test("sluice halted list and release name the halts another process of the deployment announces (Kafka: a halt lives in the process reading its partition)", async () => {
  const status = {
    sinks: [{ name: "es", halted: [] }],
    sources: [],
    instances: [
      { id: "sinks-a:7", self: true, sinks: [{ name: "es", halted: [] }], sources: [] },
      { id: "sinks-b:9", self: false, stale: false, sinks: [{ name: "es", halted: [{ table: "public.items", at: "d.pg.public.items:0:15902" }] }], sources: [] },
      { id: "capture-0:1", self: false, stale: true, sinks: [], sources: [{ name: "pg", halted: [{ table: "public.bad" }] }] },
    ],
  };
  await withDaemon(statusAnd404(status, "sink es: "), { tables: "public.*", sink: "es" }, async (config) => {
    let stdout = "";
    let stderr = "";
    const io = { stdout: (text: string) => (stdout += text), stderr: (text: string) => (stderr += text) };
    assert.equal(await runHaltedCommand(config, ["list"], { execute: false, json: false }, io), 0);
    assert.match(stdout, /^no halted tables in this process \(http:\/\/127\.0\.0\.1:\d+\)/);
    assert.match(stdout, /sinks-b:9\s+sink es\s+public\.items\s+d\.pg\.public\.items:0:15902/);
    assert.match(stdout, /capture-0:1 \(stale\)\s+source pg\s+public\.bad/);
    assert.equal(await runHaltedCommand(config, ["retry"], { sink: "es", table: "public.items", execute: false, json: false }, io), 1);
    assert.match(stderr, /not halted \(halted now: none\)\. It is halted in another process of the deployment: sinks-b:9 \(host:pid\)/);
    assert.equal(await runHaltedCommand(config, ["retry"], { sink: "es", table: "public.other", execute: false, json: false }, io), 1);
    assert.match(stderr, /public\.other is not halted[^\n]*--source NAME instead of --sink\.\n$/, "no holder named for a table no process announces");
    stdout = "";
    assert.equal(await runHaltedCommand(config, ["list"], { execute: false, json: true }, io), 0);
    assert.deepEqual((JSON.parse(stdout) as { otherProcesses: unknown[] }).otherProcesses.length, 2);
  });
});

test("sluice halted: a stale process is not named as the holder to run the command with; a process of an earlier version and a report's unlisted halts are said so", async () => {
  const status = {
    sinks: [{ name: "es", halted: [] }],
    sources: [{ name: "pg", halted: [] }],
    instances: [
      { id: "sinks-a:7", self: true, sinks: [{ name: "es", halted: [] }], sources: [] },
      // Killed with -9 while holding the halt; its report stays listed (stale) for a while.
      { id: "sinks-b:9", self: false, stale: true, sinks: [{ name: "es", halted: [{ table: "public.items", at: "d.pg.public.items:0:15902" }] }], sources: [] },
      // Not upgraded yet: its report has no halted field.
      { id: "capture-0:1", self: false, stale: false, version: "0.9.0", sinks: [], sources: [{ name: "pg", state: "leader" }] },
      { id: "sinks-c:3", self: false, stale: false, sinks: [{ name: "es", halted: [{ table: "public.t0", at: "d.pg.public.t0:2:1" }], haltedMore: 4211 }], sources: [] },
    ],
  };
  await withDaemon(statusAnd404(status), { tables: "public.*", sink: "es" }, async (config) => {
    let stdout = "";
    let stderr = "";
    const io = { stdout: (text: string) => (stdout += text), stderr: (text: string) => (stderr += text) };
    assert.equal(await runHaltedCommand(config, ["retry"], { sink: "es", table: "public.items", execute: false, json: false }, io), 1);
    assert.doesNotMatch(stderr, /It is halted in another process/, "a stale report's process is not the one to ask");
    assert.match(stderr, /sinks-b:9 \(host:pid\) announced it halted, but has not reported for a while \(stale\): that process is probably gone/);
    stderr = "";
    assert.equal(await runHaltedCommand(config, ["retry"], { source: "pg", table: "public.bad", execute: false, json: false }, io), 1);
    assert.match(stderr, /It may be halted in capture-0:1 \(host:pid\), which does not report its halts \(an earlier version\)/);
    assert.equal(await runHaltedCommand(config, ["list"], { execute: false, json: false }, io), 0);
    assert.match(stdout, /Process capture-0:1 \(an earlier version\) does not report its halts/);
    assert.match(stdout, /Process sinks-c:3 holds 4211 more halted table\(s\) of sink es than it lists/);
    assert.doesNotMatch(stdout, /^no halted tables\n/);
    stdout = "";
    assert.equal(await runHaltedCommand(config, ["list"], { execute: false, json: true }, io), 0);
    const unlisted = (JSON.parse(stdout) as { otherProcessesUnlisted: { instance: string; reason: string; count?: number }[] }).otherProcessesUnlisted;
    assert.deepEqual(unlisted.map((u) => [u.instance, u.reason, u.count]), [["capture-0:1", "earlier version", undefined], ["sinks-c:3", "not listed", 4211]]);
  });
});

test("sluice halted list with only a process of an earlier version besides this one does not answer 'no halted tables' alone", async () => {
  const status = { sinks: [{ name: "es", halted: [] }], sources: [], instances: [{ id: "a:1", self: true, sinks: [{ name: "es", halted: [] }], sources: [] }, { id: "b:2", self: false, stale: false, sinks: [{ name: "es" }], sources: [] }] };
  await withDaemon(() => ({ body: status }), { tables: "public.*", sink: "es" }, async (config) => {
    let stdout = "";
    assert.equal(await runHaltedCommand(config, ["list"], { execute: false, json: false }, { stdout: (text) => (stdout += text), stderr: (text) => assert.fail(text) }), 0);
    assert.match(stdout, /^no halted tables in this process \(http:\/\/127\.0\.0\.1:\d+\)\n\nProcess b:2 \(an earlier version\) does not report its halts/);
  });
});

test("sluice halted retry --sink --force asks the daemon to take the target as it is; --force is refused with skip and with --source", async () => {
  const bodies: unknown[] = [];
  const report = { sink: "wh", table: "shop.x", topic: "d.pg.shop.x", partition: 0, offset: "7", error: "emptied", action: "retry", executed: true, description: "reading shop.x again from d.pg.shop.x:0:7 (the record that halted it), its target taken as it is now (--force); if it still fails, the table halts again" };
  await withDaemon(({ method, body }) => (method === "POST" && bodies.push(body), { body: report }), { tables: "shop.*", sink: "wh" }, async (config) => {
    let stdout = "";
    let stderr = "";
    const io = { stdout: (text: string) => (stdout += text), stderr: (text: string) => (stderr += text) };
    assert.equal(await runHaltedCommand(config, ["retry"], { sink: "wh", table: "shop.x", force: true, execute: true, json: false }, io), 0);
    assert.deepEqual(bodies, [{ table: "shop.x", execute: true, force: true }]);
    assert.match(stdout, /taken as it is now \(--force\)/);
    assert.equal(await runHaltedCommand(config, ["skip"], { sink: "wh", table: "shop.x", force: true, execute: false, json: false }, io), 2);
    assert.equal(await runHaltedCommand(config, ["retry"], { source: "pg", table: "shop.x", force: true, execute: false, json: false }, io), 2);
    assert.match(stderr, /--force goes with "retry --sink" only/);
    assert.equal(bodies.length, 1, "a refused option asks the daemon nothing");
  });
});
