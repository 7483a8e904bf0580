/**
 * `sluice snapshot list` on a deployment of several sources. Found on a live deployment
 * (PostgreSQL + MariaDB): without --source it refused with "say which source with --source NAME
 * (several sources could capture it: pg, maria)", though the usage puts --source as optional and
 * listing names no table. It now lists every source in turn. A stand-in for the daemon's admin API
 * answers here (this tests the command's own logic; e2e online-snapshot tests use the real daemon).
 */
import assert from "node:assert/strict";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { test } from "node:test";
import { loadConfigText } from "../config/load.ts";
import { runSnapshotCommand, sourceFor } from "./snapshot-command.ts";

test("snapshot list without --source lists every source of the config; with it, that source only", async () => {
  const asked: string[] = [];
  const server = createServer((req, res) => {
    asked.push(req.url ?? "");
    const source = /^\/sources\/([^/]+)\/snapshots$/.exec(req.url ?? "")?.[1] ?? "";
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ source, tasks: [], failed: [] }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  try {
    const port = (server.address() as AddressInfo).port;
    const config = loadConfigText(
      "test.yaml",
      [
        "name: two",
        "sources:",
        "  - {name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['public.*']}",
        "  - {name: maria, kind: mysql, host: 127.0.0.1, user: u, password: p, server_id: 5, tables: ['shop.*']}",
        "topics: {kind: embedded, path: /tmp/never-opened.db}",
        `http: {listen: 127.0.0.1:${port}}`,
      ].join("\n"),
    );
    const run = async (options: { source?: string; json?: boolean }) => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await runSnapshotCommand(config, ["list"], { source: options.source, execute: false, json: options.json ?? false }, { stdout: (t) => out.push(t), stderr: (t) => err.push(t) });
      return { code, out: out.join(""), err: err.join("") };
    };

    const all = await run({});
    assert.deepEqual([all.code, all.err], [0, ""]);
    assert.equal(all.out, "source pg: no online snapshot queued or running\nsource maria: no online snapshot queued or running\n");
    const json = await run({ json: true });
    assert.deepEqual(json.out.trim().split("\n").map((line) => (JSON.parse(line) as { source: string }).source), ["pg", "maria"]);
    asked.length = 0;
    const one = await run({ source: "maria" });
    assert.deepEqual([one.code, one.out, asked], [0, "source maria: no online snapshot queued or running\n", ["/sources/maria/snapshots"]]);
  } finally {
    await new Promise((resolve) => server.close(resolve));
  }
});

test("--table of a schema whose name holds a dot picks the source whose tables match it (read at either dot)", () => {
  const config = loadConfigText(
    "test.yaml",
    [
      "name: two",
      "sources:",
      "  - {name: pg, kind: postgres, host: 127.0.0.1, database: d, user: u, password: p, tables: ['sales?eu.*']}",
      "  - {name: maria, kind: mysql, host: 127.0.0.1, user: u, password: p, server_id: 5, tables: ['shop.*']}",
      "topics: {kind: embedded, path: /tmp/never-opened.db}",
    ].join("\n"),
  );
  // Found live: the label was split at its first dot (schema "sales", table "eu.orders"), which no source captures.
  assert.deepEqual(sourceFor(config, "sales.eu.orders", undefined), { source: "pg" });
  assert.deepEqual(sourceFor(config, "shop.orders", undefined), { source: "maria" });
  assert.ok("error" in sourceFor(config, "sales.orders", undefined));
});
